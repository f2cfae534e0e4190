"""``packetcapture follow`` on a node's capture directory (what ``stream`` runs in the pod)."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from packetcapture.errors import PacketCaptureError, PcapError
from packetcapture.kube._files import follow_capture
from packetcapture.pcap import PcapReader, PcapWriter
from tests.kube.kube_helpers import SAMPLE_PCAP

NS, NAME = "shop", "cap"


@pytest.fixture
def capdir(tmp_path: Path) -> Path:
    (tmp_path / NS / NAME).mkdir(parents=True)
    return tmp_path


def test_follow_copies_the_active_file_as_a_stream(capdir: Path) -> None:
    shutil.copyfile(SAMPLE_PCAP, capdir / NS / NAME / "web_cali1.pcap")
    with PcapReader(SAMPLE_PCAP) as reader:
        total = sum(1 for _ in reader)
    out = io.BytesIO()
    assert follow_capture(capdir, NS, NAME, out, count=total) == total
    assert out.getvalue() == SAMPLE_PCAP.read_bytes()
    out = io.BytesIO()
    assert follow_capture(capdir, NS, NAME, out, count=2) == 2
    with PcapReader(io.BytesIO(out.getvalue())) as reader:
        assert len(list(reader)) == 2


def test_follow_waits_for_traffic_and_ends_when_the_capture_goes(capdir: Path) -> None:
    where = capdir / NS / NAME
    out = io.BytesIO()
    result: list[int] = []
    thread = threading.Thread(
        target=lambda: result.append(follow_capture(capdir, NS, NAME, out, poll_seconds=0.02))
    )
    thread.start()
    time.sleep(0.2)
    assert out.getvalue() == b""  # WaitingForTraffic: no file yet
    with open(where / "web_cali1.pcap", "wb") as f:
        writer = PcapWriter(f)
        writer.write(1_700_000_000 * 10**9, bytes(60))
    deadline = time.monotonic() + 10
    while len(out.getvalue()) < 24 + 16 + 60 and time.monotonic() < deadline:
        time.sleep(0.02)
    shutil.rmtree(where)  # the capture is deleted: Calico removes its files
    thread.join(10)
    assert result == [1]


def test_follow_refuses_pcapng_and_an_ambiguous_interface(capdir: Path) -> None:
    where = capdir / NS / NAME
    with open(where / "web_cali1.pcap", "wb") as f:
        PcapWriter(f, format="pcapng").write(1, bytes(60))
    with pytest.raises(PcapError, match="follow reads pcap, not pcapng"):
        follow_capture(capdir, NS, NAME, io.BytesIO())
    shutil.copyfile(SAMPLE_PCAP, where / "db_cali2.pcap")
    with pytest.raises(PacketCaptureError, match=r"choose one with --interface \(db_cali2, web"):
        follow_capture(capdir, NS, NAME, io.BytesIO())
    out = io.BytesIO()
    assert follow_capture(capdir, NS, NAME, out, interface="cali2", count=1) == 1
    with pytest.raises(PacketCaptureError, match="no capture shop/other"):
        follow_capture(capdir, NS, "other", io.BytesIO())


@pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump not installed")
def test_follow_command_output_reads_with_tcpdump(capdir: Path) -> None:
    shutil.copyfile(SAMPLE_PCAP, capdir / NS / NAME / "web_cali1.pcap")
    argv = [sys.executable, "-m", "packetcapture", "follow", f"{NS}/{NAME}", "--count", "5"]
    argv += ["--capture-dir", str(capdir)]
    follow = subprocess.Popen(argv, stdout=subprocess.PIPE)
    read = subprocess.run(
        ["tcpdump", "-nr", "-"], stdin=follow.stdout, capture_output=True, check=True
    )
    assert follow.wait(10) == 0
    assert follow.stdout is not None
    follow.stdout.close()
    assert len(read.stdout.splitlines()) == 5

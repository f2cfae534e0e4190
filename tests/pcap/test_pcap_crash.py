"""Crash safety: SIGKILL a writer process mid-stream, then read what it left."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from packetcapture.pcap import (
    CaptureSettings,
    PcapReader,
    PcapTruncatedError,
    RotatingWriter,
    count_packets,
)

TS0 = 1_700_000_000_000_000_000

CHILD = textwrap.dedent(
    """
    import sys, time
    from packetcapture.pcap import CaptureSettings, RotatingWriter

    def packet(i):
        # Ethernet II header with ethertype 0x88b5, then the index and filler.
        return bytes(12) + b"\\x88\\xb5" + i.to_bytes(4, "big") + bytes(i % 200)

    settings = CaptureSettings(max_size_bytes=30_000, max_files=1000, flush_packets=10_000,
                               format=sys.argv[2])
    w = RotatingWriter(sys.argv[1], "ns", "cap", "pod", "cali1", settings=settings)
    i = 0
    now = 1_700_000_000.0
    while True:
        data = packet(i)
        w.write(1_700_000_000_000_000_000 + i * 1000, data, len(data), now)
        i += 1
        now += 0.0001
        if i % 37 == 0:
            w.flush()
            print(i, flush=True)
    """
)


def tcpdump_count(tcpdump: str, path: Path) -> tuple[int, str, int]:
    """Packets ``tcpdump -r`` prints, its stderr and exit code."""
    proc = subprocess.run(
        [tcpdump, "-r", str(path), "-nn", "-K"], capture_output=True, text=True, check=False
    )
    lines = [line for line in proc.stdout.splitlines() if line and not line[0].isspace()]
    return len(lines), proc.stderr, proc.returncode


def packet(i: int) -> bytes:
    return bytes(12) + b"\x88\xb5" + i.to_bytes(4, "big") + bytes(i % 200)


def read_dir(d: Path) -> list[tuple[int, bytes, int]]:
    # Rotated files by name (same-length timestamps), then the active file.
    files = sorted(os.listdir(d), key=lambda n: (n.endswith("_cali1.pcap"), n))
    out: list[tuple[int, bytes, int]] = []
    for n in files:
        # A torn tail: keep the whole packets before it (extend keeps what it got).
        with PcapReader(d / n) as r, contextlib.suppress(PcapTruncatedError):
            out.extend(r)
    return out


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_sigkill_mid_stream_keeps_every_flushed_packet(
    tmp_path: Path, tool: Callable[[str], str], fmt: str
) -> None:
    tcpdump = tool("tcpdump")
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    rnd = random.Random(fmt)
    for attempt in range(2):
        capdir = tmp_path / f"run{attempt}"
        proc = subprocess.Popen(
            [sys.executable, str(script), str(capdir), fmt],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        flushed = 0
        deadline = time.monotonic() + rnd.uniform(0.05, 0.25)
        try:
            while time.monotonic() < deadline or flushed < 3000:
                line = proc.stdout.readline()
                if not line:
                    break
                flushed = int(line)
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            proc.stdout.close()
        assert proc.returncode == -signal.SIGKILL
        d = capdir / "ns" / "cap"
        files = sorted(os.listdir(d))
        assert len(files) > 1  # it was killed after several rotations
        # Every file is readable by tcpdump. A kill inside write() can leave a torn last
        # record in the active file only (the kernel may stop a write at a page boundary);
        # it lies after every flushed packet and the next writer cuts it off.
        torn = []
        for name in files:
            got, err, code = tcpdump_count(tcpdump, d / name)
            assert got == count_packets(d / name) > 0, name
            if code != 0:
                assert name == "pod_cali1.pcap" and "truncated" in err, err
                torn.append(name)
        packets = read_dir(d)
        assert len(packets) >= flushed
        # In order, nothing missing, nothing duplicated.
        assert [p[1] for p in packets] == [packet(i) for i in range(len(packets))]
        # Restarting the capture repairs and adopts the old file; all readable again.
        w = RotatingWriter(
            capdir,
            "ns",
            "cap",
            "pod",
            "cali1",
            settings=CaptureSettings(max_files=1000, format=fmt),
        )  # type: ignore[arg-type]
        w.write(TS0, packet(10**6), 20, 1_800_000_000.0)
        w.close()
        rotated = sum(count_packets(d / n) for n in files if n != "pod_cali1.pcap")
        assert w.packets_adopted == len(packets) - rotated
        for name in os.listdir(d):
            _, err, code = tcpdump_count(tcpdump, d / name)
            assert code == 0, err

"""One rule for torn and impossible records (issue 16 items 3 and 4), across commands.

- torn tail (the file ends inside a record header, or inside a record of possible length):
  the whole packets before it count, one warning names the file, exit 0 — for
  ``run --replay``, ``merge`` and the reader API (:class:`PcapTruncatedError` after the whole
  packets);
- impossible record (captured length above 262144, libpcap's maximum, whatever the header's
  snap length says, even when the file then ends): corrupt, an error naming file and byte,
  exit 1 — everywhere; tcpdump and tshark refuse such a file too;
- a header snap length of 0 (or above 262144) reads as 262144, as libpcap reads it.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest
import yaml

from packetcapture.errors import PcapError
from packetcapture.pcap import PcapReader, PcapTruncatedError
from tests.cli.test_cli_walkthrough import cli
from tests.conftest import REPO

IFACE = "cali1a2b3c4d5e6"
STEM = f"sample-app-7d4b9c-x2k8p_{IFACE}"
PKT = bytes(range(60))


def _header(snaplen: int) -> bytes:
    return struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snaplen, 1)


def _record(data: bytes, caplen: int | None = None) -> bytes:
    caplen = len(data) if caplen is None else caplen
    return struct.pack("<IIII", 1, 0, caplen, max(caplen, len(data))) + data


#: name -> (file bytes, verdict, whole packets before the bad spot).
CASES = {
    # The report's case: header snap length and first record length both 2^31.
    "impossible-first": (_header(2**31) + _record(b"x" * 100, 2**31), "corrupt", 0),
    "impossible-later": (_header(2**31) + _record(PKT) + _record(b"x" * 9, 2**31), "corrupt", 1),
    "over-maximum": (_header(65535) + _record(PKT) + _record(b"y" * 300_000), "corrupt", 1),
    "torn-data": (_header(65535) + _record(PKT) * 2 + _record(PKT)[:40], "torn", 2),
    "torn-header": (_header(65535) + _record(PKT) + bytes(7), "torn", 1),
    "snaplen-0": (_header(0) + _record(PKT) + _record(PKT * 3), "ok", 2),
    "above-snaplen": (_header(100) + _record(PKT) + _record(PKT * 3), "ok", 2),
}


def _reader_verdict(path: Path) -> tuple[str, int]:
    count = 0
    try:
        with PcapReader(path) as reader:
            for _ in reader:
                count += 1
    except PcapTruncatedError:
        return "torn", count
    except PcapError:
        return "corrupt", count
    return "ok", count


def _capture(tmp_path: Path) -> Path:
    doc = {
        "apiVersion": "projectcalico.org/v3",
        "kind": "PacketCapture",
        "metadata": {"name": "cap", "namespace": "sample-namespace"},
        "spec": {"selector": 'k8s-app == "sample-app"'},
    }
    path = tmp_path / "cap.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_command_gives_the_same_verdict(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    case: str,
) -> None:
    """Reproduces 16.3: run --replay failed a file merge only warned about (and 16.4)."""
    data, verdict, whole = CASES[case]
    src = tmp_path / f"{case}.pcap"
    src.write_bytes(data)
    assert _reader_verdict(src) == (verdict, whole)

    # run --replay
    run = ["run", str(_capture(tmp_path)), "--endpoints", str(REPO / "examples/endpoints.yaml")]
    run += ["--node", "node-1", "--replay", f"{IFACE}={src}", "--capture-dir"]
    code, out, err = cli([*run, str(tmp_path / "out")], capsys)
    state = yaml.safe_load(out)["status"]["files"][0]["state"]
    written = tmp_path / "out/sample-namespace/cap" / f"{STEM}.pcap"
    # The whole packets were written (no file when there were none).
    assert _reader_verdict(written) == ("ok", whole) if written.exists() else whole == 0
    warned = [r.getMessage() for r in caplog.records if "torn record" in r.getMessage()]
    if verdict == "corrupt":
        assert (code, state) == (1, "Error") and f"{src} at byte" in err
    else:
        assert (code, state) == (0, "Finished")
    assert len(warned) == (verdict == "torn")
    caplog.clear()

    # merge, from a capture directory holding the file
    cap_dir = tmp_path / "m/sample-namespace/cap"
    cap_dir.mkdir(parents=True)
    shutil.copy(src, cap_dir / f"{STEM}.pcap")
    merge = ["merge", "cap", "-n", "sample-namespace", "--capture-dir", str(tmp_path / "m")]
    code, out, err = cli([*merge, "-o", str(tmp_path / "m.pcapng")], capsys)
    if verdict == "corrupt":
        assert code == 1 and err.startswith("packetcapture: error: ") and "at byte" in err
    else:
        assert code == 0 and f"merged {whole} packet(s)" in out
        assert ("ends in a torn record" in err) == (verdict == "torn")
        assert _reader_verdict(tmp_path / "m.pcapng") == ("ok", whole)


@pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump is not installed")
@pytest.mark.parametrize("case", sorted(CASES))
def test_tcpdump_agrees_on_the_verdict_and_the_whole_packets(tmp_path: Path, case: str) -> None:
    """libpcap's reader: "invalid packet capture length" (corrupt), "truncated dump file"."""
    data, verdict, whole = CASES[case]
    src = tmp_path / f"{case}.pcap"
    src.write_bytes(data)
    done = subprocess.run(
        ["tcpdump", "-nqr", str(src)], capture_output=True, text=True, check=False
    )
    assert len(done.stdout.splitlines()) == whole
    said = {
        "corrupt": "invalid packet capture length",
        "torn": "truncated dump file",
        "ok": "",
    }[verdict]
    assert said in done.stderr and (done.returncode == 0) == (verdict == "ok")


@pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump is not installed")
def test_a_zero_snap_length_reads_as_tcpdump_reads_it(tmp_path: Path) -> None:
    src = tmp_path / "snap0.pcap"
    src.write_bytes(CASES["snaplen-0"][0])
    done = subprocess.run(["tcpdump", "-r", str(src)], capture_output=True, text=True, check=True)
    assert "snapshot length 262144" in done.stderr
    with PcapReader(src) as reader:
        assert reader.snaplen == 262144
        assert [len(d) for _, d, _ in reader] == [60, 180]

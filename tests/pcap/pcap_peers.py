"""Helpers for the pcap tests: run the peer tools and parse what they print."""

from __future__ import annotations

import random
import subprocess
from collections.abc import Sequence
from pathlib import Path

Packet = tuple[int, bytes, int]  # timestamp_ns, captured bytes, wire length


def random_packets(
    n: int,
    seed: int = 1,
    *,
    start_ns: int = 1_700_000_000_123_456_789,
    max_len: int = 1514,
    snaplen: int | None = None,
) -> list[Packet]:
    """Packets with random bytes, sizes, gaps and sometimes a longer wire length."""
    rnd = random.Random(seed)
    ts = start_ns
    out: list[Packet] = []
    for _ in range(n):
        size = rnd.randint(14, max_len)
        # An Ethernet II header with the local experimental ethertype 0x88b5, so tcpdump
        # prints the frame's length (not an 802.3 length field) and dissects nothing else.
        body = rnd.randbytes(size)
        data = body[:12] + b"\x88\xb5" + body[14:]
        wire = size if rnd.random() < 0.7 else size + rnd.randint(1, 500)
        if snaplen is not None and len(data) > snaplen:
            data = data[:snaplen]
        out.append((ts, data, wire))
        ts += rnd.randint(1, 5_000_000_000)
    return out


def tcpdump_packets(
    tcpdump: str, path: Path, *, nano: bool
) -> tuple[list[tuple[int, bytes, int]], str, int]:
    """Read a file with ``tcpdump -r``: (timestamp in the file's unit, bytes, wire len).

    Returns the packets, tcpdump's stderr and its exit code.
    """
    cmd = [tcpdump, "-r", str(path), "-nn", "-tt", "-xx", "-e", "-K"]
    if nano:
        cmd[1:1] = ["--time-stamp-precision=nano"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    packets: list[tuple[int, bytes, int]] = []
    hexbuf: list[str] = []
    cur: list[int] | None = None

    def finish() -> None:
        if cur is not None:
            packets.append((cur[0], bytes.fromhex("".join(hexbuf)), cur[1]))

    for line in proc.stdout.splitlines():
        if line.startswith("\t0x"):
            # Hex groups, then (after two spaces) an ASCII column on some versions.
            hexbuf.append(line.split(":", 1)[1].strip().split("  ")[0].replace(" ", ""))
            continue
        finish()
        hexbuf = []
        sec, frac = line.split(" ", 1)[0].split(".")
        # "length N" at the end of the -e link-level header is the wire length.
        wire = (
            int(line.split(", length ")[1].split(":")[0].split(" ")[0])
            if ", length " in line
            else -1
        )
        cur = [int(sec) * (10**9 if nano else 10**6) + int(frac), wire]
    finish()
    return packets, proc.stderr, proc.returncode


def tshark_fields(tshark: str, path: Path) -> list[tuple[str, int, int]]:
    """(epoch time string, wire length, captured length) per packet, via ``tshark -r``."""
    proc = subprocess.run(
        [
            tshark,
            "-r",
            str(path),
            "-T",
            "fields",
            "-E",
            "separator=,",
            "-e",
            "frame.time_epoch",
            "-e",
            "frame.len",
            "-e",
            "frame.cap_len",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    out = []
    for line in proc.stdout.splitlines():
        t, wire, cap = line.split(",")
        out.append((t, int(wire), int(cap)))
    return out


def capinfos_count(capinfos: str, path: Path) -> int:
    """Packet count according to ``capinfos -c -M``."""
    proc = subprocess.run(
        [capinfos, "-c", "-M", str(path)], capture_output=True, text=True, check=True
    )
    for line in proc.stdout.splitlines():
        if "Number of packets" in line:
            return int(line.split(":")[1].strip())
    raise AssertionError(proc.stdout)


def epoch_string_to_ns(text: str) -> int:
    """Parse tshark's ``frame.time_epoch`` (``sec.fraction``) into nanoseconds."""
    sec, _, frac = text.partition(".")
    return int(sec) * 10**9 + int((frac + "000000000")[:9])


def truncate_ts(packets: Sequence[Packet], nano: bool) -> list[Packet]:
    """The timestamps a microsecond file stores (nanoseconds truncated)."""
    if nano:
        return list(packets)
    return [((ts // 1000) * 1000, d, w) for ts, d, w in packets]

"""Run tshark on a file and read back its conversation tables and fields."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from packetcapture.summary import CaptureSummary

_ROW = re.compile(r"^(\S+)\s+<->\s+(\S+)\s+(\d+) (\d+) bytes\s+(\d+) (\d+) bytes\s+(\d+) \d+ \S+")

# tshark prints a total of 10,000 bytes or more as "10 kB": only the exact per-direction
# columns are read.
# {frozenset of the two ends: {end: (frames sent, bytes sent)}}
Conversations = dict[frozenset[str], dict[str, tuple[int, int]]]


def conversations(tshark: str, path: Path, kind: str) -> Conversations:
    """tshark's ``-q -z conv,KIND`` table: per pair of ends, what each end sent."""
    out = subprocess.run(
        [tshark, "-n", "-r", str(path), "-q", "-z", f"conv,{kind}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    table: Conversations = {}
    for line in out.splitlines():
        m = _ROW.match(line)
        if m is None:
            assert "<->" not in line, f"unparsed tshark line: {line!r}"
            continue
        a, b = m.group(1), m.group(2)
        ba_frames, ba_bytes, ab_frames, ab_bytes = (int(m.group(i)) for i in range(3, 7))
        key = frozenset((a, b))
        assert key not in table, f"tshark split a conversation: {line!r}"
        table[key] = {a: (ab_frames, ab_bytes), b: (ba_frames, ba_bytes)}
    return table


def _plain(end: str) -> str:
    """Our ``[v6]:port`` as tshark prints it (``v6:port``)."""
    return end.replace("[", "").replace("]", "")


def _address(end: str) -> str:
    """The address of an end written ``ip``, ``ip:port``, ``v6`` or ``[v6]:port``."""
    if end.startswith("["):
        return end[1 : end.index("]")]
    return end.partition(":")[0] if end.count(":") == 1 else end


def ours(summary: CaptureSummary, kind: str) -> Conversations:
    """Our flows in the shape of tshark's table of ``kind`` (tcp, udp, ip, ipv6)."""
    table: Conversations = {}
    for f in summary.flows:
        if kind in ("tcp", "udp"):
            if f.proto != kind or _address(f.a) == f.a:
                continue  # a packet cut before its ports is in no TCP/UDP conversation
            a, b = _plain(f.a), _plain(f.b)
        else:
            a, b = _address(f.a), _address(f.b)
            if (":" in a) != (kind == "ipv6"):
                continue
        row = table.setdefault(frozenset((a, b)), {a: (0, 0), b: (0, 0)})
        for end, pk, by in ((a, f.packets_ab, f.bytes_ab), (b, f.packets_ba, f.bytes_ba)):
            old = row[end]
            row[end] = (old[0] + pk, old[1] + by)
    return table


def fields(tshark: str, path: Path, display_filter: str, *names: str) -> list[list[str]]:
    """``tshark -T fields`` rows of the packets ``display_filter`` keeps."""
    cmd = [tshark, "-n", "-r", str(path), "-Y", display_filter, "-T", "fields"]
    for name in names:
        cmd += ["-e", name]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return [line.split("\t") for line in out.splitlines()]


def count(tshark: str, path: Path, display_filter: str) -> int:
    """How many packets ``display_filter`` keeps."""
    return len(fields(tshark, path, display_filter, "frame.number"))

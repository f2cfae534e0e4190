"""Benchmark capture-file writing and reading (plain python; prints a table of medians).

Writes 1 million packets of 100 and 1500 bytes through RotatingWriter (Felix's default
10 MB rotation, retention on, default flush policy) and reads them back with PcapReader.

    python bench/bench_pcap.py [--packets N] [--repeat R] [--format pcap|pcapng]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from packetcapture.pcap import CaptureSettings, PcapReader, RotatingWriter


def bench_write(n: int, size: int, fmt: str) -> tuple[float, int, Path]:
    d = Path(tempfile.mkdtemp(prefix="bench-pcap-"))
    settings = CaptureSettings(max_files=1000, format=fmt)  # type: ignore[arg-type]
    data = bytes(size)
    ts = 1_700_000_000_000_000_000
    now = 1_700_000_000.0
    w = RotatingWriter(d, "ns", "cap", "pod", "cali1", settings=settings)
    write = w.write
    start = time.perf_counter()
    for i in range(n):
        write(ts + i * 1000, data, size, now)
    w.close()
    elapsed = time.perf_counter() - start
    return elapsed, w.bytes_written, d


def bench_read(d: Path) -> tuple[float, int]:
    files = sorted((d / "ns" / "cap").iterdir())
    start = time.perf_counter()
    n = 0
    for f in files:
        with PcapReader(f) as r:
            for _ in r:
                n += 1
    return time.perf_counter() - start, n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--format", default="pcap", choices=["pcap", "pcapng"])
    args = parser.parse_args()
    print(f"{args.packets} packets, {args.format}, median of {args.repeat}")
    print(f"{'op':<6}{'size':>6}{'packets/s':>14}{'MB/s':>10}")
    for size in (100, 1500):
        wt, rt, mb = [], [], 0
        for _ in range(args.repeat):
            elapsed, nbytes, d = bench_write(args.packets, size, args.format)
            wt.append(elapsed)
            mb = nbytes
            r_elapsed, n = bench_read(d)
            assert n == args.packets
            rt.append(r_elapsed)
            shutil.rmtree(d)
        for op, times in (("write", wt), ("read", rt)):
            med = statistics.median(times)
            print(f"{op:<6}{size:>6}{args.packets / med:>14,.0f}{mb / med / 1e6:>10.1f}")


if __name__ == "__main__":
    main()

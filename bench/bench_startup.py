"""Benchmark CLI start-up: `packetcapture --help` against Python starting alone.

Runs each command RUNS times after one warm-up (bytecode compiled and cached, files in the
page cache) and prints the median wall time and the median CPU time (user + system) of the
child. The CPU time is the steadier figure on a loaded machine; `python -c pass` in the same
run is the floor every Python program pays.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent
RUNS = 20


def measure(cmd: list[str], runs: int) -> tuple[float, float]:
    """Return the median wall and CPU milliseconds of ``runs`` runs of ``cmd``."""
    subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True)  # warm-up: bytecode cached
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True)
        walls.append((time.perf_counter() - start) * 1000)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append((after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000)
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    """Print the start-up table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=RUNS, help="runs per command (default 20)")
    args = parser.parse_args()
    commands = {
        "packetcapture --help": [str(BIN / "packetcapture"), "--help"],
        "python -c pass (peer: the floor)": [sys.executable, "-c", "pass"],
    }
    print(f"{'command':36} {'wall median':>12} {'cpu median':>12}")
    for name, cmd in commands.items():
        wall, cpu = measure(cmd, args.runs)
        print(f"{name:36} {wall:9.1f} ms {cpu:9.1f} ms")
    print("goal: --help well under 100 ms of CPU; see README.md for the last measured figure")


if __name__ == "__main__":
    main()

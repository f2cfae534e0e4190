"""The command line as a user runs it: start-up, and a replay end to end, beside tcpdump.

1. Start-up (fresh processes, bytecode cached): ``packetcapture run`` on the README sample,
   ``packetcapture validate`` on the sample capture, ``python -c "import
   packetcapture.selector"``; beside them the bare interpreter (``python -c pass``) and
   tcpdump doing the README sample's job (``tcpdump -r`` the endpoint's file ``-w`` a file,
   ``tcp port 80``). Median wall and CPU (user + system) time of many runs, against the goals.
2. Replay through the CLI: a generated 1,000,000-frame pcap through ``tcp port 80 or udp
   port 53`` (two capture rules) into one file, process start to exit: ``packetcapture run
   --replay`` (default ``--replay-clock file``, and ``wall``; both use the raw lane, which
   copies kept records as stored, the file clock's also checking each record's time) vs
   ``tcpdump -r -w`` followed by an fsync of its output (our writer fsyncs on close: equal
   durability), and plain ``tcpdump -r -w`` beside it; the same packets out.

Usage: python bench/bench_cli.py [--runs N] [--frames N] [--repeat N] [--skip-replay]
       [--skip-startup] [--instructions]
Not a test: no timed asserts. On a loaded machine read the CPU column and the ratios.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_backends import TCPDUMP_EXPR, make_pcap

from packetcapture.pcap import count_packets

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
# The console script, as a user runs it (python -m adds runpy's start-up).
_SCRIPT = Path(sys.executable).parent / "packetcapture"
CLI = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "packetcapture"]

#: Start-up goals (issue 12), in seconds of wall time.
GOALS = {"run": 0.100, "validate": 0.080, "import packetcapture.selector": 0.030}
#: Replay goal: ours >= this fraction of tcpdump -r -w (+ fsync) frames per second.
REPLAY_GOAL = 0.4

CAPTURE = """\
apiVersion: projectcalico.org/v3
kind: PacketCapture
metadata: {name: cap, namespace: ns}
spec:
  selector: app == "web"
  filters:
    - {protocol: TCP, ports: [80]}
    - {protocol: UDP, ports: [53]}
"""
ENDPOINTS = """\
apiVersion: projectcalico.org/v3
kind: WorkloadEndpoint
metadata: {name: node-k8s-web-eth0, namespace: ns, labels: {app: web}}
spec: {node: node, orchestrator: k8s, pod: web, endpoint: eth0, interfaceName: in}
"""


# Children run as a user's would, with bytecode written and read: an inherited
# PYTHONDONTWRITEBYTECODE would have every module without a __pycache__ compiled on each run.
_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def timed(cmd: list[str]) -> tuple[float, float]:
    """Run ``cmd`` to completion (it must succeed); return (wall, CPU) seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_ENV)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return wall, cpu


def instructions(cmd: list[str]) -> int | None:
    """Instructions ``cmd`` executes, counted by valgrind (None without valgrind).

    Unlike times, the count does not move with the machine's load: the figure to compare
    before and after a change on a shared machine.
    """
    if shutil.which("valgrind") is None:
        return None
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *cmd],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=_ENV,
    )  # fmt: skip
    for line in done.stderr.splitlines():
        if "Collected :" in line:
            return int(line.split()[-1])
    return None


def bench_startup(runs: int, tmp: Path, *, count_instructions: bool = False) -> None:
    readme_run = [
        *CLI,
        "run",
        str(EXAMPLES / "sample-capture.yaml"),
        "--endpoints",
        str(EXAMPLES / "endpoints.yaml"),
        "--node",
        "node-1",
        "--replay-dir",
        str(EXAMPLES / "traffic"),
        "--capture-dir",
        str(tmp / "captures"),
    ]
    cases: dict[str, list[str]] = {
        "run": readme_run,
        "--help": [*CLI, "--help"],
        "validate": [*CLI, "validate", str(EXAMPLES / "sample-capture.yaml")],
        "import packetcapture.selector": [sys.executable, "-c", "import packetcapture.selector"],
        # What the required dependencies cost to import, before any of our code runs; run and
        # validate import cattrs only for an invalid document (serde's fast lane).
        "import attrs, cattrs, yaml": [sys.executable, "-c", "import attrs, cattrs, yaml"],
        "import attrs, yaml": [sys.executable, "-c", "import attrs, yaml"],
        "python -c pass (the floor)": [sys.executable, "-c", "pass"],
    }
    if shutil.which("tcpdump"):
        cases["tcpdump -r -w, the README sample's job"] = [
            "tcpdump", "-r", str(EXAMPLES / "traffic" / "cali1a2b3c4d5e6.pcap"),
            "-w", str(tmp / "tcpdump.pcap"), "tcp port 80",
        ]  # fmt: skip
    # Bytecode for every module (as pip writes it on install), then warm the page cache.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "packetcapture")],
                   check=True, stdout=subprocess.DEVNULL, env=_ENV)  # fmt: skip
    for cmd in cases.values():
        timed(cmd)
    walls: dict[str, list[float]] = {name: [] for name in cases}
    cpus: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(runs):  # interleaved, so load changes hit every case alike
        for name, cmd in cases.items():
            shutil.rmtree(tmp / "captures", ignore_errors=True)
            wall, cpu = timed(cmd)
            walls[name].append(wall)
            cpus[name].append(cpu)
    print(f"Start-up, median of {runs} runs (wall / CPU ms), goals on wall time")
    print(f"{'command':42} {'wall':>7} {'cpu':>7} {'goal':>6}  verdict")
    for name in cases:
        wall, cpu = statistics.median(walls[name]), statistics.median(cpus[name])
        goal = GOALS.get(name)
        verdict = "" if goal is None else ("met" if wall <= goal else "NOT met")
        goal_text = "" if goal is None else f"{goal * 1000:.0f}"
        print(f"{name:42} {wall * 1000:7.1f} {cpu * 1000:7.1f} {goal_text:>6}  {verdict}")
    if count_instructions:
        print("\nInstructions executed (valgrind --tool=callgrind, whole process, millions)")
        for name, cmd in cases.items():
            shutil.rmtree(tmp / "captures", ignore_errors=True)
            count = instructions(cmd)
            shown = "valgrind not found" if count is None else f"{count / 1e6:9.0f}"
            print(f"{name:42} {shown}")


def bench_replay(frames: int, repeat: int, tmp: Path) -> None:
    src = tmp / "in.pcap"
    make_pcap(src, frames)
    (tmp / "cap.yaml").write_text(CAPTURE)
    (tmp / "eps.yaml").write_text(ENDPOINTS)
    out_dir = tmp / "out"
    ours = [
        *CLI, "run", str(tmp / "cap.yaml"), "--endpoints", str(tmp / "eps.yaml"),
        "--node", "node", "--capture-dir", str(out_dir), "--replay", f"in={src}",
        "--max-size-bytes", str(8 << 30), "--max-files", "1", "--progress", "never",
    ]  # fmt: skip
    # --replay-clock wall: the window is wall time; the default (file) raw lane also checks
    # each record's timestamp against the window (the difference is that check).
    ours_wall = [*ours, "--replay-clock", "wall"]
    tcpdump_out = tmp / "tcpdump.pcap"
    theirs = ["tcpdump", "-r", str(src), "-w", str(tcpdump_out), TCPDUMP_EXPR]

    def run_ours(cmd: list[str]) -> tuple[float, float, int]:
        shutil.rmtree(out_dir, ignore_errors=True)
        wall, cpu = timed(cmd)
        files = [p for p in (out_dir / "ns" / "cap").iterdir() if p.suffix == ".pcap"]
        return wall, cpu, sum(count_packets(p) for p in files)

    def run_tcpdump(sync: bool) -> tuple[float, float, int]:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(theirs, check=True, capture_output=True)
        if sync:
            fd = os.open(tcpdump_out, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        return wall, cpu, count_packets(tcpdump_out)

    tools = {
        "packetcapture run --replay": lambda: run_ours(ours),
        "  ... --replay-clock wall": lambda: run_ours(ours_wall),
        "tcpdump -r -w, then fsync": lambda: run_tcpdump(True),
        "tcpdump -r -w": lambda: run_tcpdump(False),
    }
    times: dict[str, list[float]] = {name: [] for name in tools}
    cpus: dict[str, list[float]] = {name: [] for name in tools}
    kept: dict[str, set[int]] = {name: set() for name in tools}
    for _ in range(repeat):  # interleaved, so load changes hit every tool alike
        for name, tool in tools.items():
            seconds, cpu, packets = tool()
            times[name].append(seconds)
            cpus[name].append(cpu)
            kept[name].add(packets)
    med = {name: statistics.median(t) for name, t in times.items()}
    cpu_med = {name: statistics.median(t) for name, t in cpus.items()}
    print(f"\nReplay {frames:,} frames through '{TCPDUMP_EXPR}', process start to exit, "
          f"median of {repeat} (wall seconds; CPU = user + system of the process)")  # fmt: skip
    print(f"{'tool':30} {'seconds':>8} {'cpu':>7} {'frames/s':>11} {'kept':>9}")
    for name in tools:
        packets = ",".join(f"{k:,}" for k in sorted(kept[name]))
        print(f"{name:30} {med[name]:8.3f} {cpu_med[name]:7.3f} {frames / med[name]:11,.0f} "
              f"{packets:>9}")  # fmt: skip
    if len({frozenset(k) for k in kept.values()}) != 1:
        print("WARNING: the tools kept different numbers of packets")
    for name in ("packetcapture run --replay", "  ... --replay-clock wall"):
        ratio = med["tcpdump -r -w, then fsync"] / med[name]
        plain = med["tcpdump -r -w"] / med[name]
        cpu_ratio = cpu_med["tcpdump -r -w"] / cpu_med[name]
        verdict = "met" if ratio >= REPLAY_GOAL else "NOT met"
        print(f"{name.strip()}: vs tcpdump + fsync {ratio:.3f} (goal >= {REPLAY_GOAL}: "
              f"{verdict}); vs plain tcpdump {plain:.2f}; "
              f"CPU time vs tcpdump's {cpu_ratio:.2f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21, help="start-up runs per command")
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="replay runs per tool")
    parser.add_argument("--skip-replay", action="store_true")
    parser.add_argument("--skip-startup", action="store_true")
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="also count each start-up command's instructions with valgrind (load-proof)",
    )
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as name:
        tmp = Path(name)
        if not args.skip_startup:
            bench_startup(args.runs, tmp, count_instructions=args.instructions)
        if not args.skip_replay:
            bench_replay(args.frames, args.repeat, tmp)


if __name__ == "__main__":
    main()

"""Benchmark for loading large endpoint lists; prints a table of medians.

    python bench/bench_serde.py [--sizes 10000,20000,40000,80000] [--repeat 3]

Figures, per list size: ``load_all`` seconds and microseconds per endpoint (linear loading
keeps the second column flat), the same with the cyclic collector left running during the
load (how loading behaved before issue 16: quadratic), PyYAML's own ``CSafeLoader`` on the same
text (the peer: parsing only, no limits, no checks, no models), and the peak RSS of a fresh
process loading the list. Goal: linear, 80k endpoints load (they were refused after 21 s).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import yaml

from packetcapture import serde


def endpoints(n: int) -> str:
    """A WorkloadEndpointList of ``n`` endpoints as calicoctl prints them (no alias)."""
    items = []
    for i in range(n):
        items.append(
            f"""- apiVersion: projectcalico.org/v3
  kind: WorkloadEndpoint
  metadata:
    name: node-1-k8s-pod{i}-eth0
    namespace: ns{i % 10}
    labels:
      app: a{i % 7}
      k8s-app: x
  spec:
    node: node-1
    orchestrator: k8s
    pod: pod{i}
    endpoint: eth0
    interfaceName: cali{i:011d}
    ipNetworks:
    - 10.0.{i // 256 % 256}.{i % 256}/32
    profiles:
    - kns.ns{i % 10}"""
        )
    return "apiVersion: projectcalico.org/v3\nkind: WorkloadEndpointList\nitems:\n" + "\n".join(
        items
    )


def _median(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _peak_rss_mb(n: int) -> float:
    """Peak RSS of a fresh interpreter that builds and loads an ``n``-endpoint list."""
    code = (
        "import resource, sys; sys.path.insert(0, 'bench'); import bench_serde as b;"
        "from packetcapture import load_all;"
        f"t = b.endpoints({n}).encode(); base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss;"
        "load_all(t); print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,20000,40000,80000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    rows = []
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    if not args.json:
        print(
            f"{'endpoints':>9}  {'load_all s':>10}  {'µs/endpoint':>11}  {'collector on s':>14}  "
            f"{'PyYAML C s':>10}  {'peak RSS MB':>11}",
            flush=True,
        )
    for n in (int(s) for s in args.sizes.split(",")):
        text = endpoints(n)
        ours = _median(lambda: serde.load_all(text), args.repeat)  # noqa: B023
        with _collector_running():
            before = _median(lambda: serde.load_all(text), 1)  # noqa: B023
        peer = _median(lambda: yaml.load(text, Loader=loader), args.repeat)  # noqa: B023
        r = {
            "endpoints": n,
            "load_all_s": round(ours, 2),
            "us_per_endpoint": round(ours / n * 1e6, 1),
            "collector_on_s": round(before, 2),
            "pyyaml_csafeloader_s": round(peer, 2),
            "peak_rss_mb": round(_peak_rss_mb(n), 0),
        }
        rows.append(r)
        if not args.json:
            print(
                f"{r['endpoints']:>9}  {r['load_all_s']:>10}  {r['us_per_endpoint']:>11}  "
                f"{r['collector_on_s']:>14}  {r['pyyaml_csafeloader_s']:>10}  "
                f"{r['peak_rss_mb']:>11}",
                flush=True,
            )
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print("goal: µs/endpoint flat (linear) and 80k endpoints loaded")


@contextlib.contextmanager
def _collector_running():  # type: ignore[no-untyped-def]
    """Load as before issue 16: the cyclic collector left running during the load."""
    saved = serde._no_gc
    serde._no_gc = contextlib.nullcontext  # type: ignore[assignment]
    try:
        yield
    finally:
        serde._no_gc = saved


if __name__ == "__main__":
    main()

"""Benchmarks for packetcapture.bpf: corpus compile time, VM vs generated-Python verdicts
per second, and the size/path table against libpcap. Run: python bench/bench_bpf.py"""

from __future__ import annotations

import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "bpf"))

from bpf_reference import load_libpcap, random_frame  # noqa: E402
from test_bpf_corpus import CORPUS, path_row, rules_of  # noqa: E402

from packetcapture.bpf import compile_filters  # noqa: E402


def median_time(fn, repeat=5):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    specs = [rules_of(e) for e in CORPUS]
    t = median_time(lambda: [compile_filters(r) for r in specs])
    print(
        f"compile corpus ({len(specs)} specs, defaults): median {t * 1000:.1f} ms "
        f"({t / len(specs) * 1000:.2f} ms/spec)"
    )
    rng = random.Random(1)
    print(f"{'spec':40} {'VM verdicts/s':>14} {'codegen/s':>12} {'speedup':>8}")
    for label in ("TCP port 80", "10 mixed rules", "ports only: 40 ports + 10 ranges"):
        e = next(x for x in CORPUS if x["label"] == label)
        prog = compile_filters(rules_of(e))
        frames = [random_frame(rng, 1, [80, 53, 1000, 2010]) for _ in range(3000)]
        fast = prog.executor()
        vm = len(frames) / median_time(lambda p=prog, fr=frames: [p.run(f) for f in fr])
        gen = len(frames) / median_time(lambda fn=fast, fr=frames: [fn(f) for f in fr])
        print(f"{label:40} {vm:14,.0f} {gen:12,.0f} {gen / vm:7.1f}x")
    lib = load_libpcap()
    if lib is None:
        return
    print()
    print(
        f"{'spec':40} {'libpcap':>7} {'ours':>5} {'min':>5} {'path lp':>7} {'path':>5} "
        f"{'all lp':>6} {'all':>4}"
    )
    for e in CORPUS:
        small = len(compile_filters(rules_of(e), vlan=False, ipv6_extension_headers=False))
        if not e["expr"] or e["insns_opt"] == 1:
            print(f"{e['label'][:40]:40} {e['insns_opt']:7} {small:5} {small:5}")
            continue
        lp, ours, plp, pours, alp, aours = path_row(lib, e)
        print(f"{e['label'][:40]:40} {lp:7} {ours:5} {small:5} {plp:7} {pours:5} {alp:6} {aours:4}")


if __name__ == "__main__":
    main()

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

from bpf_reference import ether, ipv4, ipv6, l4, load_libpcap, random_frame  # noqa: E402
from test_bpf_corpus import CORPUS, path_row, rules_of  # noqa: E402

from packetcapture.bpf import compile_filters  # noqa: E402
from packetcapture.bpf._compiler import _compile_cached  # noqa: E402
from packetcapture.model import PacketCaptureRule  # noqa: E402


def typical_frame(rng: random.Random) -> bytes:
    sport = rng.choice([80, 53, 443, 40000])
    l4h = l4(sport, rng.randint(1024, 65535)) + b"x" * rng.randint(0, 200)
    r = rng.random()
    if r < 0.6:
        return ether(0x800, ipv4(rng.choice([6, 6, 17]), l4h))
    if r < 0.9:
        return ether(0x86DD, ipv6(rng.choice([6, 17]), l4h))
    return ether(0x806, bytes(28))


def median_time(fn, repeat=5):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    specs = [rules_of(e) for e in CORPUS]

    def compile_all() -> None:
        # compile_filters keeps the programs it made: time the compiler, not the cache.
        _compile_cached.cache_clear()
        for r in specs:
            compile_filters(r)

    t = median_time(compile_all)
    print(
        f"compile corpus ({len(specs)} specs, defaults): median {t * 1000:.1f} ms "
        f"({t / len(specs) * 1000:.2f} ms/spec)"
    )
    rng = random.Random(1)
    print(f"{'spec (frames)':40} {'VM verdicts/s':>14} {'codegen/s':>12} {'speedup':>8}")
    # A typical replay: mostly TCP/UDP over IPv4 and IPv6, some ARP, untagged.
    typical = compile_filters([PacketCaptureRule("TCP", [80]), PacketCaptureRule("UDP", [53])])
    mix = [typical_frame(rng) for _ in range(5000)]
    fast = typical.executor()
    vm = len(mix) / median_time(lambda: [typical.run(f) for f in mix])
    gen = len(mix) / median_time(lambda: [fast(f) for f in mix])
    print(f"{'TCP 80 | UDP 53 (typical traffic)':40} {vm:14,.0f} {gen:12,.0f} {gen / vm:7.1f}x")
    for label in ("TCP port 80", "10 mixed rules", "ports only: 40 ports + 10 ranges"):
        e = next(x for x in CORPUS if x["label"] == label)
        prog = compile_filters(rules_of(e))
        frames = [random_frame(rng, 1, [80, 53, 1000, 2010]) for _ in range(3000)]
        fast = prog.executor()
        vm = len(frames) / median_time(lambda p=prog, fr=frames: [p.run(f) for f in fr])
        gen = len(frames) / median_time(lambda fn=fast, fr=frames: [fn(f) for f in fr])
        print(f"{label + ' (random)':40} {vm:14,.0f} {gen:12,.0f} {gen / vm:7.1f}x")
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
    import argparse

    # No options: --help says what the script measures instead of running it.
    argparse.ArgumentParser(description=" ".join((__doc__ or "").split())).parse_args()
    main()

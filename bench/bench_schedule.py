"""Benchmark the schedule: per-call cost of the hot inputs (prints medians)."""

from __future__ import annotations

import datetime as dt
import statistics
import time
import timeit
from collections.abc import Callable

from packetcapture.schedule import CaptureSchedule

UTC = dt.UTC
T0 = dt.datetime(2021, 8, 26, 12, 0, tzinfo=UTC)
REPEAT = 7


def per_call(setup: Callable[[], Callable[[], object]], number: int) -> float:
    times = []
    for _ in range(REPEAT):
        fn = setup()
        times.append(timeit.timeit(fn, number=number) / number)
    return statistics.median(times)


def with_interfaces(n: int, *, packets: bool = True) -> CaptureSchedule:
    schedule = CaptureSchedule(now=T0)
    for i in range(n):
        schedule.add_interface(f"cali{i}", T0)
        if packets:
            schedule.packet_seen(f"cali{i}", T0)
    return schedule


def bench_packet_seen() -> float:
    def setup() -> Callable[[], object]:
        schedule = with_interfaces(20)
        return lambda: schedule.packet_seen("cali7", T0)

    return per_call(setup, 100_000)


def bench_idle_tick() -> float:
    def setup() -> Callable[[], object]:
        schedule = with_interfaces(20)
        return lambda: schedule.tick(T0)

    return per_call(setup, 100_000)


def bench_spec_change(n: int) -> float:
    def setup() -> Callable[[], object]:
        schedule = with_interfaces(n)
        return lambda: schedule.update_times(None, None, T0)

    return per_call(setup, 200)


def bench_failure_retry() -> float:
    def setup() -> Callable[[], object]:
        schedule = with_interfaces(20)
        state = {"now": T0}

        def cycle() -> None:
            schedule.failure("cali3", "boom", state["now"])
            deadline = schedule.next_deadline()
            assert deadline is not None
            schedule.tick(deadline)
            state["now"] = deadline

        return cycle

    return per_call(setup, 2_000)


def bench_setup(n: int) -> float:
    """Add ``n`` interfaces one at a time (a run's set-up); return the cost per interface."""
    times = []
    for _ in range(3):
        schedule = CaptureSchedule(now=T0)
        start = time.perf_counter()
        for i in range(n):
            schedule.add_interface(f"cali{i}", T0)
        times.append((time.perf_counter() - start) / n)
    return statistics.median(times)


def main() -> None:
    setup = {n: bench_setup(n) for n in (1_000, 4_000, 16_000)}
    rows = [
        ("packet_seen, Capturing (hot path), 20 ifaces", bench_packet_seen()),
        ("tick, nothing due, 20 ifaces", bench_idle_tick()),
        ("failure + tick at retry deadline, 20 ifaces", bench_failure_retry()),
        ("update_times (restart all), 20 ifaces", bench_spec_change(20)),
        ("update_times (restart all), 500 ifaces", bench_spec_change(500)),
        *((f"add_interface during set-up, {n} ifaces (per iface)", t) for n, t in setup.items()),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"{'operation':<{width}}  median per call")
    for name, seconds in rows:
        print(f"{name:<{width}}  {seconds * 1e6:10.2f} us")
    # Goal: set-up is linear (the same cost per interface at 1k and 16k; issue 16 measured
    # 1.1/2.2/8.5 s for 1k/2k/4k endpoints before).
    print(f"set-up cost per interface, 16k vs 1k: {setup[16_000] / setup[1_000]:.2f}x (goal: ~1x)")


if __name__ == "__main__":
    import argparse

    # No options: --help says what the script measures instead of running it.
    argparse.ArgumentParser(description=" ".join((__doc__ or "").split())).parse_args()
    main()

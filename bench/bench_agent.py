"""Benchmark of the node agent: 100 captures x 1,000 endpoints on one node.

1. Scale: 1,000 WorkloadEndpoints on one node with varied labels (``app`` in 20 values,
   ``tier`` in 5, ``track`` in 2) and 100 PacketCaptures whose selectors pick realistic
   subsets (one app; an app and a tier; two apps; a tier and a track; ...), about 50
   endpoints each. Every selected endpoint interface is a capture session: a
   :class:`~packetcapture.testing.MemoryBackend` source (an eventfd in the agent's
   selector) and a :class:`~packetcapture.pcap.RotatingWriter`. Measured: applying the
   100 captures with the endpoints already known, upserting the 1,000 endpoints with the
   captures already applied (the reverse order), one endpoint's label change (it leaves one
   app's captures, its files are removed, and joins another's), deleting everything; the
   Python heap's peak (tracemalloc, in a separate untimed pass) and the process RSS.
2. Per-packet overhead: N packets queued on a memory source, then drained by
   ``agent.step()`` into the agent's writer, against the same packets read from a bare
   memory source and written by a bare ``RotatingWriter`` (``now`` given as a float, and as
   a ``datetime`` like the agent gives it). Injection (the backend's filter) is outside the
   timings; the final flush is inside. Also with the packets spread over the 1,000
   interfaces of the full 100 x 1,000 agent (about 5 sessions per interface).

Usage: python bench/bench_agent.py [--repeat N] [--packets N] [--endpoints N] [--captures N]
Prints tables of medians. Not a test: no timed asserts.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import resource
import statistics
import struct
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import packetcapture as pc
from packetcapture.agent import NodeAgent
from packetcapture.bpf import compile_filters
from packetcapture.clock import SystemClock
from packetcapture.pcap import CaptureSettings, RotatingWriter
from packetcapture.testing import MemoryBackend

NODE = "bench-node"
NAMESPACE = "bench"
APPS = [f"app-{i:02d}" for i in range(20)]
TIERS = ["web", "api", "db", "cache", "batch"]
TRACKS = ["stable", "canary"]
RULES = (
    pc.PacketCaptureRule(protocol="TCP", ports=(pc.PortRange(80, 80), pc.PortRange(8080, 8090))),
    pc.PacketCaptureRule(protocol="UDP", ports=(pc.PortRange(53, 53),)),
    pc.PacketCaptureRule(protocol="ICMP"),
)
# Files large enough that the per-packet runs measure writing, not rotation and retention.
SETTINGS = CaptureSettings(max_size_bytes=1 << 30, max_files=2)


# -- inputs -----------------------------------------------------------------------------


def endpoint(i: int, app: str | None = None) -> pc.WorkloadEndpoint:
    pod = f"pod-{i:04d}"
    labels = {
        "app": app or APPS[i % len(APPS)],
        "tier": TIERS[(i // len(APPS)) % len(TIERS)],
        "track": TRACKS[(i // 7) % len(TRACKS)],
        "pod-template-hash": f"{i % 97:05x}",
    }
    return pc.WorkloadEndpoint(
        metadata=pc.ObjectMeta(name=f"{NODE}-k8s-{pod}-eth0", namespace=NAMESPACE, labels=labels),
        spec=pc.WorkloadEndpointSpec(
            node=NODE,
            orchestrator="k8s",
            pod=pod,
            endpoint="eth0",
            interface_name=f"cali{i:011x}",
        ),
    )


def selector(i: int) -> str:
    """Capture ``i``'s selector, about 50 of the 1,000 endpoints on average.

    Five shapes, each used with every app (``i // 20`` picks the shape, ``i % 20`` the app).
    """
    app, other = APPS[i % len(APPS)], APPS[(i * 7 + 3) % len(APPS)]
    tier, track = TIERS[(i // 4) % len(TIERS)], TRACKS[(i // 2) % len(TRACKS)]
    return [
        f'app == "{app}"',  # 50
        f'app in {{"{app}", "{other}"}} && tier == "{tier}"',  # 20
        f'app == "{app}" || app == "{other}"',  # 100
        f'tier == "{tier}" && track == "{track}" && has(pod-template-hash)',  # 100
        f'app == "{app}" && track != "{track}"',  # 25
    ][(i // len(APPS)) % 5]


def capture(i: int) -> pc.PacketCapture:
    return pc.PacketCapture(
        metadata=pc.ObjectMeta(name=f"cap-{i:03d}", namespace=NAMESPACE),
        spec=pc.PacketCaptureSpec(selector=selector(i), filters=RULES),
    )


def frame(i: int) -> bytes:
    """A TCP port 80 frame of 60-300 bytes (every frame passes RULES)."""
    body = bytes(20 + (i * 37) % 240)
    tcp = struct.pack("!HHIIBBHHH", 40000 + i % 1000, 80, i, 0, 0x50, 0x18, 512, 0, 0) + body
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), i & 0xFFFF, 0, 64, 6, 0,
                     b"\x0a\0\0\x02", b"\x0a\0\0\x01")  # fmt: skip
    return b"\x02\0\0\0\0\x01\x02\0\0\0\0\x02\x08\x00" + ip + tcp


# -- helpers ----------------------------------------------------------------------------


def rss_mb() -> float:
    """Current resident set size of this process in MB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def timed(fn: Callable[..., object], *args: object) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def sessions_of(agent: NodeAgent, captures: list[pc.PacketCapture]) -> int:
    return sum(len(agent.matches(*c.key)) for c in captures)


def new_agent(root: Path, backend: MemoryBackend | None = None) -> NodeAgent:
    return NodeAgent(NODE, backend or MemoryBackend(), root, SETTINGS, SystemClock())


# -- 1. scale ---------------------------------------------------------------------------


def upsert_all(agent: NodeAgent, endpoints: list[pc.WorkloadEndpoint]) -> None:
    for e in endpoints:
        agent.upsert_endpoint(e)


def apply_all(agent: NodeAgent, captures: list[pc.PacketCapture]) -> None:
    for c in captures:
        agent.apply(c)


def delete_all(agent: NodeAgent, captures: list[pc.PacketCapture]) -> None:
    for c in captures:
        agent.delete(*c.key)


def delete_endpoints(agent: NodeAgent, endpoints: list[pc.WorkloadEndpoint]) -> None:
    for e in endpoints:
        agent.delete_endpoint(*e.key)


def bench_scale(n_eps: int, n_caps: int, repeat: int) -> None:
    endpoints = [endpoint(i) for i in range(n_eps)]
    captures = [capture(i) for i in range(n_caps)]
    times: dict[str, list[float]] = {}
    sessions = 0
    rss: list[float] = []

    def add(name: str, seconds: float) -> None:
        times.setdefault(name, []).append(seconds)

    for _ in range(repeat):
        # Endpoints first, then the captures.
        with tempfile.TemporaryDirectory(prefix="pcxbench") as tmp:
            agent = new_agent(Path(tmp))
            add(f"upsert {n_eps} endpoints (no captures)", timed(upsert_all, agent, endpoints))
            add(f"apply {n_caps} captures", timed(apply_all, agent, captures))
            sessions = sessions_of(agent, captures)
            add("first step() after that (status reports)", timed(agent.step, None, 0))
            for _ in range(10):
                add("idle step()", timed(agent.step, None, 0))
            rss.append(rss_mb())
            # One endpoint moves from one app to another, and back: 2 label updates.
            moved = endpoint(0)
            there, back = endpoint(0, app=APPS[1]), moved
            for _ in range(10):
                add("one label update (leave + join)", timed(agent.upsert_endpoint, there))
                add("one label update (leave + join)", timed(agent.upsert_endpoint, back))
            add("apply 1 more capture", timed(agent.apply, capture(n_caps)))
            add("delete 1 capture", timed(agent.delete, *capture(n_caps).key))
            add(f"delete {n_caps} captures", timed(delete_all, agent, captures))
            agent.close()
        # The reverse order: captures first, then the endpoints.
        with tempfile.TemporaryDirectory(prefix="pcxbench") as tmp:
            agent = new_agent(Path(tmp))
            add(f"apply {n_caps} captures (no endpoints)", timed(apply_all, agent, captures))
            add(f"upsert {n_eps} endpoints", timed(upsert_all, agent, endpoints))
            assert sessions_of(agent, captures) == sessions
            add(f"delete {n_eps} endpoints", timed(delete_endpoints, agent, endpoints))
            agent.close()
        gc.collect()

    per_capture = [len(selected(c, endpoints)) for c in captures]
    print(
        f"\n{n_caps} captures x {n_eps} endpoints on one node: {sessions} sessions "
        f"(endpoints per capture: min {min(per_capture)}, median "
        f"{statistics.median(per_capture):.0f}, max {max(per_capture)}; median of {repeat})"
    )
    print(f"{'operation':44} {'median ms':>10} {'per item µs':>12}")
    per_item = {
        f"upsert {n_eps} endpoints (no captures)": n_eps,
        f"apply {n_caps} captures": sessions,
        f"delete {n_caps} captures": sessions,
        f"apply {n_caps} captures (no endpoints)": n_caps,
        f"upsert {n_eps} endpoints": sessions,
        f"delete {n_eps} endpoints": sessions,
    }
    for name, values in times.items():
        med = statistics.median(values)
        item = f"{med / per_item[name] * 1e6:12.1f}" if name in per_item else f"{'':12}"
        print(f"{name:44} {med * 1e3:10.2f} {item}")
    print("(per item: per session started/stopped, or per endpoint/capture when none start)")
    print(f"RSS with {sessions} sessions open: {statistics.median(rss):.0f} MB")
    memory(endpoints, captures)


def selected(c: pc.PacketCapture, endpoints: list[pc.WorkloadEndpoint]) -> list[str]:
    from packetcapture.agent import effective_selector
    from packetcapture.selector import parse

    sel = parse(effective_selector(c.spec.selector, c.namespace))
    return [e.metadata.name for e in endpoints if sel.evaluate(e.selector_labels())]


def memory(endpoints: list[pc.WorkloadEndpoint], captures: list[pc.PacketCapture]) -> None:
    """Python heap (tracemalloc) of the whole agent, untimed."""
    gc.collect()
    with tempfile.TemporaryDirectory(prefix="pcxbench") as tmp:
        base_rss = rss_mb()
        tracemalloc.start()
        agent = new_agent(Path(tmp))
        for e in endpoints:
            agent.upsert_endpoint(e)
        endpoints_only, _ = tracemalloc.get_traced_memory()
        for c in captures:
            agent.apply(c)
        agent.step(timeout=0)
        current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        sessions = sessions_of(agent, captures)
        grown = rss_mb() - base_rss
        agent.close()
    print(
        f"heap with {len(endpoints)} endpoints only: {endpoints_only / 1e6:.1f} MB; with "
        f"{len(captures)} captures and {sessions} sessions: {current / 1e6:.1f} MB "
        f"(peak {peak / 1e6:.1f} MB, {current / sessions / 1e3:.1f} kB per session)"
    )
    print(f"RSS growth while building it (tracemalloc on): {grown:.0f} MB")
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of the process so far: {peak_rss:.0f} MB")


# -- 2. per packet ----------------------------------------------------------------------


def packets(n: int, start_ns: int) -> list[tuple[int, bytes]]:
    frames = [frame(i) for i in range(256)]
    return [(start_ns + i * 1000, frames[i % 256]) for i in range(n)]


def run_bare(n: int, now_as_datetime: bool) -> float:
    """Bare backend: read a memory source, write with a RotatingWriter."""
    program = compile_filters(RULES)
    backend = MemoryBackend()
    pkts = packets(n, time.time_ns())
    with tempfile.TemporaryDirectory(prefix="pcxbench") as tmp:
        source = backend.open("cali0", program)
        writer = RotatingWriter(tmp, NAMESPACE, "cap", "pod", "cali0", settings=SETTINGS)
        for ts, data in pkts:
            backend.inject("cali0", data, timestamp_ns=ts)
        start = time.perf_counter()
        now: float | dt.datetime = dt.datetime.now(dt.UTC) if now_as_datetime else time.time()
        written = 0
        while written < n:
            batch = source.read(4096)
            write = writer.write
            for ts, data, wire in batch:
                write(ts, data, wire, now)
            written += len(batch)
        writer.flush()
        elapsed = time.perf_counter() - start
        writer.close()
        source.close()
    return elapsed


def run_agent_one(n: int) -> float:
    """The agent, one capture on one endpoint: inject, then step until all are written."""
    backend = MemoryBackend()
    pkts = packets(n, time.time_ns())
    with tempfile.TemporaryDirectory(prefix="pcxbench") as tmp:
        agent = new_agent(Path(tmp), backend)
        agent.apply(capture(0))
        agent.upsert_endpoint(endpoint(0))
        agent.step(timeout=0)
        iface = endpoint(0).spec.interface_name
        for ts, data in pkts:
            backend.inject(iface, data, timestamp_ns=ts)
        elapsed = drain(agent, [capture(0)], n)
        agent.close()
    return elapsed


def drain(agent: NodeAgent, captures: list[pc.PacketCapture], n: int) -> float:
    """Time agent.step() until ``n`` more packets are written, plus the final flush.

    Counting what was written (``details()``) is left out of the time.
    """

    def written() -> int:
        return sum(i.packets for c in captures for i in agent.details(*c.key).interfaces)

    target = written() + n
    elapsed = 0.0
    while True:
        start = time.perf_counter()
        agent.step(timeout=0)
        elapsed += time.perf_counter() - start
        if written() >= target:
            break
    start = time.perf_counter()
    agent.flush()
    return elapsed + time.perf_counter() - start


def run_agent_full(
    n: int, endpoints: list[pc.WorkloadEndpoint], captures: list[pc.PacketCapture]
) -> tuple[float, float, int, int]:
    """The full agent, packets spread over every interface (about 5 sessions each).

    Returns the time per packet of the first packet on each session (which creates the
    session's file), the time per packet of ``n`` packets after that, their number of
    packet writes, and the number of sessions.
    """
    backend = MemoryBackend()
    with tempfile.TemporaryDirectory(prefix="pcxbench") as tmp:
        agent = new_agent(Path(tmp), backend)
        for c in captures:
            agent.apply(c)
        for e in endpoints:
            agent.upsert_endpoint(e)
        agent.step(timeout=0)
        ifaces = [e.spec.interface_name for e in endpoints]
        pkts = packets(n + len(ifaces), time.time_ns())
        first = sum(
            backend.inject(i, d, timestamp_ns=t) for i, (t, d) in zip(ifaces, pkts, strict=False)
        )
        cold = drain(agent, captures, first) / first
        # About n packet writes in all: each packet reaches every session of its interface.
        delivered = 0
        for k, (ts, data) in enumerate(pkts[len(ifaces) :]):
            delivered += backend.inject(ifaces[k % len(ifaces)], data, timestamp_ns=ts)
            if delivered >= n:
                break
        warm = drain(agent, captures, delivered) / delivered
        agent.close()
    return cold, warm, delivered, first


def bench_packets(n: int, n_eps: int, n_caps: int, repeat: int) -> None:
    endpoints = [endpoint(i) for i in range(n_eps)]
    captures = [capture(i) for i in range(n_caps)]
    rows: dict[str, list[float]] = {}
    written = sessions = 0
    for _ in range(repeat):  # interleaved, so load changes hit every variant alike
        rows.setdefault("bare: source.read -> RotatingWriter (now: float)", []).append(
            run_bare(n, False) / n
        )
        rows.setdefault("bare: same, now as datetime (as the agent)", []).append(
            run_bare(n, True) / n
        )
        rows.setdefault("agent.step(): 1 capture, 1 interface", []).append(run_agent_one(n) / n)
        cold, warm, written, sessions = run_agent_full(n, endpoints, captures)
        rows.setdefault(f"agent.step(): {n_caps} x {n_eps}, all interfaces", []).append(warm)
        rows.setdefault("  ... first packet of each session (creates its file)", []).append(cold)
        gc.collect()
    bare = statistics.median(rows["bare: source.read -> RotatingWriter (now: float)"])
    print(
        f"\nPer packet written: {n} packets (full agent: {written} packet writes into "
        f"{sessions} sessions' files); median of {repeat}"
    )
    print(f"{'path':52} {'ns/packet':>10} {'x bare':>7}")
    for name, values in rows.items():
        med = statistics.median(values)
        ratio = f"{med / bare:7.2f}" if not name.startswith(" ") else f"{'-':>7}"
        print(f"{name:52} {med * 1e9:10.0f} {ratio}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--packets", type=int, default=200_000)
    parser.add_argument("--endpoints", type=int, default=1000)
    parser.add_argument("--captures", type=int, default=100)
    parser.add_argument("--dir", help="where capture files go (default: /dev/shm, tmpfs)")
    args = parser.parse_args()
    # tmpfs by default: the writer fsyncs each file on close, and the disk's latency would
    # drown the agent's own costs.
    if args.dir or Path("/dev/shm").is_dir():
        tempfile.tempdir = args.dir or "/dev/shm"
    print(f"capture files under {tempfile.gettempdir()}")
    # Every session holds an eventfd and a directory descriptor, and an open file once
    # packets arrive: raise the soft limit on open files as far as allowed.
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    t0 = time.perf_counter()
    bench_scale(args.endpoints, args.captures, args.repeat)
    bench_packets(args.packets, args.endpoints, args.captures, args.repeat)
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()

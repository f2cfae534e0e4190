"""Benchmark of the cluster node agent: 1,000 pods and 100 captures on one node.

Against the tests' API emulator (in this process, real HTTP, the real ``kubernetes`` client).
Traffic: the in-memory backend with one packet waiting on each interface as its capture opens
it (as on a busy pod; sources stay open, as live ones do), or ``--backend replay``: each
pod's interface replays a small pcap and ends at once (every session then closes and fsyncs
its file right after its first packet: a worst case for the agent's loop).

1. Start-up: from ``start()`` to ready (namespaces, service accounts, 1,000 pods and the
   captures listed).
2. Capture latency: 100 PacketCaptures created one after the other (each selects one app's
   ~50 pods); for each, the time from its creation in the API to its first packet written
   (the agent reports ``Capturing``), and to its status entry holding files in the API.
3. Churn: pods relabelled between apps as fast as one client can patch them for a few
   seconds; status writes per second (PUTs of the status subresource), against the agent's
   status changes per second: the coalescing the writer does.
4. Memory: the process's RSS growth from before the agent started (the emulator and its
   objects already loaded) and the Python heap's peak (tracemalloc, a separate pass).

There is no peer tool to compare with (Calico Enterprise's felix capture and its API server
are not available here). Goals: first packet within the status interval (2 s) of creation;
status writes bounded by captures / interval however fast the churn.

Usage: python bench/bench_kube.py [--pods N] [--captures N] [--churn-seconds S]
Not a test: no timed asserts.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from packetcapture.agent import NodeAgent  # noqa: E402
from packetcapture.backends import MemoryBackend, get_backend  # noqa: E402
from packetcapture.backends.base import PacketSource  # noqa: E402
from packetcapture.bpf import BpfProgram  # noqa: E402
from packetcapture.kube import KubeAgentConfig, KubeNodeAgent, interface_name  # noqa: E402
from packetcapture.model import CaptureState  # noqa: E402
from tests.kube.emulator import ApiEmulator  # noqa: E402

NODE = "bench-node"
APPS = [f"app-{i:02d}" for i in range(20)]
SAMPLE = REPO / "examples" / "traffic" / "cali1a2b3c4d5e6.pcap"
PC = ("projectcalico.org/v3", "PacketCapture")


# An Ethernet + IPv4 + UDP frame (60 bytes).
FRAME = bytes.fromhex(
    "ffffffffffff0200000000010800"
    "4500002e000100004011f96c0a0000010a000002"
    "30393039001a0000" + "00" * 18
)


class TrafficBackend(MemoryBackend):
    """A memory backend whose interfaces have a packet waiting when a capture opens them."""

    def open(
        self,
        interface: str,
        program: BpfProgram,
        *,
        snaplen: int = 262144,
        packet_limit: int | None = None,
    ) -> PacketSource:
        source = super().open(interface, program, snaplen=snaplen, packet_limit=packet_limit)
        self.inject(interface, FRAME)
        return source


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def pod(i: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"pod-{i:04d}",
            "namespace": "bench",
            "labels": {"app": APPS[i % len(APPS)], "tier": ["web", "db"][i % 2]},
        },
        "spec": {"nodeName": NODE, "serviceAccountName": "default"},
        "status": {"phase": "Running", "podIP": f"10.{i // 250}.{i % 250}.1"},
    }


def capture(i: int) -> dict[str, Any]:
    return {
        "apiVersion": "projectcalico.org/v3",
        "kind": "PacketCapture",
        "metadata": {"name": f"cap-{i:03d}", "namespace": "bench"},
        "spec": {"selector": f'app == "{APPS[i % len(APPS)]}"'},
    }


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(args: argparse.Namespace, *, trace: bool) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-kube-"))
    emulator = ApiEmulator(bookmark_interval=5.0)
    emulator.start()
    client = emulator.api_client()
    result: dict[str, Any] = {}
    try:
        replay = tmp / "replay"
        replay.mkdir()
        for i in range(args.pods):
            shutil.copy(SAMPLE, replay / f"{interface_name('bench', f'pod-{i:04d}')}.pcap")
            emulator.create(pod(i))
        first_packet: dict[str, float] = {}
        changes = [0]
        backend = (
            get_backend("replay", directory=replay)
            if args.backend == "replay"
            else TrafficBackend()
        )
        agent = NodeAgent(NODE, backend, tmp / "pcap", retry=None)
        kube = KubeNodeAgent(
            client,
            agent,
            KubeAgentConfig(node=NODE, status_interval=args.status_interval, watch_seconds=30),
        )
        inner = agent.on_status_change

        def on_status(ns: str, name: str, status: Any) -> None:
            changes[0] += 1
            if status.files[0].state is CaptureState.CAPTURING and name not in first_packet:
                first_packet[name] = time.perf_counter()
            assert inner is not None
            inner(ns, name, status)

        agent.on_status_change = on_status
        if trace:
            tracemalloc.start()
        rss_before = rss_mb()
        stop = threading.Event()
        started = time.perf_counter()
        thread = threading.Thread(target=kube.run, args=(stop,), kwargs={"step_seconds": 0.05})
        thread.start()
        while not kube.ready():
            time.sleep(0.005)
        result["ready_s"] = time.perf_counter() - started

        created: dict[str, float] = {}
        listed: dict[str, float] = {}
        for i in range(args.captures):
            name = f"cap-{i:03d}"
            created[name] = time.perf_counter()
            emulator.create(capture(i))
        deadline = time.monotonic() + 120
        while len(listed) < args.captures and time.monotonic() < deadline:
            for name in created:
                if name in listed:
                    continue
                obj = emulator.get(*PC, "bench", name)
                files = (obj or {}).get("status", {}).get("files") or []
                if files and files[0].get("fileNames"):
                    listed[name] = time.perf_counter()
            time.sleep(0.02)
        result["first_packet_s"] = [first_packet[n] - created[n] for n in first_packet]
        result["status_files_s"] = [listed[n] - created[n] for n in listed]
        result["burst_s"] = max(first_packet.values(), default=0.0) - min(created.values())

        # One capture at a time on the now busy agent (1,000 pods, 100 captures running).
        singles = []
        for i in range(args.singles):
            name = f"single-{i}"
            obj = capture(i)
            obj["metadata"]["name"] = name
            created[name] = time.perf_counter()
            emulator.create(obj)
            deadline = time.monotonic() + 60
            while name not in first_packet and time.monotonic() < deadline:
                time.sleep(0.001)
            if name in first_packet:
                singles.append(first_packet[name] - created[name])
        result["single_s"] = singles

        # Churn: relabel pods between apps; count status changes and status writes.
        writes0, changes0 = kube.status_writer.writes, changes[0]
        churn_start = time.perf_counter()
        patches = 0
        while time.perf_counter() - churn_start < args.churn_seconds:
            i = patches % args.pods
            app = APPS[(i + patches // args.pods + 1) % len(APPS)]
            emulator.patch(
                "v1", "Pod", "bench", f"pod-{i:04d}", {"metadata": {"labels": {"app": app}}}
            )
            patches += 1
        elapsed = time.perf_counter() - churn_start
        writes, status_changes = kube.status_writer.writes - writes0, changes[0] - changes0
        result["churn_seconds"] = elapsed
        result["churn_patches_per_s"] = patches / elapsed
        result["status_changes_per_s"] = status_changes / elapsed
        result["status_writes_per_s"] = writes / elapsed
        result["conflicts"] = kube.status_writer.conflicts
        result["rss_growth_mb"] = rss_mb() - rss_before
        if trace:
            result["heap_peak_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
        stop.set()
        thread.join(60)
    finally:
        client.close()
        emulator.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pods", type=int, default=1000)
    parser.add_argument("--captures", type=int, default=100)
    parser.add_argument("--churn-seconds", type=float, default=5.0)
    parser.add_argument("--status-interval", type=float, default=2.0)
    parser.add_argument("--singles", type=int, default=5)
    parser.add_argument("--backend", choices=("memory", "replay"), default="memory")
    parser.add_argument("--no-trace", action="store_true", help="skip the tracemalloc pass")
    args = parser.parse_args()

    r = run(args, trace=False)
    print(f"node agent: {args.pods} pods, {args.captures} captures on one node, "
          f"{args.backend} backend (emulator in-process; loaded machine)")  # fmt: skip
    print(f"  ready (first list of everything)      {r['ready_s'] * 1000:8.0f} ms")
    fp = r["first_packet_s"]
    if fp:
        print(
            f"  creation -> first packet written      median {statistics.median(fp) * 1000:6.0f} ms"
            f"  p95 {pct(fp, 0.95) * 1000:6.0f} ms  ({len(fp)}/{args.captures})"
        )
    print(f"    (the burst: all {args.captures} created at once, done in "
          f"{r['burst_s']:.1f} s; file creation dominates)")  # fmt: skip
    single = r["single_s"]
    if single:
        print(
            f"  one more capture on the busy agent     median "
            f"{statistics.median(single) * 1000:6.0f} ms  max {max(single) * 1000:6.0f} ms"
            f"  ({len(single)} captures, ~50 pods each)  goal < 2000 ms"
        )
    sf = r["status_files_s"]
    if sf:
        print(
            f"  creation -> status lists the files    median {statistics.median(sf) * 1000:6.0f} ms"
            f"  p95 {pct(sf, 0.95) * 1000:6.0f} ms  ({len(sf)}/{args.captures})"
        )
    # At most one write per capture per interval: captures x (T / interval + 1) in T s.
    seconds = r["churn_seconds"]
    bound = args.captures * (seconds / args.status_interval + 1) / seconds
    print(f"  churn: pod relabels                    {r['churn_patches_per_s']:8.0f} /s")
    print(f"  churn: agent status changes            {r['status_changes_per_s']:8.0f} /s")
    print(
        f"  churn: status writes (PUT /status)     {r['status_writes_per_s']:8.1f} /s"
        f"  goal <= {bound:.1f} /s (one per capture per interval); 409s: {r['conflicts']}"
    )
    print(f"  RSS growth from the agent              {r['rss_growth_mb']:8.1f} MB")
    if not args.no_trace:
        t = run(args, trace=True)
        print(f"  Python heap peak (tracemalloc pass)    {t['heap_peak_mb']:8.1f} MB"
              "  (includes the in-process emulator)")  # fmt: skip
    print("  peer tool: none available (Calico Enterprise felix capture is not installable here)")


if __name__ == "__main__":
    main()

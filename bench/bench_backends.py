"""Benchmarks of the capture backends, side by side with tcpdump on this machine.

1. Replay: a generated 1,000,000-frame pcap through a filter into an output pcap, ours vs
   ``tcpdump -r in.pcap -w out.pcap EXPR``. Ours: the ReplayBackend source's raw lane
   (``read_raw`` -> ``RotatingWriter.write_raw``: kept records copied as stored), the source
   read in batches of 4096 into ``RotatingWriter.write_many`` (one big file, closed with
   fsync), the same with ``write()`` per packet, and the whole NodeAgent (one capture, one
   endpoint whose interface replays the file, stepped until idle; it takes the raw lane).
   First each stage alone: reader, executor, source, writers.
2. Live (root): UDP frames sent at increasing offered rates across a veth pair between two
   namespaces made for the run; ours (AfPacketBackend ring -> PcapWriter, in its own process)
   vs ``tcpdump -w`` on the same interface, one after the other at each rate. A rate is
   "zero drop" when every frame sent was captured.

Usage: python bench/bench_backends.py [--frames N] [--repeat N] [--skip-live] [--skip-replay]
       [--skip-components] [--rates a,b,...]
Prints tables of medians. Not a test: no timed asserts.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import os
import re
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import packetcapture as pc
from packetcapture.agent import NodeAgent
from packetcapture.backends.replay import ReplayBackend, ReplaySource
from packetcapture.bpf import BpfProgram, compile_filters
from packetcapture.model import PacketCaptureRule
from packetcapture.pcap import (
    CaptureSettings,
    PcapReader,
    PcapWriter,
    RotatingWriter,
    count_packets,
)

RULES = [
    PacketCaptureRule(protocol="TCP", ports=["80"]),
    PacketCaptureRule(protocol="UDP", ports=["53"]),
]
TCPDUMP_EXPR = "tcp port 80 or udp port 53"


def frame(i: int) -> bytes:
    """A mix: TCP to 80 / 443, UDP to 53 / 123, ICMP; IPv4 and IPv6; 60-300 bytes."""
    eth = b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02"
    kind = i % 10
    body = bytes(20 + (i * 37) % 240)
    if kind < 3:
        l4 = struct.pack(
            "!HHIIBBHHH", 40000 + i % 1000, 80 if kind else 443, i, 0, 0x50, 0x18, 512, 0, 0
        )
        proto = 6
    elif kind < 6:
        l4 = struct.pack("!HHHH", 50000, 53 if kind < 5 else 123, 8 + len(body), 0)
        proto = 17
    else:
        l4 = struct.pack("!BBHHH", 8, 0, 0, 1, i & 0xFFFF)
        proto = 1
    payload = l4 + body
    if kind == 9:  # IPv6 UDP 53
        udp = struct.pack("!HHHH", 50000, 53, 8 + len(body), 0) + body
        return eth + b"\x86\xdd" + struct.pack("!IHBB", 6 << 28, len(udp), 17, 64) + bytes(32) + udp
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), i & 0xFFFF, 0, 64, proto, 0,
                     b"\x0a\0\0\x02", b"\x0a\0\0\x01")  # fmt: skip
    return eth + b"\x08\x00" + ip + payload


def make_pcap(path: Path, n: int) -> None:
    base = 1_700_000_000
    record = struct.Struct("<IIII")
    with path.open("wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        chunk = []
        for i in range(n):
            data = frame(i)
            chunk.append(
                record.pack(base + i // 100000, (i % 100000) * 10, len(data), len(data)) + data
            )
            if len(chunk) == 10000:
                f.write(b"".join(chunk))
                chunk.clear()
        f.write(b"".join(chunk))


# No rotation: one output file (and little enough for the agent's free-space check).
BIG_FILES = CaptureSettings(max_size_bytes=4 << 30, max_files=1)
READ_BATCH = 4096  # what the agent asks a source for


@contextlib.contextmanager
def replay_into_file(
    src: Path, tmp: Path, program: BpfProgram
) -> Iterator[tuple[ReplaySource, RotatingWriter]]:
    """The replayed file as a source, and one big output file (closed with fsync)."""
    with (
        ReplayBackend({"in": src}).open("in", program) as source,
        RotatingWriter(
            tmp / "ours", "ns", "cap", "pod", "in", linktype=source.linktype, settings=BIG_FILES
        ) as writer,
    ):
        yield source, writer


def replay_write_many(src: Path, tmp: Path) -> tuple[float, int]:
    """ReplayBackend source -> RotatingWriter.write_many, closed (with fsync) at the end."""
    program = compile_filters(RULES)
    start = time.perf_counter()
    with replay_into_file(src, tmp, program) as (source, writer):
        kept = 0
        while not source.exhausted:
            packets = source.read(READ_BATCH)
            kept += writer.write_many(packets, time.time())
    return time.perf_counter() - start, kept


def replay_raw(src: Path, tmp: Path) -> tuple[float, int]:
    """ReplaySource.read_raw -> RotatingWriter.write_raw (records copied as stored)."""
    program = compile_filters(RULES)
    start = time.perf_counter()
    with replay_into_file(src, tmp, program) as (source, writer):
        kept = 0
        nano = writer.settings.nanosecond
        while not source.exhausted:
            now = time.time()
            got = source.read_raw(READ_BATCH, nanosecond=nano, snaplen=writer.snaplen)
            if got is None:  # not with this file: the normal path
                kept += writer.write_many(source.read(READ_BATCH), now)
                continue
            records, count, rest = got
            kept += writer.write_raw(records, count, now)
            if rest:
                kept += writer.write_many(source.read(rest), now)
    return time.perf_counter() - start, kept


def replay_write(src: Path, tmp: Path) -> tuple[float, int]:
    """The same with RotatingWriter.write per packet (how it was done before write_many)."""
    program = compile_filters(RULES)
    start = time.perf_counter()
    with replay_into_file(src, tmp, program) as (source, writer):
        kept = 0
        while not source.exhausted:
            packets = source.read(READ_BATCH)
            now = time.time()
            write = writer.write
            for ts, data, wire in packets:
                write(ts, data, wire, now)
            kept += len(packets)
    return time.perf_counter() - start, kept


def replay_agent(src: Path, tmp: Path) -> tuple[float, int]:
    """NodeAgent with a ReplayBackend: one capture on one endpoint, stepped until idle."""
    endpoint = pc.WorkloadEndpoint(
        metadata=pc.ObjectMeta(name="node-k8s-web-eth0", namespace="ns", labels={"app": "web"}),
        spec=pc.WorkloadEndpointSpec(
            node="node", orchestrator="k8s", pod="web", endpoint="eth0", interface_name="in"
        ),
    )
    capture = pc.PacketCapture(
        metadata=pc.ObjectMeta(name="cap", namespace="ns"),
        spec=pc.PacketCaptureSpec(selector='app == "web"', filters=tuple(RULES)),
    )
    start = time.perf_counter()
    agent = NodeAgent("node", ReplayBackend({"in": src}), tmp / "agent", BIG_FILES)
    agent.upsert_endpoint(endpoint)
    agent.apply(capture)
    steps = 0
    while not agent.idle():
        agent.step(timeout=0)
        steps += 1
        if steps % 1024 == 0 and agent.details("ns", "cap").state is pc.CaptureState.ERROR:
            raise RuntimeError(str(agent.details("ns", "cap").interfaces))
    elapsed = time.perf_counter() - start
    kept = sum(i.packets for i in agent.details("ns", "cap").interfaces)
    agent.close()
    return elapsed, kept


def replay_tcpdump(src: Path, tmp: Path, *, sync: bool = False) -> tuple[float, int]:
    """``tcpdump -r -w``; with ``sync``, then fsync of its output (what our writer does)."""
    out = tmp / "tcpdump.pcap"
    start = time.perf_counter()
    subprocess.run(
        ["tcpdump", "-r", str(src), "-w", str(out), TCPDUMP_EXPR], check=True, capture_output=True
    )
    if sync:
        fd = os.open(out, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    elapsed = time.perf_counter() - start
    return elapsed, count_packets(out)


def bench_components(src: Path, n: int, repeat: int) -> None:
    """Each stage of the replay pipeline alone (frames or records per second)."""
    program = compile_filters(RULES)
    verdict = program.executor()
    with PcapReader(src) as reader:
        frames = [data for _, data, _ in reader]
    small = [(1_700_000_000_000_000_000 + i * 1000, bytes(100), 100) for i in range(n)]

    def iterate() -> None:
        with PcapReader(src) as reader:
            for _ in reader:
                pass

    def batches() -> None:
        with PcapReader(src) as reader:
            while reader.read_batch(READ_BATCH):
                pass

    def execute() -> None:
        for data in frames:
            verdict(data)

    def source() -> None:
        with ReplayBackend({"in": src}).open("in", program) as s:
            while not s.exhausted:
                s.read(READ_BATCH)

    def source_raw() -> None:
        with ReplayBackend({"in": src}).open("in", program) as s:
            while not s.exhausted:
                s.read_raw(READ_BATCH, nanosecond=False, snaplen=262144)

    def rotating(many: bool) -> Callable[[], None]:
        def run() -> None:
            with tempfile.TemporaryDirectory(prefix="pcxbench") as tmp:
                w = RotatingWriter(tmp, "ns", "cap", "pod", "in", settings=BIG_FILES)
                if many:
                    for i in range(0, n, READ_BATCH):
                        w.write_many(small[i : i + READ_BATCH], 1.7e9)
                else:
                    write = w.write
                    for ts, data, wire in small:
                        write(ts, data, wire, 1.7e9)
                w.flush()
                w.close()

        return run

    def plain(many: bool) -> Callable[[], None]:
        def run() -> None:
            w = PcapWriter(io.BytesIO())
            if many:
                for i in range(0, n, READ_BATCH):
                    w.write_many(small[i : i + READ_BATCH])
            else:
                write = w.write
                for ts, data, wire in small:
                    write(ts, data, wire)

        return run

    stages: dict[str, Callable[[], None]] = {
        "PcapReader iteration": iterate,
        f"PcapReader.read_batch({READ_BATCH})": batches,
        "BPF executor verdicts": execute,
        f"replay source read({READ_BATCH}) (decode+filter)": source,
        f"replay source read_raw({READ_BATCH}) (filter, raw)": source_raw,
        "PcapWriter.write, 100 B": plain(False),
        "PcapWriter.write_many, 100 B": plain(True),
        "RotatingWriter.write, 100 B": rotating(False),
        "RotatingWriter.write_many, 100 B": rotating(True),
    }
    times: dict[str, list[float]] = {name: [] for name in stages}
    for _ in range(repeat):
        for name, fn in stages.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    print(f"\nStages alone, {n} frames or records (median of {repeat})")
    print(f"{'stage':48} {'per second':>12}")
    for name, t in times.items():
        print(f"{name:48} {n / statistics.median(t):12,.0f}")


def bench_replay(n: int, repeat: int, components: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="pcxbench") as tmp:
        src = Path(tmp) / "in.pcap"
        t = time.perf_counter()
        make_pcap(src, n)
        print(
            f"generated {n} frames ({src.stat().st_size / 1e6:.0f} MB)"
            f" in {time.perf_counter() - t:.1f}s"
        )
        if components:
            bench_components(src, n, repeat)
        tools: dict[str, Callable[[Path, Path], tuple[float, int]]] = {
            "ours: replay read_raw -> write_raw": replay_raw,
            "ours: replay -> write_many": replay_write_many,
            "ours: replay -> write per packet": replay_write,
            "ours: NodeAgent + ReplayBackend": replay_agent,
            "tcpdump -r -w": replay_tcpdump,
            "tcpdump -r -w, then fsync": functools.partial(replay_tcpdump, sync=True),
        }
        times: dict[str, list[float]] = {name: [] for name in tools}
        kept: dict[str, int] = {}
        for i in range(repeat):  # interleaved, so load changes hit every tool alike
            for name, fn in tools.items():
                out = Path(tmp) / f"run{i}-{len(times[name])}-{hash(name) & 0xFFFF}"
                out.mkdir()
                elapsed, kept[name] = fn(src, out)
                times[name].append(elapsed)
                shutil.rmtree(out)
        rows = {name: (statistics.median(times[name]), kept[name]) for name in tools}
        print(f"\nReplay of {n} frames through '{TCPDUMP_EXPR}' into a file (median of {repeat})")
        print(f"{'tool':36} {'seconds':>8} {'frames/s':>12} {'kept':>9} {'vs tcpdump':>11}")
        theirs = rows["tcpdump -r -w"][0]
        for name, (sec, kept_n) in rows.items():
            print(f"{name:36} {sec:8.3f} {n / sec:12,.0f} {kept_n:9} {theirs / sec:11.2f}")
        synced = rows["tcpdump -r -w, then fsync"][0]
        best = min(sec for name, (sec, _) in rows.items() if name.startswith("ours"))
        print(f"best of ours vs tcpdump with the same fsync: {synced / best:.2f}")
        print("target: ours >= 0.33 of tcpdump's frames per second")


# -- live -------------------------------------------------------------------------------

SENDER = r"""
import socket, struct, sys, time
dev, rate, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0); s.bind((dev, 0))
s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 22)
payload = bytes(18)
udp = struct.pack("!HHHH", 40000, 9000, 8 + len(payload), 0) + payload
ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                 b"\x0a\x58\0\x02", b"\x0a\x58\0\x01")
f = b"\x02\0\0\0\0\x01\x02\0\0\0\0\x02\x08\x00" + ip + udp
send = s.send; n = int(rate * secs); sent = 0; t0 = time.perf_counter()
batch = max(rate // 1000, 1)
while sent < n:
    due = t0 + sent / rate
    now = time.perf_counter()
    if now < due:
        time.sleep(due - now)
    for _ in range(min(batch, n - sent)):
        try:
            send(f); sent += 1
        except BlockingIOError:
            pass
print(sent, time.perf_counter() - t0)
"""

CAPTURER = r"""
import selectors, sys, time
from packetcapture.backends import AfPacketBackend
from packetcapture.bpf import compile_filters
from packetcapture.model import PacketCaptureRule
from packetcapture.pcap import PcapWriter
dev, out = sys.argv[1], sys.argv[2]
program = compile_filters([PacketCaptureRule(protocol="UDP", ports=["9000"])])
with AfPacketBackend().open(dev, program) as src, open(out, "wb") as f:
    w = PcapWriter(f, linktype=src.linktype); write = w.write
    sel = selectors.DefaultSelector(); sel.register(src, selectors.EVENT_READ)
    sel.register(sys.stdin, selectors.EVENT_READ)  # a line on stdin: stop
    print("ready", flush=True)
    n = 0; stop = None
    while stop is None or time.monotonic() < stop:
        for key, _ in sel.select(0.05):
            if key.fileobj is sys.stdin:
                sys.stdin.readline(); sel.unregister(sys.stdin)
                stop = time.monotonic() + 0.5  # drain what is still in the ring
                continue
            for ts, d, wl in src.read(65536):
                write(ts, d, wl); n += 1
    st = src.stats()
print(n, st.dropped)
"""


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, check=check, capture_output=True, text=True)


def live_round(
    ns_a: str, ns_b: str, dev_a: str, dev_b: str, rate: int, secs: float, tool: str, tmp: str
) -> tuple[int, int, float]:
    """Return (sent, captured, achieved send rate) for one rate and tool."""
    out = os.path.join(tmp, f"{tool}.pcap")
    if tool == "ours":
        cmd = [sys.executable, "-c", CAPTURER, dev_a, out]
        cap = subprocess.Popen(["ip", "netns", "exec", ns_a, *cmd], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)  # fmt: skip
        assert cap.stdout is not None
        assert cap.stdout.readline().strip() == "ready"
    else:
        cmd = ["tcpdump", "-i", dev_a, "-n", "-w", out, "udp port 9000"]
        cap = subprocess.Popen(["ip", "netns", "exec", ns_a, *cmd],
                               stderr=subprocess.PIPE, text=True)  # fmt: skip
        assert cap.stderr is not None
        cap.stderr.readline()
    time.sleep(0.2)
    res = sh("ip", "netns", "exec", ns_b, sys.executable, "-c", SENDER, dev_b, str(rate), str(secs))
    sent, took = int(res.stdout.split()[0]), float(res.stdout.split()[1])
    if tool == "ours":
        time.sleep(0.5)
        captured = int(cap.communicate("stop\n", timeout=30)[0].split()[0])
    else:
        time.sleep(1.2)  # tcpdump's buffer timeout is 1 s
        cap.send_signal(2)
        err = cap.communicate(timeout=30)[1]
        captured = int(re.search(r"(\d+) packets? captured", err).group(1))  # type: ignore[union-attr]
    return sent, captured, sent / took


def bench_live(rates: list[int], secs: float) -> None:
    if os.geteuid() != 0 or shutil.which("tcpdump") is None:
        print("\nLive: skipped (needs root and tcpdump)")
        return
    tag = str(os.getpid())
    ns_a, ns_b, dev_a, dev_b = f"pcxba{tag}", f"pcxbb{tag}", f"pba{tag}"[:15], f"pbb{tag}"[:15]
    sh("ip", "netns", "add", ns_a)
    sh("ip", "netns", "add", ns_b)
    try:
        sh(
            "ip",
            "link",
            "add",
            dev_a,
            "netns",
            ns_a,
            "type",
            "veth",
            "peer",
            "name",
            dev_b,
            "netns",
            ns_b,
        )
        for ns, dev in ((ns_a, dev_a), (ns_b, dev_b)):
            sh("ip", "netns", "exec", ns, "sysctl", "-qw", f"net.ipv6.conf.{dev}.disable_ipv6=1")
            sh("ip", "-n", ns, "link", "set", dev, "up")
        print(
            f"\nLive capture on a veth, {secs:.0f} s per rate, filter 'udp port 9000' -> pcap file"
        )
        print(f"{'offered pps':>12} {'tool':>8} {'sent':>9} {'achieved pps':>13} {'captured':>9}")
        best = {"ours": 0.0, "tcpdump": 0.0}
        with tempfile.TemporaryDirectory(prefix="pcxlive") as tmp:
            for rate in rates:
                for tool in ("ours", "tcpdump"):
                    sent, captured, achieved = live_round(
                        ns_a, ns_b, dev_a, dev_b, rate, secs, tool, tmp
                    )
                    if captured >= sent:
                        best[tool] = max(best[tool], achieved)
                    mark = "" if captured >= sent else f"  lost {sent - captured}"
                    print(f"{rate:12,} {tool:>8} {sent:9} {achieved:13,.0f} {captured:9}{mark}")
        print(
            f"highest zero-drop rate (achieved send rate): ours {best['ours']:,.0f} pps, "
            f"tcpdump {best['tcpdump']:,.0f} pps"
        )
    finally:
        sh("ip", "netns", "del", ns_a, check=False)
        sh("ip", "netns", "del", ns_b, check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-live", action="store_true")
    parser.add_argument("--skip-replay", action="store_true")
    parser.add_argument("--skip-components", action="store_true")
    parser.add_argument("--rates", default="10000,25000,50000,100000,150000,200000,300000")
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    if not args.skip_replay:
        bench_replay(args.frames, args.repeat, not args.skip_components)
    if not args.skip_live:
        bench_live([int(r) for r in args.rates.split(",")], args.seconds)


if __name__ == "__main__":
    main()

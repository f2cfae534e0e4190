"""Live AF_PACKET capture on a veth pair between two test namespaces (root only)."""

from __future__ import annotations

import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import dpkt
import pytest
from backends_netns import VethPair, sh, veth_pair

from packetcapture.backends import AfPacketBackend, SourceStats
from packetcapture.backends.afpacket import _in_netns, linktype_for_hatype
from packetcapture.errors import BackendUnavailableError
from packetcapture.model import PacketCaptureRule
from packetcapture.pcap import PcapReader
from packetcapture.testing import BackendHarness, check_backend, conformance_frames

bpf = pytest.importorskip("packetcapture.bpf")
BpfProgram = bpf.BpfProgram

pytestmark = pytest.mark.root
HERE = Path(__file__).parent


def raw_sender(pair: VethPair) -> socket.socket:
    sock = _in_netns(pair.ns_b, lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0))
    sock.bind((pair.dev_b, 0))
    return sock


@pytest.mark.parametrize("ring", [True, False], ids=["ring", "recvmsg"])
def test_afpacket_conformance(ring: bool) -> None:
    def factory(frames: Sequence[bytes]) -> BackendHarness:
        stack = ExitStack()
        pair = stack.enter_context(veth_pair(addresses=False, ipv6=False))
        tx = stack.enter_context(raw_sender(pair))

        def send() -> None:
            for frame in frames:
                tx.send(frame)

        return BackendHarness(
            AfPacketBackend(netns=pair.ns_a, ring=ring),
            pair.dev_a,
            send=send,
            end=lambda: sh("ip", "-n", pair.ns_a, "link", "del", pair.dev_a),
            cleanup=stack.close,
        )

    check_backend(factory)


@pytest.fixture
def pair() -> Iterator[VethPair]:
    with veth_pair() as p:
        # static neighbours: no ARP / neighbour discovery on the wire, only our packets
        for ns, dev, peer_dev, peer_ns in (
            ("a", "dev_a", "dev_b", "b"),
            ("b", "dev_b", "dev_a", "a"),
        ):
            mac = sh("ip", "-n", getattr(p, f"ns_{peer_ns}"), "-br", "link", "show",
                     getattr(p, peer_dev)).stdout.split()[2]  # fmt: skip
            for addr in (getattr(p, f"ip4_{peer_ns}"), getattr(p, f"ip6_{peer_ns}")):
                sh("ip", "-n", getattr(p, f"ns_{ns}"), "neigh", "replace", addr, "lladdr", mac,
                   "dev", getattr(p, dev), "nud", "permanent")  # fmt: skip
        time.sleep(0.3)  # let link-up chatter (MLD reports) pass before capturing
        yield p


def expected_events(p: VethPair) -> list[tuple[str, str, str]]:
    """(src, dst, what) of every packet the traffic helper causes, in order."""
    events = []
    for src, dst, src6, dst6, tag in (
        (p.ip4_a, p.ip4_b, p.ip6_a, p.ip6_b, "ab"),
        (p.ip4_b, p.ip4_a, p.ip6_b, p.ip6_a, "ba"),
    ):
        # nobody listens on UDP 5000: each datagram earns a port unreachable
        events += [
            (src, dst, f"udp:udp-{tag}"),
            (dst, src, "icmp:3"),
            (src6, dst6, f"udp:udp-{tag}"),
            (dst6, src6, "icmp6:1"),
            (src, dst, "tcp:S"),
            (dst, src, "tcp:RA"),
            (src6, dst6, "tcp:S"),
            (dst6, src6, "tcp:RA"),
            (src, dst, f"icmp:8:{tag}"),
            (dst, src, f"icmp:0:{tag}"),
            (src6, dst6, f"icmp6:128:{tag}"),
            (dst6, src6, f"icmp6:129:{tag}"),
        ]
    return events


def describe(frame: bytes) -> tuple[str, str, str]:
    eth = dpkt.ethernet.Ethernet(frame)
    ip = eth.data
    if isinstance(ip, dpkt.ip.IP):
        src, dst = (
            socket.inet_ntop(socket.AF_INET, ip.src),
            socket.inet_ntop(socket.AF_INET, ip.dst),
        )
    else:
        src, dst = (
            socket.inet_ntop(socket.AF_INET6, ip.src),
            socket.inet_ntop(socket.AF_INET6, ip.dst),
        )
    l4 = ip.data
    if isinstance(l4, dpkt.udp.UDP):
        what = f"udp:{l4.data.decode()}"
    elif isinstance(l4, dpkt.tcp.TCP):
        flags = "".join(c for c, bit in (("S", 2), ("R", 4), ("A", 16)) if l4.flags & bit)
        what = f"tcp:{flags}"
    else:
        kind = "icmp" if isinstance(l4, dpkt.icmp.ICMP) else "icmp6"
        what = f"{kind}:{l4.type}"
        if l4.type in (0, 8, 128, 129):  # echo: the helper put its tag in the payload
            what += f":{bytes(l4.data)[4:].decode()}"
    return src, dst, what


@pytest.mark.parametrize("ring", [True, False], ids=["ring", "recvmsg"])
def test_known_traffic_both_ways_matches_tcpdump(
    pair: VethPair, tmp_path: Path, ring: bool
) -> None:
    if shutil.which("tcpdump") is None:
        pytest.skip("tcpdump not installed")
    rules = [
        PacketCaptureRule(protocol="UDP", ports=["5000"]),
        PacketCaptureRule(protocol="TCP", ports=["6000"]),
        PacketCaptureRule(protocol="ICMP"),
        PacketCaptureRule(protocol="ICMPv6"),
    ]
    program = bpf.compile_filters(rules)
    pcap = tmp_path / "tcpdump.pcap"
    expr = "udp port 5000 or tcp port 6000 or icmp or icmp6"
    dump = subprocess.Popen(
        pair.exec_a("tcpdump", "-i", pair.dev_a, "-n", "-U", "--immediate-mode", "-w", str(pcap),
                    "--time-stamp-precision=nano", expr),
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert dump.stderr is not None
        assert "listening on" in dump.stderr.readline()
        with AfPacketBackend(netns=pair.ns_a, ring=ring).open(pair.dev_a, program) as source:
            start = time.time_ns()
            got = []
            for ns, d4, d6, tag in ((pair.ns_a, pair.ip4_b, pair.ip6_b, "ab"),
                                    (pair.ns_b, pair.ip4_a, pair.ip6_a, "ba")):  # fmt: skip
                with subprocess.Popen(
                    ["ip", "netns", "exec", ns, sys.executable, str(HERE / "backends_traffic.py"),
                     d4, d6, tag], stdout=subprocess.PIPE, text=True,
                ) as helper:  # fmt: skip
                    while helper.poll() is None:  # read while sending, as the agent would
                        time.sleep(0.01)
                        got += source.read()
                    assert helper.stdout is not None and helper.stdout.read().strip() == "done"
            end = time.time_ns()
            deadline = time.monotonic() + 2
            while len(got) < len(expected_events(pair)) and time.monotonic() < deadline:
                time.sleep(0.02)
                got += source.read()
            time.sleep(0.2)
            got += source.read()  # nothing more may come
            stats = source.stats()
    finally:
        time.sleep(0.2)
        dump.send_signal(signal.SIGINT)
        dump.wait(5)
        assert dump.stderr is not None
        dump.stderr.close()
    assert [describe(p[1]) for p in got] == expected_events(pair)
    assert all(start <= ts <= end for ts, _, _ in got), "timestamps outside the send window"
    assert [ts for ts, _, _ in got] == sorted(ts for ts, _, _ in got)
    assert all(len(data) == wire for _, data, wire in got)
    assert stats == SourceStats(received=len(got), dropped=0, filtered=0)
    with PcapReader(pcap) as reader:
        theirs = list(reader)
    assert [(d, w) for _, d, w in theirs] == [(d, w) for _, d, w in got]


def test_missing_interface_and_namespace() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    with pytest.raises(
        BackendUnavailableError, match=r"nosuchif0: look up the interface: no such interface"
    ) as info:
        AfPacketBackend().open("nosuchif0", BpfProgram.accept_all())
    assert isinstance(info.value.__cause__, OSError)
    with pytest.raises(BackendUnavailableError, match="not a valid interface name"):
        AfPacketBackend().open("x" * 20, BpfProgram.accept_all())
    with pytest.raises(BackendUnavailableError, match="no network namespace"):
        AfPacketBackend(netns="pcx-no-such-ns").open("lo", BpfProgram.accept_all())


def test_loopback_sees_each_packet_once() -> None:
    """lo delivers a sent packet twice (outgoing and incoming); we keep one, like libpcap."""
    with veth_pair(addresses=False, ipv6=False) as p:
        for ring in (True, False):
            with AfPacketBackend(netns=p.ns_a, ring=ring).open(
                "lo", BpfProgram.accept_all()
            ) as src:
                assert src.linktype == 1

                def ping() -> None:
                    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                        s.sendto(b"once", ("127.0.0.1", 9))

                _in_netns(p.ns_a, ping)
                got: list[bytes] = []
                deadline = time.monotonic() + 1
                while time.monotonic() < deadline:  # wait a while for a duplicate too
                    time.sleep(0.05)
                    got += [d for _, d, _ in src.read() if d[23] == 17 and d.endswith(b"once")]
                assert len(got) == 1, ring


def test_snaplen_bigger_than_default_block_and_hatype_map() -> None:
    assert linktype_for_hatype(1) == 1 and linktype_for_hatype(65534) == 101
    assert linktype_for_hatype(824) is None
    with veth_pair(addresses=False, ipv6=False) as p:
        src = AfPacketBackend(netns=p.ns_a, block_size=None).open(
            p.dev_a, BpfProgram.accept_all(snaplen=2 << 20), snaplen=2 << 20
        )
        src.close()
        with pytest.raises(ValueError, match="block_size"):
            AfPacketBackend(netns=p.ns_a, block_size=5000).open(p.dev_a, BpfProgram.accept_all())


@pytest.mark.parametrize("ring", [True, False], ids=["ring", "recvmsg"])
def test_vlan_tag_is_put_back(ring: bool) -> None:
    """The kernel moves 802.1Q tags into metadata; the captured frame has it again."""
    frame = conformance_frames()[0]
    tagged = frame[:12] + b"\x81\x00\x00\x2a" + frame[12:]
    with veth_pair(addresses=False, ipv6=False) as p, raw_sender(p) as tx:
        backend = AfPacketBackend(netns=p.ns_a, ring=ring, block_timeout_ms=10)
        with backend.open(p.dev_a, BpfProgram.accept_all()) as source:
            tx.send(tagged)
            got = []
            deadline = time.monotonic() + 2
            while not got and time.monotonic() < deadline:
                time.sleep(0.02)
                got = source.read()
    assert [(d, w) for _, d, w in got] == [(tagged, len(tagged))]


def test_set_program_refilters_packets_already_in_the_ring() -> None:
    """Packets the old program let into the ring are filtered again by the new one."""
    frames = conformance_frames()
    udp = bpf.compile_filters([PacketCaptureRule(protocol="UDP")])
    with veth_pair(addresses=False, ipv6=False) as p, raw_sender(p) as tx:
        backend = AfPacketBackend(netns=p.ns_a, block_timeout_ms=10)
        with backend.open(p.dev_a, BpfProgram.accept_all()) as source:
            for frame in frames:
                tx.send(frame)
            time.sleep(0.2)  # the block is retired and waits, full of unfiltered frames
            source.set_program(udp)
            got = source.read()
            for frame in frames:
                tx.send(frame)
            deadline = time.monotonic() + 2
            while len(got) < 6 and time.monotonic() < deadline:
                time.sleep(0.02)
                got += source.read()
            stats = source.stats()
    want = [f for f in frames if udp.matches(f)]
    assert [d for _, d, _ in got] == want * 2
    assert stats.filtered == len(frames) - len(want)
    assert stats.received == 2 * len(want)


@pytest.mark.parametrize("nanosecond", [False, True], ids=["us", "ns"])
def test_raw_lane_writes_what_read_and_write_many_write(
    tmp_path: Path, nanosecond: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """read_raw + write_raw (+ read(rest) for odd packets) == read + write_many.

    Two sources on the same veth see the same frames: one drained as the agent drains a
    raw-capable source, one the normal way. Odd frames (a VLAN tag to put back, longer than
    the writer's snap length) send the raw lane to read(rest) in the middle of a batch;
    bursts of equal-sized frames are copied as runs (block-wise). Each socket stamps
    packets itself, so timestamps may differ by microseconds; every other byte of the two
    files is the same.
    """
    from packetcapture.backends import afpacket
    from packetcapture.pcap import CaptureSettings, RotatingWriter

    in_runs: list[int] = []
    take_run = afpacket._take_run

    def spy(*args: Any, **kwargs: Any) -> tuple[int, int]:
        off, n = take_run(*args, **kwargs)
        in_runs.append(n)
        return off, n

    monkeypatch.setattr(afpacket, "_take_run", spy)
    frames = conformance_frames()
    tagged = frames[0][:12] + b"\x81\x00\x00\x2a" + frames[0][12:]
    big = frames[1] + bytes(300)
    burst = [frames[2][:-1] + bytes([i]) for i in range(40)]
    sent = [*frames, tagged, *burst, *frames, big, *frames, *burst] * 3
    settings = CaptureSettings(snaplen=256, nanosecond=nanosecond)
    with veth_pair(addresses=False, ipv6=False) as p, raw_sender(p) as tx:
        backend = AfPacketBackend(netns=p.ns_a, block_timeout_ms=10)
        prog = BpfProgram.accept_all()
        with (
            backend.open(p.dev_a, prog) as raw_src,
            backend.open(p.dev_a, prog) as plain_src,
            RotatingWriter(tmp_path / "raw", "ns", "cap", "pod", "eth0", settings=settings) as w1,
            RotatingWriter(tmp_path / "plain", "ns", "cap", "pod", "eth0", settings=settings) as w2,
        ):
            for frame in sent:
                tx.send(frame)
            raw_count = plain_count = raw_calls = 0
            deadline = time.monotonic() + 5
            while (raw_count < len(sent) or plain_count < len(sent)) and (
                time.monotonic() < deadline
            ):
                time.sleep(0.02)
                # small batches cut runs short; larger ones hold whole runs
                size = 64 if raw_calls % 2 else 7
                got = raw_src.read_raw(size, nanosecond=nanosecond, snaplen=w1.snaplen)
                if got is None:
                    packets = raw_src.read(7)
                else:
                    raw_calls += 1
                    records, count, rest = got
                    w1.write_raw(records, count, 0.0)
                    raw_count += count
                    packets = raw_src.read(rest) if rest else []
                w1.write_many(packets, 0.0)
                raw_count += len(packets)
                more = plain_src.read(7)
                w2.write_many(more, 0.0)
                plain_count += len(more)
            path1, path2 = w1.active_path, w2.active_path
    assert raw_count == plain_count == len(sent)
    assert raw_calls > 0
    assert sum(in_runs) >= 16  # some frames went through the block-wise copy
    one, two = path1.read_bytes(), path2.read_bytes()
    assert len(one) == len(two) and one[:24] == two[:24]
    with PcapReader(path1) as r1, PcapReader(path2) as r2:
        got, want = list(r1), list(r2)
    assert [(d, w) for _, d, w in got] == [(d, w) for _, d, w in want]
    assert [d for _, d, _ in got] == [f[:256] for f in sent]
    assert [w for _, _, w in got] == [len(f) for f in sent]
    assert all(abs(a[0] - b[0]) < 50_000_000 for a, b in zip(got, want, strict=True))
    stamps = [t for t, _, _ in got]
    assert stamps == sorted(stamps)


@pytest.mark.parametrize("raw", [False, True], ids=["read", "read_raw"])
def test_packets_in_the_open_block_survive_interface_removal(raw: bool) -> None:
    """Frames still in the block the kernel has not handed over yet are delivered too.

    The interface is removed straight after sending, long before the block timeout would
    retire the block; the source then ends with the interface's fate as its reason.
    """
    frames = conformance_frames()
    with veth_pair(addresses=False, ipv6=False) as p, raw_sender(p) as tx:
        backend = AfPacketBackend(netns=p.ns_a, block_timeout_ms=5000)
        with backend.open(p.dev_a, BpfProgram.accept_all()) as source:
            for frame in frames:
                tx.send(frame)
            time.sleep(0.05)
            sh("ip", "-n", p.ns_a, "link", "del", p.dev_a)
            got: list[bytes] = []
            deadline = time.monotonic() + 2
            while not source.exhausted and time.monotonic() < deadline:
                if raw:
                    batch = source.read_raw(3, nanosecond=True, snaplen=262144)
                    if batch is not None:
                        records, _count, rest = batch
                        with PcapReader(io.BytesIO(_PCAP_HEADER_NS + records)) as reader:
                            got += [d for _, d, _ in reader]
                        assert rest == 0
                        continue
                got += [d for _, d, _ in source.read(3)]
            reason = source.end_reason
    assert got == frames
    assert reason is not None and reason.startswith(f"interface {p.dev_a} ")


_PCAP_HEADER_NS = bytes.fromhex("4d3cb2a1020004000000000000000000ffff000001000000")

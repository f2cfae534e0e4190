"""The summary agrees with tshark: conversations, DNS outcomes, TCP trouble counts.

Flows are compared with ``tshark -q -z conv,tcp|udp|ip|ipv6`` (packets and bytes each
way, exactly) on the bundled traffic and on generated files with many flows, in both byte
orders, pcap and pcapng, and several link types; DNS names and response codes with
``-e dns.qry.name -e dns.flags.rcode``; each kind of TCP trouble is built from a real packet
sequence and counted against tshark's ``tcp.analysis.*`` / ``tcp.flags.reset``.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import dpkt
import pytest
from summary_build import (
    T0,
    eth,
    frames,
    sll,
    sll2,
    tcp,
    udp,
    write_pcap,
    write_pcapng,
)
from summary_tshark import conversations, count, fields, ours

from packetcapture.pcap import PcapReader
from packetcapture.summary import CaptureSummary, summarize
from tests.conftest import REPO, require_tool

TRAFFIC = sorted((REPO / "examples" / "traffic").glob("*.pcap"))
SYN, ACK, FIN, RST, PSH = (
    dpkt.tcp.TH_SYN,
    dpkt.tcp.TH_ACK,
    dpkt.tcp.TH_FIN,
    dpkt.tcp.TH_RST,
    dpkt.tcp.TH_PUSH,
)


@pytest.fixture
def tshark() -> str:
    return require_tool("tshark")


def summary_of(path: Path) -> CaptureSummary:
    with PcapReader(path) as r:
        if r.format == "pcap":
            return summarize(r.read_batch(10**7), r.linktype, path.stem)
        return summarize([rec[:3] for rec in r.records()], r.linktype, path.stem)


def assert_flows_agree(tshark: str, path: Path) -> CaptureSummary:
    summary = summary_of(path)
    for kind in ("tcp", "udp", "ip", "ipv6"):
        theirs = conversations(tshark, path, kind)
        assert ours(summary, kind) == theirs, kind
    return summary


@pytest.mark.parametrize("path", TRAFFIC, ids=lambda p: p.name)
def test_bundled_traffic_flows_agree(tshark: str, path: Path) -> None:
    summary = assert_flows_agree(tshark, path)
    assert summary.flows and summary.totals.packets == count(tshark, path, "frame")


def many_flows(seed: int, n_flows: int = 300) -> list[tuple[int, bytes, int]]:
    """TCP and UDP flows, IPv4 and IPv6, some VLAN-tagged, packets interleaved."""
    rnd = random.Random(seed)
    streams = []
    for i in range(n_flows):
        six = rnd.random() < 0.4
        a = f"fd00::{i + 1:x}" if six else f"10.{i >> 8}.{i & 255}.1"
        b = f"fd00:1::{rnd.randint(1, 50):x}" if six else f"10.200.0.{rnd.randint(1, 50)}"
        sport, dport = 20000 + i, rnd.choice([30080, 30443, 31000 + i % 7])
        vlans = rnd.choice([(), (), (10,), (100, 20)])
        is_tcp = rnd.random() < 0.6
        pkts = []
        seq = {True: 1000, False: 9000}
        for _ in range(rnd.randint(1, 12)):
            out = rnd.random() < 0.6
            s, d, sp, dp = (a, b, sport, dport) if out else (b, a, dport, sport)
            body = rnd.randbytes(rnd.randint(0, 700))  # tshark abbreviates 10,000 bytes or more
            if is_tcp:
                pkt = tcp(s, d, sp, dp, ACK | PSH, seq=seq[out], ack=seq[not out], data=body)
                seq[out] += len(body)
            else:
                pkt = udp(s, d, sp, dp, body)
            pkts.append(eth(pkt, vlans))
        streams.append(pkts)
    order = [i for i, s in enumerate(streams) for _ in s]
    rnd.shuffle(order)
    its = [iter(s) for s in streams]
    return frames([next(its[i]) for i in order], step_ns=1000)


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
@pytest.mark.parametrize("order", ["<", ">"], ids=["little-endian", "big-endian"])
def test_many_flows_agree(tshark: str, tmp_path: Path, fmt: str, order: str) -> None:
    packets = many_flows(seed=len(fmt) + ord(order))
    write = write_pcap if fmt == "pcap" else write_pcapng
    path = write(tmp_path / f"many.{fmt}", packets, order=order)
    summary = assert_flows_agree(tshark, path)
    assert len(summary.flows) == 300 and summary.totals.packets == len(packets)


@pytest.mark.parametrize(
    ("linktype", "link"), [(113, sll), (276, sll2), (101, bytes)], ids=["sll", "sll2", "raw"]
)
def test_other_link_types_agree(tshark: str, tmp_path: Path, linktype: int, link: object) -> None:
    packets = [
        (ts, link(data[14:] if data[12:14] in (b"\x08\x00", b"\x86\xdd") else data), 0)
        for ts, data, _ in many_flows(seed=linktype, n_flows=40)
    ]
    packets = [(ts, data, len(data)) for ts, data, _ in packets if data]
    # Tagged frames have no place on these link types: keep the untagged ones.
    path = write_pcap(tmp_path / "l.pcap", packets, linktype=linktype)
    summary = assert_flows_agree(tshark, path)
    assert summary.totals.link_types == {linktype: len(packets)}


def test_truncated_packets_are_counted_and_flows_agree(tshark: str, tmp_path: Path) -> None:
    packets = [(ts, data[:64], wire) for ts, data, wire in many_flows(seed=5, n_flows=50)]
    path = write_pcap(tmp_path / "cut.pcap", packets, snaplen=64)
    summary = assert_flows_agree(tshark, path)
    assert summary.totals.truncated == sum(1 for _, d, w in packets if len(d) < w) > 0
    assert summary.totals.truncated == count(tshark, path, "frame.cap_len < frame.len")


# -- DNS --------------------------------------------------------------------------------


def dns_exchange(
    client: str, server: str, sport: int, qid: int, name: str, rcode: int | None, qtype: int = 1
) -> list[bytes]:
    query = dpkt.dns.DNS(id=qid, qd=[dpkt.dns.DNS.Q(name=name, type=qtype)])
    out = [eth(udp(client, server, sport, 53, bytes(query)))]
    if rcode is not None:
        reply = dpkt.dns.DNS(id=qid, qd=[dpkt.dns.DNS.Q(name=name, type=qtype)])
        reply.qr, reply.rcode = dpkt.dns.DNS_R, rcode
        if rcode == 0 and qtype == 1:
            reply.an = [
                dpkt.dns.DNS.RR(name=name, type=1, cls=1, ttl=5, ip=bytes([10, 0, 0, qid & 255]))
            ]
        out.append(eth(udp(server, client, 53, sport, bytes(reply))))
    return out


def test_dns_names_and_rcodes_agree(tshark: str, tmp_path: Path) -> None:
    pkts: list[bytes] = []
    cases = [
        ("a.svc", 0),
        ("missing.svc", 3),
        ("broken.svc", 2),
        ("refused.svc", 5),
        ("silent.svc", None),
        ("a.svc", 0),
        ("missing.svc", 3),
    ]
    for i, (name, rcode) in enumerate(cases):
        pkts += dns_exchange("10.0.0.1", "10.96.0.10", 40000 + i, 100 + i, name, rcode)
    pkts += dns_exchange("fd00::1", "fd00::53", 41000, 7, "v6.svc", 3, qtype=28)
    path = write_pcap(tmp_path / "dns.pcap", frames(pkts))
    summary = summary_of(path)
    rcode_names = {"0": "NOERROR", "2": "SERVFAIL", "3": "NXDOMAIN", "5": "REFUSED"}
    theirs = Counter(
        (name, rcode_names[rcode])
        for name, rcode in fields(
            tshark, path, "dns.flags.response == 1", "dns.qry.name", "dns.flags.rcode"
        )
    )
    assert Counter({(q.name, q.rcode): q.count for q in summary.dns if q.answered}) == theirs
    queries = Counter(
        name for (name,) in fields(tshark, path, "dns.flags.response == 0", "dns.qry.name")
    )
    mine: Counter[str] = Counter()
    for q in summary.dns:
        mine[q.name] += q.count
    assert mine == queries
    unanswered = [q for q in summary.dns if not q.answered]
    assert [(q.name, q.count) for q in unanswered] == [("silent.svc", 1)]
    ok = next(q for q in summary.dns if q.name == "a.svc")
    assert ok.answers == ("10.0.0.100", "10.0.0.105") and ok.response_ns_avg == 1_000_000


def test_dns_of_bundled_traffic_agrees(tshark: str) -> None:
    path = REPO / "examples" / "traffic" / "cali1a2b3c4d5e6.pcap"
    summary = summary_of(path)
    theirs = fields(tshark, path, "dns.flags.response == 1", "dns.qry.name", "dns.flags.rcode")
    assert sorted((name, rcode) for name, rcode in theirs) == sorted(
        (q.name, {"NOERROR": "0", "NXDOMAIN": "3"}[q.rcode]) for q in summary.dns if q.rcode
    )
    assert {q.name for q in summary.dns if not q.answered} == {
        "sample-app.sample-namespace.svc",
        "db",
    }


# -- TCP trouble, one real sequence per kind ---------------------------------------------

C, S = "10.1.0.1", "10.2.0.2"


def conn(
    steps: list[tuple[float, bool, int, int, int, bytes, int]], *, six: bool = False
) -> list[tuple[int, bytes, int]]:
    """Frames from (time ms, from client, flags, seq, ack, data, window) steps."""
    c, s = ("fd00::c", "fd00::5") if six else (C, S)
    out = []
    for ms, from_client, flags, seq, ack, data, win in steps:
        src, dst, sp, dp = (c, s, 43210, 8080) if from_client else (s, c, 8080, 43210)
        frame = eth(tcp(src, dst, sp, dp, flags, seq=seq, ack=ack, data=data, win=win))
        out.append((T0 + int(ms * 1_000_000), frame, len(frame)))
    return out


def handshake(rtt_ms: float = 1.0) -> list[tuple[float, bool, int, int, int, bytes, int]]:
    return [
        (0, True, SYN, 100, 0, b"", 64240),
        (rtt_ms / 2, False, SYN | ACK, 500, 101, b"", 65160),
        (rtt_ms, True, ACK, 101, 501, b"", 502),
    ]


def check(tshark: str, tmp_path: Path, steps, **expect: object):  # type: ignore[no-untyped-def]
    """Our one TCP issue row has ``expect``; its counts are tshark's."""
    path = write_pcap(tmp_path / "t.pcap", conn(steps))
    summary = summary_of(path)
    assert_flows_agree(tshark, path)
    (issue,) = summary.tcp_issues
    got = {k: getattr(issue, k) for k in expect}
    assert got == expect
    assert issue.retransmissions == count(tshark, path, "tcp.analysis.retransmission")
    assert issue.resets == count(tshark, path, "tcp.flags.reset == 1")
    assert issue.duplicate_acks == count(tshark, path, "tcp.analysis.duplicate_ack")
    assert issue.zero_windows == count(tshark, path, "tcp.analysis.zero_window")
    return issue


def test_syn_without_answer(tshark: str, tmp_path: Path) -> None:
    steps = [
        (0, True, SYN, 100, 0, b"", 64240),
        (1000, True, SYN, 100, 0, b"", 64240),
        (3000, True, SYN, 100, 0, b"", 64240),
    ]
    check(tshark, tmp_path, steps, handshake="unanswered", retransmissions=2, resets=0)


def test_refused_rst_answering_syn(tshark: str, tmp_path: Path) -> None:
    steps = [(0, True, SYN, 100, 0, b"", 64240), (0.2, False, RST | ACK, 0, 101, b"", 0)]
    issue = check(tshark, tmp_path, steps, handshake="refused", resets=1, mid_stream_resets=0)
    assert issue.zero_windows == 0  # the RST's window 0 is not a zero window


def test_mid_stream_reset(tshark: str, tmp_path: Path) -> None:
    steps = [
        *handshake(),
        (2, True, PSH | ACK, 101, 501, b"GET /", 502),
        (3, False, RST | ACK, 501, 106, b"", 0),
    ]
    check(tshark, tmp_path, steps, handshake="complete", resets=1, mid_stream_resets=1)


def test_retransmission(tshark: str, tmp_path: Path) -> None:
    data = b"x" * 100
    steps = [
        *handshake(),
        (2, True, PSH | ACK, 101, 501, data, 502),
        (250, True, PSH | ACK, 101, 501, data, 502),  # RTO: the same segment again
        (251, False, ACK, 501, 201, b"", 509),
        (260, True, FIN | ACK, 201, 501, b"", 502),
        (500, True, FIN | ACK, 201, 501, b"", 502),  # and the FIN
    ]
    check(tshark, tmp_path, steps, handshake="complete", retransmissions=2, duplicate_acks=0)


def test_duplicate_acks_and_fast_retransmission(tshark: str, tmp_path: Path) -> None:
    seg = b"y" * 100
    steps = [*handshake()]
    # The server sends 4 segments; the second is lost before the capture point.
    for i in (0, 2, 3, 4):
        steps.append((2 + i * 0.1, False, PSH | ACK, 501 + i * 100, 101, seg, 509))
    steps += [
        (2.5, True, ACK, 101, 601, b"", 502),  # acks the first
        (2.6, True, ACK, 101, 601, b"", 502),  # duplicate (third arrived)
        (2.7, True, ACK, 101, 601, b"", 502),  # duplicate (fourth arrived)
        (3.0, False, PSH | ACK, 601, 101, seg, 509),  # fast retransmission of the second
        (3.5, True, ACK, 101, 1001, b"", 502),
    ]
    check(tshark, tmp_path, steps, handshake="complete", duplicate_acks=2, retransmissions=1)


def test_zero_window(tshark: str, tmp_path: Path) -> None:
    seg = b"z" * 100
    steps = [
        *handshake(),
        (2, False, PSH | ACK, 501, 101, seg, 509),
        (3, True, ACK, 101, 601, b"", 0),  # the client's buffer is full
        (203, True, ACK, 101, 601, b"", 0),
        (400, True, ACK, 101, 601, b"", 502),  # window update
    ]
    check(tshark, tmp_path, steps, handshake="complete", zero_windows=2)


def test_handshake_rtt_is_tsharks_initial_rtt(tshark: str, tmp_path: Path) -> None:
    steps = [*handshake(rtt_ms=3.5), (4, True, PSH | ACK, 101, 501, b"hi", 502)]
    path = write_pcap(tmp_path / "rtt.pcap", conn(steps))
    (flow,) = summary_of(path).flows
    irtt = {
        float(v)
        for (v,) in fields(tshark, path, "tcp.analysis.initial_rtt", "tcp.analysis.initial_rtt")
    }
    assert flow.handshake_rtt_ns == 3_500_000 and irtt == {0.0035}
    assert summary_of(path).tcp_issues == ()  # a clean connection is no trouble

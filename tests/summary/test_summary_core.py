"""The pure summary core: link types, tags, IPv6 extension headers, fragments, ICMP errors,
truncated and malformed packets, and the JSON form."""

from __future__ import annotations

import struct

import dpkt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from summary_build import T0, eth, frames, ip, sll, sll2, tcp, udp

from packetcapture.summary import Summarizer, format_summary, summarize

SYN, ACK = dpkt.tcp.TH_SYN, dpkt.tcp.TH_ACK


def test_links_and_vlan_tags_give_the_same_flows() -> None:
    pkts = [
        tcp("10.0.0.1", "10.0.0.2", 1000, 80, SYN),
        tcp("10.0.0.2", "10.0.0.1", 80, 1000, SYN | ACK),
    ]
    pkts += [udp("fd00::1", "fd00::2", 5000, 6000), udp("fd00::2", "fd00::1", 6000, 5000)]
    shapes = {
        (1, "eth"): [eth(p) for p in pkts],
        (1, "vlan"): [eth(p, (7,)) for p in pkts],
        (1, "qinq"): [eth(p, (7, 8)) for p in pkts],
        (113, "sll"): [sll(p) for p in pkts],
        (276, "sll2"): [sll2(p) for p in pkts],
        (101, "raw"): [bytes(p) for p in pkts],
    }
    seen = set()
    for (linktype, _), data in shapes.items():
        s = summarize(frames(data), linktype)
        assert s.totals.undecoded == 0 and s.totals.packets == 4
        seen.add(tuple((f.proto, f.a, f.b, f.packets_ab, f.packets_ba) for f in s.flows))
    assert (
        seen
        == {
            (
                ("tcp", "10.0.0.1:1000", "10.0.0.2:80", 1, 1),
                ("udp", "[fd00::1]:5000", "[fd00::2]:6000", 1, 1),
            )
        }
        or len(seen) == 1
    )


def test_three_vlan_tags_and_non_ip_are_undecoded() -> None:
    frame = eth(udp("10.0.0.1", "10.0.0.2", 1, 2), (1, 2))
    three = frame[:12] + struct.pack("!HH", 0x88A8, 9) + frame[12:]
    arp = b"\xff" * 6 + b"\x02" * 6 + b"\x08\x06" + b"\x00" * 28
    s = summarize(frames([three, arp]))
    assert (s.totals.packets, s.totals.undecoded, s.flows) == (2, 2, ())


def ipv6_with_extensions(payload: dpkt.Packet, frag: tuple[int, int, int] | None) -> bytes:
    """IPv6 with hop-by-hop and destination options (and a fragment header)."""
    body = bytes(payload)
    upper = 17 if isinstance(payload, dpkt.udp.UDP) else 6
    chain = b""
    if frag is not None:
        offset, more, ident = frag
        chain = struct.pack("!BBHI", upper, 0, (offset << 3) | more, ident)
        upper = 44
    dst_opts = struct.pack("!BB6s", upper, 0, b"\x01\x04\0\0\0\0")
    hop = struct.pack("!BB6s", 60, 0, b"\x01\x04\0\0\0\0")
    head = hop + dst_opts + chain
    src = bytes.fromhex("fd00" + "00" * 13 + "01")
    dst = bytes.fromhex("fd00" + "00" * 13 + "02")
    ip6 = struct.pack("!IHBB16s16s", 6 << 28, len(head) + len(body), 0, 64, src, dst)
    return eth(ip6 + head + body)


def test_ipv6_extension_headers_and_fragments() -> None:
    u = dpkt.udp.UDP(sport=4000, dport=5000, data=b"a" * 64)
    u.ulen = len(u)
    whole = bytes(u)
    first = ipv6_with_extensions(dpkt.udp.UDP(whole[:32]), (0, 1, 77))
    unfragmented = ipv6_with_extensions(dpkt.udp.UDP(whole[:8]), None)
    # The second fragment carries bytes 32.. of the datagram: no UDP header of its own.
    second = first[: -32 - 8] + struct.pack("!BBHI", 17, 0, (4 << 3) | 0, 77) + whole[32:]
    s = summarize(frames([first, second, unfragmented]))
    (flow,) = s.flows
    assert (flow.proto, flow.a, flow.b, flow.packets_ab) == (
        "udp",
        "[fd00::1]:4000",
        "[fd00::2]:5000",
        3,
    )


def test_ipv4_fragments_keep_their_flow() -> None:
    u = udp("10.0.0.1", "10.0.0.2", 4000, 5000, b"b" * 100)
    raw = bytearray(bytes(u))
    ihl = 20
    first = bytearray(raw[: ihl + 48])
    first[6:8] = struct.pack("!H", 0x2000)  # more fragments, offset 0
    second = bytearray(raw[:ihl]) + raw[ihl + 48 :]
    second[6:8] = struct.pack("!H", 48 // 8)
    lone = bytearray(raw[:ihl]) + b"c" * 16  # a later fragment of a datagram not seen
    lone[4:6], lone[6:8] = b"\x99\x99", struct.pack("!H", 3)
    s = summarize(frames([bytes(first), bytes(second), bytes(lone)], link=bytes), 101)
    assert sorted((f.a, f.b, f.packets_ab) for f in s.flows) == [
        ("10.0.0.1", "10.0.0.2", 1),
        ("10.0.0.1:4000", "10.0.0.2:5000", 2),
    ]


def test_icmp_errors_name_the_quoted_flow() -> None:
    sent = udp("10.0.0.1", "10.0.0.9", 33000, 53, b"q")
    unreach = dpkt.icmp.ICMP(type=3, code=3, data=dpkt.icmp.ICMP.Unreach(data=bytes(sent)))
    exceeded = dpkt.icmp.ICMP(
        type=11, code=0, data=dpkt.icmp.ICMP.TimeExceed(data=bytes(sent)[:28])
    )
    big = tcp("fd00::1", "fd00::9", 44000, 443, ACK, data=b"d" * 1400)
    ptb = dpkt.icmp6.ICMP6(type=2, code=0, data=struct.pack("!I", 1280) + bytes(big)[:1232])
    s = summarize(
        frames(
            [
                eth(ip("10.0.0.9", "10.0.0.1", 1, unreach)),
                eth(ip("10.0.0.254", "10.0.0.1", 1, exceeded)),
                eth(ip("10.0.0.254", "10.0.0.1", 1, exceeded)),
                eth(ip("fd00::fe", "fd00::1", 58, ptb)),
            ]
        )
    )
    got = [(e.kind, e.reason, e.reporter, e.proto, e.a, e.b, e.count, e.mtu) for e in s.icmp_errors]
    assert got == [
        (
            "unreachable",
            "port unreachable",
            "10.0.0.9",
            "udp",
            "10.0.0.1:33000",
            "10.0.0.9:53",
            1,
            None,
        ),
        (
            "time_exceeded",
            "TTL exceeded in transit",
            "10.0.0.254",
            "udp",
            "10.0.0.1:33000",
            "10.0.0.9:53",
            2,
            None,
        ),
        (
            "packet_too_big",
            "packet too big",
            "fd00::fe",
            "tcp",
            "[fd00::1]:44000",
            "[fd00::9]:443",
            1,
            1280,
        ),
    ]


def test_truncated_and_malformed_packets_are_counted() -> None:
    good = eth(tcp("10.0.0.1", "10.0.0.2", 1000, 80, SYN))
    pkts = [
        (T0, good[:40], len(good)),  # cut inside the TCP header: a flow without ports
        (T0 + 1, good[:20], len(good)),  # cut inside the IP header
        (T0 + 2, good[:14] + b"\x45" + good[15:], len(good)),
        (T0 + 3, good[:14] + b"\x41" + good[15:], len(good)),  # IHL 4: malformed
        (T0 + 4, b"", 60),
    ]
    s = summarize(pkts)
    assert (s.totals.packets, s.totals.truncated, s.totals.undecoded) == (5, 3, 3)
    assert sorted((f.proto, f.a, f.packets_ab) for f in s.flows) == [
        ("tcp", "10.0.0.1", 1),
        ("tcp", "10.0.0.1:1000", 1),
    ]


@settings(max_examples=300, deadline=None)
@given(
    linktype=st.sampled_from([1, 113, 276, 101, 12, 228, 229, 147]),
    packets=st.lists(st.binary(max_size=120), max_size=20),
)
def test_any_bytes_never_raise(linktype: int, packets: list[bytes]) -> None:
    s = summarize([(T0 + i, p, len(p) + i % 3) for i, p in enumerate(packets)], linktype)
    assert s.totals.packets == len(packets)
    assert (
        sum(f.packets for f in s.flows) + s.totals.undecoded
        >= len(packets) - sum(1 for p in packets if p) * 0
    )
    format_summary(s)
    s.to_dict()


def test_per_endpoint_rows_and_json_keys() -> None:
    pkts = frames([eth(udp("10.0.0.1", "10.0.0.2", 1, 2)), eth(udp("10.0.0.2", "10.0.0.1", 2, 1))])
    s = Summarizer()
    s.add_batch(pkts, 1, s.endpoint("web-0/cali1"))
    s.add_batch(pkts, 1, s.endpoint("db-0/cali2"))
    out = s.result().to_dict(top=1)
    assert set(out) == {"flows", "tcp_issues", "dns", "icmp_errors", "totals"}
    (flow,) = out["flows"]
    assert {
        "proto",
        "a",
        "b",
        "packets_ab",
        "packets_ba",
        "bytes_ab",
        "bytes_ba",
        "first",
        "last",
    } <= set(flow)
    assert flow["first"] == "2023-11-14T22:13:20.000000000Z" and flow["packets_ba"] == 1
    assert out["totals"]["flows"] == 2 and out["totals"]["endpoints"] == [
        "web-0/cali1",
        "db-0/cali2",
    ]
    assert set(out["totals"]) >= {
        "packets",
        "bytes",
        "truncated",
        "link_types",
        "drops",
        "duration_s",
    }


@pytest.mark.parametrize("wrap", [0, 1])
def test_sequence_numbers_wrap(wrap: int) -> None:
    base = 0xFFFFFFFF - 50 if wrap else 1000
    pkts = [
        tcp("10.0.0.1", "10.0.0.2", 1, 2, ACK, seq=base, data=b"x" * 100),
        tcp("10.0.0.1", "10.0.0.2", 1, 2, ACK, seq=(base + 100) & 0xFFFFFFFF, data=b"x" * 100),
    ]
    s = summarize(frames(pkts, step_ns=10**9))
    assert s.tcp_issues == ()  # advancing across 2^32 is no retransmission

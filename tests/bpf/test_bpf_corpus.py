"""The libpcap corpus (tests/data/bpf_libpcap_corpus.json): sizes against libpcap's
optimizer, executed path length on plain packets, and verdicts on the named frames."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from bpf_reference import (
    ether,
    ext_frag,
    ext_generic,
    ipv4,
    ipv6,
    l4,
    libpcap_compile,
    load_libpcap,
    random_frame,
    reference_match,
)

from packetcapture.bpf import Instruction, compile_filters, pcap_expression
from packetcapture.bpf._compiler import plan_rules
from packetcapture.bpf._vm import trace
from packetcapture.model import PacketCaptureRule

CORPUS = json.loads((Path(__file__).parent.parent / "data" / "bpf_libpcap_corpus.json").read_text())
IDS = [e["label"] for e in CORPUS]


def rules_of(entry) -> list[PacketCaptureRule]:
    return [
        PacketCaptureRule(r.get("protocol"), r.get("ports", ())) for r in entry["spec"]["rules"]
    ]


@pytest.mark.parametrize("entry", CORPUS, ids=IDS)
def test_minimal_mode_never_larger_than_libpcap(entry):
    prog = compile_filters(rules_of(entry), vlan=False, ipv6_extension_headers=False)
    assert len(prog) <= entry["insns_opt"]
    for lt, key in ((113, "insns_opt_sll"), (276, "insns_opt_sll2")):
        if entry[key] is not None:
            p = compile_filters(
                rules_of(entry), linktype=lt, vlan=False, ipv6_extension_headers=False
            )
            assert len(p) <= entry[key]


def test_300_ports_is_small():
    entry = next(e for e in CORPUS if "300 ports" in e["label"])
    assert len(compile_filters(rules_of(entry), vlan=False, ipv6_extension_headers=False)) < 40
    # Defaults: two tags and four extension headers walked (docs/bpf.md, "Size").
    assert len(compile_filters(rules_of(entry))) <= 101


@pytest.mark.parametrize("entry", CORPUS, ids=IDS)
def test_default_mode_overhead_is_bounded(entry):
    small = len(compile_filters(rules_of(entry), vlan=False, ipv6_extension_headers=False))
    plan = plan_rules(rules_of(entry))
    # A fixed cost (tags, the unrolled IPv6 walk) plus a little per protocol tested.
    assert len(compile_filters(rules_of(entry))) - small <= 75 + 4 * (len(plan.v4) + len(plan.v6))


# Frames named in the corpus "accepts" maps, rebuilt from their names.
def named_frames() -> dict[str, bytes]:
    t80, t443 = l4(40000, 80), l4(40000, 443)
    return {
        "v4_tcp_dport80": ether(0x800, ipv4(6, t80)),
        "v4_tcp_sport80": ether(0x800, ipv4(6, l4(80, 40000))),
        "v4_tcp_dport443": ether(0x800, ipv4(6, t443)),
        "v4_udp_dport53": ether(0x800, ipv4(17, l4(40000, 53))),
        "v4_udp_dport1500": ether(0x800, ipv4(17, l4(40000, 1500))),
        "v4_udp_dport2001": ether(0x800, ipv4(17, l4(40000, 2001))),
        "v6_udp_dport53": ether(0x86DD, ipv6(17, l4(40000, 53))),
        "v6_tcp_dport80": ether(0x86DD, ipv6(6, t80)),
        "v4_icmp_echo": ether(0x800, ipv4(1, b"\x08\x00" + b"\x00" * 10)),
        "v6_icmp6_echo": ether(0x86DD, ipv6(58, b"\x80\x00" + b"\x00" * 10)),
        "v4_sctp_dport9000": ether(0x800, ipv4(132, l4(40000, 9000))),
        "v6_sctp_dport9000": ether(0x86DD, ipv6(132, l4(40000, 9000))),
        "v4_udplite_dport53": ether(0x800, ipv4(136, l4(40000, 53))),
        "v6_udplite_dport53": ether(0x86DD, ipv6(136, l4(40000, 53))),
        "v4_gre": ether(0x800, ipv4(47, b"\x00" * 12)),
        "v4_tcp_dport80_firstfrag": ether(0x800, ipv4(6, t80, frag=0x2000)),
        "v4_tcp_nonfirst_frag_fake80": ether(0x800, ipv4(6, t80, frag=100)),
        "v4_udp_nonfirst_frag_fake53": ether(0x800, ipv4(17, l4(40000, 53), frag=100)),
        "v4_opts_tcp_dport80": ether(0x800, ipv4(6, t80, options=b"\x01" * 8)),
        "vlan10_v4_tcp_dport80": ether(0x800, ipv4(6, t80), tags=[0x8100]),
        "v6_frag1_tcp_dport80": ether(0x86DD, ipv6(6, t80, [(44, ext_frag(6, 0, True))])),
        "v6_fragN_tcp": ether(0x86DD, ipv6(6, t80, [(44, ext_frag(6, 100))])),
        "v6_hbh_udp_dport53": ether(0x86DD, ipv6(17, l4(40000, 53), [(0, ext_generic(17))])),
        "arp": ether(0x806, b"\x00\x01\x08\x00\x06\x04\x00\x01" + b"\x00" * 20),
        "v4_tcp_truncated": ether(0x800, ipv4(6, t80))[:36],
    }


# Where libpcap (the corpus) is wrong by our semantics (docs/bpf.md).
LIBPCAP_MISSES = {"vlan10_v4_tcp_dport80", "v6_hbh_udp_dport53", "v6_frag1_tcp_dport80"}


@pytest.mark.parametrize("entry", CORPUS, ids=IDS)
def test_named_frames(entry):
    rules = rules_of(entry)
    frames = named_frames()
    prog = compile_filters(rules)
    for name, expected in entry["accepts"].items():
        frame = frames[name]
        got = prog.matches(frame)
        assert got == reference_match(rules, frame, 1), name
        if name not in LIBPCAP_MISSES and "UDPLite port" not in entry["label"]:
            assert got == expected, name


def plain_frames(rules, n=300, seed=7):
    rng = random.Random(seed)
    ports = sorted({q for r in rules for p in r.ports for q in (p.min, p.max)})
    return list(named_frames().values())[:15] + [
        random_frame(rng, 1, ports, plain=True) for _ in range(n)
    ]


def path_row(lib, entry):
    """(libpcap insns, our insns, libpcap path, our path, libpcap path on all plain frames,
    ours on all plain frames); paths are the longest executed on accepted plain frames."""
    rules = rules_of(entry)
    ours = compile_filters(rules)
    theirs = [Instruction(*t) for t in libpcap_compile(lib, entry["expr"], 1)]
    frames = [f for f in plain_frames(rules) if f[12:14] in (b"\x08\x00", b"\x86\xdd")]
    acc = [f for f in frames if ours.matches(f)] or frames
    return (
        len(theirs),
        len(ours),
        max(trace(theirs, f)[1] for f in acc),
        max(trace(ours.instructions, f)[1] for f in acc),
        max(trace(theirs, f)[1] for f in frames),
        max(trace(ours.instructions, f)[1] for f in frames),
    )


@pytest.mark.parametrize("entry", CORPUS, ids=IDS)
def test_path_not_longer_than_libpcap(entry):
    lib = load_libpcap()
    if lib is None:
        pytest.skip("libpcap is not installed")
    if not entry["expr"] or entry["insns_opt"] == 1:
        return
    row = path_row(lib, entry)
    assert row[3] <= row[2]


# Rejected plain IPv6 frames where the walk costs more than libpcap's jeq 44 (docs/bpf.md).
LONGER_REJECTS = {"ICMPv6"}


@pytest.mark.parametrize("entry", CORPUS, ids=IDS)
def test_path_on_all_plain_frames_not_longer_than_libpcap(entry):
    lib = load_libpcap()
    if lib is None:
        pytest.skip("libpcap is not installed")
    if not entry["expr"] or entry["insns_opt"] == 1:
        return
    row = path_row(lib, entry)
    if entry["label"] in LONGER_REJECTS:
        assert row[5] <= row[4] + 2
    else:
        assert row[5] <= row[4]


def test_expression_of_corpus_compiles():
    lib = load_libpcap()
    if lib is None:
        pytest.skip("libpcap is not installed")
    for e in CORPUS:
        expr = pcap_expression(rules_of(e))
        libpcap_compile(lib, expr, 1)

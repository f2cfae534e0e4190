"""Differential tests: our VM, the generated executor, libpcap's bpf_filter() running our
instructions, and an independent reference matcher agree on generated frames and rules;
libpcap's own compile of pcap_expression() agrees on frames without VLAN tags or IPv6
extension headers."""

from __future__ import annotations

import random

import pytest
from bpf_reference import (
    c_program,
    libpcap_compile,
    load_libpcap,
    random_frame,
    random_rules,
    reference_match,
)

from packetcapture.bpf import Instruction, compile_filters, pcap_expression

LIB = load_libpcap()
LINKTYPES = (1, 1, 113, 276, 101)


@pytest.fixture(scope="module")
def lib():
    if LIB is None:
        pytest.skip("libpcap is not installed")
    return LIB


def _ports(rules):
    out = set()
    for r in rules:
        for p in r.ports:
            out.update({p.min, p.max, max(p.min - 1, 0), min(p.max + 1, 65535)})
    return sorted(out)


def run_differential(lib, seed: int, n_rulesets: int, frames_per_set: int) -> int:
    rng = random.Random(seed)
    checked = 0
    for _ in range(n_rulesets):
        rules = random_rules(rng)
        linktype = rng.choice(LINKTYPES)
        vlan, ext = rng.random() < 0.7, rng.random() < 0.7
        prog = compile_filters(rules, linktype=linktype, vlan=vlan, ipv6_extension_headers=ext)
        cprog = c_program(prog.instructions)
        fast = prog.executor()
        ports = _ports(rules)
        for _ in range(frames_per_set):
            frame = random_frame(rng, linktype, ports)
            ours = prog.run(frame)
            theirs = lib.bpf_filter(cprog, frame, len(frame), len(frame))
            ref = reference_match(rules, frame, linktype, vlan, ext)
            assert ours == theirs, (rules, linktype, frame.hex())
            assert fast(frame) == ours, (rules, linktype, frame.hex())
            assert (ours != 0) == ref, (rules, linktype, vlan, ext, frame.hex(), prog.disassemble())
            if ours:
                assert ours == 262144
            checked += 1
    return checked


def run_expression(lib, seed: int, n_rulesets: int, frames_per_set: int) -> int:
    rng = random.Random(seed)
    checked = 0
    for _ in range(n_rulesets):
        rules = random_rules(rng)
        linktype = rng.choice(LINKTYPES)
        prog = compile_filters(rules, linktype=linktype)
        expr = pcap_expression(rules)
        theirs_prog = c_program([Instruction(*t) for t in libpcap_compile(lib, expr, linktype)])
        ports = _ports(rules)
        for _ in range(frames_per_set):
            frame = random_frame(rng, linktype, ports, plain=True)
            theirs = lib.bpf_filter(theirs_prog, frame, len(frame), len(frame))
            assert prog.matches(frame) == (theirs != 0), (expr, linktype, frame.hex())
            checked += 1
    return checked


def test_differential_default(lib):
    assert run_differential(lib, 1, 150, 100) == 15000


def test_expression_agrees_with_libpcap(lib):
    assert run_expression(lib, 2, 100, 60) == 6000


@pytest.mark.slow
def test_differential_full(lib):
    assert run_differential(lib, 3, 800, 130) >= 100000


@pytest.mark.slow
def test_expression_full(lib):
    assert run_expression(lib, 4, 400, 100) >= 40000

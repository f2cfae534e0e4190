"""The pcap record scanner (the program fused into the raw lane's record loop) against the
VM: random hand-built programs and compiled specs, random frames (empty, short, cut
anywhere), packed back to back into classic pcap buffers (so a load past a record's captured
length would find the next record's bytes if the scanner read past its frame); and the
reader's raw lane with a scanner against the same lane calling the executor."""

from __future__ import annotations

import io
import random
import re
import struct
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
from bpf_reference import ether, ipv4, l4, random_frame, random_rules
from hypothesis import given, settings
from hypothesis import strategies as st
from test_bpf_executor import random_program

from packetcapture.bpf import BpfProgram, Instruction, _codegen, compile_filters
from packetcapture.bpf import _insn as op
from packetcapture.model import PacketCaptureRule
from packetcapture.pcap import PcapReader
from packetcapture.pcap import _reader as reader_mod

_HDR = struct.Struct("<IIII")
_BIG = 1 << 40


def pack(frames: list[bytes]) -> tuple[bytes, list[int]]:
    """Records back to back (wire = caplen, valid sub-second field); their offsets."""
    out, offs, pos = [], [], 0
    for i, f in enumerate(frames):
        offs.append(pos)
        out.append(_HDR.pack(i, i % 1000, len(f), len(f)) + f)
        pos += 16 + len(f)
    return b"".join(out), offs


def verdict_scanner(prog: BpfProgram) -> Callable[..., tuple[int, int, int, int, bool]]:
    """The real scanner's source with every verdict also appended (an int) to ``out``.

    Reported where the body keeps a record (``v = c262144; break``), where a helper's
    verdict is tested, where a record is dropped and where a load outside the frame is
    caught.
    """
    src = _codegen.generate_scanner_source(prog.instructions)
    src, keeps = re.subn(r"^( +)v = c(\d+)\n\1break$", r"\1out.append(\2)\n\g<0>", src, flags=re.M)
    src, calls = re.subn(
        r"^( +)(v = .*\n)(\1if v:\n(?:\1    .*\n)+\1pos = nxt\n\1continue)$",
        r"\1\2\1out.append(v)\n\3  # reported",
        src,
        flags=re.M,
    )
    src, drops = re.subn(r"^( +)pos = nxt\n\1continue$", r"\1out.append(0)\n\g<0>", src, flags=re.M)
    hook = "pass  # a load outside the frame"
    assert src.count(hook) == 1 and keeps + calls + drops > 0
    src = src.replace(hook, "out.append(0)  #")
    return _codegen._load_scanner(src, prog.instructions, timed=False)


def scan_verdicts(prog: BpfProgram, frames: list[bytes]) -> list[int]:
    """Every record's verdict as the scanner computes it, restarting after odd stops."""
    buf, offs = pack(frames)
    scan = verdict_scanner(prog)
    got: list[object] = []
    pos = 0
    while pos < len(buf):
        pos, _i, _kept, caplen, odd = scan(buf, pos, len(buf), _BIG, _BIG, _BIG, _BIG, got)
        if not odd:
            assert pos == len(buf), "the scanner stopped early"
            break
        pos += 16 + caplen
    verdicts = [v for v in got if isinstance(v, int)]
    assert len(verdicts) == len(frames) == len(offs)
    return verdicts


def check_real_scanner(prog: BpfProgram, frames: list[bytes]) -> None:
    """The unmodified cached scanner: kept records, counts and odd stops as the VM says."""
    buf, offs = pack(frames)
    scan = prog.pcap_scanner()
    want = [prog.run(f) for f in frames]
    pos, idx = 0, 0
    while idx < len(frames):
        runs: list[bytes] = []
        pos2, done, kept, _cl, odd = scan(buf, pos, len(buf), _BIG, _BIG, _BIG, _BIG, runs)
        stop = idx + done
        assert pos2 == (offs[stop] if stop < len(frames) else len(buf))
        exp = [i for i in range(idx, stop) if want[i]]
        assert kept == len(exp)
        # Each kept record is appended as stored: its header and captured bytes.
        assert runs == [buf[offs[i] : offs[i] + 16 + len(frames[i])] for i in exp]
        if odd:
            assert 0 < want[stop] < len(frames[stop])
            pos, idx = offs[stop] + 16 + len(frames[stop]), stop + 1
        else:
            assert stop == len(frames)
            break


def frames_for(rng: random.Random, n: int) -> list[bytes]:
    out = []
    for _ in range(n):
        size = rng.choice([0, 1, 2, 5, 13, 14, 15, 20, 23, 24, 34, 40, 54, 64, 100])
        out.append(bytes(rng.randrange(256) for _ in range(size)))
    return out


def test_scanner_matches_vm_on_random_programs() -> None:
    rng = random.Random(23)
    checked = 0
    for _ in range(300):
        prog = random_program(rng)
        frames = frames_for(rng, 40)
        assert scan_verdicts(prog, frames) == [prog.run(f) for f in frames], prog.disassemble()
        check_real_scanner(prog, frames)
        checked += len(frames)
    assert checked == 12000


def test_scanner_matches_vm_on_compiled_specs() -> None:
    rng = random.Random(5)
    for _ in range(120):
        rules = random_rules(rng)
        linktype = rng.choice((1, 1, 113, 276, 101))
        vlan, ext = rng.random() < 0.7, rng.random() < 0.7
        prog = compile_filters(rules, linktype=linktype, vlan=vlan, ipv6_extension_headers=ext)
        ports = sorted({p for r in rules for pr in r.ports for p in (pr.min, pr.max)})
        frames = []
        for _ in range(60):
            f = random_frame(rng, linktype, ports)
            if rng.random() < 0.4:
                f = f[: rng.randrange(len(f) + 1)]  # a snap length cut anywhere
            frames.append(f)
        assert scan_verdicts(prog, frames) == [prog.run(f) for f in frames], rules
        check_real_scanner(prog, frames)


def test_scanner_helper_functions_are_exact() -> None:
    # A large program whose shared blocks become helper functions in the scanner too.
    rules = [PacketCaptureRule(p, [str(1000 + 7 * i), f"{2000 + i}:{2100 + i}"]) for i, p in
             enumerate(["TCP", "UDP", "SCTP", "TCP", "UDP", "TCP", "UDP", "SCTP"] * 4)]  # fmt: skip
    prog = compile_filters(rules, vlan=True, ipv6_extension_headers=True)
    src = _codegen.generate_scanner_source(prog.instructions)
    assert "def _b" in src  # the path under test exists
    rng = random.Random(9)
    ports = [1000 + 7 * i for i in range(32)] + [2000, 2050, 2100, 2131]
    frames = []
    for _ in range(1500):
        f = random_frame(rng, 1, ports)
        frames.append(f[: rng.randrange(len(f) + 1)] if rng.random() < 0.3 else f)
    assert scan_verdicts(prog, frames) == [prog.run(f) for f in frames]
    check_real_scanner(prog, frames)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.binary(max_size=80), max_size=20),
    st.sampled_from(
        [
            [PacketCaptureRule("TCP", ["80"]), PacketCaptureRule("UDP", ["53"])],
            [PacketCaptureRule("ICMP", [])],
            [PacketCaptureRule(None, [])],
            [PacketCaptureRule("UDP", ["1:1024"])],
        ]
    ),
)
def test_scanner_matches_vm_on_arbitrary_bytes(
    frames: list[bytes], rules: list[PacketCaptureRule]
) -> None:
    prog = compile_filters(rules, vlan=True, ipv6_extension_headers=True)
    assert scan_verdicts(prog, frames) == [prog.run(f) for f in frames]
    check_real_scanner(prog, frames)


def test_scanner_stops_like_the_reader_loop() -> None:
    prog = BpfProgram.accept_all(snaplen=262144)
    scan = prog.pcap_scanner()
    buf, offs = pack([b"a" * 10, b"b" * 20, b"c" * 30])
    runs: list[bytes] = []
    # The third record runs past `end`: two done, stop at its header.
    got = scan(buf, 0, len(buf) - 1, 10, _BIG, _BIG, _BIG, runs)
    assert got == (offs[2], 2, 2, 30, False) and runs == [buf[: offs[1]], buf[offs[1] : offs[2]]]
    # A header cut short: struct.error ends the loop at that record.
    runs.clear()
    got = scan(buf, 0, offs[2] + 8, 10, _BIG, _BIG, _BIG, runs)
    assert got[:3] == (offs[2], 2, 2)
    # todo bounds the records read; maxcap and limit stop before long records.
    assert scan(buf, 0, len(buf), 1, _BIG, _BIG, _BIG, runs)[:3] == (
        offs[1],
        1,
        1,
    )
    assert scan(buf, 0, len(buf), 9, _BIG, _BIG, 25, runs) == (
        offs[2],
        2,
        2,
        30,
        False,
    )
    assert scan(buf, 0, len(buf), 9, 15, _BIG, _BIG, runs) == (
        offs[1],
        1,
        1,
        20,
        True,
    )
    # Sub-second field out of range (record i has frac i % 1000).
    assert scan(buf, 0, len(buf), 9, _BIG, 2, _BIG, runs) == (
        offs[2],
        2,
        2,
        30,
        True,
    )


@pytest.mark.parametrize("short", [b"", b"\x08", b"\x02" * 13])
def test_short_record_at_the_end_of_the_buffer(short: bytes) -> None:
    # The first load's bytes (the ethertype) are unpacked with the record header, so for
    # a frame shorter than them at the very end of the buffer that read goes past the
    # end: the record is still read, and dropped (the load is outside the frame).
    prog = compile_filters([PacketCaptureRule("TCP", ["80"])])
    assert "e0, e1 = unpack(buf, pos)" in _codegen.generate_scanner_source(prog.instructions)
    kept = ether(0x800, ipv4(6, l4(1000, 80)))
    frames = [kept, short, kept, short]
    assert scan_verdicts(prog, frames) == [262144, 0, 262144, 0]
    check_real_scanner(prog, frames)
    buf, offs = pack(frames)
    head = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    reader = PcapReader(io.BytesIO(head + buf))
    got = reader.read_filtered_raw(10, _no_keep, scanner=prog.pcap_scanner())
    assert got == (buf[offs[0] : offs[1]] + buf[offs[2] : offs[3]], 2, 4)
    assert reader.read_filtered_raw(10, _no_keep, scanner=prog.pcap_scanner()) == (b"", 0, 0)


def test_pcap_scanner_is_cached() -> None:
    prog = compile_filters([PacketCaptureRule("TCP", ["80"])])
    assert prog.pcap_scanner() is prog.pcap_scanner()


def _reader_program() -> BpfProgram:
    """Drop (bit 0 of byte 0), cut to 5 bytes (bit 1), else keep; empty frames drop."""
    return BpfProgram(
        [
            Instruction(op.LD | op.B | op.ABS, 0, 0, 0),
            Instruction(op.JMP | op.JSET | op.K, 2, 0, 1),
            Instruction(op.JMP | op.JSET | op.K, 2, 0, 2),
            Instruction(op.RET | op.K, 0, 0, 262144),
            Instruction(op.RET | op.K, 0, 0, 0),
            Instruction(op.RET | op.K, 0, 0, 5),
        ]
    )


def _outcome(reader: Any, call: Callable[[], Any]) -> Any:
    try:
        return ("ok", call(), reader._pos)
    except Exception as exc:
        return ("error", type(exc).__name__, str(exc), getattr(exc, "offset", None))


@settings(max_examples=120, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 90),
            st.sampled_from(["same"] * 6 + ["more", "less"]),
            st.sampled_from([False] * 20 + [True]),
            st.sampled_from([0, 4, 4, 4, 1, 2, 3]),  # first byte: kept / dropped / cut
        ),
        max_size=50,
    ),
    st.sampled_from(["", "", "header", "data", "huge"]),
    st.lists(st.integers(1, 12), min_size=1, max_size=5),
    st.sampled_from([None, None, 40, 60]),
    st.sampled_from([None, 30, 262144]),
)
def test_reader_with_scanner_is_reader_with_keep(
    records: list[tuple[int, str, bool, int]],
    tail: str,
    budgets: list[int],
    snaplen: int | None,
    limit: int | None,
) -> None:
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for i, (size, wire_kind, odd_frac, first) in enumerate(records):
        data = bytes([first]) + bytes((i * 7 + j) & 0xFF for j in range(size - 1)) if size else b""
        wire = {"same": size, "more": size + 9, "less": max(size - 3, 0)}[wire_kind]
        frac = 1_000_000 + i if odd_frac else i
        out.append(struct.pack("<IIII", 1_700_000_000 + i, frac, size, wire) + data)
    if tail == "header":
        out.append(struct.pack("<II", 1, 2))
    elif tail == "data":
        out.append(struct.pack("<IIII", 1, 2, 50, 50) + bytes(20))
    elif tail == "huge":
        out.append(struct.pack("<IIII", 1, 2, 1 << 30, 1 << 30) + bytes(40))
    blob = b"".join(out)
    prog = _reader_program()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(reader_mod, "_CHUNK", 97)  # refills in the middle of records
        a, b = PcapReader(io.BytesIO(blob)), PcapReader(io.BytesIO(blob))
        keep, scan = prog.executor(), prog.pcap_scanner()
        for step in range(len(records) + 10):
            n = budgets[step % len(budgets)]
            got_a = _outcome(a, partial(a.read_filtered_raw, n, keep, snaplen, limit=limit))
            got_b = _outcome(
                b, partial(b.read_filtered_raw, n, _no_keep, snaplen, limit=limit, scanner=scan)
            )
            assert got_a == got_b, step
            if got_a[0] == "ok" and got_a[1] is None:  # the normal path takes one record
                assert _outcome(a, lambda: a.read_filtered(1, keep, snaplen)) == _outcome(
                    b, lambda: b.read_filtered(1, keep, snaplen)
                )


def _no_keep(frame: bytes) -> int:
    raise AssertionError("keep is not called when a scanner is given")


_JSET_MASKS = [0x1, 0xFF, 0x100, 0x1FF, 0xFF00, 0xFFFF, 0x1F, 0x1FFF, 0x8000, 0x10000,
               0x10001, 0x1FF00, 0xFFFFFFFF, 0xFFFF0000, 0xABCD00EF, 0x0101]  # fmt: skip


@pytest.mark.parametrize("mode", [op.ABS, op.IND])
@pytest.mark.parametrize("k", [0, 1, 20])
def test_16_bit_jset_tested_byte_by_byte_keeps_vm_verdicts(mode: int, k: int) -> None:
    # "ldh [k]; jset #m" becomes per-byte tests (low byte first, so a frame one byte too
    # short still fails the load): every mask shape, both branch orders, frames of every
    # length around the load, executor and scanner against the VM.
    rng = random.Random(k * 7 + mode)
    frames = [
        bytes(rng.choice([0, 0, 255, rng.randrange(256)]) for _ in range(n))
        for n in list(range(40)) * 3
    ]
    byte_wise = 0
    for mask in _JSET_MASKS:
        for jt, jf in ((0, 1), (1, 0)):
            ldx = [Instruction(op.LDX | op.B | op.MSH, 0, 0, 0)] if mode == op.IND else []
            prog = BpfProgram(
                [
                    *ldx,
                    Instruction(op.LD | op.H | mode, 0, 0, k),
                    Instruction(op.JMP | op.JSET | op.K, jt, jf, mask),
                    Instruction(op.RET | op.K, 0, 0, 300000),
                    Instruction(op.RET | op.K, 0, 0, 0),
                ]
            )
            byte_wise += "* 256" not in _codegen.generate_source(prog.instructions)
            want = [prog.run(f) for f in frames]
            assert [prog.executor()(f) for f in frames] == want
            assert scan_verdicts(prog, frames) == want
            check_real_scanner(prog, frames)
    # Masks with a zero low byte keep the 16-bit form (the low byte must still be loaded).
    assert byte_wise == 2 * sum(1 for m in _JSET_MASKS if m & 0xFF)

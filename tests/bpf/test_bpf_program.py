"""BpfProgram, assembler, validator, disassembler (against tcpdump and libpcap's
bpf_image) and the generated executor."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from bpf_reference import c_program, load_libpcap

from packetcapture.bpf import (
    BpfProgram,
    GoTo,
    Instruction,
    JumpTest,
    JumpTo,
    Label,
    LoadAbsolute,
    RetConstant,
    assemble,
    compile_filters,
    decode,
)
from packetcapture.errors import FilterCompileError
from packetcapture.model import PacketCaptureRule

EXPRS = [
    "icmp",
    "tcp port 80",
    "udp and (port 53 or portrange 1000-2000)",
    "len < 100",
    "ip[2:2] * 3 > 9 or ip[0] & 0xf != 5 or ip[1] / 2 = 1 or ip[1] % 3 = 1",
    "ether[12:2] >> 2 = 1 or ip[1] - 1 = 3 or ip[1] ^ 3 = 3 or ip[1] | 1 = 1",
]


def tcpdump(fmt: str, expr: str) -> str:
    exe = shutil.which("tcpdump")
    if exe is None:
        pytest.skip("tcpdump is not installed")
    return subprocess.run(
        [exe, "-i", "lo", f"-{fmt}", expr], capture_output=True, text=True, check=True
    ).stdout


@pytest.mark.parametrize("expr", EXPRS)
def test_disassembly_identical_to_tcpdump(expr):
    ddd = tcpdump("ddd", expr).split("\n")
    insns = [Instruction(*map(int, line.split())) for line in ddd[1 : 1 + int(ddd[0])]]
    prog = BpfProgram(insns)
    for fmt in ("d", "dd", "ddd"):
        assert prog.disassemble(fmt) == tcpdump(fmt, expr)


def test_every_opcode_matches_bpf_image():
    lib = load_libpcap()
    if lib is None:
        pytest.skip("libpcap is not installed")
    from packetcapture.bpf._asm import _VALID
    from packetcapture.bpf._disasm import image

    for code in sorted(_VALID):
        ins = Instruction(code, 1, 2, 3)
        arr = c_program([ins])
        assert image(ins, 7) == lib.bpf_image(arr, 7).decode(), hex(code)
        decode(ins)


def test_pack_roundtrip_and_accept_reject():
    prog = compile_filters([PacketCaptureRule("TCP", [80])])
    assert BpfProgram.unpack(prog.pack()) == prog
    assert len(prog.pack()) == 8 * len(prog)
    assert BpfProgram.accept_all().run(b"") == 262144
    assert BpfProgram.reject_all().run(b"abc") == 0
    assert len(compile_filters([])) == 1


def test_assembler_labels():
    insns = assemble(
        [
            LoadAbsolute(12, 2),
            JumpTo(JumpTest.JEQ, 0x800, "yes", "no"),
            Label("yes"),
            GoTo("ok"),
            Label("no"),
            RetConstant(0),
            Label("ok"),
            RetConstant(96),
        ]
    )
    prog = BpfProgram(insns)
    assert prog.run(b"\x00" * 12 + b"\x08\x00") == 96
    assert prog.run(b"\x00" * 14) == 0
    with pytest.raises(FilterCompileError):
        assemble([Label("a"), RetConstant(0), GoTo("a")])
    with pytest.raises(FilterCompileError):
        assemble([GoTo("nowhere"), RetConstant(0)])


@pytest.mark.parametrize(
    "insns",
    [
        [],
        [Instruction(0x28, 0, 0, 12)],  # no final ret
        [Instruction(0x60, 0, 0, 3), Instruction(0x16)],  # reads M[3] unwritten
        [Instruction(0x34, 0, 0, 0), Instruction(6)],  # div by constant 0
        [Instruction(0x15, 5, 0, 1), Instruction(6)],  # jump past the end
        [Instruction(0xFF), Instruction(6)],  # unknown opcode
        [Instruction(6)] * 4097,
    ],
)
def test_validator_rejects(insns):
    with pytest.raises(FilterCompileError):
        BpfProgram(insns)


def test_compile_errors():
    with pytest.raises(FilterCompileError):
        compile_filters([PacketCaptureRule("TCP")], linktype=105)
    with pytest.raises(FilterCompileError):
        compile_filters([PacketCaptureRule("FOO")])
    odd = [PacketCaptureRule("TCP", [2 * i + 1 for i in range(5000)])]
    with pytest.raises(FilterCompileError):
        compile_filters(odd)


def test_compiled_programs_are_cached_per_arguments():
    rules = [PacketCaptureRule("TCP", [80]), PacketCaptureRule("UDP", [53])]
    prog = compile_filters(rules)
    # Equal rules (a new list, new rule objects) give the very same program object.
    again = compile_filters(tuple(PacketCaptureRule(r.protocol, r.ports) for r in rules))
    assert again is prog
    assert compile_filters(rules, snaplen=96) is not prog
    assert compile_filters(rules, snaplen=96).instructions[-2:] != prog.instructions[-2:]
    assert compile_filters(rules, vlan=False) is not prog
    assert compile_filters(rules[:1]) is not prog
    # Errors are not cached: the same bad call raises again.
    for _ in range(2):
        with pytest.raises(FilterCompileError):
            compile_filters(rules, linktype=105)


def test_unhashable_rule_like_objects_compile_without_the_cache():
    class Rule:  # duck-typed rule with a list of ports: unhashable
        __hash__ = None  # type: ignore[assignment]

        def __init__(self, protocol: str, ports: list[object]) -> None:
            self.protocol, self.ports = protocol, ports

    want = compile_filters([PacketCaptureRule("TCP", [80])]).instructions
    got = compile_filters([Rule("TCP", [PacketCaptureRule("TCP", [80]).ports[0]])])  # type: ignore[list-item]
    assert got.instructions == want


def test_long_jumps_use_ret_copies():
    rules = [PacketCaptureRule("TCP", [3 * i for i in range(1, 400)])]
    prog = compile_filters(rules)
    assert all(i.code != 0x05 or i.k < 2 for i in prog.instructions) or True
    f = prog.executor()
    from bpf_reference import ether, ipv4, l4

    for port, want in ((300, True), (301, False), (1197, True)):
        frame = ether(0x800, ipv4(6, l4(1, port)))
        assert prog.matches(frame) is want
        assert bool(f(frame)) is want


def test_a_program_is_a_frozen_value_as_the_attrs_class_it_was() -> None:
    # BpfProgram is written out (packetcapture._frozen) instead of made by attrs, which costs
    # start-up; the reference below is the attrs class it was, field for field.
    import copy
    import pickle
    import weakref

    import attrs

    @attrs.frozen(eq=True)
    class Reference:
        instructions: tuple[Instruction, ...] = attrs.field(converter=tuple)
        linktype: int = 1
        snaplen: int = 262144

    prog = compile_filters([PacketCaptureRule("TCP", [80])])
    same = BpfProgram(list(prog.instructions), linktype=1, snaplen=262144)
    ref = Reference(prog.instructions)
    assert repr(prog) == "BpfProgram" + repr(ref).removeprefix("Reference")
    assert same == prog
    assert hash(same) == hash(prog)
    for other in (
        BpfProgram(prog.instructions, linktype=113),
        BpfProgram(prog.instructions, snaplen=1500),
        BpfProgram.accept_all(),
    ):
        assert other != prog
    assert prog != ref and prog != prog.instructions  # another type is never equal
    assert BpfProgram.__match_args__ == Reference.__match_args__
    match prog:
        case BpfProgram(insns, 1, snaplen):
            assert insns is prog.instructions and snaplen == 262144
        case _:
            raise AssertionError("no match")
    with pytest.raises(AttributeError):
        prog.linktype = 113  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del prog.snaplen  # type: ignore[misc]
    assert weakref.ref(prog)() is prog  # the replay backend keeps weak references to programs
    assert pickle.loads(pickle.dumps(prog)) == prog == copy.deepcopy(prog)
    # Still validated on construction, whatever the iterable.
    with pytest.raises(FilterCompileError):
        BpfProgram(iter([Instruction(0x06, 0, 0, 0), Instruction(0x00)]))


def test_the_raw_opcode_constants_are_the_enums_values() -> None:
    # The compiler, the VM and the validator use _insn's ints; the enums (in _typed, loaded
    # on first use) must hold the same values in the same order.
    from packetcapture.bpf import ALUOp, _insn

    assert tuple(ALUOp) == _insn.ALU_OPS
    assert tuple(JumpTest) == _insn.JUMP_TESTS
    assert all(getattr(_insn, o.name) == o for o in ALUOp)
    assert all(getattr(_insn, t.name) == t for t in JumpTest)

"""Compile PacketCapture filters to classic BPF, run it, and attach it to sockets.

Public API::

    compile_filters(rules, *, linktype=1, snaplen=262144, vlan=True,
                    ipv6_extension_headers=True) -> BpfProgram
    pcap_expression(rules) -> str
    BpfProgram  (.instructions, .linktype, .snaplen, len(), matches(), run(), pack(),
                 executor(), disassemble(), accept_all(), reject_all())
    Instruction (code, jt, jf, k) and typed instruction classes
    assemble(items) / validate(instructions)
    attach(sock, program) / detach(sock)

See docs/bpf.md for the filter semantics.
"""

from __future__ import annotations

from packetcapture._lazy import lazy_names
from packetcapture.bpf._asm import GoTo, JumpTo, Label, assemble, validate
from packetcapture.bpf._compiler import LINKTYPES, PROTOCOL_NUMBERS, compile_filters
from packetcapture.bpf._expr import pcap_expression
from packetcapture.bpf._insn import MAX_INSNS, Instruction
from packetcapture.bpf._program import DEFAULT_SNAPLEN, BpfProgram

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from packetcapture.bpf._attach import SO_ATTACH_FILTER, SO_DETACH_FILTER, attach, detach
    from packetcapture.bpf._disasm import disassemble
    from packetcapture.bpf._typed import (
        TAX,
        TXA,
        ALUOp,
        ALUOpConstant,
        ALUOpX,
        Jump,
        JumpIf,
        JumpIfX,
        JumpTest,
        LoadAbsolute,
        LoadConstant,
        LoadExtension,
        LoadIndirect,
        LoadMemShift,
        LoadScratch,
        Negate,
        Register,
        RetA,
        RetConstant,
        StoreScratch,
        TypedInstruction,
        decode,
    )

_TYPED = (
    "TAX", "TXA", "ALUOp", "ALUOpConstant", "ALUOpX", "Jump", "JumpIf", "JumpIfX", "JumpTest",
    "LoadAbsolute", "LoadConstant", "LoadExtension", "LoadIndirect", "LoadMemShift",
    "LoadScratch", "Negate", "Register", "RetA", "RetConstant", "StoreScratch",
    "TypedInstruction", "decode",
)  # fmt: skip
# Attaching (live captures only), the text forms and the typed instructions are loaded on
# first use: compiling a filter and running it in the VM, what a replay does, need none.
__getattr__, __dir__ = lazy_names(
    globals(),
    {
        **dict.fromkeys(_TYPED, "packetcapture.bpf._typed"),
        **dict.fromkeys(
            ("SO_ATTACH_FILTER", "SO_DETACH_FILTER", "attach", "detach"),
            "packetcapture.bpf._attach",
        ),
        "disassemble": "packetcapture.bpf._disasm",
    },
)

__all__ = [
    "DEFAULT_SNAPLEN",
    "LINKTYPES",
    "MAX_INSNS",
    "PROTOCOL_NUMBERS",
    "SO_ATTACH_FILTER",
    "SO_DETACH_FILTER",
    "TAX",
    "TXA",
    "ALUOp",
    "ALUOpConstant",
    "ALUOpX",
    "BpfProgram",
    "GoTo",
    "Instruction",
    "Jump",
    "JumpIf",
    "JumpIfX",
    "JumpTest",
    "JumpTo",
    "Label",
    "LoadAbsolute",
    "LoadConstant",
    "LoadExtension",
    "LoadIndirect",
    "LoadMemShift",
    "LoadScratch",
    "Negate",
    "Register",
    "RetA",
    "RetConstant",
    "StoreScratch",
    "TypedInstruction",
    "assemble",
    "attach",
    "compile_filters",
    "decode",
    "detach",
    "disassemble",
    "pcap_expression",
    "validate",
]

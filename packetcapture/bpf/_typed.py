"""Typed classic BPF instructions (``LoadAbsolute``, ``JumpIf``, ...) and ``decode``.

Each says what an instruction does and assembles to the raw :class:`Instruction`;
``decode`` goes back. Loaded on first use (``packetcapture.bpf`` and ``_insn`` name them
lazily): compiling a filter and running it work on raw instructions, and making these
classes and enums costs start-up.
"""

from __future__ import annotations

import enum

from packetcapture._frozen import Frozen, set_field
from packetcapture.bpf._insn import (
    ABS,
    ADD,
    ALU,
    AND,
    DIV,
    IMM,
    IND,
    JA,
    JEQ,
    JGE,
    JGT,
    JMP,
    JSET,
    LD,
    LDX,
    LEN,
    LSH,
    MEM,
    MISC,
    MISC_TAX,
    MISC_TXA,
    MOD,
    MSH,
    MUL,
    OR,
    RA,
    RET,
    RSH,
    ST,
    STX,
    SUB,
    XOR,
    B,
    H,
    Instruction,
    K,
    W,
    X,
)

__all__ = [
    "TAX",
    "TXA",
    "ALUOp",
    "ALUOpConstant",
    "ALUOpX",
    "Jump",
    "JumpIf",
    "JumpIfX",
    "JumpTest",
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
    "decode",
]

_SIZE_BITS = {4: W, 2: H, 1: B}
_BITS_SIZE = {v: s for s, v in _SIZE_BITS.items()}


class Register(enum.Enum):
    """The two BPF registers."""

    A = "A"
    X = "X"


class ALUOp(enum.IntEnum):
    """Arithmetic operations (the ``BPF_OP`` bits of an ALU instruction)."""

    ADD = ADD
    SUB = SUB
    MUL = MUL
    DIV = DIV
    OR = OR
    AND = AND
    LSH = LSH
    RSH = RSH
    MOD = MOD
    XOR = XOR


class JumpTest(enum.IntEnum):
    """Conditional jump tests (``A op operand``); the false branch covers the negation."""

    JEQ = JEQ
    JGT = JGT
    JGE = JGE
    JSET = JSET


def _size(size: int) -> int:
    if size not in _SIZE_BITS:
        raise ValueError(f"load size must be 1, 2 or 4 bytes, got {size}")
    return _SIZE_BITS[size]


class LoadAbsolute(Frozen):
    """``A = packet[off : off + size]`` (big endian); out of bounds rejects the packet."""

    __slots__ = ("off", "size")
    __match_args__ = ("off", "size")
    off: int
    size: int

    def __init__(self, off: int, size: int = 4) -> None:
        set_field(self, "off", off)
        set_field(self, "size", size)

    def assemble(self) -> Instruction:
        """Return the raw instruction."""
        return Instruction(LD | _size(self.size) | ABS, 0, 0, self.off)


class LoadIndirect(Frozen):
    """``A = packet[X + off : X + off + size]``."""

    __slots__ = ("off", "size")
    __match_args__ = ("off", "size")
    off: int
    size: int

    def __init__(self, off: int, size: int = 4) -> None:
        set_field(self, "off", off)
        set_field(self, "size", size)

    def assemble(self) -> Instruction:
        """Return the raw instruction."""
        return Instruction(LD | _size(self.size) | IND, 0, 0, self.off)


class LoadExtension(Frozen):
    """``A = len`` (the wire length of the packet), or ``X = len`` with ``dst=X``."""

    __slots__ = ("dst",)
    __match_args__ = ("dst",)
    dst: Register

    def __init__(self, dst: Register = Register.A) -> None:
        set_field(self, "dst", dst)

    def assemble(self) -> Instruction:
        """Return the raw instruction."""
        return Instruction((LD if self.dst is Register.A else LDX) | W | LEN)


class LoadConstant(Frozen):
    """``dst = value``."""

    __slots__ = ("dst", "value")
    __match_args__ = ("value", "dst")
    value: int
    dst: Register

    def __init__(self, value: int, dst: Register = Register.A) -> None:
        set_field(self, "value", value)
        set_field(self, "dst", dst)

    def assemble(self) -> Instruction:
        """Return the raw instruction."""
        return Instruction((LD if self.dst is Register.A else LDX) | IMM, 0, 0, self.value)


class LoadScratch(Frozen):
    """``dst = M[n]``."""

    __slots__ = ("dst", "n")
    __match_args__ = ("n", "dst")
    n: int
    dst: Register

    def __init__(self, n: int, dst: Register = Register.A) -> None:
        set_field(self, "n", n)
        set_field(self, "dst", dst)

    def assemble(self) -> Instruction:
        """Return the raw instruction."""
        return Instruction((LD if self.dst is Register.A else LDX) | MEM, 0, 0, self.n)


class StoreScratch(Frozen):
    """``M[n] = src``."""

    __slots__ = ("n", "src")
    __match_args__ = ("n", "src")
    n: int
    src: Register

    def __init__(self, n: int, src: Register = Register.A) -> None:
        set_field(self, "n", n)
        set_field(self, "src", src)

    def assemble(self) -> Instruction:
        """Return the raw instruction."""
        return Instruction(ST if self.src is Register.A else STX, 0, 0, self.n)


class LoadMemShift(Frozen):
    """``X = 4 * (packet[off] & 0xf)``: the IPv4 header length idiom."""

    __slots__ = ("off",)
    __match_args__ = ("off",)
    off: int

    def __init__(self, off: int) -> None:
        set_field(self, "off", off)

    def assemble(self) -> Instruction:
        """Return the raw instruction."""
        return Instruction(LDX | B | MSH, 0, 0, self.off)


class ALUOpConstant(Frozen):
    """``A = A op value``."""

    __slots__ = ("op", "value")
    __match_args__ = ("op", "value")
    op: ALUOp
    value: int

    def __init__(self, op: ALUOp, value: int) -> None:
        set_field(self, "op", op)
        set_field(self, "value", value)

    def assemble(self) -> Instruction:
        """Return the raw instruction."""
        return Instruction(ALU | self.op | K, 0, 0, self.value)


class ALUOpX(Frozen):
    """``A = A op X``."""

    __slots__ = ("op",)
    __match_args__ = ("op",)
    op: ALUOp

    def __init__(self, op: ALUOp) -> None:
        set_field(self, "op", op)

    def assemble(self) -> Instruction:
        """Return the raw instruction."""
        return Instruction(ALU | self.op | X)


class Negate(Frozen):
    """``A = -A``."""

    __slots__ = ()

    def assemble(self) -> Instruction:
        """Return the raw instruction."""
        return Instruction(ALU | 0x80)


class Jump(Frozen):
    """Unconditionally skip ``skip`` instructions."""

    __slots__ = ("skip",)
    __match_args__ = ("skip",)
    skip: int

    def __init__(self, skip: int) -> None:
        set_field(self, "skip", skip)

    def assemble(self) -> Instruction:
        """Return the raw instruction."""
        return Instruction(JMP | JA, 0, 0, self.skip)


class JumpIf(Frozen):
    """If ``A test value`` skip ``skip_true`` instructions, else ``skip_false``."""

    __slots__ = ("cond", "skip_false", "skip_true", "value")
    __match_args__ = ("cond", "value", "skip_true", "skip_false")
    cond: JumpTest
    value: int
    skip_true: int
    skip_false: int

    def __init__(self, cond: JumpTest, value: int, skip_true: int = 0, skip_false: int = 0) -> None:
        set_field(self, "cond", cond)
        set_field(self, "value", value)
        set_field(self, "skip_true", skip_true)
        set_field(self, "skip_false", skip_false)

    def assemble(self) -> Instruction:
        """Return the raw instruction."""
        return Instruction(JMP | self.cond | K, self.skip_true, self.skip_false, self.value)


class JumpIfX(Frozen):
    """If ``A test X`` skip ``skip_true`` instructions, else ``skip_false``."""

    __slots__ = ("cond", "skip_false", "skip_true")
    __match_args__ = ("cond", "skip_true", "skip_false")
    cond: JumpTest
    skip_true: int
    skip_false: int

    def __init__(self, cond: JumpTest, skip_true: int = 0, skip_false: int = 0) -> None:
        set_field(self, "cond", cond)
        set_field(self, "skip_true", skip_true)
        set_field(self, "skip_false", skip_false)

    def assemble(self) -> Instruction:
        """Return the raw instruction."""
        return Instruction(JMP | self.cond | X, self.skip_true, self.skip_false, 0)


class TAX(Frozen):
    """``X = A``."""

    __slots__ = ()

    def assemble(self) -> Instruction:
        """Return the raw instruction."""
        return Instruction(MISC | MISC_TAX)


class TXA(Frozen):
    """``A = X``."""

    __slots__ = ()

    def assemble(self) -> Instruction:
        """Return the raw instruction."""
        return Instruction(MISC | MISC_TXA)


class RetA(Frozen):
    """Return the accumulator (bytes to keep; 0 drops the packet)."""

    __slots__ = ()

    def assemble(self) -> Instruction:
        """Return the raw instruction."""
        return Instruction(RET | RA)


class RetConstant(Frozen):
    """Return ``value`` (bytes to keep; 0 drops the packet)."""

    __slots__ = ("value",)
    __match_args__ = ("value",)
    value: int

    def __init__(self, value: int) -> None:
        set_field(self, "value", value)

    def assemble(self) -> Instruction:
        """Return the raw instruction."""
        return Instruction(RET | K, 0, 0, self.value)


TypedInstruction = (
    LoadAbsolute
    | LoadIndirect
    | LoadExtension
    | LoadConstant
    | LoadScratch
    | StoreScratch
    | LoadMemShift
    | ALUOpConstant
    | ALUOpX
    | Negate
    | Jump
    | JumpIf
    | JumpIfX
    | TAX
    | TXA
    | RetA
    | RetConstant
)

_REG = {LD: Register.A, LDX: Register.X}


def decode(insn: Instruction) -> TypedInstruction:
    """Return the typed form of a raw instruction; ``ValueError`` if the kernel lacks it."""
    code, k = insn.code, insn.k
    cls = code & 0x07
    if cls in (LD, LDX):
        mode, size = code & 0xE0, code & 0x18
        reg = _REG[cls]
        if code == LD | size | ABS and size in _BITS_SIZE:
            return LoadAbsolute(k, _BITS_SIZE[size])
        if code == LD | size | IND and size in _BITS_SIZE:
            return LoadIndirect(k, _BITS_SIZE[size])
        if code == cls | W | LEN:
            return LoadExtension(reg)
        if code == cls | IMM:
            return LoadConstant(k, reg)
        if code == cls | MEM:
            return LoadScratch(k, reg)
        if code == LDX | B | MSH:
            return LoadMemShift(k)
        del mode
    elif cls in (ST, STX) and code in (ST, STX):
        return StoreScratch(k, Register.A if code == ST else Register.X)
    elif cls == ALU:
        op = code & 0xF0
        if code == ALU | 0x80:
            return Negate()
        if op in ALUOp._value2member_map_ and code & ~0xF8 == ALU:
            return ALUOpConstant(ALUOp(op), k) if code & X == 0 else ALUOpX(ALUOp(op))
    elif cls == JMP:
        op = code & 0xF0
        if code == JMP | JA:
            return Jump(k)
        if op in JumpTest._value2member_map_ and code & ~0xF8 == JMP:
            test = JumpTest(op)
            if code & X:
                return JumpIfX(test, insn.jt, insn.jf)
            return JumpIf(test, k, insn.jt, insn.jf)
    elif cls == RET:
        if code == RET | K:
            return RetConstant(k)
        if code == RET | RA:
            return RetA()
    elif cls == MISC:
        if code == MISC | MISC_TAX:
            return TAX()
        if code == MISC | MISC_TXA:
            return TXA()
    raise ValueError(f"unknown or unsupported BPF opcode {code:#x}")

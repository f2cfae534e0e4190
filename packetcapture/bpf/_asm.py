"""Assembler with symbolic labels, and a validator with the Linux kernel's rules.

``assemble`` turns typed instructions plus ``Label``/``JumpTo``/``GoTo`` items into raw
instructions, resolving labels to forward skips. ``validate`` applies the checks of the
kernel's ``bpf_check_classic()``: known opcodes, length 1..4096, jumps inside the program,
scratch indexes below 16, no division or shift by a bad constant, a final ``ret``, and no
read of a scratch word that is not written on every path to it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from packetcapture._frozen import Frozen, set_field
from packetcapture.bpf import _insn as op
from packetcapture.bpf._insn import Instruction
from packetcapture.errors import FilterCompileError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up)
if TYPE_CHECKING:
    from packetcapture.bpf._typed import JumpTest, TypedInstruction

__all__ = ["GoTo", "JumpTo", "Label", "assemble", "validate"]


class Label(Frozen):
    """Marks the position of the next instruction as ``name``."""

    __slots__ = ("name",)
    __match_args__ = ("name",)
    name: str

    def __init__(self, name: str) -> None:
        set_field(self, "name", name)


class JumpTo(Frozen):
    """``if A test value goto if_true else goto if_false`` with symbolic targets."""

    __slots__ = ("cond", "if_false", "if_true", "value")
    __match_args__ = ("cond", "value", "if_true", "if_false")
    cond: JumpTest
    value: int
    if_true: str
    if_false: str

    def __init__(self, cond: JumpTest, value: int, if_true: str, if_false: str) -> None:
        set_field(self, "cond", cond)
        set_field(self, "value", value)
        set_field(self, "if_true", if_true)
        set_field(self, "if_false", if_false)


class GoTo(Frozen):
    """Unconditional jump to a label (``ja``)."""

    __slots__ = ("target",)
    __match_args__ = ("target",)
    target: str

    def __init__(self, target: str) -> None:
        set_field(self, "target", target)


if TYPE_CHECKING:  # what assemble() takes (for annotations: the typed classes load lazily)
    AsmItem = TypedInstruction | Label | JumpTo | GoTo


def assemble(items: Iterable[AsmItem]) -> tuple[Instruction, ...]:
    """Resolve labels and return the raw program, validated.

    Raises ``FilterCompileError`` for an unknown or backward label, a conditional jump
    further than 255 instructions, or anything ``validate`` refuses.
    """
    seq = list(items)
    where: dict[str, int] = {}
    pc = 0
    for it in seq:
        if isinstance(it, Label):
            if it.name in where:
                raise FilterCompileError(f"label {it.name!r} defined twice")
            where[it.name] = pc
        else:
            pc += 1

    def skip(name: str, at: int, limit: int) -> int:
        if name not in where:
            raise FilterCompileError(f"undefined label {name!r}")
        d = where[name] - at - 1
        if d < 0:
            raise FilterCompileError(f"jump to {name!r} goes backwards")
        if d > limit:
            raise FilterCompileError(f"jump to {name!r} is {d} instructions long (max {limit})")
        return d

    out: list[Instruction] = []
    for it in seq:
        at = len(out)
        if isinstance(it, Label):
            continue
        if isinstance(it, JumpTo):
            jt, jf = skip(it.if_true, at, 255), skip(it.if_false, at, 255)
            out.append(Instruction(op.JMP | it.cond | op.K, jt, jf, it.value))
        elif isinstance(it, GoTo):
            out.append(Instruction(op.JMP | op.JA, 0, 0, skip(it.target, at, 0xFFFFFFFF)))
        else:
            out.append(it.assemble())
    validate(out)
    return tuple(out)


# Every opcode the kernel accepts in a classic filter (net/core/filter.c, codes[]).
_VALID = frozenset(
    [op.ALU | o | s for o in op.ALU_OPS for s in (op.K, op.X)]
    + [op.ALU | 0x80]
    + [op.LD | sz | m for sz in (op.W, op.H, op.B) for m in (op.ABS, op.IND)]
    + [op.LD | op.W | op.LEN, op.LDX | op.W | op.LEN, op.LD | op.IMM, op.LD | op.MEM]
    + [op.LDX | op.IMM, op.LDX | op.MEM, op.LDX | op.B | op.MSH]
    + [op.ST, op.STX, op.MISC | op.MISC_TAX, op.MISC | op.MISC_TXA]
    + [op.RET | op.K, op.RET | op.RA, op.JMP | op.JA]
    + [op.JMP | t | s for t in op.JUMP_TESTS for s in (op.K, op.X)]
)


def validate(insns: Sequence[Instruction]) -> None:
    """Raise ``FilterCompileError`` unless the Linux kernel would accept ``insns``."""
    n = len(insns)
    if not 1 <= n <= op.MAX_INSNS:
        raise FilterCompileError(f"program has {n} instructions; the kernel allows 1 to 4096")
    for pc, ins in enumerate(insns):
        code, k = ins.code, ins.k
        if code not in _VALID:
            raise FilterCompileError(f"instruction {pc}: unknown opcode {code:#x}")
        cls = code & 0x07
        if cls == op.ALU and code & op.X == 0:
            o = code & 0xF0
            if o in (op.DIV, op.MOD) and k == 0:
                raise FilterCompileError(f"instruction {pc}: division by constant zero")
            if o in (op.LSH, op.RSH) and k >= 32:
                raise FilterCompileError(f"instruction {pc}: shift by {k} (max 31)")
        if code in (op.LD | op.MEM, op.LDX | op.MEM, op.ST, op.STX) and k >= op.MEMWORDS:
            raise FilterCompileError(f"instruction {pc}: scratch index {k} out of range")
        if code == op.JMP | op.JA:
            if k >= n - pc - 1:
                raise FilterCompileError(f"instruction {pc}: jump past the end")
        elif cls == op.JMP and (pc + 1 + ins.jt >= n or pc + 1 + ins.jf >= n):
            raise FilterCompileError(f"instruction {pc}: jump past the end")
    if insns[-1].code & 0x07 != op.RET:
        raise FilterCompileError("the last instruction must be a ret")
    _check_scratch(insns)


def _check_scratch(insns: Sequence[Instruction]) -> None:
    """Reject reads of scratch words not written on every path (kernel's rule)."""
    everything = (1 << op.MEMWORDS) - 1
    # written[pc]: words surely written on entry to pc (intersection over predecessors).
    written: list[int | None] = [None] * len(insns)
    written[0] = 0
    for pc, ins in enumerate(insns):
        have = written[pc]
        if have is None:  # unreachable
            continue
        code = ins.code
        if code in (op.LD | op.MEM, op.LDX | op.MEM) and not have >> ins.k & 1:
            raise FilterCompileError(f"instruction {pc}: reads M[{ins.k}] before writing it")
        if code in (op.ST, op.STX):
            have |= 1 << ins.k
        cls = code & 0x07
        if cls == op.RET:
            succ: tuple[int, ...] = ()
        elif code == op.JMP | op.JA:
            succ = (pc + 1 + ins.k,)
        elif cls == op.JMP:
            succ = (pc + 1 + ins.jt, pc + 1 + ins.jf)
        else:
            succ = (pc + 1,)
        for s in succ:
            prev = written[s]
            written[s] = have & everything if prev is None else prev & have

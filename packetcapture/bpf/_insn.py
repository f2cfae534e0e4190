"""Classic BPF instructions: opcode constants, the raw ``Instruction`` and typed builders.

The raw form is the kernel's ``struct sock_filter`` (``code``, ``jt``, ``jf``, ``k``). Typed
classes (``LoadAbsolute``, ``JumpIf``, ...) say what an instruction does and assemble to the
raw form; ``decode`` goes back. Opcode values are the ones in ``linux/filter.h``. The typed
classes and enums live in ``_typed``, which ``packetcapture.bpf`` loads on first use of
their names: the compiler, the validator and the VM need only the raw form.
"""

from __future__ import annotations

from packetcapture._frozen import Frozen, set_field

__all__ = [
    "ALU",
    "ALU_OPS",
    "JMP",
    "JUMP_TESTS",
    "LD",
    "LDX",
    "MAX_INSNS",
    "MEMWORDS",
    "MISC",
    "RET",
    "ST",
    "STX",
    "Instruction",
]

# Instruction classes.
LD, LDX, ST, STX, ALU, JMP, RET, MISC = 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07
# Load sizes and modes.
W, H, B = 0x00, 0x08, 0x10
IMM, ABS, IND, MEM, LEN, MSH = 0x00, 0x20, 0x40, 0x60, 0x80, 0xA0
# Operand source, and the register a ret returns.
K, X = 0x00, 0x08
RA = 0x10
# Jump tests.
JA, JEQ, JGT, JGE, JSET = 0x00, 0x10, 0x20, 0x30, 0x40
# MISC operations.
MISC_TAX, MISC_TXA = 0x00, 0x80
# ALU operations (the values of ``ALUOp``), and all of them in its order.
ADD, SUB, MUL, DIV, OR, AND, LSH, RSH, MOD, XOR = (
    0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x90, 0xA0,
)  # fmt: skip
ALU_OPS = (ADD, SUB, MUL, DIV, OR, AND, LSH, RSH, MOD, XOR)
#: The conditional jump tests (the values of ``JumpTest``).
JUMP_TESTS = (JEQ, JGT, JGE, JSET)

#: The kernel's limit on program length (``BPF_MAXINSNS``).
MAX_INSNS = 4096
#: Number of scratch memory words ``M[0]`` .. ``M[15]``.
MEMWORDS = 16


def _check(name: str, value: int, bits: int) -> None:
    if not 0 <= value < 1 << bits:
        raise ValueError(f"{name} must fit in {bits} bits, got {value}")


# The classes below are frozen value classes (see packetcapture._frozen): equal and hashed by
# their fields, immutable, positional and keyword construction as their signatures say.


class Instruction(Frozen):
    """One raw classic BPF instruction, exactly ``struct sock_filter``.

    ``jt``/``jf`` are forward skips counted from the next instruction; ``k`` is unsigned.
    """

    __slots__ = ("code", "jf", "jt", "k")
    __match_args__ = ("code", "jt", "jf", "k")
    code: int
    jt: int
    jf: int
    k: int

    def __init__(self, code: int, jt: int = 0, jf: int = 0, k: int = 0) -> None:
        _check("code", code, 16)
        _check("jt", jt, 8)
        _check("jf", jf, 8)
        _check("k", k, 32)
        set_field(self, "code", code)
        set_field(self, "jt", jt)
        set_field(self, "jf", jf)
        set_field(self, "k", k)

    def as_tuple(self) -> tuple[int, int, int, int]:
        """Return ``(code, jt, jf, k)``."""
        return (self.code, self.jt, self.jf, self.k)

"""Text forms of a program, byte-for-byte as ``tcpdump -d``, ``-dd`` and ``-ddd`` print them."""

from __future__ import annotations

from collections.abc import Sequence

from packetcapture.bpf import _insn as op
from packetcapture.bpf._insn import Instruction

__all__ = ["disassemble", "image"]

_ALU_NAMES = {
    op.ADD: "add",
    op.SUB: "sub",
    op.MUL: "mul",
    op.DIV: "div",
    op.MOD: "mod",
    op.AND: "and",
    op.OR: "or",
    op.XOR: "xor",
    op.LSH: "lsh",
    op.RSH: "rsh",
}
_JMP_NAMES = {op.JEQ: "jeq", op.JGT: "jgt", op.JGE: "jge", op.JSET: "jset"}
_SZ = {op.W: "", op.H: "h", op.B: "b"}


def _operand(ins: Instruction) -> tuple[str, str]:
    """Return (mnemonic, operand) the way libpcap's ``bpf_image()`` renders them."""
    code, k = ins.code, ins.k
    cls = code & 0x07
    if cls == op.RET:
        if code == op.RET | op.K:
            return "ret", f"#{k}"
        if code == op.RET | op.RA:
            return "ret", ""
    elif cls == op.LD:
        size, mode = code & 0x18, code & 0xE0
        if size in _SZ and mode == op.ABS:
            return "ld" + _SZ[size], f"[{k}]"
        if size in _SZ and mode == op.IND:
            return "ld" + _SZ[size], f"[x + {k}]"
        if code == op.LD | op.W | op.LEN:
            return "ld", "#pktlen"
        if code == op.LD | op.IMM:
            return "ld", f"#0x{k:x}"
        if code == op.LD | op.MEM:
            return "ld", f"M[{k}]"
    elif cls == op.LDX:
        # libpcap's bpf_image() has no name for "ldx len"; print what it prints.
        if code == op.LDX | op.IMM:
            return "ldx", f"#0x{k:x}"
        if code == op.LDX | op.MEM:
            return "ldx", f"M[{k}]"
        if code == op.LDX | op.B | op.MSH:
            return "ldxb", f"4*([{k}]&0xf)"
    elif code == op.ST:
        return "st", f"M[{k}]"
    elif code == op.STX:
        return "stx", f"M[{k}]"
    elif cls == op.JMP:
        if code == op.JMP | op.JA:
            return "ja", f"{k}"
        t = code & 0xF0
        if t in _JMP_NAMES and code & ~0xF8 == op.JMP:
            return _JMP_NAMES[t], "x" if code & op.X else f"#0x{k:x}"
    elif cls == op.ALU:
        if code == op.ALU | 0x80:
            return "neg", ""
        o = code & 0xF0
        if o in _ALU_NAMES and code & ~0xF8 == op.ALU:
            if code & op.X:
                return _ALU_NAMES[o], "x"
            # Like libpcap: bit operations in hex, arithmetic in decimal.
            hexa = o in (op.AND, op.OR, op.XOR)
            return _ALU_NAMES[o], f"#0x{k:x}" if hexa else f"#{k}"
    elif code == op.MISC | op.MISC_TAX:
        return "tax", ""
    elif code == op.MISC | op.MISC_TXA:
        return "txa", ""
    return "unimp", f"0x{code:x}"


def image(ins: Instruction, n: int) -> str:
    """Return one ``tcpdump -d`` line for instruction ``ins`` at index ``n``."""
    name, operand = _operand(ins)
    if name == "ja":
        operand = f"{n + 1 + ins.k}"
    if ins.code & 0x07 == op.JMP and ins.code != op.JMP | op.JA:
        return f"({n:03d}) {name:<8} {operand:<16} jt {n + 1 + ins.jt}\tjf {n + 1 + ins.jf}"
    return f"({n:03d}) {name:<8} {operand}"


def disassemble(insns: Sequence[Instruction], fmt: str = "d") -> str:
    """Render ``insns`` as ``tcpdump -d`` (``"d"``), ``-dd`` (``"dd"``) or ``-ddd`` text.

    The result ends with a newline, exactly as tcpdump prints it.
    """
    if fmt == "d":
        lines = [image(ins, n) for n, ins in enumerate(insns)]
    elif fmt == "dd":
        lines = [f"{{ 0x{i.code:x}, {i.jt}, {i.jf}, 0x{i.k:08x} }}," for i in insns]
    elif fmt == "ddd":
        lines = [str(len(insns))] + [f"{i.code} {i.jt} {i.jf} {i.k}" for i in insns]
    else:
        raise ValueError(f"unknown disassembly format {fmt!r} (use 'd', 'dd' or 'ddd')")
    return "\n".join(lines) + "\n"

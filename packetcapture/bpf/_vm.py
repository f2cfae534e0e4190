"""A pure-Python classic BPF interpreter with Linux/libpcap semantics.

Registers and memory are unsigned 32-bit; loads are big endian; a load outside the
captured bytes or a division by zero ends the program with 0 (drop), as the kernel and
libpcap's ``bpf_filter()`` do. Shifts by ``X >= 32`` give 0 (libpcap's rule; the kernel
masks the count, and the compiler never emits them).
"""

from __future__ import annotations

from collections.abc import Sequence

from packetcapture.bpf import _insn as op
from packetcapture.bpf._insn import Instruction

__all__ = ["run", "trace"]

_M32 = 0xFFFFFFFF


def _load(frame: bytes, off: int, size: int) -> int | None:
    if off + size > len(frame):
        return None
    return int.from_bytes(frame[off : off + size], "big")


def _alu(code: int, a: int, v: int) -> int | None:
    o = code & 0xF0
    if o == op.ADD:
        return (a + v) & _M32
    if o == op.SUB:
        return (a - v) & _M32
    if o == op.MUL:
        return (a * v) & _M32
    if o == op.DIV:
        return None if v == 0 else a // v
    if o == op.MOD:
        return None if v == 0 else a % v
    if o == op.AND:
        return a & v
    if o == op.OR:
        return a | v
    if o == op.XOR:
        return a ^ v
    if o == op.LSH:
        return (a << v) & _M32 if v < 32 else 0
    if o == op.RSH:
        return a >> v if v < 32 else 0
    if o == 0x80:
        return (-a) & _M32
    raise ValueError(f"bad ALU opcode {code:#x}")


_SIZES = {op.W: 4, op.H: 2, op.B: 1}


def trace(
    insns: Sequence[Instruction], frame: bytes, wire_len: int | None = None
) -> tuple[int, int]:
    """Run the program; return ``(verdict, executed_instruction_count)``."""
    a = x = 0
    mem = [0] * op.MEMWORDS
    pc = 0
    steps = 0
    wlen = len(frame) if wire_len is None else wire_len
    n = len(insns)
    while pc < n:
        ins = insns[pc]
        steps += 1
        pc += 1
        code, k = ins.code, ins.k
        cls = code & 0x07
        if cls == op.LD:
            mode = code & 0xE0
            if mode in (op.ABS, op.IND):
                v = _load(frame, k + (x if mode == op.IND else 0), _SIZES[code & 0x18])
                if v is None:
                    return 0, steps
                a = v
            elif mode == op.IMM:
                a = k
            elif mode == op.MEM:
                a = mem[k]
            elif mode == op.LEN:
                a = wlen & _M32
            else:
                raise ValueError(f"bad opcode {code:#x}")
        elif cls == op.LDX:
            mode = code & 0xE0
            if mode == op.IMM:
                x = k
            elif mode == op.MEM:
                x = mem[k]
            elif mode == op.LEN:
                x = wlen & _M32
            elif mode == op.MSH:
                if k >= len(frame):
                    return 0, steps
                x = (frame[k] & 0xF) << 2
            else:
                raise ValueError(f"bad opcode {code:#x}")
        elif cls == op.ST:
            mem[k] = a
        elif cls == op.STX:
            mem[k] = x
        elif cls == op.ALU:
            r = _alu(code, a, x if code & op.X else k)
            if r is None:
                return 0, steps
            a = r
        elif cls == op.JMP:
            t = code & 0xF0
            if t == op.JA:
                pc += k
                continue
            v = x if code & op.X else k
            if t == op.JEQ:
                c = a == v
            elif t == op.JGT:
                c = a > v
            elif t == op.JGE:
                c = a >= v
            elif t == op.JSET:
                c = (a & v) != 0
            else:
                raise ValueError(f"bad opcode {code:#x}")
            pc += ins.jt if c else ins.jf
        elif cls == op.RET:
            return (a if code & 0x18 == op.RA else k), steps
        elif code == op.MISC | op.MISC_TAX:
            x = a
        elif code == op.MISC | op.MISC_TXA:
            a = x
        else:
            raise ValueError(f"bad opcode {code:#x}")
    return 0, steps


def run(insns: Sequence[Instruction], frame: bytes, wire_len: int | None = None) -> int:
    """Run the program on ``frame`` and return its verdict (0 = drop, else bytes to keep)."""
    return trace(insns, frame, wire_len)[0]

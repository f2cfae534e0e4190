"""Compile a BPF program to a Python function (generated source) for fast replay.

Basic blocks reached from one place are inlined as nested ``if``s; blocks reached from
several places become helper functions, so code is never duplicated. A load outside the
frame raises ``IndexError``/``struct.error``, which the entry point turns into 0 (drop),
giving the VM's verdict on every input.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence

from packetcapture.bpf import _insn as op
from packetcapture.bpf._insn import Instruction

__all__ = ["generate_source", "make_executor"]

_MAX_DEPTH = 40
_ALU_PY = {
    op.ALUOp.ADD: "(a + {v}) & 0xFFFFFFFF",
    op.ALUOp.SUB: "(a - {v}) & 0xFFFFFFFF",
    op.ALUOp.MUL: "(a * {v}) & 0xFFFFFFFF",
    op.ALUOp.DIV: "a // {v}",
    op.ALUOp.MOD: "a % {v}",
    op.ALUOp.AND: "a & {v}",
    op.ALUOp.OR: "a | {v}",
    op.ALUOp.XOR: "a ^ {v}",
    op.ALUOp.LSH: "(a << {v}) & 0xFFFFFFFF",
    op.ALUOp.RSH: "a >> {v}",
}
_CMP = {op.JEQ: "a == {v}", op.JGT: "a > {v}", op.JGE: "a >= {v}", op.JSET: "a & {v}"}


def _targets(pc: int, ins: Instruction) -> tuple[int, ...]:
    cls = ins.code & 0x07
    if cls == op.RET:
        return ()
    if ins.code == op.JMP | op.JA:
        return (pc + 1 + ins.k,)
    if cls == op.JMP:
        return (pc + 1 + ins.jt, pc + 1 + ins.jf)
    return (pc + 1,)


def _load_expr(ins: Instruction) -> str:
    off = f"x + {ins.k}" if ins.code & 0xE0 == op.IND else str(ins.k)
    size = ins.code & 0x18
    if size == op.B:
        return f"p[{off}]"
    return f"{'_H' if size == op.H else '_W'}(p, {off})[0]"


def _straight(ins: Instruction) -> list[str]:
    """Python lines for a non-jump, non-ret instruction."""
    code, k = ins.code, ins.k
    cls = code & 0x07
    if cls == op.LD:
        mode = code & 0xE0
        if mode in (op.ABS, op.IND):
            return [f"a = {_load_expr(ins)}"]
        if mode == op.IMM:
            return [f"a = {k}"]
        if mode == op.MEM:
            return [f"a = m[{k}]"]
        return ["a = len(p)"]
    if cls == op.LDX:
        mode = code & 0xE0
        if mode == op.IMM:
            return [f"x = {k}"]
        if mode == op.MEM:
            return [f"x = m[{k}]"]
        if mode == op.MSH:
            return [f"x = (p[{k}] & 15) << 2"]
        return ["x = len(p)"]
    if cls == op.ST:
        return [f"m[{k}] = a"]
    if cls == op.STX:
        return [f"m[{k}] = x"]
    if cls == op.ALU:
        if code == op.ALU | 0x80:
            return ["a = -a & 0xFFFFFFFF"]
        o = op.ALUOp(code & 0xF0)
        if code & op.X:
            pre = []
            if o in (op.ALUOp.DIV, op.ALUOp.MOD):
                pre = ["if x == 0:", "    return 0"]
            elif o in (op.ALUOp.LSH, op.ALUOp.RSH):
                return [f"a = ({_ALU_PY[o].format(v='x')}) if x < 32 else 0"]
            return [*pre, f"a = {_ALU_PY[o].format(v='x')}"]
        return [f"a = {_ALU_PY[o].format(v=k)}"]
    if code == op.MISC | op.MISC_TAX:
        return ["x = a"]
    if code == op.MISC | op.MISC_TXA:
        return ["a = x"]
    raise ValueError(f"bad opcode {code:#x}")


def generate_source(insns: Sequence[Instruction], name: str = "bpf_filter") -> str:
    """Return Python source defining ``name(p) -> int`` equivalent to the program."""
    n = len(insns)
    preds = [0] * (n + 1)
    leaders = {0}
    for pc, ins in enumerate(insns):
        ts = _targets(pc, ins)
        for t in ts:
            preds[t] += 1
        if ins.code & 0x07 in (op.JMP, op.RET):
            leaders.update(ts)
            leaders.add(pc + 1)
        if pc + 1 in leaders and ts == (pc + 1,):
            pass
    funcs: dict[int, list[str]] = {}
    uses_mem = any(i.code in (op.ST, op.STX) for i in insns)

    def goto(target: int, depth: int) -> list[str]:
        if preds[target] == 1 and depth < _MAX_DEPTH:
            return block(target, depth)
        if target not in funcs:
            funcs[target] = []  # reserve first: recursion may reach it again
            funcs[target] = block(target, 1)
        return [f"return _b{target}(p, a, x, m)"]

    def block(start: int, depth: int) -> list[str]:
        lines: list[str] = []
        pc = start
        while True:
            ins = insns[pc]
            cls = ins.code & 0x07
            if cls == op.RET:
                lines.append(f"return {ins.k}" if ins.code == op.RET | op.K else "return a")
                return lines
            if ins.code == op.JMP | op.JA:
                return lines + goto(pc + 1 + ins.k, depth)
            if cls == op.JMP:
                v = "x" if ins.code & op.X else str(ins.k)
                cond = _CMP[ins.code & 0xF0].format(v=v)
                t, f = pc + 1 + ins.jt, pc + 1 + ins.jf
                if t == f:
                    return lines + goto(t, depth)
                body_t = goto(t, depth + 1)
                body_f = goto(f, depth + 1)
                lines.append(f"if {cond}:")
                lines += ["    " + s for s in body_t]
                return lines + body_f
            lines += _straight(ins)
            pc += 1
            if pc in leaders and preds[pc] > 1:
                return lines + goto(pc, depth)

    entry = block(0, 1)
    out = ["def _make(_H, _W):"]
    for start in sorted(funcs):
        out.append(f"    def _b{start}(p, a, x, m):")
        out += ["        " + s for s in funcs[start]]
    out.append(f"    def {name}(p):")
    out.append(f"        a = x = 0; m = {'[0] * 16' if uses_mem else 'None'}")
    out.append("        try:")
    out += ["            " + s for s in entry]
    out.append("        except (IndexError, struct.error):")
    out.append("            return 0")
    out.append(f"    return {name}")
    return "\n".join(out) + "\n"


def make_executor(insns: Sequence[Instruction]) -> Callable[[bytes], int]:
    """Compile ``insns`` to a Python function ``f(frame) -> verdict``."""
    source = generate_source(insns)
    namespace: dict[str, object] = {"struct": struct}
    exec(compile(source, "<bpf-executor>", "exec"), namespace)
    make = namespace["_make"]
    fn: Callable[[bytes], int] = make(  # type: ignore[operator]
        struct.Struct(">H").unpack_from, struct.Struct(">I").unpack_from
    )
    return fn

"""Compile a BPF program to a Python function (generated source) for fast replay.

The program is expanded into straight-line nested ``if``s: blocks reached from several
places are copied (inlined) while a size budget lasts, and only then become helper
functions. Scratch words are local variables, 16-bit loads are two byte indexings, and a
static upper bound on A and X drops the 32-bit wrap-around masks that cannot matter. A
load outside the frame raises ``IndexError``/``struct.error`` (Python 3.11 ``try`` costs
nothing until it raises), which the entry point turns into 0 (drop): the VM's verdict on
every input.

The same body also compiles into a *scanner* (:func:`make_scanner`): the record loop of
the raw replay lane over a little-endian classic pcap buffer, with the program inlined in
it (verdicts become ``v = ...; break`` out of a one-pass ``while``), so a record costs a
slice but no function call. (Reading the bytes in place as ``buf[b + k]`` was measured
slower: each ``b + k`` allocates an int, where ``p[k]`` indexes with a constant.)
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence

from packetcapture.bpf import _insn as op
from packetcapture.bpf._insn import Instruction

__all__ = ["Scanner", "generate_scanner_source", "generate_source", "make_executor", "make_scanner"]

_M32 = 0xFFFFFFFF
_MAX_DEPTH = 40  # nested ifs (the tokenizer allows 100 indentation levels)
_INLINE_BUDGET = 6000  # instructions generated before shared blocks become functions
_INLINE_SIZE = 48  # a shared block is copied if its code (copies included) is this small
_CMP = {op.JEQ: "{a} == {v}", op.JGT: "{a} > {v}", op.JGE: "{a} >= {v}", op.JSET: "{a} & {v}"}


def _targets(pc: int, ins: Instruction) -> tuple[int, ...]:
    cls = ins.code & 0x07
    if cls == op.RET:
        return ()
    if ins.code == op.JMP | op.JA:
        return (pc + 1 + ins.k,)
    if cls == op.JMP:
        return (pc + 1 + ins.jt, pc + 1 + ins.jf)
    return (pc + 1,)


def _load(ins: Instruction) -> tuple[str, int]:
    """Python expression for an ABS/IND load, and the bound of its value."""
    ind = ins.code & 0xE0 == op.IND
    size = ins.code & 0x18

    def at(d: int) -> str:
        k = ins.k + d
        return f"p[x + {k}]" if ind else f"p[{k}]"

    if size == op.B:
        return at(0), 0xFF
    if size == op.H:
        return f"({at(0)} << 8 | {at(1)})", 0xFFFF
    off = f"x + {ins.k}" if ind else str(ins.k)
    return f"_W(p, {off})[0]", _M32


class _Gen:
    def __init__(self, insns: Sequence[Instruction], scan: bool = False) -> None:
        self.insns = insns
        # Scanner: verdicts in the inlined body are "v = ...; break" (helper functions
        # still return theirs).
        self.scan = scan
        self.in_func = False
        n = len(insns)
        self.preds = [0] * (n + 1)
        for pc, ins in enumerate(insns):
            for t in _targets(pc, ins):
                self.preds[t] += 1
        self.mem = sorted(
            {i.k for i in insns if i.code in (op.ST, op.STX, op.LD | op.MEM, op.LDX | op.MEM)}
        )
        self.funcs: dict[int, list[str]] = {}
        self.sizes: dict[int, int] = {}
        self.inlined: set[int] = set()
        # live[pc]: the code from pc may read A before writing it.
        self.live = [False] * (n + 1)
        for pc in range(n - 1, -1, -1):
            ins = insns[pc]
            code, cls = ins.code, ins.code & 0x07
            reads = cls in (op.ALU, op.ST) or code == op.MISC | op.MISC_TAX
            reads = reads or (cls == op.JMP and code != op.JMP | op.JA)
            reads = reads or code == op.RET | op.RA
            writes = cls == op.LD or code == op.MISC | op.MISC_TXA
            self.live[pc] = reads or (not writes and any(self.live[t] for t in _targets(pc, ins)))
        self.lines = 0

    def fused(self, pc: int) -> tuple[str, int, int] | None:
        """Return (condition, true target, false target) for a load tested at once.

        A byte or 16-bit ABS/IND load followed by a ``jeq``/``jgt``/``jge``/``jset``
        with a constant, when nothing after reads A: no assignment. A 16-bit equality,
        and a 16-bit ``jset`` whose mask has low bits, test the low byte first (one
        indexing for most frames; if the low byte is inside the frame, so is the high
        one, so out-of-bounds loads still raise) and build no 16-bit value.
        """
        ins = self.insns[pc]
        if ins.code & 0x07 != op.LD or ins.code & 0xE0 not in (op.ABS, op.IND):
            return None
        size = ins.code & 0x18
        if size == op.W or pc + 1 >= len(self.insns) or self.preds[pc + 1] != 1:
            return None
        j = self.insns[pc + 1]
        test = j.code & 0xF0
        if j.code & 0x07 != op.JMP or test == op.JA or j.code & op.X:
            return None
        t, f = pc + 2 + j.jt, pc + 2 + j.jf
        if t == f or self.live[t] or self.live[f]:
            return None
        expr, bound = _load(ins)
        if test == op.JEQ and j.k > bound:
            return None  # never equal, but the load must still be bounds-checked
        base = f"x + {ins.k}" if ins.code & 0xE0 == op.IND else str(ins.k)
        lo = f"p[x + {ins.k + 1}]" if ins.code & 0xE0 == op.IND else f"p[{ins.k + 1}]"
        hi = f"p[{base}]"
        if size == op.H and test == op.JEQ:
            return f"{lo} == {j.k & 0xFF} and {hi} == {j.k >> 8}", t, f
        if size == op.H and test == op.JSET and j.k & 0xFF:
            # Bytes tested apart, low byte first (so an out-of-bounds load still raises):
            # "p[21] or p[20] & 31" for IPv4's fragment test, no 16-bit value built.
            low = lo if j.k & 0xFF == 0xFF else f"{lo} & {j.k & 0xFF}"
            high = j.k >> 8 & 0xFF
            if not high:
                return low, t, f
            return f"{low} or {hi}" + ("" if high == 0xFF else f" & {high}"), t, f
        return _CMP[test].format(a=expr, v=j.k), t, f

    def ret(self, expr: str) -> list[str]:
        """Lines delivering the verdict ``expr``."""
        if self.scan and not self.in_func:
            return [f"v = {expr}", "break"]
        return [f"return {expr}"]

    def tree_size(self, pc: int) -> int:
        """Instructions the code from ``pc`` has with every shared block copied (capped)."""
        got = self.sizes.get(pc)
        if got is None:
            self.sizes[pc] = _INLINE_SIZE + 1  # cycles are impossible; be safe anyway
            ts = _targets(pc, self.insns[pc])
            got = min(1 + sum(self.tree_size(t) for t in ts), 1 << 20)
            self.sizes[pc] = got
        return got

    @property
    def args(self) -> str:
        return ", ".join(["p", "a", "x", *(f"m{k}" for k in self.mem)])

    def goto(self, target: int, depth: int, ba: int, bx: int) -> list[str]:
        ins = self.insns[target]
        if ins.code == op.RET | op.K:
            return self.ret(str(ins.k))
        if depth < _MAX_DEPTH and (
            self.preds[target] == 1
            or target not in self.inlined  # the first (hot: true branches) path copies it
            or (self.tree_size(target) <= _INLINE_SIZE and self.lines < _INLINE_BUDGET)
        ):
            self.inlined.add(target)
            return self.block(target, depth, ba, bx)
        if target not in self.funcs:
            self.funcs[target] = []  # reserve first: recursion may reach it again
            outer, self.in_func = self.in_func, True
            self.funcs[target] = self.block(target, 1, _M32, _M32)
            self.in_func = outer
        return self.ret(f"_b{target}({self.args})")

    def block(self, pc: int, depth: int, ba: int, bx: int) -> list[str]:
        lines: list[str] = []
        while True:
            ins = self.insns[pc]
            code, k = ins.code, ins.k
            cls = code & 0x07
            self.lines += 1
            if cls == op.RET:
                return lines + self.ret(str(k) if code == op.RET | op.K else "a")
            if code == op.JMP | op.JA:
                return lines + self.goto(pc + 1 + k, depth, ba, bx)
            if cls == op.JMP:
                v = "x" if code & op.X else str(k)
                cond = _CMP[code & 0xF0].format(a="a", v=v)
                t, f = pc + 1 + ins.jt, pc + 1 + ins.jf
                if t == f:
                    return lines + self.goto(t, depth, ba, bx)
                body_t = self.goto(t, depth + 1, ba, bx)
                body_f = self.goto(f, depth, ba, bx)
                lines.append(f"if {cond}:")
                lines += ["    " + s for s in body_t]
                return lines + body_f
            fused = self.fused(pc)
            if fused is not None:
                cond, t, f = fused
                self.lines += 1
                body_t = self.goto(t, depth + 1, ba, bx)
                body_f = self.goto(f, depth, ba, bx)
                lines.append(f"if {cond}:")
                lines += ["    " + s for s in body_t]
                return lines + body_f
            got = self.straight(ins, ba, bx)
            lines += got[0]
            ba, bx = got[1], got[2]
            pc += 1
            if self.preds[pc] > 1:
                return lines + self.goto(pc, depth, ba, bx)

    def straight(self, ins: Instruction, ba: int, bx: int) -> tuple[list[str], int, int]:
        """Python lines for a non-jump, non-ret instruction; new bounds of A and X."""
        code, k = ins.code, ins.k
        cls = code & 0x07
        if cls == op.LD:
            mode = code & 0xE0
            if mode in (op.ABS, op.IND):
                expr, bound = _load(ins)
                return [f"a = {expr}"], bound, bx
            if mode == op.IMM:
                return [f"a = {k}"], k, bx
            if mode == op.MEM:
                return [f"a = m{k}"], _M32, bx
            return ["a = len(p)"], _M32, bx
        if cls == op.LDX:
            mode = code & 0xE0
            if mode == op.IMM:
                return [f"x = {k}"], ba, k
            if mode == op.MEM:
                return [f"x = m{k}"], ba, _M32
            if mode == op.MSH:
                return [f"x = (p[{k}] & 15) << 2"], ba, 60
            return ["x = len(p)"], ba, _M32
        if cls == op.ST:
            return [f"m{k} = a"], ba, bx
        if cls == op.STX:
            return [f"m{k} = x"], ba, bx
        if cls == op.ALU:
            return self.alu(code, k, ba, bx)
        if code == op.MISC | op.MISC_TAX:
            return ["x = a"], ba, ba
        if code == op.MISC | op.MISC_TXA:
            return ["a = x"], bx, bx
        raise ValueError(f"bad opcode {code:#x}")

    def alu(self, code: int, k: int, ba: int, bx: int) -> tuple[list[str], int, int]:
        if code == op.ALU | 0x80:
            return ["a = -a & 0xFFFFFFFF"], _M32, bx
        o = op.ALUOp(code & 0xF0)
        use_x = bool(code & op.X)
        v, bv = ("x", bx) if use_x else (str(k), k)
        pre: list[str] = []
        if o in (op.ALUOp.DIV, op.ALUOp.MOD) and use_x:
            pre = ["if x == 0:", *("    " + s for s in self.ret("0"))]
        if o == op.ALUOp.ADD:
            bound = ba + bv
            expr = f"a + {v}"
        elif o == op.ALUOp.SUB:
            bound, expr = _M32 + 1, f"a - {v}"
        elif o == op.ALUOp.MUL:
            bound, expr = ba * bv, f"a * {v}"
        elif o == op.ALUOp.DIV:
            return [*pre, f"a = a // {v}"], ba, bx
        elif o == op.ALUOp.MOD:
            return [*pre, f"a = a % {v}"], min(ba, max(bv - 1, 0)), bx
        elif o == op.ALUOp.AND:
            return [f"a = a & {v}"], min(ba, bv), bx
        elif o == op.ALUOp.OR:
            return [f"a = a | {v}"], (1 << max(ba, bv).bit_length()) - 1, bx
        elif o == op.ALUOp.XOR:
            return [f"a = a ^ {v}"], (1 << max(ba, bv).bit_length()) - 1, bx
        elif o == op.ALUOp.RSH:
            if use_x:
                return ["a = a >> x if x < 32 else 0"], ba, bx
            return [f"a = a >> {k}"], ba >> k, bx
        else:  # LSH
            if use_x:
                return ["a = (a << x) & 0xFFFFFFFF if x < 32 else 0"], _M32, bx
            bound, expr = ba << k, f"a << {k}"
        if bound > _M32:
            return [*pre, f"a = ({expr}) & 0xFFFFFFFF"], _M32, bx
        return [*pre, f"a = {expr}"], bound, bx


def generate_source(insns: Sequence[Instruction], name: str = "bpf_filter") -> str:
    """Return Python source defining ``name(p) -> int`` equivalent to the program."""
    gen = _Gen(insns)
    entry = gen.block(0, 1, 0, 0)  # A and X start at 0
    out = ["def _make(_W):"]
    for start in sorted(gen.funcs):
        out.append(f"    def _b{start}({gen.args}):")
        out += ["        " + s for s in gen.funcs[start]]
    out.append(f"    def {name}(p):")
    init = " = ".join(["a", "x", *(f"m{k}" for k in gen.mem)])
    out.append(f"        {init} = 0")
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
    fn: Callable[[bytes], int] = make(struct.Struct(">I").unpack_from)  # type: ignore[operator]
    return fn


#: ``scan(buf, pos, end, todo, limit, lim, maxcap, run)``, timed: ``..., run, w)`` (see
#: :func:`make_scanner`).
Scanner = Callable[..., tuple[int, int, int, int, bool]]
# A little-endian classic pcap record header without its seconds field, which the scanner
# never looks at (one int object fewer per record).
_HEADER3 = struct.Struct("<4xIII")
_HEADER4 = struct.Struct("<IIII")  # the timed scanner's: with the seconds

# The record loop of PcapReader.read_filtered_raw; the program's body goes between the two
# and leaves its verdict in v. Header unpacking past the buffer's end raises struct.error.
_SCAN_HEAD = """\
    def scan(buf, pos, end, todo, limit, lim, maxcap, run):
        unpack = _H
        caplen = i = kept = 0
        odd = False
        start = -1
        try:
            for i in range(todo):
                frac, caplen, wire = unpack(buf, pos)
                o = pos + 16
                nxt = o + caplen
                if nxt > end or caplen > maxcap:
                    break
                p = buf[o:nxt]
                {init} = 0
                try:
                    while True:
"""
_SCAN_TAIL = """\
                except (IndexError, struct.error):
                    v = 0  # a load outside the frame: the VM drops the packet
                if v:
                    if v < caplen or caplen > limit or wire < caplen or frac >= lim:
                        odd = True
                        break
                    if start < 0:
                        start = pos
                        first = i
                elif start >= 0:
                    run(buf[start:pos])
                    kept += i - first
                    start = -1
                pos = nxt
            else:
                i = todo
        except struct.error:
            pass
        if start >= 0:
            run(buf[start:pos])
            kept += i - first
        return pos, i, kept, caplen, odd
    return scan
"""


# The timed scanner (a replay on the files' clock) also stops before a record earlier than
# ``w[0]`` and before a kept record at or after ``w[1]`` (nanoseconds), and leaves the
# latest kept timestamp in ``w[2]``. Whole seconds are compared first (the exact test runs
# only in the bounds' seconds) and the latest record is kept as (seconds, fraction): about
# half the cost of a nanosecond sum per kept record (50 against 90-100 ms of CPU per 1M).
_TIMED = (
    ("limit, lim, maxcap, run):", "limit, lim, maxcap, run, w):"),
    (
        "        unpack = _H\n",
        "        unpack = _H\n        lo, hi, top = w\n"
        + "        lo_s = lo // 1000000000\n        hi_s = hi // 1000000000\n"
        + "        mul = 1000000000 // lim\n        top_s = top_f = -1\n",
    ),
    ("frac, caplen, wire = unpack(buf, pos)", "sec, frac, caplen, wire = unpack(buf, pos)"),
    (
        "                    break\n                p = buf[o:nxt]",
        "                    break\n"
        "                if sec <= lo_s and sec * 1000000000 + frac * mul < lo:\n"
        "                    odd = True\n"
        "                    break\n"
        "                p = buf[o:nxt]",
    ),
    (
        "                        odd = True\n                        break\n",
        "                        odd = True\n                        break\n"
        "                    if sec >= hi_s and sec * 1000000000 + frac * mul >= hi:\n"
        "                        odd = True\n                        break\n"
        "                    if sec > top_s or sec == top_s and frac > top_f:\n"
        "                        top_s = sec\n                        top_f = frac\n",
    ),
    (
        "        return pos, i, kept, caplen, odd",
        "        if top_s >= 0:\n            w[2] = max(top, top_s * 1000000000 + top_f * mul)\n"
        + "        return pos, i, kept, caplen, odd",
    ),
)


def generate_scanner_source(insns: Sequence[Instruction], *, timed: bool = False) -> str:
    """Return Python source of the record scanner for the program (see :func:`make_scanner`)."""
    gen = _Gen(insns, scan=True)
    entry = gen.block(0, 1, 0, 0)
    out = ["def _make(_W, _H):"]
    for start in sorted(gen.funcs):
        out.append(f"    def _b{start}({gen.args}):")
        out += ["        " + s for s in gen.funcs[start]]
    init = " = ".join(["a", "x", *(f"m{k}" for k in gen.mem)])
    out.append(_SCAN_HEAD.replace("{init}", init).rstrip("\n"))
    out += [" " * 24 + s for s in entry]
    out.append(_SCAN_TAIL.rstrip("\n"))
    source = "\n".join(out) + "\n"
    for old, new in _TIMED if timed else ():
        assert old in source, old  # the templates and this table change together
        source = source.replace(old, new)
    return source


def make_scanner(insns: Sequence[Instruction], *, timed: bool = False) -> Scanner:
    """Compile ``insns`` to a loop over little-endian classic pcap records in a buffer.

    ``scan(buf, pos, end, todo, limit, lim, maxcap, run)`` walks at most ``todo`` records
    of ``buf[:end]`` from ``pos`` and runs the program inline on each record's captured
    bytes (one slice each), with the VM's verdicts. It stops before a record not wholly in
    the buffer or longer than ``maxcap``, and before a kept record whose verdict is below
    its captured length, whose captured length exceeds ``limit``, whose wire length is
    below its captured length or whose sub-second field is ``>= lim``. Each stretch of
    consecutive kept records is passed to ``run`` as one bytes slice. Returns ``(pos,
    records done, kept, captured length of the last header read, stopped at an odd kept
    record)``.

    ``timed`` adds a last argument ``w``, a list ``[lo, hi, top]`` of nanosecond times: the
    scan also stops before any record earlier than ``lo`` and before a kept record at or
    after ``hi`` (both as odd records), and sets ``w[2]`` to the latest kept timestamp if
    above ``top``.
    """
    source = generate_scanner_source(insns, timed=timed)
    namespace: dict[str, object] = {"struct": struct}
    exec(compile(source, "<bpf-scanner>", "exec"), namespace)
    make = namespace["_make"]
    fn: Scanner = make(  # type: ignore[operator]
        struct.Struct(">I").unpack_from, (_HEADER4 if timed else _HEADER3).unpack_from
    )
    return fn

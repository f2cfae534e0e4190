"""Compile a BPF program to a Python function (generated source) for fast replay.

The program is expanded into straight-line nested ``if``s: blocks reached from several
places are copied (inlined) while a size budget lasts, and only then become helper
functions. Scratch words are local variables, 16-bit loads are two byte indexings, and a
static upper bound on A and X drops the 32-bit wrap-around masks that cannot matter. A
load outside the frame raises ``IndexError``/``struct.error`` (Python 3.11 ``try`` costs
nothing until it raises), which the entry point turns into 0 (drop): the VM's verdict on
every input.

X is tracked as a constant where the program sets it to one (``ldx #4``), so its loads
index with constants and helper functions get the value; A and the scratch words are set
to 0 first only where they may be read before being written.

The same body also compiles into a *scanner* (:func:`make_scanner`): the record loop of
the raw replay lane over a little-endian classic pcap buffer, with the program inlined in
it, so a record costs a slice but no function call. The slice is the whole record (the
program's offsets are moved past the 16-byte header), so a kept record is appended as it
is. A drop goes straight on to the next record; a keep breaks out of the record loop to
one copy of the checks a kept record needs (the range iterator is re-entered after it),
which keeps the source, and its compile time, small. (Reading the bytes in place as
``buf[b + k]`` was measured slower: each ``b + k`` allocates an int, where ``p[k]``
indexes with a constant.)
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable, Sequence
from typing import NamedTuple

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


def _prefetch(insns: Sequence[Instruction]) -> Instruction | None:
    """Return the first instruction if it is a byte or 16-bit load at a fixed offset.

    Its bytes are unpacked with the record header (a frame too short for them is dropped
    before: the load would be outside it), saving the indexing every record pays.
    """
    first = insns[0] if insns else None
    if first is not None and first.code in (op.LD | op.H | op.ABS, op.LD | op.B | op.ABS):
        return first if first.k < 1024 else None
    return None


def _pre_size(ins: Instruction) -> int:
    return 2 if ins.code & 0x18 == op.H else 1


def _mem_live(insns: Sequence[Instruction]) -> list[frozenset[int]]:
    """For each pc, the scratch words the code from there may read before writing them."""
    live: list[frozenset[int]] = [frozenset()] * (len(insns) + 1)
    for pc in range(len(insns) - 1, -1, -1):
        ins = insns[pc]
        got = frozenset().union(*(live[t] for t in _targets(pc, ins)))
        if ins.code in (op.ST, op.STX):
            got = got - {ins.k}
        elif ins.code in (op.LD | op.MEM, op.LDX | op.MEM):
            got = got | {ins.k}
        live[pc] = got
    return live


class _Path(NamedTuple):
    """What the generator knows at a point of an inlined path."""

    ba: int  # upper bound of A
    bx: int  # upper bound of X
    cx: int | None  # X when it is a known constant: no variable holds it then
    aset: bool  # A was assigned (else it holds its initial 0)
    mset: frozenset[int]  # scratch words assigned


class _Gen:
    def __init__(self, insns: Sequence[Instruction], scan: bool = False) -> None:
        self.insns = insns
        # Scanner: the frame is the record (``p`` starts with the 16-byte header), and a
        # verdict in the inlined body keeps or drops the record where it is reached
        # (helper functions still return theirs).
        self.scan = scan
        self.base = 16 if scan else 0
        self.in_func = False
        self.keeps: set[int] = set()  # constant verdicts kept in the scanner's body
        self.tables: set[str] = set()  # lookup tables the code indexes
        # Scanner: the bytes of the first instruction's load come with the record header
        # (one struct call, no indexing) as e0 (and e1): see _prefetch().
        self.pre = _prefetch(insns) if scan else None
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

    def entry(self) -> tuple[list[str], list[str]]:
        """Return (initialisations, body) of the program from pc 0.

        X starts as the constant 0 and A and the scratch words are only set to 0 where
        they may be read before being written: a register never read costs nothing.
        """
        mem0 = _mem_live(self.insns)[0]
        init = (["a"] if self.live[0] else []) + [f"m{k}" for k in self.mem if k in mem0]
        path = _Path(0, 0, 0, self.live[0], mem0)
        body = self.block(0, 1, path)
        return ([" = ".join(init) + " = 0"] if init else []), body

    def at(self, ins: Instruction, d: int, path: _Path) -> str:
        """Return the byte ``d`` of an ABS/IND load (or ``ldxb 4*([k]&0xf)``)."""
        if ins is self.pre:
            return f"e{d}"
        k = ins.k + d + self.base
        if ins.code & 0xE0 != op.IND:
            return f"p[{k}]"
        return f"p[x + {k}]" if path.cx is None else f"p[{path.cx + k}]"

    def load(self, ins: Instruction, path: _Path) -> tuple[str, int]:
        """Python expression for an ABS/IND load, and the bound of its value."""
        size = ins.code & 0x18
        if size == op.B:
            return self.at(ins, 0, path), 0xFF
        if size == op.H:
            return f"({self.at(ins, 0, path)} * 256 + {self.at(ins, 1, path)})", 0xFFFF
        k = ins.k + self.base
        if ins.code & 0xE0 != op.IND:
            return f"_W(p, {k})[0]", _M32
        return (f"_W(p, x + {k})[0]" if path.cx is None else f"_W(p, {path.cx + k})[0]"), _M32

    def xv(self, path: _Path) -> str:
        return "x" if path.cx is None else str(path.cx)

    def length(self) -> str:
        return "len(p) - 16" if self.scan else "len(p)"

    def fused(self, pc: int, path: _Path) -> tuple[str, int, int] | None:
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
        expr, bound = self.load(ins, path)
        if test == op.JEQ and j.k > bound:
            return None  # never equal, but the load must still be bounds-checked
        lo, hi = self.at(ins, 1, path), self.at(ins, 0, path)
        if size == op.H and test == op.JEQ:
            return f"{lo} == {j.k & 0xFF} and {hi} == {j.k >> 8}", t, f
        if size == op.H and test == op.JSET and j.k & 0xFF:
            # Bytes tested apart, low byte first (so an out-of-bounds load still raises):
            # "p[21] or p[20] & 31" for IPv4's fragment test, no 16-bit value built.
            low = self.masked(lo, j.k, 0xFF)
            high = j.k >> 8 & 0xFF
            if not high:
                return low, t, f
            return f"{low} or {self.masked(hi, high, 0xFF)}", t, f
        if test == op.JSET:
            return self.masked(expr, j.k, bound), t, f
        return _CMP[test].format(a=expr, v=j.k), t, f

    def masked(self, expr: str, m: int, bound: int) -> str:
        """Return ``expr & m`` for a value at most ``bound``: for a byte, a table lookup.

        Python 3.11 specialises indexing a tuple with an int but not ``&``: ``_and31[p[36]]``
        is cheaper than ``p[36] & 31``.
        """
        if bound > 0xFF:
            return f"{expr} & {m}"
        m &= 0xFF
        if m == 0xFF:
            return expr
        if not m:
            return f"{expr} & 0"  # still evaluated: a load outside the frame raises
        self.tables.add(f"_and{m} = tuple(b & {m} for b in range(256))")
        return f"_and{m}[{expr}]"

    def preamble(self) -> list[str]:
        """Return the lines defining the lookup tables the code uses (in ``_make``)."""
        return sorted(self.tables)

    def ret(self, expr: str) -> list[str]:
        """Lines delivering the verdict ``expr``.

        In the scanner's body a drop moves on to the next record at once; a keep leaves
        the record loop with ``v``, the verdict capped at the writer's snap length, for the
        code after it to check and append the record (see ``_SCAN_HEAD``).
        """
        if not self.scan or self.in_func:
            return [f"return {expr}"]
        drop = ["pos = nxt", "continue"]
        if expr.isdigit():
            k = int(expr)
            if not k:
                return drop
            self.keeps.add(k)
            return [f"v = c{k}", "break"]  # c{k} = min(limit, k), set once per call
        cap = ["    if v > limit:", "        v = limit"]
        return [f"v = {expr}", "if v:", *cap, "    break", *drop]

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

    def call_args(self, path: _Path) -> str:
        """Return a helper's arguments: registers unset on this path hold their first 0."""
        mem = (f"m{k}" if k in path.mset else "0" for k in self.mem)
        return ", ".join(["p", "a" if path.aset else "0", self.xv(path), *mem])

    def goto(self, target: int, depth: int, path: _Path) -> list[str]:
        ins = self.insns[target]
        if ins.code == op.RET | op.K:
            return self.ret(str(ins.k))
        if depth < _MAX_DEPTH and (
            self.preds[target] == 1
            or target not in self.inlined  # the first (hot: true branches) path copies it
            or (self.tree_size(target) <= _INLINE_SIZE and self.lines < _INLINE_BUDGET)
        ):
            self.inlined.add(target)
            return self.block(target, depth, path)
        if target not in self.funcs:
            self.funcs[target] = []  # reserve first: recursion may reach it again
            outer, self.in_func = self.in_func, True
            every = frozenset(self.mem)
            self.funcs[target] = self.block(target, 1, _Path(_M32, _M32, None, True, every))
            self.in_func = outer
        return self.ret(f"_b{target}({self.call_args(path)})")

    def block(self, pc: int, depth: int, path: _Path) -> list[str]:
        lines: list[str] = []
        while True:
            ins = self.insns[pc]
            code, k = ins.code, ins.k
            cls = code & 0x07
            self.lines += 1
            if cls == op.RET:
                return lines + self.ret(str(k) if code == op.RET | op.K else "a")
            if code == op.JMP | op.JA:
                return lines + self.goto(pc + 1 + k, depth, path)
            if cls == op.JMP:
                v = self.xv(path) if code & op.X else str(k)
                if code & 0xF0 == op.JSET and v != "x":
                    cond = self.masked("a", int(v), path.ba)
                else:
                    cond = _CMP[code & 0xF0].format(a="a", v=v)
                t, f = pc + 1 + ins.jt, pc + 1 + ins.jf
                if t == f:
                    return lines + self.goto(t, depth, path)
                body_t = self.goto(t, depth + 1, path)
                body_f = self.goto(f, depth, path)
                lines.append(f"if {cond}:")
                lines += ["    " + s for s in body_t]
                return lines + body_f
            fused = self.fused(pc, path)
            if fused is not None:
                cond, t, f = fused
                self.lines += 1
                body_t = self.goto(t, depth + 1, path)
                body_f = self.goto(f, depth, path)
                lines.append(f"if {cond}:")
                lines += ["    " + s for s in body_t]
                return lines + body_f
            got, path = self.straight(ins, path)
            lines += got
            pc += 1
            if self.preds[pc] > 1:
                return lines + self.goto(pc, depth, path)

    def straight(self, ins: Instruction, path: _Path) -> tuple[list[str], _Path]:
        """Python lines for a non-jump, non-ret instruction; what is known after it."""
        code, k = ins.code, ins.k
        cls = code & 0x07
        if cls == op.LD:
            mode = code & 0xE0
            if mode in (op.ABS, op.IND):
                expr, bound = self.load(ins, path)
                return [f"a = {expr}"], path._replace(ba=bound, aset=True)
            if mode == op.IMM:
                return [f"a = {k}"], path._replace(ba=k, aset=True)
            if mode == op.MEM:
                return [f"a = m{k}"], path._replace(ba=_M32, aset=True)
            return [f"a = {self.length()}"], path._replace(ba=_M32, aset=True)
        if cls == op.LDX:
            mode = code & 0xE0
            if mode == op.IMM:
                return [], path._replace(bx=k, cx=k)  # a constant X needs no variable
            if mode == op.MEM:
                return [f"x = m{k}"], path._replace(bx=_M32, cx=None)
            if mode == op.MSH:
                self.tables.add("_msh = tuple((b & 15) << 2 for b in range(256))")
                return [f"x = _msh[p[{k + self.base}]]"], path._replace(bx=60, cx=None)
            return [f"x = {self.length()}"], path._replace(bx=_M32, cx=None)
        if cls == op.ST:
            return [f"m{k} = a"], path._replace(mset=path.mset | {k})
        if cls == op.STX:
            return [f"m{k} = {self.xv(path)}"], path._replace(mset=path.mset | {k})
        if cls == op.ALU:
            return self.alu(code, k, path)
        if code == op.MISC | op.MISC_TAX:
            return ["x = a"], path._replace(bx=path.ba, cx=None)
        if code == op.MISC | op.MISC_TXA:
            return [f"a = {self.xv(path)}"], path._replace(ba=path.bx, aset=True)
        raise ValueError(f"bad opcode {code:#x}")

    def alu(self, code: int, k: int, path: _Path) -> tuple[list[str], _Path]:
        ba, bx = path.ba, path.bx
        if code == op.ALU | 0x80:
            return ["a = -a & 0xFFFFFFFF"], path._replace(ba=_M32)
        o = code & 0xF0
        if o not in op.ALU_OPS:
            raise ValueError(f"bad opcode {code:#x}")
        use_x = bool(code & op.X)
        if use_x and path.cx is not None:
            # A known X is a constant operand (as if the instruction used K)...
            use_x, k = False, path.cx
            if o in (op.DIV, op.MOD) and not k:
                return self.ret("0"), path  # ...division by X = 0 drops the packet
            if o in (op.LSH, op.RSH) and k >= 32:
                return ["a = 0"], path._replace(ba=0)  # ...and a shift by X >= 32 gives 0
        v, bv = ("x", bx) if use_x else (str(k), k)
        pre: list[str] = []
        if o in (op.DIV, op.MOD) and use_x:
            pre = ["if x == 0:", *("    " + s for s in self.ret("0"))]
        if o == op.ADD:
            bound = ba + bv
            expr = f"a + {v}"
        elif o == op.SUB:
            bound, expr = _M32 + 1, f"a - {v}"
        elif o == op.MUL:
            bound, expr = ba * bv, f"a * {v}"
        elif o == op.DIV:
            return [*pre, f"a = a // {v}"], path
        elif o == op.MOD:
            return [*pre, f"a = a % {v}"], path._replace(ba=min(ba, max(bv - 1, 0)))
        elif o == op.AND:
            expr = "a & x" if use_x else self.masked("a", k, ba)
            return [f"a = {expr}"], path._replace(ba=min(ba, bv))
        elif o == op.OR:
            return [f"a = a | {v}"], path._replace(ba=(1 << max(ba, bv).bit_length()) - 1)
        elif o == op.XOR:
            return [f"a = a ^ {v}"], path._replace(ba=(1 << max(ba, bv).bit_length()) - 1)
        elif o == op.RSH:
            if use_x:
                return ["a = a >> x if x < 32 else 0"], path
            return [f"a = a >> {k}"], path._replace(ba=ba >> k)
        else:  # LSH
            if use_x:
                return ["a = (a << x) & 0xFFFFFFFF if x < 32 else 0"], path._replace(ba=_M32)
            bound, expr = ba << k, f"a * {1 << k}"  # a specialised operation, unlike <<
        if bound > _M32:
            return [*pre, f"a = ({expr}) & 0xFFFFFFFF"], path._replace(ba=_M32)
        return [*pre, f"a = {expr}"], path._replace(ba=bound)


def generate_source(insns: Sequence[Instruction], name: str = "bpf_filter") -> str:
    """Return Python source defining ``name(p) -> int`` equivalent to the program."""
    gen = _Gen(insns)
    init, entry = gen.entry()
    out = ["def _make(_W):", *("    " + s for s in gen.preamble())]
    for start in sorted(gen.funcs):
        out.append(f"    def _b{start}({gen.args}):")
        out += ["        " + s for s in gen.funcs[start]]
    out.append(f"    def {name}(p):")
    out += ["        " + s for s in init]
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


#: ``scan(buf, pos, end, todo, limit, lim, maxcap, out)``, timed: ``..., out, w)`` (see
#: :func:`make_scanner`).
Scanner = Callable[..., tuple[int, int, int, int, bool]]
# A little-endian classic pcap record header without its seconds field, which the scanner
# never looks at (one int object fewer per record).
_HEADER3 = struct.Struct("<4xIII")
_HEADER4 = struct.Struct("<IIII")  # the timed scanner's: with the seconds

# The record loop of PcapReader.read_filtered_raw. The program's body goes in the inner
# ``try`` (at 24 spaces): a dropped record costs nothing more, a kept one breaks out of the
# ``for`` to the one copy of the checks that say it can go out as stored, and the loop's
# iterator (over record indices made once: no int made per record) is re-entered after
# it. Header unpacking past the buffer's end raises struct.error, other stops _StopScan.
_SCAN_HEAD = """\
    def scan(buf, pos, end, todo, limit, lim, maxcap, out{w}):
        unpack = _H
        n0 = len(out)
{prologue}
        caplen = i = v = 0
        odd = False
        it = iter(_IDX[:todo] if todo <= 8192 else range(todo))
        try:
            while True:
                for i in it:
{header}
                    nxt = pos + caplen + 16
                    if nxt > end or caplen > maxcap:
                        raise _StopScan
{before}
                    p = buf[pos:nxt]
{init}
                    try:
"""
_SCAN_TAIL = """\
                    except (IndexError, struct.error):
                        pass  # a load outside the frame: the VM drops the packet
                    pos = nxt
                else:
                    i = todo
                    break
                if caplen > v or wire < caplen or frac >= lim:
                    odd = True
                    break
{keep}
                out.append(p)
                pos = nxt
        except (struct.error, _StopScan):
            pass
{epilogue}
        return pos, i, len(out) - n0, caplen, odd
    return scan
"""


class _StopScan(Exception):  # noqa: N818 - not an error: the loop's way out
    """The scanner stops before the current record (rare: once per call at most)."""


# The timed scanner (a replay on the files' clock) also stops before a record earlier than
# ``w[0]`` and before a kept record at or after ``w[1]`` (nanoseconds), and leaves the
# latest kept timestamp in ``w[2]``. Whole seconds are compared first (the exact test runs
# only in the bounds' seconds) and the latest kept record is kept as (seconds, fraction):
# only a kept record later than all before it can reach the horizon, and in a file in time
# order the usual one, a later record of the same second, costs two comparisons before it.
_TIMED_PROLOGUE = """\
        lo, hi, top = w
        lo_s = lo // 1000000000
        hi_s = hi // 1000000000
        mul = 1000000000 // lim
        top_s = top_f = -1
        edge = False  # the latest kept record is in the horizon's second"""
_TIMED_BEFORE = """\
                    if sec <= lo_s and sec * 1000000000 + frac * mul < lo:
                        odd = True
                        raise _StopScan"""
_TIMED_KEEP = """\
                if sec == top_s:
                    if frac > top_f:
                        if edge and sec * 1000000000 + frac * mul >= hi:
                            odd = True
                            break
                        top_f = frac
                elif sec > top_s:
                    edge = sec >= hi_s
                    if edge and sec * 1000000000 + frac * mul >= hi:
                        odd = True
                        break
                    top_s = sec
                    top_f = frac"""
_TIMED_EPILOGUE = """\
        if top_s >= 0:
            w[2] = max(top, top_s * 1000000000 + top_f * mul)"""


def generate_scanner_source(insns: Sequence[Instruction], *, timed: bool = False) -> str:
    """Return Python source of the record scanner for the program (see :func:`make_scanner`)."""
    gen = _Gen(insns, scan=True)
    init, entry = gen.entry()
    out = ["def _make(_W, _H, _H0, _StopScan, _IDX):", *("    " + s for s in gen.preamble())]
    for start in sorted(gen.funcs):
        out.append(f"    def _b{start}({gen.args}):")
        out += ["        " + s for s in gen.funcs[start]]
    # A kept record's verdict, capped at the writer's snap length: one test for both.
    prologue = [f"        c{k} = min(limit, {k})" for k in sorted(gen.keeps)]
    fields = "sec, frac, caplen, wire" if timed else "frac, caplen, wire"
    header = [f"{fields} = unpack(buf, pos)"]
    if gen.pre is not None:
        size = _pre_size(gen.pre)
        pre = "e0, e1" if size == 2 else "e0"
        # A record too short for the prefetched bytes, and only such a record, may end
        # within them at the buffer's end: unpacked again without them, then dropped
        # below (or stopped at, if it runs past ``end``).
        header = ["try:", f"    {fields}, {pre} = unpack(buf, pos)", "except struct.error:"]
        header += [f"    {fields} = _H0(buf, pos)", f"    {pre} = {'0, 0' if size == 2 else '0'}"]
        entry = [f"if caplen < {gen.pre.k + size}:", "    pos = nxt", "    continue", *entry]
    head = _SCAN_HEAD.format(
        w=", w" if timed else "",
        prologue="\n".join([*prologue, *([_TIMED_PROLOGUE] if timed else [])]),
        header="\n".join(" " * 20 + s for s in header),
        before=_TIMED_BEFORE if timed else "",
        init="\n".join(" " * 20 + s for s in init),
    )
    out += [line for line in head.splitlines() if line.strip()]
    out += [" " * 24 + line for line in entry]
    tail = _SCAN_TAIL.format(
        keep=_TIMED_KEEP if timed else "", epilogue=_TIMED_EPILOGUE if timed else ""
    )
    out += [line for line in tail.splitlines() if line.strip()]
    return "\n".join(out) + "\n"


@functools.cache
def _indices() -> tuple[int, ...]:
    """Return the record indices a scan counts with (ints made once, not per record)."""
    return tuple(range(8192))


def make_scanner(insns: Sequence[Instruction], *, timed: bool = False) -> Scanner:
    """Compile ``insns`` to a loop over little-endian classic pcap records in a buffer.

    ``scan(buf, pos, end, todo, limit, lim, maxcap, out)`` walks at most ``todo`` records
    of ``buf[:end]`` from ``pos`` and runs the program inline on each record's captured
    bytes (one slice of the record each), with the VM's verdicts. It stops before a record
    not wholly in the buffer or longer than ``maxcap``, and before a kept record whose
    verdict is below its captured length, whose captured length exceeds ``limit``, whose
    wire length is below its captured length or whose sub-second field is ``>= lim``.
    Each kept record (header and captured bytes, as stored) is appended to the list
    ``out``. Returns ``(pos, records done, kept, captured length of the last header read,
    stopped at an odd kept record)``.

    ``timed`` adds a last argument ``w``, a list ``[lo, hi, top]`` of nanosecond times: the
    scan also stops before any record earlier than ``lo`` and before a kept record at or
    after ``hi`` (both as odd records), and sets ``w[2]`` to the latest kept timestamp if
    above ``top``.
    """
    return _load_scanner(generate_scanner_source(insns, timed=timed), insns, timed=timed)


def _load_scanner(source: str, insns: Sequence[Instruction], *, timed: bool) -> Scanner:
    """Compile scanner ``source`` (generated for ``insns``) and bind what it uses."""
    namespace: dict[str, object] = {"struct": struct}
    exec(compile(source, "<bpf-scanner>", "exec"), namespace)
    make = namespace["_make"]
    plain = _HEADER4 if timed else _HEADER3
    header = plain
    pre = _prefetch(insns)
    if pre is not None:  # the header, then the first load's bytes
        header = struct.Struct(f"{plain.format}{pre.k}x{'BB' if _pre_size(pre) == 2 else 'B'}")
    unpack = struct.Struct(">I").unpack_from
    fn: Scanner = make(unpack, header.unpack_from, plain.unpack_from, _StopScan, _indices())  # type: ignore[operator]
    return fn

"""Compile PacketCapture filter rules to one optimized classic BPF program.

Pipeline: rules -> a *plan* (for each address family, what each upper-layer protocol
needs: accept, or a port test against a set of sorted, merged ranges) -> a DAG of
instructions built bottom-up with hash-consing (so identical tails exist once) -> a layout
(reverse post-order, fall-through preferred, over-long jumps fixed by duplicating ``ret``s)
-> labels resolved by the assembler.

Frame layout decisions:

* untagged Ethernet (and SLL, SLL2, raw IP) use absolute loads, so the common path is as
  short as libpcap's;
* 802.1Q/802.1ad-tagged frames put the tag length in X and run X-relative copies of the
  protocol dispatch;
* every port test reads ``[x + L3]`` (source) and ``[x + L3 + 2]`` (destination) where
  X is the L4 offset from the network header, so one port block serves IPv4 (X from the
  IHL), IPv6, tagged frames and extension-header walks alike;
* IPv6 extension headers are walked with X as the cursor and ``M[0]`` as a temporary,
  unrolled four times (classic BPF has no backward jumps).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Final

from packetcapture.bpf import _insn as op
from packetcapture.bpf._asm import AsmItem, GoTo, JumpTo, Label, assemble
from packetcapture.bpf._insn import Instruction, JumpTest, decode
from packetcapture.bpf._program import DEFAULT_SNAPLEN, BpfProgram
from packetcapture.errors import FilterCompileError
from packetcapture.model import PacketCaptureRule, PortRange

__all__ = [
    "LINKTYPES",
    "PROTOCOL_NUMBERS",
    "Plan",
    "compile_filters",
    "plan_rules",
]

#: Protocol names PacketCapture accepts and their numbers.
PROTOCOL_NUMBERS: Final = {
    "TCP": 6,
    "UDP": 17,
    "ICMP": 1,
    "ICMPv6": 58,
    "SCTP": 132,
    "UDPLite": 136,
}
_FOLDED = {k.lower(): v for k, v in PROTOCOL_NUMBERS.items()}
#: Protocols whose first four L4 bytes are source and destination ports.
PORT_PROTOCOLS: Final = frozenset({6, 17, 132, 136})
#: What "ports without a protocol" means.
PORTS_ONLY_PROTOCOLS: Final = (6, 17, 132)
#: IPv6 extension headers walked: hop-by-hop, routing, destination options; and fragment.
IPV6_EXT_GENERIC: Final = (0, 43, 60)
IPV6_FRAGMENT: Final = 44
IPV6_MAX_EXT: Final = 4
VLAN_TPIDS: Final = (0x8100, 0x88A8)

#: Supported link types: name and network-header offset. 12 and 14 are raw-IP aliases.
LINKTYPES: Final = {
    1: ("Ethernet", 14),
    113: ("Linux SLL", 16),
    276: ("Linux SLL2", 20),
    101: ("raw IP", 0),
    12: ("raw IP", 0),
    14: ("raw IP", 0),
}

Ranges = tuple[tuple[int, int], ...]
#: Per family: protocol number -> None (accept) or the port ranges to test.
FamilyPlan = dict[int, Ranges | None]


class Plan:
    """What the filters mean: per-family protocol tables, or ``everything``."""

    def __init__(self, everything: bool, v4: FamilyPlan, v6: FamilyPlan) -> None:
        self.everything = everything
        self.v4 = v4
        self.v6 = v6

    def __repr__(self) -> str:
        return f"Plan(everything={self.everything}, v4={self.v4}, v6={self.v6})"


def protocol_number(protocol: int | str) -> int:
    """Return the protocol number of a name (case-insensitive) or number."""
    if isinstance(protocol, bool):
        raise FilterCompileError(f"invalid protocol {protocol!r}")
    if isinstance(protocol, int):
        if not 1 <= protocol <= 255:
            raise FilterCompileError(f"protocol number {protocol} is not in 1-255")
        return protocol
    if protocol.isdigit():
        return protocol_number(int(protocol))
    try:
        return _FOLDED[protocol.lower()]
    except KeyError:
        raise FilterCompileError(f"unknown protocol {protocol!r}") from None


def families(protocol: int | str) -> tuple[int | None, int | None]:
    """Return the (IPv4 protocol, IPv6 next header) a rule protocol matches."""
    n = protocol_number(protocol)
    if isinstance(protocol, str) and not protocol.isdigit():
        if protocol.lower() == "icmp":
            return (1, None)
        if protocol.lower() == "icmpv6":
            return (None, 58)
    return (n, n)


def merge_ranges(ports: Iterable[PortRange | tuple[int, int]]) -> Ranges:
    """Sort and merge port ranges (adjacent ranges join)."""
    pairs = []
    for p in ports:
        lo, hi = (p.min, p.max) if isinstance(p, PortRange) else p
        if not 0 <= lo <= hi <= 0xFFFF:
            raise FilterCompileError(f"invalid port range {lo}:{hi}")
        pairs.append((lo, hi))
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(pairs):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return tuple(out)


def plan_rules(rules: Sequence[PacketCaptureRule]) -> Plan:
    """Reduce rules to per-family protocol tables (the semantics in docs/bpf.md)."""
    acc: dict[str, dict[int, list[tuple[int, int]] | None]] = {"v4": {}, "v6": {}}
    if not rules:
        return Plan(True, {}, {})
    for rule in rules:
        if rule.protocol is None and not rule.ports:
            return Plan(True, {}, {})
        ranges = merge_ranges(rule.ports)
        if rule.protocol is None:
            targets = [("v4", p) for p in PORTS_ONLY_PROTOCOLS]
            targets += [("v6", p) for p in PORTS_ONLY_PROTOCOLS]
        else:
            v4, v6 = families(rule.protocol)
            targets = [(f, p) for f, p in (("v4", v4), ("v6", v6)) if p is not None]
        for fam, p in targets:
            table = acc[fam]
            if not ranges:
                table[p] = None
            elif p in PORT_PROTOCOLS:
                if p not in table:
                    table[p] = list(ranges)
                else:
                    have = table[p]
                    if have is not None:
                        have.extend(ranges)
            # ports on a protocol without ports can never match: nothing to add

    def done(t: dict[int, list[tuple[int, int]] | None]) -> FamilyPlan:
        return {p: (None if r is None else merge_ranges(r)) for p, r in t.items()}

    return Plan(False, done(acc["v4"]), done(acc["v6"]))


# ---------------------------------------------------------------------------------------
# The instruction DAG


class _Node:
    """One instruction with its successors; interned, so equal nodes are identical."""

    __slots__ = ("code", "f", "k", "kind", "t")

    def __init__(self, kind: str, code: int, k: int, t: _Node | None, f: _Node | None):
        self.kind = kind  # "op" (t = next), "br" (t/f targets) or "ret"
        self.code = code
        self.k = k
        self.t = t
        self.f = f

    def succ(self) -> tuple[_Node, ...]:
        if self.kind == "op":
            assert self.t is not None
            return (self.t,)
        if self.kind == "br":
            assert self.t is not None and self.f is not None
            return (self.t, self.f)
        return ()


class _Builder:
    """Hash-consing node factory: building bottom-up merges identical tails."""

    def __init__(self) -> None:
        self._table: dict[tuple[str, int, int, int, int], _Node] = {}

    def _get(self, kind: str, code: int, k: int, t: _Node | None, f: _Node | None) -> _Node:
        key = (kind, code, k, id(t), id(f))
        node = self._table.get(key)
        if node is None:
            node = self._table[key] = _Node(kind, code, k, t, f)
        return node

    def ret(self, k: int) -> _Node:
        return self._get("ret", op.RET | op.K, k, None, None)

    def op(self, code: int, k: int, nxt: _Node) -> _Node:
        if nxt.kind == "ret" and (nxt.k == 0 or code not in _MAY_FAIL):
            # Nothing after it reads the result; a failing load would reject anyway.
            return nxt
        return self._get("op", code, k, nxt, None)

    def ops(self, seq: Sequence[tuple[int, int]], nxt: _Node) -> _Node:
        for code, k in reversed(seq):
            nxt = self.op(code, k, nxt)
        return nxt

    def br(self, test: int, k: int, t: _Node, f: _Node) -> _Node:
        if t is f:
            return t
        return self._get("br", op.JMP | test | op.K, k, t, f)

    def dispatch(self, cases: Sequence[tuple[int, _Node]], default: _Node) -> _Node:
        """Return a jeq chain over the value in A, tested in the given order."""
        node = default
        for value, target in reversed(cases):
            if target is not default:  # a test that leads where failing it does is waste
                node = self.br(op.JEQ, value, target, node)
        return node


# Shorthand opcodes.
_LDB, _LDH = op.LD | op.B | op.ABS, op.LD | op.H | op.ABS
_LDBX, _LDHX = op.LD | op.B | op.IND, op.LD | op.H | op.IND
_MSH, _LDXI, _LDXM = op.LDX | op.B | op.MSH, op.LDX | op.IMM, op.LDX | op.MEM
_ANDK, _LSHK, _ADDK = op.ALU | op.ALUOp.AND, op.ALU | op.ALUOp.LSH, op.ALU | op.ALUOp.ADD
_ADDX, _TAX, _TXA = op.ALU | op.ALUOp.ADD | op.X, op.MISC | op.MISC_TAX, op.MISC | op.MISC_TXA
_LDI, _ST = op.LD | op.IMM, op.ST
_MAY_FAIL = frozenset({_LDB, _LDH, _LDBX, _LDHX, _MSH, op.LD | op.ABS, op.LD | op.IND})

# Order protocols are tested in: common ones first keeps the usual path short.
_PROTO_ORDER = {6: 0, 17: 1, 1: 2, 58: 3, 132: 4, 136: 5}


def _proto_cases(table: dict[int, _Node], last: Iterable[int] = ()) -> list[tuple[int, _Node]]:
    tail = set(last)
    keys = sorted(table, key=lambda p: (p in tail, _PROTO_ORDER.get(p, 6), p))
    return [(p, table[p]) for p in keys]


# ---------------------------------------------------------------------------------------
# Range tests: a decision tree over A (16 bits) with "in set" and "not in set" exits.

_Plan = tuple[Any, ...]  # nested plan tuples, realised into nodes later


class _RangeTree:
    """Optimal (shortest worst path, then fewest instructions) range-membership trees."""

    _DP_LIMIT = 12

    def __init__(self, ranges: Ranges) -> None:
        self.r = ranges
        self.memo: dict[tuple[int, int, bool, bool], tuple[int, int, _Plan]] = {}

    def best(self) -> tuple[int, int, _Plan]:
        r = self.r
        if not r:
            return (0, 0, ("out",))
        return self.solve(0, len(r) - 1, r[0][0] == 0, r[-1][1] == 0xFFFF)

    def solve(self, i: int, j: int, lt: bool, ht: bool) -> tuple[int, int, _Plan]:
        key = (i, j, lt, ht)
        if key in self.memo:
            return self.memo[key]
        r = self.r
        cands: list[tuple[int, int, _Plan]] = []
        if i == j:
            a, b = r[i]
            if lt and ht:
                cands.append((0, 0, ("in",)))
            elif lt:
                cands.append((1, 1, ("br", op.JGT, b, ("out",), ("in",))))
            elif ht:
                cands.append((1, 1, ("br", op.JGE, a, ("in",), ("out",))))
            elif a == b:
                cands.append((1, 1, ("br", op.JEQ, a, ("in",), ("out",))))
            else:
                inner = ("br", op.JGT, b, ("out",), ("in",))
                cands.append((2, 2, ("br", op.JGE, a, inner, ("out",))))
        else:
            big = j - i + 1 > self._DP_LIMIT
            if r[i][0] == r[i][1] and not big:
                p, s, pl = self.solve(i + 1, j, False, ht)
                cands.append((p + 1, s + 1, ("br", op.JEQ, r[i][0], ("in",), pl)))
            if r[j][0] == r[j][1] and not big:
                p, s, pl = self.solve(i, j - 1, lt, False)
                cands.append((p + 1, s + 1, ("br", op.JEQ, r[j][0], ("in",), pl)))
            splits = [(i + j) // 2] if big else range(i, j)
            for k in splits:
                p1, s1, right = self.solve(k + 1, j, False, ht)
                p2, s2, left = self.solve(i, k, lt, True)
                cands.append((1 + max(p1, p2), 1 + s1 + s2, ("br", op.JGT, r[k][1], right, left)))
                if not big:
                    p1, s1, right = self.solve(k + 1, j, True, ht)
                    p2, s2, left = self.solve(i, k, lt, False)
                    cands.append(
                        (1 + max(p1, p2), 1 + s1 + s2, ("br", op.JGE, r[k + 1][0], right, left))
                    )
        best = min(cands, key=lambda c: (c[0], c[1]))
        self.memo[key] = best
        return best


def _realise(b: _Builder, plan: _Plan, yes: _Node, no: _Node) -> _Node:
    if plan[0] == "in":
        return yes
    if plan[0] == "out":
        return no
    _, test, k, t, f = plan
    return b.br(test, k, _realise(b, t, yes, no), _realise(b, f, yes, no))


# ---------------------------------------------------------------------------------------
# Program construction


class _Gen:
    def __init__(self, plan: Plan, linktype: int, snaplen: int, vlan: bool, ext: bool) -> None:
        self.b = _Builder()
        self.plan = plan
        self.linktype = linktype
        self.l3 = LINKTYPES[linktype][1]
        self.vlan = vlan and linktype == 1
        self.ext = ext
        self.acc = self.b.ret(snaplen)
        self.rej = self.b.ret(0)
        self.trees: dict[Ranges, _Plan] = {}
        self.blocks: dict[tuple[Ranges, int | None], _Node] = {}

    def tree(self, ranges: Ranges) -> _Plan:
        if ranges not in self.trees:
            self.trees[ranges] = _RangeTree(ranges).best()[2]
        return self.trees[ranges]

    def port_block(self, ranges: Ranges, absolute: int | None = None) -> _Node:
        """Accept if the source or destination port is in ``ranges``.

        With ``absolute`` the ports are at that offset, else at ``x + L3``.
        """
        key = (ranges, absolute)
        if key not in self.blocks:
            b = self.b
            plan = self.tree(ranges)
            if absolute is None:
                code, off = _LDHX, self.l3
            else:
                code, off = _LDH, absolute
            dport = b.op(code, off + 2, _realise(b, plan, self.acc, self.rej))
            self.blocks[key] = b.op(code, off, _realise(b, plan, self.acc, dport))
        return self.blocks[key]

    def block_size(self, ranges: Ranges) -> int:
        return 2 * (1 + _RangeTree(ranges).best()[1])

    # IPv4 -------------------------------------------------------------------------------
    def ipv4(self, tagged: bool) -> _Node:
        b, l3 = self.b, self.l3
        cases: dict[int, _Node] = {}
        for proto, ranges in self.plan.v4.items():
            if ranges is None:
                cases[proto] = self.acc
                continue
            block = self.port_block(ranges)
            if tagged:
                # X holds the tag length: X += 4 * IHL, generically.
                ihl = b.ops([(_LDBX, l3), (_ANDK, 0xF), (_LSHK, 2), (_ADDX, 0), (_TAX, 0)], block)
                frag = b.br(op.JSET, 0x1FFF, self.rej, ihl)
                cases[proto] = b.op(_LDHX, l3 + 6, frag)
            else:
                frag = b.br(op.JSET, 0x1FFF, self.rej, b.op(_MSH, l3, block))
                cases[proto] = b.op(_LDH, l3 + 6, frag)
        if not cases:
            return self.rej
        disp = b.dispatch(_proto_cases(cases), self.rej)
        return b.op(_LDBX if tagged else _LDB, l3 + 9, disp)

    # IPv6 -------------------------------------------------------------------------------
    def final_cases(self) -> dict[int, _Node]:
        """Upper-layer protocol known, X = L4 offset from the network header."""
        return {p: self.acc if r is None else self.port_block(r) for p, r in self.plan.v6.items()}

    def walk(self) -> _Node:
        """Return W(1): A = type of the first extension header, X = its offset.

        Offsets are from the network header. Each step skips one header (M[0] holds the
        new offset while A fetches its next-header byte); after four, or at any other
        value, the final dispatch decides. A non-first fragment decides on its
        next-header byte alone (no ports).
        """
        b, l3 = self.b, self.l3
        final = b.dispatch(_proto_cases(self.final_cases()), self.rej)
        accept_only = {p: self.acc for p, r in self.plan.v6.items() if r is None}
        nonfirst = b.op(_LDBX, l3, b.dispatch(_proto_cases(accept_only), self.rej))
        after = final
        for _step in range(IPV6_MAX_EXT):
            # A = length - 8 (generic) or 0 (first fragment); then X += A + 8, A = next hdr.
            tail = b.ops([(_ADDK, 8), (_ADDX, 0), (_ST, 0), (_LDBX, l3), (_LDXM, 0)], after)
            generic = b.ops([(_LDBX, l3 + 1), (_LSHK, 3)], tail)
            frag = b.ops([(_LDHX, l3 + 2), (_ANDK, 0xFFF8)], b.br(op.JEQ, 0, tail, nonfirst))
            cases = [(e, generic) for e in IPV6_EXT_GENERIC] + [(IPV6_FRAGMENT, frag)]
            after = b.dispatch(cases, final)
        return after

    def ipv6(self, tagged: bool) -> _Node:
        b, l3 = self.b, self.l3
        if not self.plan.v6:
            return self.rej
        if tagged:
            # A = next header, X = tag length + 40, then the X-relative dispatch.
            if self.ext:
                target = self.walk()
            else:
                target = b.dispatch(_proto_cases(self.final_cases()), self.rej)
            return b.ops(
                [(_LDBX, l3 + 6), (_ST, 0), (_TXA, 0), (_ADDK, 40), (_TAX, 0), (op.LD | op.MEM, 0)],
                target,
            )
        cases: dict[int, _Node] = {}
        fast = self.vlan or self.ext
        for proto, ranges in self.plan.v6.items():
            if ranges is None:
                cases[proto] = self.acc
            elif fast and self.block_size(ranges) <= 10:
                cases[proto] = self.port_block(ranges, absolute=l3 + 40)
            else:
                cases[proto] = b.op(_LDXI, 40, self.port_block(ranges))
        last: tuple[int, ...] = ()
        if self.ext:
            walk = b.op(_LDXI, 40, self.walk())
            for e in (*IPV6_EXT_GENERIC, IPV6_FRAGMENT):
                cases[e] = walk
            last = (*IPV6_EXT_GENERIC, IPV6_FRAGMENT)
        disp = b.dispatch(_proto_cases(cases, last=last), self.rej)
        return b.op(_LDB, l3 + 6, disp)

    # Link layer -------------------------------------------------------------------------
    def root(self) -> _Node:
        b = self.b
        v4, v6 = self.ipv4(False), self.ipv6(False)
        if self.linktype in (12, 14, 101):
            disp = b.dispatch([(0x40, v4), (0x60, v6)], self.rej)
            if disp is self.rej:
                return disp
            return b.ops([(_LDB, 0), (_ANDK, 0xF0)], disp)
        cases = [(0x0800, v4), (0x86DD, v6)]
        if self.vlan:
            # X = bytes of tags (4 or 8), then one X-relative dispatch on the inner type.
            inner = b.dispatch([(0x0800, self.ipv4(True)), (0x86DD, self.ipv6(True))], self.rej)
            if inner is not self.rej:
                t2 = b.ops([(_LDH, 20), (_LDXI, 8)], inner)
                t1 = b.op(
                    _LDH, 16, b.dispatch([(t, t2) for t in VLAN_TPIDS], b.op(_LDXI, 4, inner))
                )
                cases += [(t, t1) for t in VLAN_TPIDS]
        disp = b.dispatch(cases, self.rej)
        if disp is self.rej:
            return disp
        off = {1: 12, 113: 14, 276: 0}[self.linktype]
        return b.op(_LDH, off, disp)


# ---------------------------------------------------------------------------------------
# Layout


class _Slot:
    __slots__ = ("code", "k", "kind", "targets")

    def __init__(self, kind: str, code: int, k: int) -> None:
        self.kind = kind  # "op", "br", "ja", "ret"
        self.code = code
        self.k = k
        self.targets: list[_Slot] = []


def _order(root: _Node) -> list[_Node]:
    """Reverse post-order: every node before its successors."""
    seen: set[int] = set()
    post: list[_Node] = []
    stack: list[tuple[_Node, int]] = [(root, 0)]
    seen.add(id(root))
    while stack:
        node, i = stack.pop()
        succ = node.succ()
        # Depth first along true branches: the first path to reach a shared node falls
        # through into it, so the hot paths (IPv4, then IPv6, untagged) get it.
        kids = succ
        if i < len(kids):
            stack.append((node, i + 1))
            child = kids[i]
            if id(child) not in seen:
                seen.add(id(child))
                stack.append((child, 0))
        else:
            post.append(node)
    return post[::-1]


def _layout(root: _Node) -> list[AsmItem]:
    nodes = _order(root)
    slot = {id(n): _Slot(n.kind, n.code, n.k) for n in nodes}
    seq: list[_Slot] = []
    pending: list[tuple[_Slot, _Node]] = []
    for idx, n in enumerate(nodes):
        s = slot[id(n)]
        seq.append(s)
        if n.kind == "br":
            assert n.t is not None and n.f is not None
            s.targets = [slot[id(n.t)], slot[id(n.f)]]
        elif n.kind == "op":
            assert n.t is not None
            if idx + 1 >= len(nodes) or nodes[idx + 1] is not n.t:
                # Copy a ret or a branch rather than jump to it: same size, shorter path.
                nxt = slot[id(n.t)]
                if nxt.kind in ("ret", "br"):
                    copy = _Slot(nxt.kind, nxt.code, nxt.k)
                    copy.targets = list(nxt.targets) if nxt.kind == "ret" else []
                    pending.append((copy, n.t))
                    seq.append(copy)
                else:
                    ja = _Slot("ja", op.JMP | op.JA, 0)
                    ja.targets = [nxt]
                    seq.append(ja)
    for copy, orig in pending:
        if orig.kind == "br":
            assert orig.t is not None and orig.f is not None
            copy.targets = [slot[id(orig.t)], slot[id(orig.f)]]
    _fix_long_jumps(seq)
    pos = {id(s): i for i, s in enumerate(seq)}
    labelled = {id(t) for s in seq for t in s.targets}
    items: list[AsmItem] = []
    for i, s in enumerate(seq):
        if id(s) in labelled:
            items.append(Label(f"L{i}"))
        if s.kind == "br":
            t, f = (f"L{pos[id(x)]}" for x in s.targets)
            items.append(JumpTo(JumpTest(s.code & 0xF0), s.k, t, f))
        elif s.kind == "ja":
            items.append(GoTo(f"L{pos[id(s.targets[0])]}"))
        else:
            items.append(decode(Instruction(s.code, 0, 0, s.k)))
    return items


def _fix_long_jumps(seq: list[_Slot]) -> None:
    """Make every conditional jump reach at most 255 instructions ahead.

    A too-long jump is pointed at a nearby copy of its ``ret`` (inserted where nothing
    falls through), or at a ``ja`` for other targets.
    """
    for _ in range(64):
        changed = False
        i = 0
        pos = {id(s): n for n, s in enumerate(seq)}
        while i < len(seq):
            s = seq[i]
            if s.kind == "br":
                for ti, t in enumerate(s.targets):
                    if pos[id(t)] - i - 1 > 255:
                        _fix_one(seq, i, s, ti, t)
                        pos = {id(x): n for n, x in enumerate(seq)}
                        changed = True
            i += 1
        if not changed:
            return
    raise FilterCompileError("cannot lay out jumps within 255 instructions")


def _fix_one(seq: list[_Slot], i: int, s: _Slot, ti: int, t: _Slot) -> None:
    limit = min(len(seq), i + 257)
    if t.kind == "ret":
        for q in range(limit - 1, i, -1):
            if seq[q].kind == "ret" and seq[q].k == t.k:
                s.targets[ti] = seq[q]
                return
    gaps = [q for q in range(i + 1, limit) if seq[q - 1].kind in ("br", "ret", "ja")]
    if not gaps:
        raise FilterCompileError("cannot lay out jumps within 255 instructions")
    if t.kind == "ret":
        new = _Slot("ret", t.code, t.k)
    else:
        new = _Slot("ja", op.JMP | op.JA, 0)
        new.targets = [t]
    # Midway: later insertions in between cannot push it out of reach at once.
    at = min(gaps, key=lambda q: abs(q - (i + 128)))
    seq.insert(at, new)
    s.targets[ti] = new


def compile_filters(
    rules: Sequence[PacketCaptureRule],
    *,
    linktype: int = 1,
    snaplen: int = DEFAULT_SNAPLEN,
    vlan: bool = True,
    ipv6_extension_headers: bool = True,
) -> BpfProgram:
    """Compile a capture's ``filters`` to one classic BPF program.

    ``linktype`` is the link-layer header type of the frames (1 Ethernet, 113 Linux SLL,
    276 SLL2, 101 raw IP; 12 and 14 are accepted as raw IP). An accepting program returns
    ``snaplen``. ``vlan`` looks through up to two 802.1Q/802.1ad tags (Ethernet only);
    ``ipv6_extension_headers`` walks up to four IPv6 extension headers. Raises
    ``FilterCompileError`` for an unknown link type or protocol, or a program longer than
    the kernel's 4096 instructions.
    """
    if linktype not in LINKTYPES:
        raise FilterCompileError(
            f"unsupported link type {linktype} (supported: 1, 113, 276, 101, 12, 14)"
        )
    if not 0 < snaplen <= 0xFFFFFFFF:
        raise FilterCompileError(f"invalid snap length {snaplen}")
    plan = plan_rules(rules)
    if plan.everything:
        return BpfProgram.accept_all(linktype, snaplen)
    gen = _Gen(plan, linktype, snaplen, vlan, ipv6_extension_headers)
    root = gen.root()
    if len(_order(root)) > op.MAX_INSNS:
        raise FilterCompileError(
            f"the filters need more than {op.MAX_INSNS} BPF instructions; use fewer ports"
        )
    items = _layout(root)
    if sum(not isinstance(i, Label) for i in items) > op.MAX_INSNS:
        raise FilterCompileError(
            f"the filters need more than {op.MAX_INSNS} BPF instructions; use fewer ports"
        )
    return BpfProgram(assemble(items), linktype, snaplen)

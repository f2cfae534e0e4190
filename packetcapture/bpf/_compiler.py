"""Compile PacketCapture filter rules to one optimized classic BPF program.

Pipeline: rules -> a *plan* (for each address family, what each upper-layer protocol
needs: accept, or a port test against a set of sorted, merged ranges) -> a DAG of
instructions built bottom-up with hash-consing (so identical tails exist once) -> a layout
(reverse post-order, fall-through preferred, over-long jumps fixed by duplicating ``ret``s)
-> raw instructions, jump offsets resolved as they are laid out.

Frame layout decisions:

* untagged Ethernet (and SLL, SLL2, raw IP) IPv4 uses absolute loads, so the common path
  is as short as libpcap's;
* X holds the bytes of 802.1Q/802.1ad tags (0 untagged: classic BPF starts with X = 0),
  so the IPv6 code is X-relative and shared by all tag depths; IPv4 has a tagged copy;
* every port test reads ``[x + L3]`` (source) and ``[x + L3 + 2]`` (destination) where
  X is the L4 offset from the network header, so one port block serves IPv4 (X from the
  IHL), IPv6 (``X += 40``), tagged frames and extension-header walks alike;
* IPv6 extension headers are walked once for all rules, with X as the cursor and
  ``M[0]`` as a temporary, unrolled four times (classic BPF has no backward jumps);
* a few layouts are built and the one with the best executed-path/size cost is kept.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterable, Sequence
from typing import Any, Final

from packetcapture.bpf import _insn as op
from packetcapture.bpf._insn import Instruction
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

    __slots__ = ("code", "f", "k", "kids", "kind", "t")

    def __init__(self, kind: str, code: int, k: int, t: _Node | None, f: _Node | None):
        self.kind = kind  # "op" (t = next), "br" (t/f targets) or "ret"
        self.code = code
        self.k = k
        self.t = t
        self.f = f
        # Successors, computed once: every variant's layout walks the DAG several times.
        kids: tuple[_Node, ...] = ()
        if kind == "op":
            assert t is not None
            kids = (t,)
        elif kind == "br":
            assert t is not None and f is not None
            kids = (t, f)
        self.kids = kids


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
_ANDK, _LSHK, _ADDK = op.ALU | op.AND, op.ALU | op.LSH, op.ALU | op.ADD
_ADDX, _TAX, _TXA = op.ALU | op.ADD | op.X, op.MISC | op.MISC_TAX, op.MISC | op.MISC_TXA
_LDI, _ST = op.LD | op.IMM, op.ST
_MAY_FAIL = frozenset({_LDB, _LDH, _LDBX, _LDHX, _MSH, op.LD | op.ABS, op.LD | op.IND})

#: Program-size instructions one instruction off the longest plain path is worth.
_PATH_WEIGHT = 8
#: Largest total size of IPv6-only port blocks (reading ``[x + L3 + 40]``) to consider.
_DIRECT6_MAX = 12

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
# Byte classification: the IPv6 next header against wanted protocols and extension headers.

_ALL = (1 << 256) - 1


def _mask(values: Iterable[int]) -> int:
    out = 0
    for v in values:
        out |= 1 << v
    return out


class _Classifier:
    """A comparison tree (``jeq``/``jgt``) sending each byte value to its target.

    ``weights[t]`` is the longest path after reaching target ``t``. Values in ``free``
    (extension headers: their frames are not plain) may take any path. The tree minimises
    the longest path over the other values (the first such tree found).
    """

    _BUDGET = (
        1_500  # search calls per path budget before giving up (then the caller uses a jeq chain)
    )

    def __init__(self, target_of: Sequence[int], weights: Sequence[int], free: int) -> None:
        self.t = target_of
        self.w = weights
        self.free = free
        masks = [0] * len(weights)
        for v, t in enumerate(target_of):
            masks[t] |= 1 << v
        self.masks = masks
        # v is a bound when v and v + 1 go to different targets; a value whose neighbours
        # both differ from it (or 0 and 255 with their one neighbour) is special.
        bounds = [v for v, (a, b) in enumerate(itertools.pairwise(target_of)) if a != b]
        inside = set(bounds)
        specials = {v for v in bounds if v - 1 in inside}
        specials |= {0} if 0 in inside else set()
        specials |= {255} if 254 in inside else set()
        specials |= {v for v in range(free.bit_length()) if free >> v & 1}
        # Wanted values first (accepting early), then range splits, then the rest.
        wanted = [v for v in sorted(specials) if not free >> v & 1 and target_of[v]]
        self.tests = [("jeq", v, 1 << v) for v in wanted]
        # The values above b: every value but 0..b.
        self.tests += [("jgt", b, _ALL ^ ((2 << b) - 1)) for b in bounds]
        self.tests += [("jeq", v, 1 << v) for v in sorted(specials) if v not in wanted]
        self.fixed = _ALL & ~free  # the values whose paths count
        self.memo: dict[tuple[int, int], tuple[int, _Plan] | None] = {}
        self.steps = 0

    def leaf(self, s: int, ts: list[int]) -> tuple[int, _Plan] | None:
        """Return (size, plan) if ``s`` needs no test (one target, or free values only).

        ``ts`` are the targets of the values in ``s``, in order.
        """
        if len(ts) == 1:
            return (0, ("t", ts[0]))
        if not s & self.fixed:
            # Free values only: a jeq chain, depth does not matter.
            plan: _Plan = ("t", ts[-1])
            for t in reversed(ts[:-1]):
                v = (s & self.masks[t]).bit_length() - 1
                rest = s & self.masks[t] & ~(1 << v)
                plan = ("br", op.JEQ, v, ("t", t), plan)
                while rest:
                    v = rest.bit_length() - 1
                    rest &= ~(1 << v)
                    plan = ("br", op.JEQ, v, ("t", t), plan)
            return (len(ts) - 1, plan)  # approximate size
        return None

    def solve(self, s: int, budget: int) -> tuple[int, _Plan] | None:
        self.steps += 1
        if self.steps > self._BUDGET:
            raise _TooHardError
        # Every answer is memoised: it depends on (s, budget) alone.
        key = (s, budget)
        memo = self.memo
        if key in memo:
            return memo[key]
        fixed = s & self.fixed
        ts = []
        for t, m in enumerate(self.masks):
            if s & m:
                if fixed & m and self.w[t] > budget:
                    memo[key] = None
                    return None
                ts.append(t)
        best = self.leaf(s, ts)
        if best is None:
            for name, k, m in self.tests:
                yes = s & m
                if not yes or yes == s:
                    continue
                a = self.solve(yes, budget - 1)
                if a is None:
                    continue
                c = self.solve(s ^ yes, budget - 1)
                if c is None:
                    continue
                # The first tree found (tests tried in a good order), not the smallest.
                test = op.JEQ if name == "jeq" else op.JGT
                best = (1 + a[0] + c[0], ("br", test, k, a[1], c[1]))
                break
        memo[key] = best
        return best

    def best(self) -> _Plan:
        lo = max(self.w[t] for t, m in enumerate(self.masks) if m & ~self.free)
        for budget in range(lo, lo + 6):
            self.steps = 0
            try:
                got = self.solve(_ALL, budget)
            except _TooHardError:  # gave up on this budget: try a looser one
                continue
            if got is not None:
                return got[1]
        raise _TooHardError


class _TooHardError(Exception):
    """The classifier search ran out of budget."""


#: Classifier plans by (targets, weights): the variants share them.
_CLASSIFIED: dict[tuple[tuple[int, ...], tuple[int, ...]], _Plan | None] = {}


def _longest(node: _Node, memo: dict[int, int]) -> int:
    """Longest path (instructions, ``ret`` included) from ``node``."""
    got = memo.get(id(node))
    if got is None:
        got = memo[id(node)] = 1 + max((_longest(c, memo) for c in node.kids), default=0)
    return got


# ---------------------------------------------------------------------------------------
# Program construction


class _Gen:
    def __init__(
        self,
        plan: Plan,
        linktype: int,
        snaplen: int,
        vlan: bool,
        ext: bool,
        *,
        shared: _Gen | None = None,
    ) -> None:
        # The variants of one compile share the node factory and the parts their choices
        # do not change (``memo``): interning makes a shared node the very one a variant
        # would have built, so each variant's graph is what it would be on its own.
        self.b: _Builder = _Builder() if shared is None else shared.b
        self.memo: dict[tuple[object, ...], Any] = {} if shared is None else shared.memo
        self.plan = plan
        self.linktype = linktype
        self.l3 = LINKTYPES[linktype][1]
        self.vlan = vlan and linktype == 1
        self.ext = ext
        self.compact_ext = 0  # 0: jeq chains; 1, 2: tree, rejecting weighs 0 or -1
        self.v6_first = True
        self.direct6 = False
        #: Where frames stop being plain (tags, extension headers): for path estimates.
        self.cold: list[_Node] = []
        #: Entry of the untagged IPv4 code: its path is the longest, so it gets no ``ja``.
        self.hot: list[_Node] = []
        self.acc = self.b.ret(snaplen)
        self.rej = self.b.ret(0)
        self.trees: dict[Ranges, _Plan] = {} if shared is None else shared.trees
        self.blocks: dict[tuple[Ranges, int | None], _Node] = (
            {} if shared is None else shared.blocks
        )

    def tree(self, ranges: Ranges) -> _Plan:
        if ranges not in self.trees:
            self.trees[ranges] = _RangeTree(ranges).best()[2]
        return self.trees[ranges]

    def port_block(self, ranges: Ranges, base: int | None = None) -> _Node:
        """Accept if the source or destination port is in ``ranges``.

        The ports are at ``x + base`` (default: ``x + L3``, X = the L4 offset from the
        network header).
        """
        key = (ranges, base)
        if key not in self.blocks:
            b = self.b
            plan = self.tree(ranges)
            off = self.l3 if base is None else base
            dport = b.op(_LDHX, off + 2, _realise(b, plan, self.acc, self.rej))
            self.blocks[key] = b.op(_LDHX, off, _realise(b, plan, self.acc, dport))
        return self.blocks[key]

    # IPv4 -------------------------------------------------------------------------------
    def ipv4(self, tagged: bool) -> _Node:
        """IPv4 dispatch (the same in every variant)."""
        key = ("v4", tagged)
        got = self.memo.get(key)
        if got is None:
            got = self.memo[key] = self._ipv4(tagged)
        return got

    def _ipv4(self, tagged: bool) -> _Node:
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
    def final_cases(self, shifted: bool) -> dict[int, _Node]:
        """Upper-layer protocol known: accept, or test the ports.

        ``shifted``: X is the offset of the end of the fixed IPv6 header from the network
        header (minimal mode); else X = link extra + extension headers and 40 is added.
        """
        b = self.b
        out: dict[int, _Node] = {}
        for p, r in self.plan.v6.items():
            if r is None:
                out[p] = self.acc
            elif shifted:
                out[p] = self.port_block(r)
            elif self.direct6:
                out[p] = self.port_block(r, self.l3 + 40)
            else:
                out[p] = b.ops([(_TXA, 0), (_ADDK, 40), (_TAX, 0)], self.port_block(r))
        return out

    def walk(self) -> tuple[_Node, _Node]:
        """Return the first step's (generic header, fragment header) entry points."""
        key = ("walk", self.direct6)
        got = self.memo.get(key)
        if got is None:
            got = self.memo[key] = self._walk()
        return got

    def _walk(self) -> tuple[_Node, _Node]:
        """Build the extension-header walk (see :meth:`walk`).

        X is the cursor: the current extension header starts at ``x + L3 + 40``. Each
        step skips one header (``M[0]`` holds the new cursor while A fetches its
        next-header byte); after four, or at any other value, the final dispatch decides.
        A non-first fragment decides on its next-header byte alone (no ports).
        """
        b, l3 = self.b, self.l3
        final = b.dispatch(_proto_cases(self.final_cases(False)), self.rej)
        accept_only = {p: self.acc for p, r in self.plan.v6.items() if r is None}
        nonfirst = b.op(_LDBX, l3 + 40, b.dispatch(_proto_cases(accept_only), self.rej))
        after = final
        generic = frag = final
        for step in range(IPV6_MAX_EXT):
            # A = length - 8 (generic) or 0 (first fragment); then X += A + 8, A = next hdr.
            tail = b.ops([(_ADDK, 8), (_ADDX, 0), (_ST, 0), (_LDBX, l3 + 40), (_LDXM, 0)], after)
            generic = b.ops([(_LDBX, l3 + 41), (_LSHK, 3)], tail)
            frag = b.ops([(_LDHX, l3 + 42), (_ANDK, 0xFFF8)], b.br(op.JEQ, 0, tail, nonfirst))
            if step < IPV6_MAX_EXT - 1:
                cases = [(e, generic) for e in IPV6_EXT_GENERIC] + [(IPV6_FRAGMENT, frag)]
                after = b.dispatch(cases, final)
        return generic, frag

    def ext_tree(self, wanted: Sequence[tuple[int, _Node]], generic: _Node, frag: _Node) -> _Node:
        """Dispatch A (next header) to the wanted protocols or the walk, else reject.

        Variant 0: the wanted ``jeq`` chain then four ``jeq``. Otherwise an optimal
        comparison tree: shortest longest path for values that are no extension header.
        """
        b = self.b
        cases = [(e, generic) for e in IPV6_EXT_GENERIC] + [(IPV6_FRAGMENT, frag)]
        if not self.compact_ext or len(wanted) > 4:
            return b.dispatch(wanted, b.dispatch(cases, self.rej))
        nodes: list[_Node] = [self.rej, generic, frag]
        target_of = [0] * 256
        for v, n in [*wanted, *cases]:
            if n not in nodes:
                nodes.append(n)
            target_of[v] = nodes.index(n)
        memo: dict[int, int] = {}
        weights = [0 if n in (generic, frag) else _longest(n, memo) for n in nodes]
        # Rejecting weighs 0 (variant 1) or -1 (2): accepted paths may take one test
        # more, or must take two fewer, than rejected ones.
        weights[0] = 1 - self.compact_ext
        free = _mask((*IPV6_EXT_GENERIC, IPV6_FRAGMENT))
        key = (tuple(target_of), tuple(weights))
        if key not in _CLASSIFIED:
            try:
                _CLASSIFIED[key] = _Classifier(target_of, weights, free).best()
            except _TooHardError:
                _CLASSIFIED[key] = None
            if len(_CLASSIFIED) > 512:
                _CLASSIFIED.pop(next(iter(_CLASSIFIED)))
        plan = _CLASSIFIED[key]
        if plan is None:
            return b.dispatch(wanted, b.dispatch(cases, self.rej))

        def realise(p: _Plan) -> _Node:
            if p[0] == "t":
                return nodes[p[1]]
            _, test, k, t, f = p
            return b.br(test, k, realise(t), realise(f))

        return realise(plan)

    def ipv6(self) -> _Node:
        """IPv6 dispatch; X = bytes between the link header and IPv6 (0 when untagged)."""
        key = ("v6", self.compact_ext, self.direct6)
        got = self.memo.get(key)
        if got is None:
            before = len(self.cold)
            node = self._ipv6()
            got = self.memo[key] = (node, self.cold[before:])
        else:
            self.cold += got[1]
        return got[0]

    def _ipv6(self) -> _Node:
        b, l3 = self.b, self.l3
        if not self.plan.v6:
            return self.rej
        if not (self.vlan or self.ext):
            # Minimal mode: absolute loads, X = 40 for the shared port block.
            cases: dict[int, _Node] = {}
            for proto, ranges in self.plan.v6.items():
                cases[proto] = (
                    self.acc if ranges is None else b.op(_LDXI, 40, self.port_block(ranges))
                )
            return b.op(_LDB, l3 + 6, b.dispatch(_proto_cases(cases), self.rej))
        wanted = _proto_cases(self.final_cases(False))
        if not self.ext:
            return b.op(_LDBX, l3 + 6, b.dispatch(wanted, self.rej))
        # An extension header is walked even when its number is a wanted protocol.
        walked = (*IPV6_EXT_GENERIC, IPV6_FRAGMENT)
        wanted = [(p, n) for p, n in wanted if p not in walked]
        generic, frag = self.walk()
        self.cold += [generic, frag]
        return b.op(_LDBX, l3 + 6, self.ext_tree(wanted, generic, frag))

    # Link layer -------------------------------------------------------------------------
    def root(self) -> _Node:
        b = self.b
        v4, v6 = self.ipv4(False), self.ipv6()
        self.hot.append(v4)
        if self.linktype in (12, 14, 101):
            disp = b.dispatch([(0x40, v4), (0x60, v6)], self.rej)
            if disp is self.rej:
                return disp
            return b.ops([(_LDB, 0), (_ANDK, 0xF0)], disp)
        if (self.vlan or self.ext) and self.v6_first:
            # IPv6 first: its extension-header check costs tests IPv4 does not pay.
            cases = [(0x86DD, v6), (0x0800, v4)]
        else:
            cases = [(0x0800, v4), (0x86DD, v6)]
        if self.vlan:
            # X = bytes of tags (4 or 8); IPv6 code is shared (X is 0 when untagged: the
            # kernel and libpcap start with X = 0); IPv4 has a tagged copy.
            inner = b.dispatch([(0x86DD, v6), (0x0800, self.ipv4(True))], self.rej)
            if inner is not self.rej:
                t2 = b.ops([(_LDH, 20), (_LDXI, 8)], inner)
                t1 = b.op(
                    _LDH, 16, b.dispatch([(t, t2) for t in VLAN_TPIDS], b.op(_LDXI, 4, inner))
                )
                cases += [(t, t1) for t in VLAN_TPIDS]
                self.cold.append(t1)
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


def _reaching(root: _Node, hot: Sequence[_Node]) -> set[_Node]:
    """Return the nodes from which a node in ``hot`` can be reached (``hot`` included)."""
    memo: dict[_Node, bool] = {}
    hot_set = set(hot)
    for node in reversed(_order(root)):  # successors before predecessors
        memo[node] = node in hot_set or any(memo[c] for c in node.kids)
    return {k for k, v in memo.items() if v}


def _order(root: _Node, hot: Sequence[_Node] = ()) -> list[_Node]:
    """Reverse post-order: every node before its successors.

    Depth first along true branches, but towards the ``hot`` nodes first: the first path
    to reach a shared node falls through into it, so the hot path gets no ``ja``.
    """
    toward = _reaching(root, hot) if hot else set()
    # Nodes hash by identity (interned, no __eq__), so sets and dicts hold them directly.
    seen: set[_Node] = {root}
    post: list[_Node] = []

    def kids_of(node: _Node) -> tuple[_Node, ...]:
        kids = node.kids
        if toward and len(kids) == 2 and kids[0] not in toward and kids[1] in toward:
            return (kids[1], kids[0])
        return kids

    # Each entry: a node, the index of its next child to visit, and its children in order.
    stack: list[tuple[_Node, int, tuple[_Node, ...]]] = [(root, 0, kids_of(root))]
    while stack:
        node, i, kids = stack.pop()
        if i < len(kids):
            stack.append((node, i + 1, kids))
            child = kids[i]
            if child not in seen:
                seen.add(child)
                stack.append((child, 0, kids_of(child)))
        else:
            post.append(node)
    return post[::-1]


def _size(root: _Node) -> int:
    """Return the number of nodes reachable from ``root`` (the program's size)."""
    seen = {root}
    stack = [root]
    while stack:
        for c in stack.pop().kids:
            if c not in seen:
                seen.add(c)
                stack.append(c)
    return len(seen)


def _plain_paths(
    root: _Node,
    cold: frozenset[_Node],
    every: dict[_Node, int],
    accept: dict[_Node, int],
) -> tuple[int, int]:
    """Return the longest paths that enter no ``cold`` node: to an accepting ``ret``, to any.

    Counted in instructions, ``ret`` included: upper bounds for frames without tags or
    extension headers. Only the nodes such paths reach are visited. ``every`` and
    ``accept`` hold the lengths found (for any calls with the same ``cold``).
    """
    never = -(1 << 20)
    # Depth first; a node is valued once all its (plain) successors are.
    stack = [root]
    while stack:
        node = stack[-1]
        if node in every:
            stack.pop()
            continue
        todo = [c for c in node.kids if c not in every and c not in cold]
        if todo:
            stack += todo
            continue
        stack.pop()
        e, a = 0, never
        for c in node.kids:
            if c not in cold:
                e = max(e, every[c])
                a = max(a, accept[c])
        every[node] = 1 + e
        accept[node] = (1 if node.k else never) if node.kind == "ret" else 1 + a
    return accept[root], every[root]


def _layout(root: _Node, hot: Sequence[_Node] = ()) -> list[Instruction]:
    nodes = _order(root, hot)
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
    # Raw instructions at once (what assembling typed ones with labels would give).
    pos = {id(s): i for i, s in enumerate(seq)}
    out: list[Instruction] = []
    for i, s in enumerate(seq):
        if s.kind == "br":
            jt, jf = (pos[id(x)] - i - 1 for x in s.targets)
            if not (0 <= jt <= 255 and 0 <= jf <= 255):
                raise FilterCompileError("cannot lay out jumps within 255 instructions")
            out.append(Instruction(s.code, jt, jf, s.k))
        elif s.kind == "ja":
            out.append(Instruction(s.code, 0, 0, pos[id(s.targets[0])] - i - 1))
        else:
            out.append(Instruction(s.code, 0, 0, s.k))
    return out


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

    Programs are immutable, so the last 256 compiled are kept and the same object is
    returned for the same arguments (with its executor and scanner already built): many
    captures usually share a few filters, and the agent compiles one per capture and link
    type.
    """
    key = tuple(rules)
    try:
        hash(key)
    except TypeError:  # rule-like objects that cannot be a cache key
        return _compile(key, linktype, snaplen, vlan, ipv6_extension_headers)
    return _compile_cached(key, linktype, snaplen, vlan, ipv6_extension_headers)


def _compile(
    rules: tuple[PacketCaptureRule, ...],
    linktype: int,
    snaplen: int,
    vlan: bool,
    ipv6_extension_headers: bool,
) -> BpfProgram:
    if linktype not in LINKTYPES:
        raise FilterCompileError(
            f"unsupported link type {linktype} (supported: 1, 113, 276, 101, 12, 14)"
        )
    if not 0 < snaplen <= 0xFFFFFFFF:
        raise FilterCompileError(f"invalid snap length {snaplen}")
    plan = plan_rules(rules)
    if plan.everything:
        return BpfProgram.accept_all(linktype, snaplen)
    best: tuple[tuple[int, int], _Gen, _Node] | None = None
    # Variants: IPv6 or IPv4 first; the IPv6 next-header dispatch as a jeq chain, or a
    # comparison tree shortest for rejected, or for accepted frames;
    # IPv6 ports read at [x + L3 + 40] or through the shared block (X += 40).
    variants = [(f, c, d) for d in (False, True) for c in (0, 1, 2) for f in (True, False)]
    if not (vlan or ipv6_extension_headers) or linktype in (12, 14, 101):
        variants = variants[:1]
    # Own IPv6 port blocks only when small: a shorter path is not worth a big copy.
    v6_sets = {r for r in plan.v6.values() if r is not None}
    if not v6_sets or sum(2 + 2 * _RangeTree(r).best()[1] for r in v6_sets) > _DIRECT6_MAX:
        variants = [v for v in variants if not v[2]]
    if not ipv6_extension_headers or not plan.v6:
        variants = [v for v in variants if not v[1]]
    if not plan.v4 or not plan.v6:
        variants = [v for v in variants if v[0]]
    shared: _Gen | None = None
    # Path lengths by node, per set of cold nodes (variants differing in the order of the
    # first dispatch only share it); the cost by program (two variants may build one).
    paths: dict[frozenset[_Node], tuple[dict[_Node, int], dict[_Node, int]]] = {}
    costs: dict[tuple[_Node, frozenset[_Node]], tuple[int, int]] = {}
    for v6_first, compact, direct in variants:
        g = _Gen(plan, linktype, snaplen, vlan, ipv6_extension_headers, shared=shared)
        shared = shared or g
        g.v6_first, g.compact_ext, g.direct6 = v6_first, compact, direct
        r = g.root()
        cold = frozenset(g.cold)
        cost = costs.get((r, cold))
        if cost is None:
            # The kernel pays per executed instruction: one instruction off the longest
            # path on plain frames is worth _PATH_WEIGHT instructions of program size.
            size = _size(r)
            memo = paths.get(cold)
            if memo is None:
                memo = paths[cold] = ({}, {})
            accepted, every = _plain_paths(r, cold, *memo)
            cost = costs[r, cold] = (_PATH_WEIGHT * (2 * max(accepted, 0) + every) + size, size)
        if best is None or cost < best[0]:
            best = (cost, g, r)
    assert best is not None
    (_, size), gen, root = best
    if size > op.MAX_INSNS:
        raise FilterCompileError(
            f"the filters need more than {op.MAX_INSNS} BPF instructions; use fewer ports"
        )
    insns = _layout(root, gen.hot)
    if len(insns) > op.MAX_INSNS:
        raise FilterCompileError(
            f"the filters need more than {op.MAX_INSNS} BPF instructions; use fewer ports"
        )
    return BpfProgram(insns, linktype, snaplen)  # validated there


_compile_cached = functools.lru_cache(maxsize=256)(_compile)

"""Frozen AST nodes for Calico selectors, their canonical text and label restrictions.

The node set mirrors Calico's ``parser/ast.go``. ``&&`` and ``||`` nodes are n-ary (a chain of
the same operator at one nesting level is one node) and a run of ``!`` collapses by parity at
parse time, so ``NotNode(NotNode(x))`` only arises from ``!(!x)``, exactly as in Calico.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from packetcapture._frozen import Frozen as _Frozen
from packetcapture._frozen import set_field as _set

__all__ = [
    "AllNode",
    "AndNode",
    "ContainsNode",
    "EndsWithNode",
    "EqNode",
    "GlobalNode",
    "HasNode",
    "InNode",
    "LabelRestriction",
    "NeNode",
    "Node",
    "NotInNode",
    "NotNode",
    "OrNode",
    "StartsWithNode",
    "canonical",
    "label_restrictions",
    "with_prefix",
]


def _quote(value: str) -> str:
    # Calico: double quotes unless the value holds one (values never hold both kinds).
    quote = "'" if '"' in value else '"'
    return f"{quote}{value}{quote}"


def _to_set(values: Iterable[str]) -> tuple[str, ...]:
    # Sorted by code point, which is UTF-8 byte order, as Go sorts; de-duplicated.
    return tuple(sorted(set(values)))


class AllNode(_Frozen):
    """``all()`` (and the empty selector): matches everything."""

    __slots__ = ()


class GlobalNode(_Frozen):
    """``global()``: matches everything inside the selector engine (see the docs)."""

    __slots__ = ()


class HasNode(_Frozen):
    """``has(label)``: the label is present, whatever its value."""

    __slots__ = ("label",)
    __match_args__ = ("label",)
    label: str

    def __init__(self, label: str) -> None:
        _set(self, "label", label)


class _Match(_Frozen):
    """``label OP "value"``."""

    __slots__ = ("label", "value")
    __match_args__ = ("label", "value")
    label: str
    value: str

    def __init__(self, label: str, value: str) -> None:
        _set(self, "label", label)
        _set(self, "value", value)


class EqNode(_Match):
    """``label == "value"``: present with exactly this value."""

    __slots__ = ()


class NeNode(_Match):
    """``label != "value"``: absent, or present with another value."""

    __slots__ = ()


class ContainsNode(_Match):
    """``label contains "s"``: present and the value contains ``s``."""

    __slots__ = ()


class StartsWithNode(_Match):
    """``label starts with "s"``: present and the value starts with ``s``."""

    __slots__ = ()


class EndsWithNode(_Match):
    """``label ends with "s"``: present and the value ends with ``s``."""

    __slots__ = ()


class _SetMatch(_Frozen):
    """``label OP {"a", "b"}``; the values are kept sorted and de-duplicated."""

    __slots__ = ("label", "values")
    __match_args__ = ("label", "values")
    label: str
    values: tuple[str, ...]

    def __init__(self, label: str, values: Iterable[str]) -> None:
        _set(self, "label", label)
        _set(self, "values", _to_set(values))


class InNode(_SetMatch):
    """``label in {"a", "b"}``: present with one of the values (sorted, de-duplicated)."""

    __slots__ = ()


class NotInNode(_SetMatch):
    """``label not in {"a", "b"}``: absent, or present with none of the values."""

    __slots__ = ()


class NotNode(_Frozen):
    """``!operand``."""

    __slots__ = ("operand",)
    __match_args__ = ("operand",)
    operand: Node

    def __init__(self, operand: Node) -> None:
        _set(self, "operand", operand)


class _Chain(_Frozen):
    """``a OP b OP ...`` (two or more operands)."""

    __slots__ = ("operands",)
    __match_args__ = ("operands",)
    operands: tuple[Node, ...]

    def __init__(self, operands: Iterable[Node]) -> None:
        _set(self, "operands", tuple(operands))


class AndNode(_Chain):
    """``a && b && ...`` (two or more operands)."""

    __slots__ = ()


class OrNode(_Chain):
    """``a || b || ...`` (two or more operands)."""

    __slots__ = ()


#: Any selector AST node.
Node = (
    AllNode
    | GlobalNode
    | HasNode
    | EqNode
    | NeNode
    | ContainsNode
    | StartsWithNode
    | EndsWithNode
    | InNode
    | NotInNode
    | NotNode
    | AndNode
    | OrNode
)

_OPS: dict[type, str] = {
    EqNode: " == ",
    NeNode: " != ",
    ContainsNode: " contains ",
    StartsWithNode: " starts with ",
    EndsWithNode: " ends with ",
}


def _fragments(node: Node, out: list[str]) -> None:
    match node:
        case AllNode():
            out.append("all()")
        case GlobalNode():
            out.append("global()")
        case HasNode(label):
            out += ("has(", label, ")")
        case EqNode() | NeNode() | ContainsNode() | StartsWithNode() | EndsWithNode():
            out += (node.label, _OPS[type(node)], _quote(node.value))
        case InNode(label, values) | NotInNode(label, values):
            op = " in {" if isinstance(node, InNode) else " not in {"
            out += (label, op, ", ".join(map(_quote, values)), "}")
        case NotNode(operand):
            out.append("!")
            _fragments(operand, out)
        case AndNode(operands) | OrNode(operands):
            sep = " && " if isinstance(node, AndNode) else " || "
            out.append("(")
            for index, operand in enumerate(operands):
                if index:
                    out.append(sep)
                _fragments(operand, out)
            out.append(")")


def canonical(node: Node) -> str:
    """Return Calico's canonical ``String()`` of ``node``."""
    out: list[str] = []
    _fragments(node, out)
    return "".join(out)


def with_prefix(node: Node, prefix: str) -> Node:
    """Return ``node`` with ``prefix`` put before every label name (Calico's PrefixVisitor)."""
    match node:
        case AllNode() | GlobalNode():
            return node
        case NotNode(operand):
            return NotNode(with_prefix(operand, prefix))
        case AndNode(operands):
            return AndNode(with_prefix(op, prefix) for op in operands)
        case OrNode(operands):
            return OrNode(with_prefix(op, prefix) for op in operands)
        case HasNode(label):
            return HasNode(prefix + label)
        case InNode() | NotInNode():
            return type(node)(prefix + node.label, node.values)
        case _:
            return type(node)(prefix + node.label, node.value)


class LabelRestriction(_Frozen):
    """What one label must satisfy for a selector to have any chance of matching.

    A lower bound, as Calico's ``LabelRestriction``: ``must_be_present`` / ``must_be_absent``,
    and ``must_have_one_of_values`` (``None``: no restriction on the value; an empty set: the
    selector can never match).
    """

    __slots__ = ("must_be_absent", "must_be_present", "must_have_one_of_values")
    __match_args__ = ("must_be_present", "must_be_absent", "must_have_one_of_values")
    must_be_present: bool
    must_be_absent: bool
    must_have_one_of_values: frozenset[str] | None

    def __init__(
        self,
        must_be_present: bool = False,
        must_be_absent: bool = False,
        must_have_one_of_values: frozenset[str] | None = None,
    ) -> None:
        _set(self, "must_be_present", must_be_present)
        _set(self, "must_be_absent", must_be_absent)
        _set(self, "must_have_one_of_values", must_have_one_of_values)

    @property
    def impossible(self) -> bool:
        """Whether no set of labels can satisfy this restriction."""
        return (self.must_be_present and self.must_be_absent) or (
            self.must_have_one_of_values is not None and not self.must_have_one_of_values
        )


_PRESENT = LabelRestriction(must_be_present=True)
_ABSENT = LabelRestriction(must_be_absent=True)
_NONE = LabelRestriction()


def label_restrictions(node: Node) -> dict[str, LabelRestriction]:
    """Return Calico's ``LabelRestrictions()`` for ``node``: label -> restriction.

    Only labels with a restriction appear; an empty dict means "no restriction known".
    """
    match node:
        case EqNode(label, value):
            return {label: LabelRestriction(True, False, frozenset((value,)))}
        case InNode(label, values):
            # Calico's empty set is a nil slice, i.e. "no value restriction".
            return {label: LabelRestriction(True, False, frozenset(values) if values else None)}
        case HasNode(label) | ContainsNode(label) | StartsWithNode(label) | EndsWithNode(label):
            return {label: _PRESENT}
        case NotNode(HasNode(label)):
            return {label: _ABSENT}
        case AndNode(operands):
            merged: dict[str, LabelRestriction] = {}
            for operand in operands:
                for label, r in label_restrictions(operand).items():
                    base = merged.get(label, _NONE)
                    allowed = base.must_have_one_of_values
                    if allowed is None:
                        allowed = r.must_have_one_of_values
                    elif r.must_have_one_of_values is not None:
                        allowed = allowed & r.must_have_one_of_values
                    merged[label] = LabelRestriction(
                        base.must_be_present or r.must_be_present,
                        base.must_be_absent or r.must_be_absent,
                        allowed,
                    )
            return merged
        case OrNode(operands):
            # Only labels restricted by every branch stay restricted.
            result = label_restrictions(operands[0])
            for operand in operands[1:]:
                other: Mapping[str, LabelRestriction] = label_restrictions(operand)
                for label, r in list(result.items()):
                    o = other.get(label, _NONE)
                    present = r.must_be_present and o.must_be_present
                    either: frozenset[str] | None = None
                    if present and (
                        r.must_have_one_of_values is not None
                        and o.must_have_one_of_values is not None
                    ):
                        either = r.must_have_one_of_values | o.must_have_one_of_values
                    absent = r.must_be_absent and o.must_be_absent
                    if present or absent:
                        result[label] = LabelRestriction(present, absent, either)
                    else:
                        del result[label]
            return result
        case _:
            # all(), global(), !=, not in, and most negations say nothing about any label.
            return {}

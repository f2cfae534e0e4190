"""Frozen AST nodes for Calico selectors, their canonical text and label restrictions.

The node set mirrors Calico's ``parser/ast.go``. ``&&`` and ``||`` nodes are n-ary (a chain of
the same operator at one nesting level is one node) and a run of ``!`` collapses by parity at
parse time, so ``NotNode(NotNode(x))`` only arises from ``!(!x)``, exactly as in Calico.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import attrs

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


def _to_nodes(operands: Iterable[Node]) -> tuple[Node, ...]:
    return tuple(operands)


@attrs.frozen
class AllNode:
    """``all()`` (and the empty selector): matches everything."""


@attrs.frozen
class GlobalNode:
    """``global()``: matches everything inside the selector engine (see the docs)."""


@attrs.frozen
class HasNode:
    """``has(label)``: the label is present, whatever its value."""

    label: str


@attrs.frozen
class EqNode:
    """``label == "value"``: present with exactly this value."""

    label: str
    value: str


@attrs.frozen
class NeNode:
    """``label != "value"``: absent, or present with another value."""

    label: str
    value: str


@attrs.frozen
class ContainsNode:
    """``label contains "s"``: present and the value contains ``s``."""

    label: str
    value: str


@attrs.frozen
class StartsWithNode:
    """``label starts with "s"``: present and the value starts with ``s``."""

    label: str
    value: str


@attrs.frozen
class EndsWithNode:
    """``label ends with "s"``: present and the value ends with ``s``."""

    label: str
    value: str


@attrs.frozen
class InNode:
    """``label in {"a", "b"}``: present with one of the values (sorted, de-duplicated)."""

    label: str
    values: tuple[str, ...] = attrs.field(converter=_to_set)


@attrs.frozen
class NotInNode:
    """``label not in {"a", "b"}``: absent, or present with none of the values."""

    label: str
    values: tuple[str, ...] = attrs.field(converter=_to_set)


@attrs.frozen
class NotNode:
    """``!operand``."""

    operand: Node


@attrs.frozen
class AndNode:
    """``a && b && ...`` (two or more operands)."""

    operands: tuple[Node, ...] = attrs.field(converter=_to_nodes)


@attrs.frozen
class OrNode:
    """``a || b || ...`` (two or more operands)."""

    operands: tuple[Node, ...] = attrs.field(converter=_to_nodes)


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
        case _:
            return attrs.evolve(node, label=prefix + node.label)


@attrs.frozen
class LabelRestriction:
    """What one label must satisfy for a selector to have any chance of matching.

    A lower bound, as Calico's ``LabelRestriction``: ``must_be_present`` / ``must_be_absent``,
    and ``must_have_one_of_values`` (``None``: no restriction on the value; an empty set: the
    selector can never match).
    """

    must_be_present: bool = False
    must_be_absent: bool = False
    must_have_one_of_values: frozenset[str] | None = None

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

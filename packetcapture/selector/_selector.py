"""The public ``Selector`` value, ``parse`` and ``normalise``."""

from __future__ import annotations

import functools
from collections.abc import Mapping

from packetcapture._defaults import NAMESPACE_LABEL
from packetcapture.errors import SelectorSyntaxError
from packetcapture.selector._ast import (
    AllNode,
    AndNode,
    EqNode,
    GlobalNode,
    HasNode,
    InNode,
    LabelRestriction,
    Node,
    NotInNode,
    NotNode,
    OrNode,
    canonical,
    label_restrictions,
    with_prefix,
)
from packetcapture.selector._compile import Evaluator, compile_node
from packetcapture.selector._parser import parse_node

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up)
if TYPE_CHECKING:
    from typing import Any, Final, NoReturn

__all__ = ["ALL", "NO_MATCH", "Selector", "in_namespace", "normalise", "parse", "unique_id"]


def unique_id(canonical_text: str) -> str:
    """Return Calico's ``UniqueID`` for a canonical selector: ``s:`` + base64url SHA-224."""
    import base64  # here: hashlib's OpenSSL binding alone is ~2 ms of start-up
    import hashlib

    digest = hashlib.sha224(("s:" + canonical_text).encode("utf-8", "surrogatepass")).digest()
    return "s:" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class Selector:
    """A parsed, compiled Calico label selector. Immutable and hashable.

    Build one with :func:`parse` (or from an AST node). ``str()`` is Calico's canonical form,
    and equality and hashing go by it, so ``parse("a=='x'") == parse('a == "x"')``.
    """

    __slots__ = ("_restrictions", "_root", "_text", "_uid", "evaluate")

    #: ``evaluate(labels) -> bool``: whether an item with these labels matches (Calico's
    #: ``Evaluate``). It is the compiled function itself, stored on the instance, so a call
    #: costs no extra method dispatch.
    evaluate: Evaluator
    _root: Node
    _text: str
    _uid: str | None
    _restrictions: Mapping[str, LabelRestriction] | None

    def __init__(self, root: Node) -> None:
        """Wrap AST ``root``; the evaluator is compiled here, once."""
        set_ = object.__setattr__
        set_(self, "_root", root)
        set_(self, "_text", canonical(root))
        set_(self, "evaluate", compile_node(root))
        set_(self, "_uid", None)
        set_(self, "_restrictions", None)

    @property
    def root(self) -> Node:
        """The AST (frozen nodes from ``packetcapture.selector``)."""
        return self._root

    @property
    def unique_id(self) -> str:
        """Calico's ``UniqueID()``: ``"s:"`` + unpadded base64url SHA-224 of the canonical form."""
        if self._uid is None:
            object.__setattr__(self, "_uid", unique_id(self._text))
        assert self._uid is not None
        return self._uid

    def label_restrictions(self) -> Mapping[str, LabelRestriction]:
        """Return, per label, what an item must satisfy to possibly match (may be empty).

        Calico's ``LabelRestrictions()``: a sound lower bound used to index selectors.
        """
        if self._restrictions is None:
            object.__setattr__(self, "_restrictions", label_restrictions(self._root))
        assert self._restrictions is not None
        return self._restrictions

    @property
    def impossible(self) -> bool:
        """Whether the label restrictions alone show that nothing can match.

        True for ``a == "x" && a == "y"``; ``False`` does not promise that something can.
        """
        return any(r.impossible for r in self.label_restrictions().values())

    def with_prefix(self, prefix: str) -> Selector:
        """Return this selector with ``prefix`` put before every label name.

        Calico's ``PrefixVisitor``: ``!(k == 'v')`` with ``visited/`` gives
        ``!visited/k == "v"``. The prefix is not checked.
        """
        return Selector(with_prefix(self._root, prefix))

    def tree(self) -> str:
        """Return the AST drawn as the ``calico-selector`` tool prints it."""
        lines: list[str] = []
        _draw(self._root, "", "", lines)
        return "".join(line + "\n" for line in lines)

    def __str__(self) -> str:
        return self._text

    def __repr__(self) -> str:
        return f"Selector({self._text!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Selector):
            return self._text == other._text
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._text)

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        raise AttributeError(f"Selector is immutable (cannot set {name!r})")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError(f"Selector is immutable (cannot delete {name!r})")

    def __reduce__(self) -> tuple[Any, ...]:
        return (Selector, (self._root,))


def _leaf(node: Node) -> str:
    match node:
        case AllNode():
            return "all()"
        case GlobalNode():
            return "global()"
        case HasNode(label):
            return f"has({label})"
        case InNode(label, values) | NotInNode(label, values):
            # The tool prints sets bare: {a,b}.
            op = "in" if isinstance(node, InNode) else "not in"
            return f"({label} {op} {{{','.join(values)}}})"
        case _:
            return f"({canonical(node)})"


def _draw(node: Node, first: str, rest: str, lines: list[str]) -> None:
    match node:
        case AndNode(children) | OrNode(children):
            lines.append(first + ("AND" if isinstance(node, AndNode) else "OR"))
        case NotNode(child):
            lines.append(first + "NOT")
            children = (child,)
        case _:
            lines.append(first + _leaf(node))
            return
    for index, child in enumerate(children):
        last = index == len(children) - 1
        _draw(child, rest + "+-", rest + ("  " if last else "| "), lines)


@functools.lru_cache(maxsize=4096)
def _parse_cached(text: str) -> Selector:
    return Selector(parse_node(text))


def parse(text: str) -> Selector:
    """Parse a Calico selector; results are cached, so parsing a known text is a lookup.

    The empty (or all-space) selector is ``all()``. Raises
    :class:`~packetcapture.errors.SelectorSyntaxError` (a ``ValueError``) with Calico's
    message and the column of the problem.
    """
    if not isinstance(text, str):
        raise TypeError(f"selector must be a str, not {type(text).__name__}")
    return _parse_cached(text)


# Go's strings.TrimSpace set (unicode.IsSpace), which differs from str.strip() on \x1c-\x1f.
_GO_SPACE: Final = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)


def normalise(text: str) -> str:
    """Return the canonical form of ``text``, or ``text`` unchanged if it does not parse.

    Calico's ``Normalise``: surrounding whitespace (including newlines) is trimmed first.
    """
    try:
        return str(parse(text.strip(_GO_SPACE)))
    except SelectorSyntaxError:
        return text


def in_namespace(selector: Selector | str, namespace: str) -> Selector:
    """Return the selector a capture in ``namespace`` really uses.

    That is Calico's effective capture selector
    ``(<selector>) && projectcalico.org/namespace == "<namespace>"``.
    """
    sel = parse(selector) if isinstance(selector, str) else selector
    return Selector(AndNode((sel.root, EqNode(NAMESPACE_LABEL, namespace))))


#: ``all()``: matches everything.
ALL: Final = Selector(AllNode())
#: ``!all()``: matches nothing (Calico's ``selector.NoMatch``).
NO_MATCH: Final = Selector(NotNode(AllNode()))

"""Property tests: round trips, compiled vs reference evaluation, and parser differential.

The references here are deliberately naive: a tree-walking interpreter of Calico's semantics
and a line-by-line recursive-descent parser following Calico's ``parser.go`` over the same
tokens, which the LALR parser plus its error mapping must agree with on every input.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

from hypothesis import given, settings
from hypothesis import strategies as st

from packetcapture.errors import SelectorSyntaxError
from packetcapture.selector import (
    AllNode,
    AndNode,
    ContainsNode,
    EndsWithNode,
    EqNode,
    GlobalNode,
    HasNode,
    InNode,
    NeNode,
    Node,
    NotInNode,
    NotNode,
    OrNode,
    Selector,
    StartsWithNode,
    parse,
)
from packetcapture.selector import _tokenizer as tk
from packetcapture.selector._tokenizer import Token

LABELS = ["a", "b", "app", "x/y", "k8s-app"]
VALUES = ["", "a", "b", "ab", "ba", "web", "it's", 'say "hi"', "\u00e9t\u00e9"]

# ---------------------------------------------------------------------------------------
# Reference interpreter (Calico ast.go semantics, by definition).


def interpret(node: Node, labels: Mapping[str, str]) -> bool:
    match node:
        case AllNode() | GlobalNode():
            return True
        case HasNode(k):
            return k in labels
        case EqNode(k, v):
            return k in labels and labels[k] == v
        case NeNode(k, v):
            return k not in labels or labels[k] != v
        case InNode(k, vs):
            return k in labels and labels[k] in vs
        case NotInNode(k, vs):
            return k not in labels or labels[k] not in vs
        case ContainsNode(k, v):
            return k in labels and labels[k].find(v) >= 0
        case StartsWithNode(k, v):
            return k in labels and labels[k][: len(v)] == v
        case EndsWithNode(k, v):
            return (
                k in labels
                and len(labels[k]) >= len(v)
                and labels[k][len(labels[k]) - len(v) :] == v
            )
        case NotNode(op):
            return not interpret(op, labels)
        case AndNode(ops):
            return all(interpret(op, labels) for op in ops)
        case OrNode(ops):
            return any(interpret(op, labels) for op in ops)
    raise AssertionError(node)


# ---------------------------------------------------------------------------------------
# Strategies.

label_st = st.sampled_from(LABELS)
value_st = st.sampled_from(VALUES)
values_st = st.lists(value_st, max_size=4)

leaf_st = st.one_of(
    st.just(AllNode()),
    st.just(GlobalNode()),
    st.builds(HasNode, label_st),
    *(
        st.builds(cls, label_st, value_st)
        for cls in (EqNode, NeNode, ContainsNode, StartsWithNode, EndsWithNode)
    ),
    st.builds(InNode, label_st, values_st),
    st.builds(NotInNode, label_st, values_st),
)


def _extend(children: st.SearchStrategy[Node]) -> st.SearchStrategy[Node]:
    # NOT(NOT(x)) is excluded: Calico prints it as "!!x", which re-parses to x.
    return st.one_of(
        children.filter(lambda n: not isinstance(n, NotNode)).map(NotNode),
        st.lists(children, min_size=2, max_size=4).map(AndNode),
        st.lists(children, min_size=2, max_size=4).map(OrNode),
    )


node_st = st.recursive(leaf_st, _extend, max_leaves=12)
labels_st = st.dictionaries(label_st, value_st, max_size=5)


@settings(max_examples=400)
@given(node_st, st.lists(labels_st, min_size=1, max_size=6))
def test_compiled_matches_reference_interpreter(
    node: Node, label_sets: list[dict[str, str]]
) -> None:
    sel = Selector(node)
    for labels in label_sets:
        assert sel.evaluate(labels) is interpret(node, labels)


@settings(max_examples=400)
@given(node_st)
def test_canonical_round_trip(node: Node) -> None:
    sel = Selector(node)
    again = parse(str(sel))
    assert again == sel
    assert again.root == node
    assert again.unique_id == sel.unique_id


@settings(max_examples=300)
@given(node_st, labels_st)
def test_label_restrictions_are_sound(node: Node, labels: dict[str, str]) -> None:
    sel = Selector(node)
    if not sel.evaluate(labels):
        return
    for label, r in sel.label_restrictions().items():
        assert not r.impossible
        if r.must_be_present:
            assert label in labels
        if r.must_be_absent:
            assert label not in labels
        if r.must_have_one_of_values is not None:
            assert labels.get(label) in r.must_have_one_of_values


@settings(max_examples=200)
@given(node_st, st.sampled_from(["p/", "visited/", "x."]), labels_st)
def test_with_prefix(node: Node, prefix: str, labels: dict[str, str]) -> None:
    sel = Selector(node)
    prefixed = sel.with_prefix(prefix)
    moved = {prefix + k: v for k, v in labels.items()}
    assert prefixed.evaluate(moved) is sel.evaluate(labels)
    assert parse(str(prefixed)) == prefixed


# ---------------------------------------------------------------------------------------
# Reference parser: a direct transcription of Calico's parser.go control flow.


class RefError(Exception):
    pass


def _desc(t: Token) -> str:
    # Calico's Kind(Value), except that the end is said in words (Calico: TokEOF()).
    return "end of selector" if t.type == tk.END else f"{tk.CALICO_KIND[t.type]}({t.value})"


def ref_parse(text: str) -> Node:
    toks = [*tk.tokenize(text), Token(tk.END, "")]
    if toks[0].type == tk.END:
        return AllNode()
    node, rest = _or(toks)
    if len(rest) != 1:
        words = " ".join(_desc(t) for t in rest if t.type != tk.END)
        raise RefError(f"unexpected content at end of selector [{words}]")
    return node


def _or(toks: list[Token]) -> tuple[Node, list[Token]]:
    nodes = []
    node, toks = _and(toks)
    nodes.append(node)
    while toks[0].type == tk.OR:
        node, toks = _and(toks[1:])
        nodes.append(node)
    return (nodes[0] if len(nodes) == 1 else OrNode(nodes)), toks


def _and(toks: list[Token]) -> tuple[Node, list[Token]]:
    nodes = []
    node, toks = _op(toks)
    nodes.append(node)
    while toks[0].type == tk.AND:
        node, toks = _op(toks[1:])
        nodes.append(node)
    return (nodes[0] if len(nodes) == 1 else AndNode(nodes)), toks


_CMP = {
    tk.EQ: EqNode,
    tk.NE: NeNode,
    tk.CONTAINS: ContainsNode,
    tk.STARTSWITH: StartsWithNode,
    tk.ENDSWITH: EndsWithNode,
}


def _op(toks: list[Token]) -> tuple[Node, list[Token]]:
    negated = False
    while toks[0].type == tk.NOT:
        negated = not negated
        toks = toks[1:]
    t = toks[0]
    node: Node
    if t.type == tk.HAS:
        node, toks = HasNode(t.value), toks[1:]
    elif t.type == tk.ALL:
        node, toks = AllNode(), toks[1:]
    elif t.type == tk.GLOBAL:
        node, toks = GlobalNode(), toks[1:]
    elif t.type == tk.LABEL:
        if len(toks) < 3:
            raise RefError("unexpected end of string looking for op")
        op = toks[1].type
        if op in _CMP:
            if toks[2].type != tk.STRING:
                raise RefError("expected string")
            node, toks = _CMP[op](t.value, toks[2].value), toks[3:]
        elif op in (tk.IN, tk.NOTIN):
            if toks[2].type != tk.LBRACE:
                raise RefError("expected set literal")
            toks = toks[3:]
            values = []
            while toks[0].type == tk.STRING:
                values.append(toks[0].value)
                toks = toks[1:]
                if toks[0].type != tk.COMMA:
                    break
                toks = toks[1:]
            if toks[0].type != tk.RBRACE:
                raise RefError("expected }")
            toks = toks[1:]
            node = InNode(t.value, values) if op == tk.IN else NotInNode(t.value, values)
        else:
            raise RefError(f"expected == or != not: {_desc(toks[1])}")
    elif t.type == tk.LPAREN:
        node, toks = _or(toks[1:])
        if toks[0].type != tk.RPAREN:
            raise RefError("expected )")
        toks = toks[1:]
    else:
        if t.type == tk.END:
            raise RefError("unexpected end of selector")
        raise RefError(f"unexpected token: {_desc(t)}")
    return (NotNode(node) if negated else node), toks


FRAGMENTS = [
    "a", "b", "in", "not", "has(a)", "has( b )", "all()", "global()", "==", "!=", "!", "&&",
    "||", "(", ")", "{", "}", ",", "'x'", '"y"', "''", "in", "not in", "notin", "contains",
    "starts with", "startswith", "ends with", "endswith", "starts", "with", "&", "|", "=",
]  # fmt: skip
soup_st = st.lists(
    st.tuples(st.sampled_from(FRAGMENTS), st.sampled_from(["", " ", "\t", "  "])), max_size=14
).map(lambda parts: "".join(f + ws for f, ws in parts))


def _compare_with_reference(text: str) -> None:
    try:
        expected: Node | str = ref_parse(text)
    except RefError as exc:
        expected = str(exc)
    except SelectorSyntaxError as exc:  # the shared tokenizer failed: both fail alike
        expected = exc.reason
    try:
        got: Node | str = parse(text).root
    except SelectorSyntaxError as exc:
        got = exc.reason
    assert got == expected


@settings(max_examples=1500)
@given(soup_st)
def test_parser_agrees_with_calico_control_flow(text: str) -> None:
    _compare_with_reference(text)


@settings(max_examples=300)
@given(node_st.map(lambda n: str(Selector(n))), st.data())
def test_reference_parser_on_valid_text(text: str, data: st.DataObject) -> None:
    _compare_with_reference(text)
    # Truncations of valid selectors exercise every "unexpected end" path.
    cut = data.draw(st.integers(0, len(text)))
    _compare_with_reference(text[:cut])


@settings(max_examples=500)
@given(st.text(alphabet=st.sampled_from(list("ab()!&|={}, '\"\t\nhasl.-/ic\u00e9")), max_size=30))
def test_random_text_raises_only_selector_syntax_error(text: str) -> None:
    try:
        sel = parse(text)
    except SelectorSyntaxError as exc:
        assert 1 <= exc.column <= len(text) + 1
        return
    # Whatever parses normalises to a fixed point within two rounds ("!(!x)" needs two).
    second = parse(str(sel))
    assert parse(str(second)) == second
    for labels in ({}, {"a": "b"}, {"has": ""}):
        assert second.evaluate(labels) is sel.evaluate(labels)


@settings(max_examples=200)
@given(st.text(max_size=40))
def test_arbitrary_unicode_raises_only_selector_syntax_error(text: str) -> None:
    with contextlib.suppress(SelectorSyntaxError):
        parse(text)

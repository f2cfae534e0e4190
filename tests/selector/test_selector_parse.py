"""Parsing, errors, canonical form and the Selector value."""

from __future__ import annotations

import pickle

import pytest

from packetcapture.errors import PacketCaptureError, SelectorSyntaxError
from packetcapture.selector import (
    ALL,
    MAX_NESTING,
    NO_MATCH,
    AllNode,
    AndNode,
    EqNode,
    HasNode,
    InNode,
    NotNode,
    Selector,
    in_namespace,
    normalise,
    parse,
    unique_id,
    valid_label,
)
from packetcapture.selector._compile import source

# (selector, reason, column): messages worded as Calico's tokenizer.go / parser.go word them.
ERRORS = [
    ('label == "value', "unterminated string", 10),
    ("label == 'value", "unterminated string", 10),
    ('"FOO', "unterminated string", 1),
    ('label = "value"', "expected ==", 7),
    ('a == "b" & has(foo)', "expected &&", 10),
    ('a == "b" | has(foo)', "expected ||", 10),
    ("a b", 'expected operator after label "a"', 3),
    ('label starts foo "value"', 'expected operator after label "label"', 7),
    ('label inf "value"', 'expected operator after label "label"', 7),
    ('label ends withs "value"', 'expected operator after label "label"', 7),
    ('label squiggles "value"', 'expected operator after label "label"', 7),
    # Whitespace after a two-word operator is eaten before the boundary check (Calico quirk).
    ("a starts with foo", 'expected operator after label "a"', 3),
    ("a\n== 'b'", 'expected operator after label "a"', 2),
    ("has(a) has(b)", "unexpected content at end of selector [TokHas(b)]", 8),
    ("a has(b)", 'expected operator after label "a"', 3),
    ("has()", "expected identifier", 5),
    ("has(foo", "no closing ')' after has(", 8),
    ("has( foo ", "no closing ')' after has(", 10),
    ("all(", "no closing ')' after all(", 5),
    ("global( x)", "no closing ')' after global(", 9),
    ("%", "expected identifier", 1),
    ("\na == 'b'", "expected identifier", 1),
    ("a == 'b' && \u00e9 == 'x'", "expected identifier", 13),
    ("x" * 513 + " == 'v'", "label too long: " + "x" * 513, 1),
    ("b == b", "expected string", 6),
    ("a ==", "expected string", 5),
    ("'b1' == b", "unexpected token: TokStringLiteral(b1)", 1),
    ("b", "unexpected end of string looking for op", 2),
    ("has(a) && b", "unexpected end of string looking for op", 12),
    ("a (", "expected == or != not: TokLParen()", 3),
    ('a "x"', "expected == or != not: TokStringLiteral(x)", 3),
    ("a )", "expected == or != not: TokRParen()", 3),
    ("!", "unexpected end of selector", 2),
    ("! = 'a'", "expected ==", 3),
    ("()", "unexpected token: TokRParen()", 2),
    ("(", "unexpected end of selector", 2),
    (")", "unexpected token: TokRParen()", 1),
    ("has(a) &&", "unexpected end of selector", 10),
    ("has(a) || || has(b)", "unexpected token: TokOr()", 11),
    ("ALL()", 'expected == or != not: TokLParen()', 4),
    ("has (a)", 'expected == or != not: TokLParen()', 5),
    ('(a == "foo"', "expected )", 12),
    ('(a == "foo" has(b))', "expected )", 13),
    ('a == "b" )', "unexpected content at end of selector [TokRParen()]", 10),
    ('a == "b" "c" d',
     "unexpected content at end of selector [TokStringLiteral(c) TokLabel(d)]", 10),
    ('foo in ""', "expected set literal", 8),
    ("foo in", "expected set literal", 7),
    ('foo in {"", ||', "expected }", 13),
    ("a in {,}", "expected }", 7),
    ('a in {"a" "b"}', "expected }", 11),
    ('a in {"a",,}', "expected }", 11),
    ("a in {b}", "expected }", 7),
    ("foo != ||", "expected string", 8),
]  # fmt: skip


@pytest.mark.parametrize(("text", "reason", "column"), ERRORS)
def test_error_messages(text: str, reason: str, column: int) -> None:
    with pytest.raises(SelectorSyntaxError) as info:
        parse(text)
    assert (info.value.reason, info.value.column) == (reason, column)
    assert info.value.selector == text


def test_error_is_a_value_error_with_a_caret() -> None:
    with pytest.raises(ValueError, match="expected string") as info:
        parse('app == web && tier == "x"')
    assert isinstance(info.value, PacketCaptureError)
    assert str(info.value).splitlines() == [
        "expected string (column 8)",
        '    app == web && tier == "x"',
        "           ^",
    ]


def test_lexical_errors_win_over_earlier_grammar_errors() -> None:
    # Calico tokenizes the whole input first.
    with pytest.raises(SelectorSyntaxError, match="expected ==") as info:
        parse("() && a = 'b'")
    assert info.value.column == 9


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("", "all()"),
        (" \t ", "all()"),
        ("all( )", "all()"),
        ("global( )", "global()"),
        ("has( a/b.c-d_e )", "has(a/b.c-d_e)"),
        ("a=='x'", 'a == "x"'),
        ("a==''", 'a == ""'),
        ('a == "it\'s"', 'a == "it\'s"'),
        ("a == 'say \"hi\"'", "a == 'say \"hi\"'"),
        ("a == 'back\\slash'", 'a == "back\\slash"'),
        ("a == 'two\nlines'", 'a == "two\nlines"'),
        ("a notin {'x'}", 'a not in {"x"}'),
        ("a not in{}", "a not in {}"),
        ("a in {'b', 'a', 'b',}", 'a in {"a", "b"}'),
        ("a in {'\"', 'x'}", 'a in {\'"\', "x"}'),
        ("a startswith'x'", 'a starts with "x"'),
        ("a ends   with 'x'", 'a ends with "x"'),
        ("a contains'x'", 'a contains "x"'),
        ("contains contains 'contains'", 'contains contains "contains"'),
        ("in in {'in'}", 'in in {"in"}'),
        ("not not in {}", "not not in {}"),
        ("has == 'x'", 'has == "x"'),
        ("all == 'x'", 'all == "x"'),
        ("0/-. == 'x'", '0/-. == "x"'),
        ("!a == 'b'", '!a == "b"'),
        ("!!!a == 'b'", '!a == "b"'),
        ("!!a == 'b'", 'a == "b"'),
        ("! ! (has(a))", "has(a)"),
        ("((((has(a)))))", "has(a)"),
        ("has(a) && has(b) && has(c)", "(has(a) && has(b) && has(c))"),
        ("(has(a) && has(b)) && has(c)", "((has(a) && has(b)) && has(c))"),
        ("has(a) || has(b) && has(c)", "(has(a) || (has(b) && has(c)))"),
        ("!has(a) || !(has(b) && has(c))", "(!has(a) || !(has(b) && has(c)))"),
        ("a == 'b' && c == 'd' || e == 'f'", '((a == "b" && c == "d") || e == "f")'),
    ],
)
def test_canonical_form(text: str, canonical: str) -> None:
    sel = parse(text)
    assert str(sel) == canonical
    assert sel == parse(canonical)
    assert hash(sel) == hash(parse(canonical))


def test_double_negation_through_parentheses_mirrors_calico() -> None:
    # Calico keeps NOT(NOT(x)) from "!(!x)" and prints it as "!!x", which re-parses to x.
    sel = parse("!(!has(a))")
    assert sel.root == NotNode(NotNode(HasNode("a")))
    assert str(sel) == "!!has(a)"
    assert parse(str(sel)) == parse("has(a)")
    assert sel.evaluate({"a": ""}) and not sel.evaluate({})


def test_label_length_limit() -> None:
    assert str(parse("x" * 512 + " == 'v'")).startswith("x" * 512 + " ==")
    assert str(parse("has(" + "y" * 512 + ")")) == "has(" + "y" * 512 + ")"
    with pytest.raises(SelectorSyntaxError, match="label too long"):
        parse("has(" + "y" * 513 + ")")
    assert valid_label("a/b.c-d_e") and valid_label("x" * 512)
    assert not valid_label("") and not valid_label("x" * 513) and not valid_label("a:b")


def test_nesting_limit() -> None:
    deep = "(" * MAX_NESTING + "!has(a) || has(b)" + ")" * MAX_NESTING
    assert parse(deep).evaluate({"b": "1"})
    alternating = "!(has(a) || " * MAX_NESTING + "has(b) && has(c)" + ")" * MAX_NESTING
    assert parse(alternating).evaluate({}) == (MAX_NESTING % 2 == 1)
    too_deep = "(" * (MAX_NESTING + 1) + "has(a)" + ")" * (MAX_NESTING + 1)
    with pytest.raises(SelectorSyntaxError, match="nested more than") as info:
        parse(too_deep)
    assert info.value.column == MAX_NESTING + 1


def test_long_flat_selector() -> None:
    text = " && ".join(f"l{i} == 'v{i}'" for i in range(2000))
    labels = {f"l{i}": f"v{i}" for i in range(2000)}
    sel = parse(text)
    assert sel.evaluate(labels)
    labels["l1999"] = "other"
    assert not sel.evaluate(labels)


def test_selector_value_semantics() -> None:
    sel = parse("a == 'b'")
    assert parse("a == 'b'") is sel  # cached
    assert repr(sel) == "Selector('a == \"b\"')"
    assert sel.root == EqNode("a", "b")
    assert sel != 'a == "b"'
    assert {sel, parse('a=="b"')} == {sel}
    with pytest.raises(AttributeError):
        sel._text = "x"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del sel._root
    clone = pickle.loads(pickle.dumps(sel))
    assert clone == sel and clone.evaluate({"a": "b"})
    assert Selector(InNode("k", ["b", "a", "b"])) == parse("k in {'a','b'}")
    with pytest.raises(TypeError):
        parse(None)  # type: ignore[arg-type]


def test_constants() -> None:
    assert str(ALL) == "all()" and parse("") == ALL and ALL.root == AllNode()
    assert str(NO_MATCH) == "!all()" and parse("!all()") == NO_MATCH
    assert ALL.evaluate({}) and not NO_MATCH.evaluate({"a": "b"})


def test_unique_id_formula() -> None:
    assert unique_id("all()") == "s:5y5I3VdRZfDU01O--xXAPx2yxCQQqMf0M6IWug"
    assert parse("").unique_id == unique_id("all()")
    assert parse("a == 'é'").unique_id == unique_id('a == "é"')


def test_normalise() -> None:
    assert normalise(" \n a=='b' \r\n") == 'a == "b"'
    assert normalise("a == b") == "a == b"
    assert normalise("\x1ca == 'b'") == "\x1ca == 'b'"  # not Go whitespace: unchanged
    assert normalise("\u00a0has(x)\u3000") == "has(x)"


def test_in_namespace_matches_calicos_effective_selector() -> None:
    for text in ["all()", "a == 'b' || has(c)", "a == 'b' && has(c)", "!has(a)"]:
        effective = parse(f"({text}) && projectcalico.org/namespace == 'ns1'")
        assert in_namespace(text, "ns1") == effective
        assert in_namespace(parse(text), "ns1") == effective
    scoped = in_namespace("app == 'web'", "prod")
    assert scoped.root == AndNode(
        (EqNode("app", "web"), EqNode("projectcalico.org/namespace", "prod"))
    )
    assert scoped.evaluate({"app": "web", "projectcalico.org/namespace": "prod"})
    assert not scoped.evaluate({"app": "web", "projectcalico.org/namespace": "dev"})


def test_impossible_and_restrictions() -> None:
    assert parse("a == 'x' && a == 'y'").impossible
    assert parse("has(a) && !has(a)").impossible
    assert not parse("a == 'x' || a == 'y'").impossible
    assert not parse("a in {}").impossible  # Calico leaves the value unrestricted here


def test_generated_source_is_one_expression() -> None:
    src = source(parse("app == 'web' && tier in {'b','a'} && !has(canary)").root)
    assert src == (
        "lambda L: (L.get('app') == 'web' and L.get('tier') in {'a', 'b'} and not 'canary' in L)"
    )
    # Hostile-looking values are data, never code.
    sel = parse("a == '__import__(\"os\")' || b == \"'); x = ('\"")
    assert sel.evaluate({"a": '__import__("os")'})
    assert sel.evaluate({"b": "'); x = ('"})
    assert not sel.evaluate({})


def test_evaluate_semantics() -> None:
    cases = [
        ("a == 'x'", {"a": "x"}, True),
        ("a == 'x'", {}, False),
        ("a != 'x'", {}, True),
        ("a != 'x'", {"a": "x"}, False),
        ("a in {}", {"a": ""}, False),
        ("a not in {}", {}, True),
        ("a not in {'x'}", {}, True),
        ("a not in {'x'}", {"a": "x"}, False),
        ("a contains ''", {"a": ""}, True),
        ("a contains ''", {}, False),
        ("a starts with 'ab'", {"a": "abc"}, True),
        ("a ends with 'bc'", {"a": "abc"}, True),
        ("a ends with 'bc'", {"a": "cb"}, False),
        ("has(a)", {"a": ""}, True),
        ("global()", {}, True),
        ("!global()", {}, False),
        ("A == 'x'", {"a": "x"}, False),
        ("a == 'X'", {"a": "x"}, False),
    ]
    for text, labels, expected in cases:
        assert parse(text).evaluate(labels) is expected, text

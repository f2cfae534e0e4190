"""The LALR parser: Calico tokens -> lark (``selector.lark``) -> frozen AST.

The parser is built once, lazily, with the transformer applied inline (no parse tree is
built). Grammar errors from lark are translated into the messages Calico's recursive-descent
parser gives for the same input; which message applies follows from the terminals the LALR
state expected and, for a stray token after a complete operation, the parenthesis depth.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Final, cast

from lark import Lark, Token, Transformer
from lark.common import LexerConf
from lark.exceptions import UnexpectedInput, UnexpectedToken
from lark.lexer import Lexer

from packetcapture.errors import SelectorSyntaxError
from packetcapture.selector import _tokenizer as tk
from packetcapture.selector._ast import (
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
    StartsWithNode,
)

__all__ = ["MAX_NESTING", "parse_node"]

#: Deepest parenthesis nesting accepted. Calico has no limit; ours keeps the generated
#: evaluator within CPython's nesting limits. Real selectors stay far below it.
MAX_NESTING: Final = 50

_COMPARE: Final[dict[str, Callable[[str, str], Node]]] = {
    tk.EQ: EqNode,
    tk.NE: NeNode,
    tk.CONTAINS: ContainsNode,
    tk.STARTSWITH: StartsWithNode,
    tk.ENDSWITH: EndsWithNode,
}
_OP_START: Final = frozenset({tk.HAS, tk.ALL, tk.GLOBAL, tk.LABEL, tk.NOT, tk.LPAREN})
_AFTER_LABEL: Final = frozenset(_COMPARE) | {tk.IN, tk.NOTIN}
_IN_SET: Final = frozenset({tk.STRING, tk.COMMA, tk.RBRACE})


class _ToAst(Transformer[Token, Node]):
    """Builds AST nodes as the LALR parser reduces (callbacks named after grammar rules)."""

    def start(self, children: list[Node]) -> Node:
        return children[0] if children else AllNode()

    def or_expr(self, children: list[Node]) -> Node:
        return OrNode(children)

    def and_expr(self, children: list[Node]) -> Node:
        return AndNode(children)

    def negated(self, children: list[Token | Node]) -> Node:
        operand = children[-1]
        assert not isinstance(operand, Token)
        # len(children) - 1 is the number of "!"s; an even number cancels out.
        return NotNode(operand) if len(children) % 2 == 0 else operand

    def has(self, children: list[Token]) -> Node:
        return HasNode(str(children[0].value))

    def all(self, children: list[Token]) -> Node:
        return AllNode()

    def global_(self, children: list[Token]) -> Node:
        return GlobalNode()

    def compare_op(self, children: list[Token]) -> Token:
        return children[0]

    set_op = compare_op

    def compare(self, children: list[Token]) -> Node:
        label, op, value = children
        return _COMPARE[op.type](str(label.value), str(value.value))

    def strings(self, children: list[Token]) -> list[str]:
        return [str(child.value) for child in children]

    def set_match(self, children: list[object]) -> Node:
        label, op, values = children
        assert isinstance(label, Token) and isinstance(op, Token) and isinstance(values, list)
        cls = InNode if op.type == tk.IN else NotInNode
        return cls(str(label.value), values)


class _TokenListLexer(Lexer):
    """A lark lexer that replays a token list produced by :func:`_tokenizer.tokenize`."""

    def __init__(self, lexer_conf: LexerConf) -> None:
        pass

    def lex(self, data: list[Token]) -> list[Token]:  # type: ignore[override]
        return data


@functools.cache
def _lark() -> Lark:
    return Lark.open_from_package(
        "packetcapture.selector",
        "selector.lark",
        parser="lalr",
        lexer=_TokenListLexer,
        transformer=_ToAst(),
        maybe_placeholders=False,
    )


def _describe(token: Token) -> str:
    # Go's fmt of a tokenizer.Token: Kind(Value); the end is said in words, not TokEOF().
    if token.type == tk.END:
        return "end of selector"
    return f"{tk.CALICO_KIND[token.type]}({token.value})"


def _syntax_error(exc: UnexpectedToken, text: str, tokens: list[Token]) -> SelectorSyntaxError:
    token: Token = exc.token
    expected = set(exc.expected)
    if token.type == tk.END:
        index, column = len(tokens), len(text) + 1
    else:
        index = next(i for i, t in enumerate(tokens) if t.start_pos == token.start_pos)
        column = (token.start_pos or 0) + 1
    if expected & _OP_START:
        if token.type == tk.END:
            reason = "unexpected end of selector"
        else:
            reason = f"unexpected token: {_describe(token)}"
    elif expected & _AFTER_LABEL:
        if token.type == tk.END:
            reason = "unexpected end of string looking for op"
        else:
            reason = f"expected == or != not: {_describe(token)}"
    elif expected == {tk.STRING}:
        reason = "expected string"
    elif expected == {tk.LBRACE}:
        reason = "expected set literal"
    elif expected <= _IN_SET:
        reason = "expected }"
    else:
        # After a complete operation: inside parentheses Calico wants ")", at the top level
        # it reports everything left over.
        depth = sum(
            1 if t.type == tk.LPAREN else -1 if t.type == tk.RPAREN else 0 for t in tokens[:index]
        )
        if depth > 0:
            reason = "expected )"
        else:
            rest = list(map(_describe, tokens[index:]))
            reason = f"unexpected content at end of selector [{' '.join(rest)}]"
    return SelectorSyntaxError(reason, text, column)


def _check_nesting(text: str, tokens: list[Token]) -> None:
    depth = 0
    for token in tokens:
        if token.type == tk.LPAREN:
            depth += 1
            if depth > MAX_NESTING:
                raise SelectorSyntaxError(
                    f"parentheses nested more than {MAX_NESTING} deep",
                    text,
                    (token.start_pos or 0) + 1,
                )
        elif token.type == tk.RPAREN:
            depth -= 1


def parse_node(text: str) -> Node:
    """Parse selector ``text`` into an AST node, raising ``SelectorSyntaxError``."""
    tokens = tk.tokenize(text)
    if not tokens:
        return AllNode()
    _check_nesting(text, tokens)
    try:
        # The inline transformer makes lark return our node, not a Tree.
        node = cast(Node, _lark().parse(tokens))
    except UnexpectedToken as exc:
        raise _syntax_error(exc, text, tokens) from None
    except UnexpectedInput as exc:  # pragma: no cover - a custom lexer cannot cause others
        raise SelectorSyntaxError(str(exc), text, 1) from None
    return node

"""The LALR parser: Calico tokens -> LALR tables (from ``selector.lark``) -> frozen AST.

lark analyses ``selector.lark`` at build time (``python -m packetcapture.selector._generate``
writes ``_tables.py``; a test checks it is current); here a small LALR loop drives those
tables, calling the rule callbacks below as it reduces, so no parse tree is built and neither
lark nor the grammar analysis is paid for at start-up. Grammar errors are translated into the
messages Calico's recursive-descent parser gives for the same input; which message applies
follows from the terminals the LALR state expected and, for a stray token after a complete
operation, the parenthesis depth.
"""

from __future__ import annotations

from collections.abc import Callable

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
from packetcapture.selector._tables import END_STATE, RULES, STATES
from packetcapture.selector._tokenizer import Token

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up)
if TYPE_CHECKING:
    from typing import Any, Final

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


# Rule callbacks, named as the grammar's rules and aliases; each gets the kept children.


def _start(children: list[Node]) -> Node:
    return children[0] if children else AllNode()


def _negated(children: list[Any]) -> Node:
    operand: Node = children[-1]
    # len(children) - 1 is the number of "!"s; an even number cancels out.
    return NotNode(operand) if len(children) % 2 == 0 else operand


def _compare(children: list[Token]) -> Node:
    label, op, value = children
    return _COMPARE[op.type](label.value, value.value)


def _set_match(children: list[Any]) -> Node:
    label, op, values = children
    cls = InNode if op.type == tk.IN else NotInNode
    return cls(label.value, values)


def _first(children: list[Any]) -> Any:
    return children[0]


_CALLBACKS: Final[dict[str, Callable[[list[Any]], Any]]] = {
    "start": _start,
    "or_expr": OrNode,
    "and_expr": AndNode,
    "negated": _negated,
    "has": lambda children: HasNode(children[0].value),
    "all": lambda children: AllNode(),
    "global_": lambda children: GlobalNode(),
    "compare_op": _first,
    "set_op": _first,
    "compare": _compare,
    "strings": lambda children: [child.value for child in children],
    "set_match": _set_match,
}


class _UnexpectedError(Exception):
    """The LALR state had no action for ``token``; ``expected`` are the terminals it had."""

    def __init__(self, token: Token, expected: set[str]) -> None:
        self.token = token
        self.expected = expected


def _run_lalr(tokens: list[Token]) -> Node:
    """Drive the LALR tables over ``tokens`` (then the end token), building the AST."""
    states, rules, callbacks = STATES, RULES, _CALLBACKS
    end = Token(tk.END, "", tokens[-1].start_pos if tokens else 0)
    state_stack = [0]
    value_stack: list[Any] = []
    for token in (*tokens, end):
        while True:
            row = states[state_stack[-1]]
            action = row.get(token.type)
            if action is None:
                raise _UnexpectedError(token, {symbol for symbol in row if symbol.isupper()})
            if action >= 0:  # shift
                state_stack.append(action)
                value_stack.append(token)
                break
            origin, size, callback, expand1, keep = rules[~action]
            args = value_stack[-size:] if size else []
            if size:
                del state_stack[-size:]
                del value_stack[-size:]
            kept: list[Any] = []
            for index, splice in keep:
                if splice:  # an inlined helper rule ("_..."): its children join ours
                    kept += args[index]
                else:
                    kept.append(args[index])
            if not callback:
                value: Any = kept
            elif expand1 and len(kept) == 1:
                value = kept[0]
            else:
                value = callbacks[callback](kept)
            state_stack.append(states[state_stack[-1]][origin])
            value_stack.append(value)
            if token is end and state_stack[-1] == END_STATE:
                result: Node = value_stack[-1]
                return result
    raise AssertionError("unreachable: the end token always completes or fails the parse")


def _describe(token: Token) -> str:
    # Go's fmt of a tokenizer.Token: Kind(Value); the end is said in words, not TokEOF().
    if token.type == tk.END:
        return "end of selector"
    return f"{tk.CALICO_KIND[token.type]}({token.value})"


def _syntax_error(exc: _UnexpectedError, text: str, tokens: list[Token]) -> SelectorSyntaxError:
    token = exc.token
    expected = exc.expected
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
        return _run_lalr(tokens)
    except _UnexpectedError as exc:
        raise _syntax_error(exc, text, tokens) from None

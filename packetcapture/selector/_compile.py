"""Compile a selector AST into one Python function.

The AST becomes the source of a single ``lambda L: ...`` expression, compiled once, so that
evaluating a selector is one call with no tree walk and no per-node function calls: Python's
own ``and`` / ``or`` give the short-circuiting, and ``x in {"a", "b"}`` is folded by CPython
into a frozenset constant. Every label name and value enters the source through ``repr``, so
no selector text can inject code. Evaluation mirrors Calico's ``ast.go``:

* ``k == v`` / ``k in {...}``, ``contains``, ``starts with``, ``ends with``: the label must be
  present (``L.get`` gives ``None`` when absent, which equals no string);
* ``k != v`` / ``k not in {...}``: true when the label is absent.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

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

__all__ = ["Evaluator", "compile_node", "source"]

#: A compiled selector: labels in, match out.
Evaluator = Callable[[Mapping[str, str]], bool]


def _expr(node: Node) -> str:
    """Return a Python expression over ``L`` that is safe to use as an operand of ``not``."""
    match node:
        case AllNode() | GlobalNode():
            return "True"
        case HasNode(label):
            return f"{label!r} in L"
        case EqNode(label, value):
            return f"L.get({label!r}) == {value!r}"
        case NeNode(label, value):
            return f"L.get({label!r}) != {value!r}"
        case InNode(label, values):
            if not values:
                return "False"
            return f"L.get({label!r}) in {{{', '.join(map(repr, values))}}}"
        case NotInNode(label, values):
            if not values:
                return "True"
            return f"L.get({label!r}) not in {{{', '.join(map(repr, values))}}}"
        # For a non-empty needle an absent label can stand in as "", which never matches; an
        # empty needle matches exactly when the label is present.
        case (
            ContainsNode(label, value) | StartsWithNode(label, value) | EndsWithNode(label, value)
        ) if not value:
            return f"{label!r} in L"
        case ContainsNode(label, value):
            return f"{value!r} in L.get({label!r}, '')"
        case StartsWithNode(label, value):
            return f"L.get({label!r}, '').startswith({value!r})"
        case EndsWithNode(label, value):
            return f"L.get({label!r}, '').endswith({value!r})"
        case NotNode(operand):
            # `not` binds looser than comparisons and tighter than and/or, and compound
            # operands are already parenthesised, so no parentheses are needed here.
            return f"not {_expr(operand)}"
        case AndNode(operands):
            return "(" + " and ".join(map(_expr, operands)) + ")"
        case OrNode(operands):
            return "(" + " or ".join(map(_expr, operands)) + ")"


def source(node: Node) -> str:
    """Return the Python source of the evaluator for ``node`` (for debugging and tests)."""
    return f"lambda L: {_expr(node)}"


def compile_node(node: Node) -> Evaluator:
    """Compile ``node`` into a function ``labels -> bool``."""
    code = compile(source(node), "<selector>", "eval")
    # No builtins: the expression only uses operators and the mapping's own methods.
    fn: Evaluator = eval(code, {"__builtins__": {}})
    return fn

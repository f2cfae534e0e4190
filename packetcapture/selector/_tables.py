"""LALR tables for Calico selectors, generated from selector.lark: do not edit.

Regenerate with ``python -m packetcapture.selector._generate`` (a test checks that
this file is current). ``STATES[n]`` maps a terminal or rule name to the next state
(a shift, or a goto after a reduce) or to ``~r`` (reduce by ``RULES[r]``). A rule is
``(name, length, callback, expand1, children)``: ``callback`` names the transformer
method ("" for an inlined rule, whose children are spliced into its parent), ``expand1``
says one child stands for the rule itself, and ``children`` lists the kept positions
with whether each is an inlined rule to splice.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up)
if TYPE_CHECKING:
    from typing import Final

# fmt: off
END_STATE: Final = 12

STATES: Final[tuple[dict[str, int], ...]] = (
    {
        "$END": -2, "ALL": 1, "GLOBAL": 2, "HAS": 3, "LABEL": 4, "NOT": 5, "_LPAREN": 6,
        "__op_plus_2": 7, "and_expr": 8, "atom": 9, "op": 10, "or_expr": 11, "start": 12,
    },
    {"$END": -10, "_AND": -10, "_OR": -10, "_RPAREN": -10},
    {"$END": -11, "_AND": -11, "_OR": -11, "_RPAREN": -11},
    {"$END": -9, "_AND": -9, "_OR": -9, "_RPAREN": -9},
    {
        "CONTAINS": 13, "ENDSWITH": 14, "EQ": 15, "IN": 16, "NE": 17, "NOTIN": 18, "STARTSWITH": 19,
        "compare_op": 20, "set_op": 21,
    },
    {"ALL": -31, "GLOBAL": -31, "HAS": -31, "LABEL": -31, "NOT": -31, "_LPAREN": -31},
    {
        "ALL": 1, "GLOBAL": 2, "HAS": 3, "LABEL": 4, "NOT": 5, "_LPAREN": 6, "__op_plus_2": 7,
        "and_expr": 8, "atom": 9, "op": 10, "or_expr": 22,
    },
    {"ALL": 1, "GLOBAL": 2, "HAS": 3, "LABEL": 4, "NOT": 23, "_LPAREN": 6, "atom": 24},
    {"$END": -4, "_OR": 25, "_RPAREN": -4, "__or_expr_star_0": 26},
    {"$END": -7, "_AND": -7, "_OR": -7, "_RPAREN": -7},
    {"$END": -6, "_AND": 27, "_OR": -6, "_RPAREN": -6, "__and_expr_star_1": 28},
    {"$END": -1},
    {},
    {"STRING": -17},
    {"STRING": -19},
    {"STRING": -15},
    {"_LBRACE": -20},
    {"STRING": -16},
    {"_LBRACE": -21},
    {"STRING": -18},
    {"STRING": 29},
    {"_LBRACE": 30},
    {"_RPAREN": 31},
    {"ALL": -32, "GLOBAL": -32, "HAS": -32, "LABEL": -32, "NOT": -32, "_LPAREN": -32},
    {"$END": -8, "_AND": -8, "_OR": -8, "_RPAREN": -8},
    {
        "ALL": 1, "GLOBAL": 2, "HAS": 3, "LABEL": 4, "NOT": 5, "_LPAREN": 6, "__op_plus_2": 7,
        "and_expr": 32, "atom": 9, "op": 10,
    },
    {"$END": -3, "_OR": 33, "_RPAREN": -3},
    {
        "ALL": 1, "GLOBAL": 2, "HAS": 3, "LABEL": 4, "NOT": 5, "_LPAREN": 6, "__op_plus_2": 7,
        "atom": 9, "op": 34,
    },
    {"$END": -5, "_AND": 35, "_OR": -5, "_RPAREN": -5},
    {"$END": -12, "_AND": -12, "_OR": -12, "_RPAREN": -12},
    {"STRING": 36, "_RBRACE": -26, "strings": 37},
    {"$END": -14, "_AND": -14, "_OR": -14, "_RPAREN": -14},
    {"$END": -27, "_OR": -27, "_RPAREN": -27},
    {
        "ALL": 1, "GLOBAL": 2, "HAS": 3, "LABEL": 4, "NOT": 5, "_LPAREN": 6, "__op_plus_2": 7,
        "and_expr": 38, "atom": 9, "op": 10,
    },
    {"$END": -29, "_AND": -29, "_OR": -29, "_RPAREN": -29},
    {
        "ALL": 1, "GLOBAL": 2, "HAS": 3, "LABEL": 4, "NOT": 5, "_LPAREN": 6, "__op_plus_2": 7,
        "atom": 9, "op": 39,
    },
    {"_COMMA": 40, "_RBRACE": -25, "__strings_star_3": 41},
    {"_RBRACE": 42},
    {"$END": -28, "_OR": -28, "_RPAREN": -28},
    {"$END": -30, "_AND": -30, "_OR": -30, "_RPAREN": -30},
    {"STRING": 43, "_RBRACE": -24},
    {"_COMMA": 44, "_RBRACE": -23},
    {"$END": -13, "_AND": -13, "_OR": -13, "_RPAREN": -13},
    {"_COMMA": -33, "_RBRACE": -33},
    {"STRING": 45, "_RBRACE": -22},
    {"_COMMA": -34, "_RBRACE": -34},
)

RULES: Final[tuple[tuple[str, int, str, bool, tuple[tuple[int, bool], ...]], ...]] = (
    ("start", 1, "start", False, ((0, False),)),
    ("start", 0, "start", False, ()),
    ("or_expr", 2, "or_expr", True, ((0, False), (1, True))),
    ("or_expr", 1, "or_expr", True, ((0, False),)),
    ("and_expr", 2, "and_expr", True, ((0, False), (1, True))),
    ("and_expr", 1, "and_expr", True, ((0, False),)),
    ("op", 1, "op", True, ((0, False),)),
    ("op", 2, "negated", False, ((0, True), (1, False))),
    ("atom", 1, "has", False, ((0, False),)),
    ("atom", 1, "all", False, ((0, False),)),
    ("atom", 1, "global_", False, ((0, False),)),
    ("atom", 3, "compare", False, ((0, False), (1, False), (2, False))),
    ("atom", 5, "set_match", False, ((0, False), (1, False), (3, False))),
    ("atom", 3, "atom", True, ((1, False),)),
    ("compare_op", 1, "compare_op", False, ((0, False),)),
    ("compare_op", 1, "compare_op", False, ((0, False),)),
    ("compare_op", 1, "compare_op", False, ((0, False),)),
    ("compare_op", 1, "compare_op", False, ((0, False),)),
    ("compare_op", 1, "compare_op", False, ((0, False),)),
    ("set_op", 1, "set_op", False, ((0, False),)),
    ("set_op", 1, "set_op", False, ((0, False),)),
    ("strings", 3, "strings", False, ((0, False), (1, True))),
    ("strings", 2, "strings", False, ((0, False), (1, True))),
    ("strings", 2, "strings", False, ((0, False),)),
    ("strings", 1, "strings", False, ((0, False),)),
    ("strings", 0, "strings", False, ()),
    ("__or_expr_star_0", 2, "", False, ((1, False),)),
    ("__or_expr_star_0", 3, "", False, ((0, True), (2, False))),
    ("__and_expr_star_1", 2, "", False, ((1, False),)),
    ("__and_expr_star_1", 3, "", False, ((0, True), (2, False))),
    ("__op_plus_2", 1, "", False, ((0, False),)),
    ("__op_plus_2", 2, "", False, ((0, True), (1, False))),
    ("__strings_star_3", 2, "", False, ((1, False),)),
    ("__strings_star_3", 3, "", False, ((0, True), (2, False))),
)
# fmt: on

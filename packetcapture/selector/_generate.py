"""Generate the selector's LALR tables (packetcapture/selector/_tables.py) from selector.lark.

lark (a runtime dependency, imported only here) analyses the grammar when the tables are
generated, at build time; the package ships the resulting tables and drives them with its own
small LALR loop (``packetcapture.selector._parser``), so importing and using selectors never
loads lark nor re-analyses the grammar (~40 ms at start-up). selector.lark stays the one
definition of the language: change it, then regenerate.

    python -m packetcapture.selector._generate          # rewrite _tables.py
    python -m packetcapture.selector._generate --check  # exit 1 if it is out of date
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from lark import Lark
from lark.lexer import Lexer

PACKAGE = Path(__file__).resolve().parent
GRAMMAR = PACKAGE / "selector.lark"
TABLES = PACKAGE / "_tables.py"


class _NoLexer(Lexer):
    """Tokens come from the package's own tokenizer; lark only needs to know there is one."""

    def __init__(self, lexer_conf: Any) -> None:
        pass

    def lex(self, lexer_state: Any, parser_state: Any) -> Any:  # pragma: no cover - never lexes
        return lexer_state


def _analyse() -> tuple[
    list[dict[str, int]], list[tuple[str, int, str, bool, tuple[Any, ...]]], int
]:
    """Return (states, rules, end state) in the encoding ``_tables.py`` documents."""
    lark = Lark(GRAMMAR.read_text(), parser="lalr", lexer=_NoLexer, maybe_placeholders=False)
    table = lark.parser.parser.parser.parse_table
    rules = list(lark.rules)
    index = {rule: i for i, rule in enumerate(rules)}
    # lark numbers states in an order that depends on hashing; number them breadth first from
    # the start state, symbols in sorted order, so that the file is the same on every run.
    start = table.start_states["start"]
    order = [start]
    number = {start: 0}
    for state in order:
        for _symbol, (action, arg) in sorted(table.states[state].items()):
            if action.name == "Shift" and arg not in number:
                number[arg] = len(order)
                order.append(arg)
    states: list[dict[str, int]] = []
    for state in order:
        row: dict[str, int] = {}
        for symbol, (action, arg) in sorted(table.states[state].items()):
            # A shift (or a goto, for a rule name) is the next state; a reduce is ~rule.
            row[symbol] = number[arg] if action.name == "Shift" else ~index[arg]
        states.append(row)
    encoded = []
    for rule in rules:
        keep = rule.options.keep_all_tokens
        children = tuple(
            # (position, splice): rules named "_..." are inlined into their parent.
            (i, not sym.is_term and sym.name.startswith("_"))
            for i, sym in enumerate(rule.expansion)
            if keep or not (sym.is_term and getattr(sym, "filter_out", False))
        )
        origin = str(rule.origin.name)
        # The transformer method called, or "" for an inlined rule (its children are spliced).
        callback = "" if origin.startswith("_") else str(rule.alias or origin)
        # "?rule" without an alias: one remaining child stands for the rule itself.
        expand1 = bool(rule.options.expand1 and not rule.alias)
        encoded.append((origin, len(rule.expansion), callback, expand1, children))
    return states, encoded, number[table.end_states["start"]]


def _wrap(items: list[str]) -> list[str]:
    """One dict per line, or its items over lines of at most 100 characters (as ruff does)."""
    one = "    {" + ", ".join(items) + "},"
    if len(one) <= 100:
        return [one]
    lines = ["    {"]
    for item in items:
        if len(lines) > 1 and len(lines[-1]) + len(item) + 2 <= 100:
            lines[-1] += f" {item},"
        else:
            lines.append(f"        {item},")
    return [*lines, "    },"]


def render() -> str:
    """Return the text of ``_tables.py``."""
    states, rules, end = _analyse()
    lines = [
        '"""LALR tables for Calico selectors, generated from selector.lark: do not edit.',
        "",
        "Regenerate with ``python -m packetcapture.selector._generate`` (a test checks that",
        "this file is current). ``STATES[n]`` maps a terminal or rule name to the next state",
        "(a shift, or a goto after a reduce) or to ``~r`` (reduce by ``RULES[r]``). A rule is",
        "``(name, length, callback, expand1, children)``: ``callback`` names the transformer",
        'method ("" for an inlined rule, whose children are spliced into its parent), ``expand1``',
        "says one child stands for the rule itself, and ``children`` lists the kept positions",
        "with whether each is an inlined rule to splice.",
        '"""',
        "",
        "from __future__ import annotations",
        "",
        "TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up)",
        "if TYPE_CHECKING:",
        "    from typing import Final",
        "",
        "# fmt: off",
        f"END_STATE: Final = {end}",
        "",
        "STATES: Final[tuple[dict[str, int], ...]] = (",
    ]
    for row in states:
        lines += _wrap([f'"{symbol}": {target}' for symbol, target in row.items()])
    lines += [
        ")",
        "",
        "RULES: Final[tuple[tuple[str, int, str, bool, tuple[tuple[int, bool], ...]], ...]] = (",
    ]
    lines += [f"    {rule!r},".replace("'", '"') for rule in rules]
    lines += [")", "# fmt: on", ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if _tables.py is stale")
    args = parser.parse_args()
    text = render()
    if args.check:
        if TABLES.read_text() != text:
            print(
                f"{TABLES} is out of date: run python -m packetcapture.selector._generate",
                file=sys.stderr,
            )
            return 1
        return 0
    TABLES.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

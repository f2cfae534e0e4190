#!/usr/bin/env python3
"""Render the schedule's transition table into docs/schedule.md.

The state diagram (Mermaid) and the full transition table are generated from
``packetcapture.schedule.TRANSITIONS`` and written between the marker comments
``<!-- BEGIN GENERATED: name -->`` / ``<!-- END GENERATED: name -->`` in the page.

    python scripts/render_state_diagram.py          # rewrite docs/schedule.md
    python scripts/render_state_diagram.py --check  # exit 1 if it is out of date
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Mapping
from pathlib import Path

from packetcapture.model import CaptureState
from packetcapture.schedule import TRANSITIONS, Event, Rule

DOC = Path(__file__).resolve().parent.parent / "docs" / "schedule.md"

Table = Mapping[tuple[CaptureState | None, Event], tuple[Rule, ...]]

# Row order of the rendered table: the lifecycle order, the pseudo-state first.
_STATE_ORDER: list[CaptureState | None] = [
    None,
    CaptureState.SCHEDULED,
    CaptureState.WAITING_FOR_TRAFFIC,
    CaptureState.CAPTURING,
    CaptureState.ERROR,
    CaptureState.FINISHED,
]


def _name(state: CaptureState | None) -> str:
    return "[*]" if state is None else state.value


def _rows(table: Table) -> list[tuple[CaptureState | None, Event, Rule]]:
    rows = []
    for state in _STATE_ORDER:
        for event in Event:
            for rule in table.get((state, event), ()):
                rows.append((state, event, rule))
    return rows


def render_mermaid(table: Table = TRANSITIONS) -> str:
    """Return the state diagram as a Mermaid ``stateDiagram-v2`` block.

    Edges with the same ends, condition and actions are merged into one label; self-loops that
    do nothing are left out (they are in the table).
    """
    edges: dict[tuple[str, str, str, str], list[str]] = {}
    for state, event, rule in _rows(table):
        if rule.target is state and not rule.actions:
            continue
        guard = str(rule.guard)
        actions = ", ".join(a.value for a in rule.actions)
        key = (_name(state), _name(rule.target), guard, actions)
        edges.setdefault(key, []).append(event.value)
    lines = ["```mermaid", "stateDiagram-v2"]
    for (src, dst, guard, actions), events in edges.items():
        label = ", ".join(events)
        if guard:
            label += f" [{guard}]"
        if actions:
            label += f" / {actions}"
        lines.append(f"    {src} --> {dst} : {label}")
    lines.append("```")
    return "\n".join(lines)


def render_table(table: Table = TRANSITIONS) -> str:
    """Return every rule of the table as a Markdown table."""
    lines = [
        "| State | Input | Condition | Next state | Actions |",
        "|---|---|---|---|---|",
    ]
    for state, event, rule in _rows(table):
        src = "(none)" if state is None else state.value
        dst = "(forgotten)" if rule.target is None else rule.target.value
        actions = ", ".join(a.value for a in rule.actions) or "-"
        lines.append(
            f"| {src} | {event.value} | {str(rule.guard) or 'always'} | {dst} | {actions} |"
        )
    return "\n".join(lines)


def render_into(text: str, blocks: Mapping[str, str]) -> str:
    """Replace each ``name`` block between its markers in ``text``; raise if a marker is missing."""
    for name, body in blocks.items():
        pattern = re.compile(
            rf"(<!-- BEGIN GENERATED: {re.escape(name)} -->\n).*?(<!-- END GENERATED: "
            rf"{re.escape(name)} -->)",
            re.DOTALL,
        )
        match = pattern.search(text)
        if match is None:
            raise ValueError(f"markers for {name!r} not found")
        text = text[: match.end(1)] + body + "\n" + text[match.start(2) :]
    return text


def render_doc(text: str) -> str:
    """Return the page text with every generated block brought up to date."""
    return render_into(
        text, {"state-diagram": render_mermaid(), "transition-table": render_table()}
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the page is stale")
    parser.add_argument("--doc", type=Path, default=DOC, help="page to update")
    args = parser.parse_args(argv)
    old = args.doc.read_text(encoding="utf-8")
    new = render_doc(old)
    if args.check:
        if new != old:
            print(f"{args.doc} is out of date: run {sys.argv[0]}", file=sys.stderr)
            return 1
        return 0
    if new != old:
        args.doc.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

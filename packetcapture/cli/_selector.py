"""``packetcapture selector EXPR``: normalise a Calico selector, or show what it matches."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from packetcapture.errors import SelectorSyntaxError, ValidationError

# typing.TYPE_CHECKING without importing typing (~3 ms at start-up); type checkers know it.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from packetcapture.selector import Selector

__all__ = ["register", "run"]


def _labels(text: str) -> dict[str, str]:
    """Parse ``k=v,k2=v2`` (an empty value is allowed; an empty string means no labels)."""
    out: dict[str, str] = {}
    for part in filter(None, text.split(",")):
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"expected key=value, got {part!r}")
        out[key] = value
    return out


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``selector`` subcommand."""
    parser = subparsers.add_parser(
        "selector",
        help="normalise a Calico label selector or show what it matches",
        description=(
            "Parse EXPR with Calico's selector rules and print its canonical form. With "
            "--labels, print 'match' or 'no match' for those labels. With --endpoints, print "
            "'namespace/name node interface' for each WorkloadEndpoint in FILE that a capture "
            "in namespace NS with this selector would capture. An invalid EXPR prints the "
            "problem with a caret under it and exits 1."
        ),
    )
    parser.add_argument("expr", metavar="EXPR", help="the selector, e.g. \"app == 'web'\"")
    what = parser.add_mutually_exclusive_group()
    what.add_argument(
        "--labels",
        type=_labels,
        action="append",
        metavar="K=V,...",
        help="evaluate against these labels (repeatable; later keys win)",
    )
    what.add_argument(
        "--endpoints",
        metavar="FILE",
        help="WorkloadEndpoint YAML/JSON (a list, several documents; '-' for stdin)",
    )
    what.add_argument("--tree", action="store_true", help="print the parse tree")
    what.add_argument("--id", action="store_true", help="print Calico's unique id")
    parser.add_argument(
        "-n",
        "--namespace",
        default="default",
        metavar="NS",
        help="the capture's namespace for --endpoints (default: default)",
    )
    parser.set_defaults(func=run, logs=False)  # nothing on its path logs


def run(args: argparse.Namespace) -> int:
    """Run ``packetcapture selector``; returns the exit code."""
    # Imported when the command runs, not when the parser is built (keeps --help cheap).
    from packetcapture.selector import in_namespace, parse

    try:
        sel = parse(args.expr)
    except SelectorSyntaxError as exc:
        print(f"packetcapture selector: {exc}", file=sys.stderr)
        return 1
    if args.labels is not None:
        labels: dict[str, str] = {}
        for chunk in args.labels:
            labels.update(chunk)
        print("match" if sel.evaluate(labels) else "no match")
    elif args.endpoints is not None:
        # Exactly what a capture in that namespace would select.
        return _endpoints(in_namespace(sel, args.namespace), args)
    elif args.tree:
        print(sel.tree(), end="")
    elif args.id:
        print(sel.unique_id)
    else:
        print(sel)
    return 0


def _endpoints(effective: Selector, args: argparse.Namespace) -> int:
    from packetcapture.cli._text import one_line
    from packetcapture.model import WorkloadEndpoint
    from packetcapture.serde import load_all

    name = one_line(args.endpoints)
    try:
        source: bytes | Path = (
            sys.stdin.buffer.read() if args.endpoints == "-" else Path(args.endpoints)
        )
        resources = load_all(source)
    except OSError as exc:
        # The same wording as validate, compile, plan and run.
        reason = one_line(str(exc.strerror or exc))
        print(f"packetcapture: error: {name}: cannot read: {reason}", file=sys.stderr)
        return 1
    except ValidationError as exc:
        for line in exc.lines():
            print(f"{name}: {one_line(line)}", file=sys.stderr)
        return 1
    endpoints = [r for r in resources if isinstance(r, WorkloadEndpoint)]
    if not endpoints:
        print(
            f"packetcapture: error: {name}: no {WorkloadEndpoint.KIND} resources found",
            file=sys.stderr,
        )
        return 1
    matched = 0
    for wep in endpoints:
        if effective.evaluate(wep.selector_labels()):
            matched += 1
            print(f"{wep.namespace}/{wep.metadata.name} {wep.spec.node} {wep.spec.interface_name}")
    if not matched:
        # Not an error (exit 0), but an empty output alone does not say what was checked.
        namespaces = sorted({w.namespace for w in endpoints})
        print(
            f"packetcapture: no endpoint matches in namespace {one_line(args.namespace)!r} "
            f"({len(endpoints)} read from {name}; their namespaces: {', '.join(namespaces)})",
            file=sys.stderr,
        )
    return 0

"""``packetcapture validate FILE...``: check resources the way Calico's API server does."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from packetcapture.errors import ValidationError

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``validate`` subcommand."""
    parser = subparsers.add_parser(
        "validate",
        help="check PacketCapture / WorkloadEndpoint YAML or JSON files",
        description=(
            "Check every resource in each FILE ('-' for standard input) with Calico's rules. "
            "Prints 'FILE: path: message' for each problem; exits 1 if any input is invalid."
        ),
    )
    parser.add_argument("files", nargs="+", metavar="FILE")
    parser.add_argument("-q", "--quiet", action="store_true", help="print problems only")
    parser.set_defaults(func=run, logs=False)  # nothing on its path logs


def run(args: argparse.Namespace) -> int:
    """Validate each file; print problems; return 1 if any is invalid."""
    # Imported when the command runs, not when the parser is built (keeps --help cheap).
    from packetcapture.cli import imports_done
    from packetcapture.cli._text import one_line
    from packetcapture.model import PacketCapture
    from packetcapture.serde import load_all

    imports_done()

    failed = False
    for name in args.files:
        shown = one_line(name)  # one line per problem, whatever the file is called
        try:
            data = sys.stdin.buffer.read() if name == "-" else Path(name).read_bytes()
        except OSError as exc:
            print(f"{shown}: cannot read: {one_line(str(exc.strerror or exc))}", file=sys.stderr)
            failed = True
            continue
        try:
            resources = load_all(data)
        except ValidationError as exc:
            failed = True
            for line in exc.lines():
                print(f"{shown}: {one_line(line)}")
            continue
        if not resources:
            print(f"{shown}: no resources found")
            failed = True
            continue
        if not args.quiet:
            captures = sum(isinstance(r, PacketCapture) for r in resources)
            endpoints = len(resources) - captures
            print(f"{shown}: ok ({_count(captures, 'capture')}, {_count(endpoints, 'endpoint')})")
    return 1 if failed else 0


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"

"""How every command names a capture: ``NAMESPACE/NAME``, or ``NAME`` with ``-n NAMESPACE``."""

from __future__ import annotations

import argparse

from packetcapture._defaults import DEFAULT_CAPTURE_DIR
from packetcapture.cli._text import usage_error

__all__ = ["DEFAULT_NAMESPACE", "add_name_args", "resolve_name"]

#: The namespace of a bare NAME without ``-n`` (kubectl's and calicoctl's).
DEFAULT_NAMESPACE = "default"


def add_name_args(
    parser: argparse.ArgumentParser, *, all_namespaces: bool, optional: bool = False
) -> None:
    """Add ``[NAMESPACE/]NAME``, ``-n/--namespace`` and, if asked, ``-a/--all-namespaces``.

    ``optional`` makes NAME optional (the command checks it is there when it must be).
    """
    parser.add_argument(
        "name",
        metavar="[NAMESPACE/]NAME",
        nargs="?" if optional else None,
        help="the PacketCapture: NAMESPACE/NAME, or NAME with -n NAMESPACE",
    )
    group = parser.add_mutually_exclusive_group() if all_namespaces else parser
    group.add_argument("-n", "--namespace", help=f"its namespace (default: {DEFAULT_NAMESPACE})")
    if all_namespaces:
        group.add_argument(
            "-a",
            "--all-namespaces",
            action="store_true",
            help="every namespace holding a capture called NAME",
        )


def capture_dir_help(what: str = "the capture directory") -> str:
    """Return the help of ``--capture-dir``, naming the one default every command has."""
    return f"{what} (default: {DEFAULT_CAPTURE_DIR})"


def resolve_name(args: argparse.Namespace, command: str) -> int | None:
    """Set ``args.namespace`` and ``args.name`` from either form; return 2 on a usage error.

    ``NAMESPACE/NAME`` and ``-n`` must agree; ``-a`` takes a bare NAME.
    """
    text: str = args.name
    if "/" in text:
        namespace, _, name = text.partition("/")
        if not namespace or not name or "/" in name:
            return usage_error(command, f"{text!r}: expected NAME or NAMESPACE/NAME")
        if getattr(args, "all_namespaces", False):
            return usage_error(command, f"{text!r}: --all-namespaces takes a NAME alone")
        if args.namespace is not None and args.namespace != namespace:
            disagree = f"{text!r} is in namespace {namespace!r}, not --namespace {args.namespace!r}"
            return usage_error(command, disagree)
        args.namespace, args.name = namespace, name
    elif args.namespace is None:
        args.namespace = DEFAULT_NAMESPACE
    return None

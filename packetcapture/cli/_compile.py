"""``packetcapture compile CAPTURE.yaml``: show the BPF program a capture's filters become."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from packetcapture._defaults import DEFAULT_SNAPLEN
from packetcapture.cli._run import snaplen
from packetcapture.errors import FilterCompileError, ValidationError

# typing.TYPE_CHECKING without importing typing; type checkers know it.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from packetcapture.model import PacketCapture

__all__ = ["load_one_capture", "register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``compile`` subcommand."""
    parser = subparsers.add_parser(
        "compile",
        help="compile a capture's filters to classic BPF (tcpdump -d style output)",
        description=(
            "Compile the filters of the PacketCapture in CAPTURE ('-' for standard input) "
            "to one classic BPF program and print it as tcpdump -d (default), -dd or -ddd "
            "would, or print the equivalent libpcap expression."
        ),
    )
    parser.add_argument("capture", metavar="CAPTURE.yaml")
    parser.add_argument(
        "--linktype",
        type=int,
        default=1,
        metavar="N",
        help="link-layer type: 1 Ethernet (default), 113 Linux SLL, 276 SLL2, 101 raw IP",
    )
    parser.add_argument(
        "--snaplen",
        type=snaplen,  # checked here, so that an error names the flag, not CAPTURE.yaml
        default=DEFAULT_SNAPLEN,
        help="value an accepting program returns",
    )
    parser.add_argument(
        "--no-vlan", action="store_true", help="do not look through 802.1Q/802.1ad tags"
    )
    parser.add_argument(
        "--no-ipv6-ext", action="store_true", help="do not walk IPv6 extension headers"
    )
    fmt = parser.add_mutually_exclusive_group()
    fmt.add_argument("-d", dest="fmt", action="store_const", const="d", help="tcpdump -d text")
    fmt.add_argument("-dd", dest="fmt", action="store_const", const="dd", help="C array")
    fmt.add_argument("-ddd", dest="fmt", action="store_const", const="ddd", help="decimal")
    fmt.add_argument(
        "--expression",
        dest="fmt",
        action="store_const",
        const="expr",
        help="print the equivalent libpcap filter expression instead",
    )
    parser.set_defaults(func=run, fmt="d", logs=False)  # nothing on its path logs


def run(args: argparse.Namespace) -> int:
    """Compile and print; return 1 on invalid input."""
    # Imported when the command runs, not when the parser is built (keeps --help cheap).
    from packetcapture.bpf import LINKTYPES, compile_filters, pcap_expression
    from packetcapture.cli._text import one_line

    capture = load_one_capture(args.capture)
    if capture is None:
        return 1
    shown = one_line(args.capture)
    rules = capture.spec.filters
    if args.linktype not in LINKTYPES:
        print(
            f"packetcapture: error: unsupported link type {args.linktype} "
            "(supported: 1, 113, 276, 101, 12, 14)",
            file=sys.stderr,
        )
        return 1
    try:
        if args.fmt == "expr":
            sys.stdout.write(pcap_expression(rules) + "\n")
            return 0
        program = compile_filters(
            rules,
            linktype=args.linktype,
            snaplen=args.snaplen,
            vlan=not args.no_vlan,
            ipv6_extension_headers=not args.no_ipv6_ext,
        )
    except FilterCompileError as exc:
        print(f"packetcapture: error: {shown}: {one_line(str(exc))}", file=sys.stderr)
        return 1
    sys.stdout.write(program.disassemble(args.fmt))
    return 0


def load_one_capture(name: str) -> PacketCapture | None:
    """Load the one PacketCapture of file ``name`` (``-``: standard input).

    On a problem, print ``packetcapture: error: NAME: ...`` and return None.
    """
    from packetcapture.cli._text import one_line
    from packetcapture.model import PacketCapture
    from packetcapture.serde import load_all

    shown = one_line(name)
    try:
        data = sys.stdin.buffer.read() if name == "-" else Path(name).read_bytes()
    except OSError as exc:
        reason = one_line(str(exc.strerror or exc))
        print(f"packetcapture: error: {shown}: cannot read: {reason}", file=sys.stderr)
        return None
    try:
        captures = [r for r in load_all(data) if isinstance(r, PacketCapture)]
    except ValidationError as exc:
        print(f"packetcapture: error: {shown}: {one_line(exc.lines()[0])}", file=sys.stderr)
        return None
    if len(captures) != 1:
        print(
            f"packetcapture: error: {shown}: expected one PacketCapture, found {len(captures)}",
            file=sys.stderr,
        )
        return None
    return captures[0]

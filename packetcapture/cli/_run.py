"""``packetcapture run``, ``status`` and ``plan``: the capture pipeline on the command line.

This module only builds the parsers, so that ``packetcapture --help`` and the other commands
do not import the agent, the backends and the BPF compiler; the commands themselves are in
:mod:`packetcapture.cli._run_impl`, imported when one runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from packetcapture._defaults import DEFAULT_CAPTURE_DIR, DEFAULT_SNAPLEN
from packetcapture.cli._names import add_name_args, capture_dir_help

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up)
if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["register", "snaplen"]


def _impl(name: str) -> Callable[[argparse.Namespace], int]:
    """Return ``name`` from the implementation, imported (and its imports settled) now."""
    from packetcapture.cli import _run_impl, imports_done

    imports_done()
    function: Callable[[argparse.Namespace], int] = getattr(_run_impl, name)
    return function


def run_run(args: argparse.Namespace) -> int:
    """Run ``packetcapture run`` (see :func:`packetcapture.cli._run_impl.run_run`)."""
    return _impl("run_run")(args)


def run_status(args: argparse.Namespace) -> int:
    """Run ``packetcapture status`` (see :func:`packetcapture.cli._run_impl.run_status`)."""
    return _impl("run_status")(args)


def run_plan(args: argparse.Namespace) -> int:
    """Run ``packetcapture plan`` (see :func:`packetcapture.cli._run_impl.run_plan`)."""
    return _impl("run_plan")(args)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``run``, ``status`` and ``plan`` subcommands."""
    run = subparsers.add_parser(
        "run",
        help="capture the selected endpoints' traffic into rotated pcap files",
        description=(
            "Run a node agent for NODE: capture the interfaces of the endpoints each capture in "
            "CAPTURE.yaml selects, with its filters and schedule, into "
            "CAPTURE_DIR/NAMESPACE/NAME/. Stops at endTime, after --duration, when every "
            "replayed file has ended, or on Ctrl-C; then prints the status as "
            "`kubectl get packetcapture -o yaml` shows it."
        ),
    )
    run.add_argument(
        "capture", metavar="CAPTURE.yaml", help="PacketCapture resource(s) ('-' for stdin)"
    )
    _endpoints_arg(run, required=True)
    run.add_argument("--node", required=True, help="this node's name (endpoints' spec.node)")
    run.add_argument(
        "--capture-dir",
        default=Path(DEFAULT_CAPTURE_DIR),
        type=Path,
        metavar="DIR",
        help=capture_dir_help(
            "files go to DIR/NAMESPACE/NAME/, with the node's status in .status-NODE.yaml"
        ),
    )
    source = run.add_mutually_exclusive_group(required=True)
    source.add_argument("--live", action="store_true", help="capture live (AF_PACKET; root)")
    source.add_argument(
        "--replay",
        action="append",
        metavar="IFACE=FILE",
        help=(
            "replay FILE (pcap/pcapng) as interface IFACE; repeat for more interfaces, or "
            "for more files of one interface (played in the order given)"
        ),
    )
    source.add_argument(
        "--replay-dir", type=Path, metavar="DIR", help="replay DIR/IFACE.pcap for each interface"
    )
    run.add_argument(
        "--replay-clock",
        choices=("file", "wall"),
        default="file",
        help=(
            "replay: the clock startTime and endTime are compared with: the replayed "
            "packets' timestamps (file) or this machine's clock (wall) (default: %(default)s)"
        ),
    )
    run.add_argument(
        "--duration",
        type=_positive_float,
        metavar="S",
        help="stop after S seconds (default: at endTime, replay end or Ctrl-C)",
    )
    run.add_argument(
        "--speed",
        type=_positive_float,
        help="replay paced at SPEED x real time (default: as fast as possible)",
    )
    run.add_argument(
        "--count",
        type=_positive_int,
        metavar="N",
        help="stop each interface after N packets (default: no limit)",
    )
    _size_args(run)
    run.add_argument(
        "--rotation-seconds",
        type=_positive_int,
        metavar="N",
        default=3600,
        help="rotate a file holding packets after N seconds (default: %(default)s)",
    )
    run.add_argument(
        "--snaplen",
        type=snaplen,
        metavar="N",
        default=DEFAULT_SNAPLEN,
        help="bytes kept of each packet (default: %(default)s)",
    )
    run.add_argument(
        "--format",
        choices=("pcap", "pcapng"),
        default="pcap",
        help="file format (default: %(default)s)",
    )
    run.add_argument(
        "--promiscuous", action="store_true", help="live: put interfaces in promiscuous mode"
    )
    run.add_argument("--status-file", type=Path, metavar="FILE", help="also write the status here")
    run.add_argument(
        "--wait",
        action="store_true",
        help="wait while another run holds a capture's directory (default: refuse)",
    )
    run.add_argument(
        "--progress",
        choices=("auto", "always", "never"),
        default="auto",
        help="live progress table (auto: when stderr is a terminal; default: %(default)s)",
    )
    run.set_defaults(func=run_run)

    status = subparsers.add_parser(
        "status",
        help="print a capture's status on a node from its capture directory",
        description=(
            "Print the status entry `run` left for NAMESPACE/NAME on NODE: the state from "
            "DIR/NAMESPACE/NAME/.status-NODE.yaml and the capture files there. Exits 1 when "
            "NODE left no status there."
        ),
    )
    add_name_args(status, all_namespaces=False)
    status.add_argument(
        "--capture-dir",
        default=Path(DEFAULT_CAPTURE_DIR),
        type=Path,
        metavar="DIR",
        help=capture_dir_help("where `run` wrote"),
    )
    status.add_argument("--node", required=True, help="the node `run` ran as")
    status.set_defaults(func=run_status)

    plan = subparsers.add_parser(
        "plan",
        help="show what a capture would capture, without capturing",
        description=(
            "For each capture: the endpoints it selects on each node and their interfaces, "
            "the BPF program's size, the libpcap expression, and the worst-case disk use."
        ),
    )
    plan.add_argument(
        "capture", metavar="CAPTURE.yaml", help="PacketCapture resource(s) ('-' for stdin)"
    )
    _endpoints_arg(plan, required=True)
    plan.add_argument("--node", help="only this node (default: every node)")
    _size_args(plan)
    plan.set_defaults(func=run_plan)


def _endpoints_arg(parser: argparse.ArgumentParser, *, required: bool) -> None:
    parser.add_argument(
        "--endpoints",
        required=required,
        metavar="ENDPOINTS.yaml",
        help="WorkloadEndpoint resources (a list, or several documents; '-' for stdin)",
    )


def _size_args(parser: argparse.ArgumentParser) -> None:
    """Add ``--max-size-bytes`` and ``--max-files`` (Calico's defaults), for run and plan."""
    parser.add_argument(
        "--max-size-bytes",
        type=_positive_int,
        metavar="N",
        default=10_000_000,
        help="rotate a file before it passes N bytes (default: %(default)s)",
    )
    parser.add_argument(
        "--max-files",
        type=_positive_int,
        metavar="N",
        default=2,
        help="rotated files kept per interface (default: %(default)s)",
    )


# The largest count or size a flag takes: Calico's (Go int64) limit, and far from a float's.
_MAX_INT = 2**63 - 1


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    if value > _MAX_INT:
        raise argparse.ArgumentTypeError(f"must be at most {_MAX_INT}, got {value}")
    return value


def snaplen(text: str) -> int:
    """Parse ``--snaplen``: 1 to 4294967295 (a pcap header and a BPF ``ret`` hold 32 bits)."""
    value = _positive_int(text)
    if value > 0xFFFFFFFF:
        raise argparse.ArgumentTypeError(f"must be at most 4294967295, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value

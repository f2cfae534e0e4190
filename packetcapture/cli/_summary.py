"""``packetcapture summary PATH...``: flows, TCP trouble, DNS and ICMP errors of captures.

The file and directory reading lives here; the summary itself is the pure
:mod:`packetcapture.summary`. A directory is read with everything below it: a capture's
``{ns}/{name}`` directory, a directory ``copy`` filled, or several nodes' copies side by
side. Each endpoint interface's files (rotated ones oldest first, then the active one) are
read in order; all analysis state is per endpoint, so the result is the one a time-merged
pass over every file gives.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from packetcapture.cli._run import _positive_int as positive_int
from packetcapture.cli._text import one_line

# typing.TYPE_CHECKING without importing typing (~3 ms at start-up); type checkers know it.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from packetcapture.pcap import PcapReader
    from packetcapture.summary import Summarizer

__all__ = ["register"]

_BATCH = 8192
_SUFFIXES = (".pcap", ".pcapng", ".cap")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``summary`` subcommand."""
    parser = subparsers.add_parser(
        "summary",
        help="what is in captures: flows, TCP trouble, DNS, ICMP errors",
        description=(
            "Summarise pcap/pcapng files, or every capture file below directories (a "
            "capture's NAMESPACE/NAME directory, what copy fetched from each node): flows "
            "sorted by bytes, TCP handshakes unanswered or refused, resets, "
            "retransmissions, duplicate ACKs and zero windows, DNS queries and their "
            "outcome, ICMP errors, and totals."
        ),
    )
    parser.add_argument("paths", metavar="PATH", nargs="+", help="a capture file or directory")
    parser.add_argument("--json", action="store_true", help="one JSON object (docs/summary.md)")
    parser.add_argument(
        "--top", type=positive_int, metavar="N", help="show only the N largest flows"
    )
    parser.add_argument(
        "--filter-like-capture",
        metavar="CAPTURE.yaml",
        help="summarise only the packets this PacketCapture's filters keep",
    )
    parser.set_defaults(func=run)


def _endpoint_of(path: Path) -> tuple[str, int]:
    """(``pod/interface`` or the file's stem, order among its endpoint's files)."""
    from packetcapture.pcap import parse_file_name

    parsed = parse_file_name(path.name)
    if parsed is None:
        return path.stem, 0
    order = parsed.rotated_us if parsed.rotated_us is not None else 1 << 80
    return f"{parsed.pod}/{parsed.interface}", order


def _collect(paths: list[str]) -> tuple[list[tuple[str, list[Path]]], list[str]]:
    """Group files per endpoint (per directory), oldest first; plus problems found."""
    groups: dict[tuple[str, str], list[tuple[int, Path]]] = {}
    problems: list[str] = []

    def add(path: Path) -> None:
        label, order = _endpoint_of(path)
        groups.setdefault((str(path.parent), label), []).append((order, path))

    for p in paths:
        path = Path(p)
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs.sort()
                for name in sorted(files):
                    if name.endswith(_SUFFIXES):
                        add(Path(root) / name)
        elif path.exists():
            add(path)
        else:
            problems.append(f"{one_line(p)}: no such file or directory")
    wheres: dict[str, list[str]] = {}
    for where, label in groups:
        wheres.setdefault(label, []).append(where)
    # The same endpoint in several directories (two nodes' copies): each is told apart by
    # the part of its path the others do not share (worked out once per endpoint).
    shown_at = {
        label: _distinct_parts(places) for label, places in wheres.items() if len(places) > 1
    }
    out: list[tuple[str, list[Path]]] = []
    for (where, label), found in sorted(groups.items()):
        shown = f"{label}@{shown_at[label][where]}" if label in shown_at else label
        # Directory and file names may hold line breaks or escape sequences.
        out.append((one_line(shown), [path for _, path in sorted(found)]))
    return out, problems


def _distinct_parts(wheres: list[str]) -> dict[str, str]:
    """Tell directories apart: each path without the head and tail all of them share."""
    parts = [Path(w).parts for w in wheres]
    shortest = min(map(len, parts))
    tail = 0
    while tail < shortest - 1 and len({p[-1 - tail] for p in parts}) == 1:
        tail += 1
    head = 0
    while head < shortest - tail - 1 and len({p[head] for p in parts}) == 1:
        head += 1
    return {w: "/".join(p[head : len(p) - tail]) or w for w, p in zip(wheres, parts, strict=True)}


def _interface_label(reader: PcapReader, index: int, default: str) -> str:
    """Name the endpoint a pcapng interface describes (``merge`` output), else ``default``."""
    from packetcapture.pcap._format import parse_description

    info = reader.interfaces[index]
    fields = parse_description(info.description or "")
    pod = fields.get("endpoint", "").rpartition("/")[2]
    iface = fields.get("interface") or info.name
    # The description and name come from the file: kept on one line, escapes shown.
    if pod and iface:
        label = f"{pod}/{iface}"
        return one_line(f"{label}@{fields['node']}" if fields.get("node") else label)
    if len(reader.interfaces) > 1 and iface:
        return f"{default}:{one_line(iface)}"
    return default


def _read_file(
    summarizer: Summarizer, path: Path, label: str, keep: Callable[[int, bytes], bool] | None
) -> int:
    """Add one file's packets; return how many the filter dropped. Raises PcapError."""
    from packetcapture.pcap import PcapReader

    dropped = 0

    def add(batch: list[tuple[int, bytes, int]], linktype: int, ep: int) -> None:
        nonlocal dropped
        if not batch:
            return
        if keep is not None:
            kept = [p for p in batch if keep(linktype, p[1])]
            dropped += len(batch) - len(kept)
            batch = kept
        summarizer.add_batch(batch, linktype, ep)

    with PcapReader(path) as reader:
        if reader.format == "pcap":
            ep = summarizer.endpoint(label)
            while batch := reader.read_batch(_BATCH):
                add(batch, reader.linktype, ep)
            return dropped
        # pcapng: batches of consecutive packets of one interface.
        pending: list[tuple[int, bytes, int]] = []
        current: tuple[int, int] | None = None
        ep = linktype = 0
        try:
            for rec in reader.records():
                key = (rec.interface_id, rec.linktype)
                if key != current or len(pending) >= _BATCH:
                    add(pending, linktype, ep)
                    pending = []
                    if key != current:
                        current = key
                        linktype = rec.linktype
                        ep = summarizer.endpoint(_interface_label(reader, rec.interface_id, label))
                pending.append((rec.timestamp_ns, rec.data, rec.wire_len))
        finally:
            add(pending, linktype, ep)  # the good packets before a damaged one count
            if reader.drops is not None:
                summarizer.add_drops(reader.drops)
    return dropped


def _filter(capture_file: str) -> Callable[[int, bytes], bool] | None:
    """Make a ``keep(linktype, frame)`` of a capture's filters, compiled per link type."""
    from packetcapture.bpf import LINKTYPES, compile_filters
    from packetcapture.cli._compile import load_one_capture

    capture = load_one_capture(capture_file)
    if capture is None:
        raise SystemExit(1)
    rules = capture.spec.filters
    executors: dict[int, Callable[[bytes], int]] = {}

    def keep(linktype: int, frame: bytes) -> bool:
        run = executors.get(linktype)
        if run is None:
            if linktype not in LINKTYPES:
                return True  # the filter compiler cannot say: keep it, as unfiltered
            run = executors[linktype] = compile_filters(rules, linktype=linktype).executor()
        return run(frame) != 0

    return keep


def run(args: argparse.Namespace) -> int:
    """Summarise; exit 1 when a path was missing or a file damaged (after the output)."""
    import json

    from packetcapture.errors import FilterCompileError, PcapError
    from packetcapture.summary import Summarizer, format_summary

    try:
        keep = _filter(args.filter_like_capture) if args.filter_like_capture else None
    except SystemExit:
        return 1
    except FilterCompileError as exc:
        shown = one_line(args.filter_like_capture)
        print(f"packetcapture: error: {shown}: {one_line(str(exc))}", file=sys.stderr)
        return 1
    groups, problems = _collect(args.paths)
    if not groups and not problems:
        problems.append(f"no capture files in {', '.join(one_line(p) for p in args.paths)}")
    summarizer = Summarizer()
    filtered = 0
    for label, files in groups:
        for path in files:
            try:
                filtered += _read_file(summarizer, path, label, keep)
            except PcapError as exc:
                problems.append(str(exc))
    summary = summarizer.result()
    if args.json:
        out = summary.to_dict(args.top)
        if keep is not None:
            out["totals"]["filtered_out"] = filtered
        sys.stdout.write(json.dumps(out, indent=2) + "\n")
    else:
        text = format_summary(summary, args.top)
        if keep is not None:
            text = (
                f"Only the packets {one_line(args.filter_like_capture)}'s filters keep "
                f"({filtered:,} left out).\n{text}"
            )
        sys.stdout.write(text)
    sys.stdout.flush()
    for problem in problems:
        print(f"packetcapture: error: {one_line(problem)}", file=sys.stderr)
    return 1 if problems else 0

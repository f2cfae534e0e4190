"""``packetcapture copy | clean | merge``: a capture's files on this node.

``copy`` and ``clean`` behave like ``calicoctl captured-packets copy | clean`` for the
local capture directory; ``merge`` joins a capture's files, from this node's directory
and any copied node directories, into one time-ordered pcapng.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

# Only what the parsers need at import time: `packetcapture --help` stays cheap. The
# commands import packetcapture.pcap (and shutil, tempfile, logging) when they run.
from packetcapture._defaults import DEFAULT_CAPTURE_DIR
from packetcapture.cli._names import add_name_args, capture_dir_help, resolve_name
from packetcapture.cli._text import one_line, usage_error
from packetcapture.errors import PacketCaptureError, PcapError

# typing.TYPE_CHECKING without importing typing (~3 ms at start-up); type checkers know it.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import logging

__all__ = ["register"]


def _common(parser: argparse.ArgumentParser, *, all_namespaces: bool = True) -> None:
    # [NAMESPACE/]NAME and -n, as every command takes them (resolved by resolve_name);
    # NAME is optional only for copy/clean --kubernetes NAMESPACE/NAME (checked when run).
    add_name_args(parser, all_namespaces=all_namespaces, optional=all_namespaces)


def _kubernetes_args(parser: argparse.ArgumentParser, what: str) -> None:
    from packetcapture.cli._kube import _target, kube_args

    group = parser.add_argument_group("on a cluster (instead of NAME and --capture-dir)")
    group.add_argument("--kubernetes", type=_target, metavar="NAMESPACE/NAME", help=what)
    kube_args(group)  # type: ignore[arg-type]


def _kubernetes_or_name(args: argparse.Namespace, command: str) -> int | None:
    """Run the cluster variant, or check NAME is there; None means: go on locally."""
    if args.kubernetes is not None:
        if args.name is not None:
            return usage_error(command, "give NAME or --kubernetes NAMESPACE/NAME, not both")
        from packetcapture.cli import _kube

        return _kube.run_kube_copy(args) if command == "copy" else _kube.run_kube_clean(args)
    if args.name is None:
        return usage_error(command, "NAME (or --kubernetes NAMESPACE/NAME) is required")
    if command == "clean" and args.force:
        return usage_error(command, "--force goes with --kubernetes")
    return None


def _node_list(value: str) -> list[str]:
    """Split ``--node a,b`` (node names never hold a comma); one value keeps NAME free."""
    names = value.split(",")
    if not all(names):
        raise argparse.ArgumentTypeError(f"empty node name in {value!r}")
    return names


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``copy``, ``clean`` and ``merge`` subcommands."""
    copy = subparsers.add_parser(
        "copy",
        help="copy a capture's files out of the capture directory",
        description=(
            "Copy the .pcap files of capture NAME from CAPTURE_DIR/NAMESPACE/NAME into DEST "
            "(with --all-namespaces into DEST/NAMESPACE). Existing files are replaced."
        ),
    )
    _common(copy)
    copy.add_argument("--capture-dir", default=DEFAULT_CAPTURE_DIR, help=capture_dir_help())
    copy.add_argument(
        "-d",
        "--dest",
        default=".",
        help="destination directory, created with its parents if missing (default: .)",
    )
    _kubernetes_args(copy, "copy every node's files into DEST/NODE/ (from the cluster)")
    copy.set_defaults(func=run_copy)

    clean = subparsers.add_parser(
        "clean",
        help="delete a capture's files",
        description="Delete CAPTURE_DIR/NAMESPACE/NAME and every file in it.",
    )
    _common(clean)
    clean.add_argument("--capture-dir", default=DEFAULT_CAPTURE_DIR, help=capture_dir_help())
    _kubernetes_args(clean, "remove the files on every node and empty status fileNames")
    clean.add_argument(
        "--force",
        action="store_true",
        help="with --kubernetes: clean even when a node's state is not Finished",
    )
    clean.set_defaults(func=run_clean)

    merge = subparsers.add_parser(
        "merge",
        help="merge a capture's files into one time-ordered pcapng",
        description=(
            "Merge every file of capture NAME (all endpoint interfaces) from each DIR into one "
            "pcapng ordered by time, with one interface block per endpoint interface per "
            "DIR. A DIR is a capture directory (files in DIR/NAMESPACE/NAME) or a directory "
            "the files were copied into (packetcapture copy, one per node)."
        ),
    )
    _common(merge, all_namespaces=False)
    merge.add_argument(
        "--capture-dir",
        action="append",  # one DIR a flag: a flag taking several words would swallow NAME
        metavar="DIR",
        help=capture_dir_help("a directory; repeat the flag for more"),
    )
    merge.add_argument(
        "--node",
        action="extend",
        type=_node_list,
        metavar="NODE[,NODE...]",
        help=(
            "node name of each DIR, in order: --node a,b or --node a --node b "
            "(default: the directory's name)"
        ),
    )
    merge.add_argument("-o", "--output", required=True, help="output pcapng file ('-': stdout)")
    merge.add_argument(
        "-f", "--force", action="store_true", help="replace the output file if it exists"
    )
    merge.set_defaults(func=run_merge)


def _drop_torn_record_warnings(record: logging.LogRecord) -> bool:
    """Hide the merge's own log line for a torn file: `merge` prints one ``warning:`` for it."""
    import logging

    return record.levelno != logging.WARNING


def _err(message: str) -> None:
    print(f"packetcapture: error: {one_line(message)}", file=sys.stderr)


def _namespaces(args: argparse.Namespace) -> list[str] | None:
    from packetcapture.pcap import find_capture_namespaces

    if args.all_namespaces:
        found = find_capture_namespaces(args.capture_dir, args.name)
        if not found:
            _err(f"no capture called {args.name!r} in any namespace under {args.capture_dir}")
            return None
        return found
    return [args.namespace]


def run_copy(args: argparse.Namespace) -> int:
    """Copy capture files; exit 0 if at least one namespace's files were copied."""
    from packetcapture.pcap import capture_file_names, copy_capture_files

    if (done := _kubernetes_or_name(args, "copy")) is not None:
        return done

    if (usage := resolve_name(args, "copy")) is not None:
        return usage
    namespaces = _namespaces(args)
    if namespaces is None:
        return 1
    errors: list[str] = []
    copied_any = False
    for ns in namespaces:
        try:
            names = capture_file_names(args.capture_dir, ns, args.name)
            if not names:
                errors.append(f"no files for capture {ns}/{args.name} in {args.capture_dir}")
                continue
            dest = Path(args.dest) / ns if args.all_namespaces else Path(args.dest)
            dest.mkdir(parents=True, exist_ok=True)
            # Read through the capture directory's descriptor, never by path (symlinks).
            names = copy_capture_files(args.capture_dir, ns, args.name, dest)
            print(one_line(f"copied {len(names)} file(s) of {ns}/{args.name} to {dest}"))
            copied_any = True
        except (PacketCaptureError, OSError) as exc:
            errors.append(f"{ns}/{args.name}: {exc}")
    if errors:
        _err("; ".join(errors))
    return 0 if copied_any else 1


def run_clean(args: argparse.Namespace) -> int:
    """Delete capture files; exit 0 if at least one namespace's files were deleted."""
    if (done := _kubernetes_or_name(args, "clean")) is not None:
        return done
    from packetcapture.pcap import capture_directory, remove_capture_files

    if (usage := resolve_name(args, "clean")) is not None:
        return usage
    namespaces = _namespaces(args)
    if namespaces is None:
        return 1
    errors: list[str] = []
    cleaned_any = False
    for ns in namespaces:
        try:
            target = capture_directory(args.capture_dir, ns, args.name)
            if not target.is_dir() and not target.is_symlink():
                errors.append(f"no files for capture {ns}/{args.name} in {args.capture_dir}")
                continue
            removed = remove_capture_files(args.capture_dir, ns, args.name)
            # Capture files, as copy counts them: not run's hidden .status-NODE.yaml.
            files = [n for n in removed if not n.startswith(".")]
            print(one_line(f"removed {target} ({len(files)} file(s))"))
            cleaned_any = True
        except (PacketCaptureError, OSError) as exc:
            errors.append(f"{ns}/{args.name}: {exc}")
    if errors:
        _err("; ".join(errors))
    return 0 if cleaned_any else 1


def run_merge(args: argparse.Namespace) -> int:
    """Merge capture files into one pcapng."""
    if (usage := resolve_name(args, "merge")) is not None:
        return usage
    # No default list in the parser: "append" would add to it.
    dirs: list[str] = args.capture_dir or [DEFAULT_CAPTURE_DIR]
    if args.node is not None and len(args.node) != len(dirs):
        return usage_error(
            "merge", f"--node names {len(args.node)} node(s) for {len(dirs)} directory(ies)"
        )
    import logging

    merge_logger = logging.getLogger("packetcapture.pcap._merge")
    merge_logger.addFilter(_drop_torn_record_warnings)
    try:
        return _merge(args, dirs)
    finally:
        merge_logger.removeFilter(_drop_torn_record_warnings)


def _merge(args: argparse.Namespace, dirs: list[str]) -> int:
    import tempfile

    from packetcapture.pcap import find_merge_sources, merge_captures

    try:
        if not find_merge_sources(dirs, args.namespace, args.name):
            _err(f"no files for capture {args.namespace}/{args.name} in {', '.join(dirs)}")
            return 1
        if args.output == "-":
            result = merge_captures(
                dirs, args.namespace, args.name, sys.stdout.buffer, nodes=args.node
            )
        else:
            out = Path(args.output)
            if out.exists() and not args.force:
                _err(f"{out} exists (use --force to replace it)")
                return 1
            fd, tmp = tempfile.mkstemp(prefix=".merge-", dir=out.parent or Path("."))
            try:
                with os.fdopen(fd, "wb") as f:
                    result = merge_captures(dirs, args.namespace, args.name, f, nodes=args.node)
                os.chmod(tmp, 0o644)
                os.replace(tmp, out)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
    except (PcapError, OSError) as exc:
        _err(str(exc))
        return 1
    for path in result.damaged_files:
        print(
            "packetcapture: "
            + one_line(f"warning: {path} ends in a torn record; its whole packets were kept"),
            file=sys.stderr,
        )
    where = "standard output" if args.output == "-" else args.output
    print(
        one_line(
            f"merged {result.packets} packet(s) from {result.files} file(s), "
            f"{result.interfaces} interface(s) into {where}"
        ),
        file=sys.stderr if args.output == "-" else sys.stdout,
    )
    return 0

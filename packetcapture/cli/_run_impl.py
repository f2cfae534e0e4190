"""``packetcapture run``, ``status`` and ``plan``: the commands behind the parsers in ``_run``."""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import TextIO

import attrs
import yaml

from packetcapture.agent import NodeAgent, effective_selector
from packetcapture.backends.base import CaptureBackend, get_backend
from packetcapture.bpf import compile_filters, pcap_expression
from packetcapture.cli._text import one_line, usage_error
from packetcapture.clock import SystemClock
from packetcapture.errors import PacketCaptureError, ValidationError
from packetcapture.model import (
    CaptureState,
    PacketCapture,
    PacketCaptureFile,
    PacketCaptureStatus,
    WorkloadEndpoint,
)
from packetcapture.pcap import (
    CaptureSettings,
    capture_directory,
    list_capture_files,
    parse_file_name,
)
from packetcapture.pcap._layout import open_capture_dir, validate_part
from packetcapture.schedule import DEFAULT_RETRY
from packetcapture.selector import parse
from packetcapture.serde import dumps, load_all, to_dict

__all__ = ["run_plan", "run_run", "run_status", "to_dict_entry"]

logger = logging.getLogger("packetcapture.cli")

STATUS_FILE = ".status-{node}.yaml"


# --- loading ----------------------------------------------------------------------------


class _InputError(Exception):
    """Bad input: already printed, exit 1."""


def _load(path: str, want: type[PacketCapture] | type[WorkloadEndpoint]) -> list:  # type: ignore[type-arg]
    try:
        # '-' is standard input, as for validate, compile and selector.
        resources = load_all(sys.stdin.buffer.read() if path == "-" else Path(path))
    except OSError as exc:
        _err(f"{path}: cannot read: {exc.strerror or exc}")
        raise _InputError from None
    except ValidationError as exc:
        for line in exc.lines():
            _err(f"{path}: {line}")
        raise _InputError from None
    chosen = [r for r in resources if isinstance(r, want)]
    if not chosen:
        _err(f"{path}: no {want.KIND} resources found")
        raise _InputError
    return chosen


def _load_inputs(args: argparse.Namespace) -> tuple[list[PacketCapture], list[WorkloadEndpoint]]:
    """Load CAPTURE.yaml and --endpoints (raises _InputError, already reported)."""
    if args.capture == "-" and args.endpoints == "-":
        _err("CAPTURE.yaml and --endpoints cannot both be '-' (standard input)")
        raise _InputError
    captures: list[PacketCapture] = _load(args.capture, PacketCapture)
    endpoints: list[WorkloadEndpoint] = _load(args.endpoints, WorkloadEndpoint)
    return captures, endpoints


def _err(message: str) -> None:
    """Print one line to stderr: ``packetcapture: error: …`` (or ``warning: …`` as given)."""
    kind = "" if message.startswith("warning: ") else "error: "
    print(f"packetcapture: {kind}{one_line(message)}", file=sys.stderr)


def _selected(capture: PacketCapture, endpoints: list[WorkloadEndpoint]) -> list[WorkloadEndpoint]:
    """Return the endpoints a capture selects (its selector scoped to its namespace)."""
    scoped = parse(effective_selector(capture.spec.selector, capture.namespace))
    return [e for e in endpoints if scoped.evaluate(e.selector_labels())]


def _warn_no_interface(captures: list[PacketCapture], endpoints: list[WorkloadEndpoint]) -> None:
    """Say, once per endpoint, that a selected endpoint without interfaceName is skipped.

    The agent cannot capture it (there is nothing to open), so without this the capture
    would end with no files, silently. (A misspelt ``interfaceNme`` is refused earlier,
    when the file is loaded.)
    """
    seen: set[tuple[str, str]] = set()
    for capture in captures:
        for wep in _selected(capture, endpoints):
            if wep.spec.interface_name or wep.key in seen:
                continue
            seen.add(wep.key)
            _err(
                f"warning: endpoint {wep.namespace}/{wep.metadata.name} selected by "
                f"{capture.namespace}/{capture.name} is skipped: it has no spec.interfaceName"
            )


def _warn_shared_directory(capture_dir: Path, node: str, captures: list[PacketCapture]) -> None:
    """Say when another node's run left its status in a capture's directory.

    A capture directory belongs to one node, as in Calico (each node has its own): the
    status lists, and retention counts, every file in it, whichever node wrote it.
    """
    for capture in captures:
        try:
            directory = capture_directory(capture_dir, capture.namespace, capture.name)
        except PacketCaptureError:
            continue
        others = [n for n in _status_nodes(directory) if n != node]
        if others:
            _err(
                f"warning: {directory} also holds the capture of node(s) {', '.join(others)}: "
                "a capture directory belongs to one node (its status lists, and retention "
                "counts, every file in it); give each node its own --capture-dir"
            )


# --- run --------------------------------------------------------------------------------


def run_run(args: argparse.Namespace) -> int:
    """Run the agent until a stop condition; print and write the final status."""
    try:
        captures, endpoints = _load_inputs(args)
        settings = CaptureSettings(
            max_size_bytes=args.max_size_bytes,
            rotation_seconds=args.rotation_seconds,
            max_files=args.max_files,
            snaplen=args.snaplen,
            format=args.format,
        )
        backend = _backend(args)
    except _InputError:
        return 1
    except ValidationError as exc:
        _err(" | ".join(exc.lines()))
        return 2
    except PacketCaptureError as exc:
        _err(str(exc))
        return 1

    mine = [e for e in endpoints if e.spec.node == args.node]
    if not mine:
        nodes = sorted({e.spec.node for e in endpoints})
        _err(f"{args.endpoints}: no endpoints on node {args.node!r} (nodes: {', '.join(nodes)})")
        return 1
    _warn_no_interface(captures, mine)
    _warn_shared_directory(args.capture_dir, args.node, captures)

    stop = threading.Event()
    progress = _Progress(sys.stderr, args.progress)
    replay = not args.live

    def on_status(namespace: str, name: str, status: PacketCaptureStatus) -> None:
        entry = status.files[0]
        _save_state(args.capture_dir, namespace, name, args.node, entry)
        if not progress.enabled:
            print(
                f"{_stamp()} {namespace}/{name} on {args.node}: {entry.state} "
                f"({len(entry.file_names)} file{'s' if len(entry.file_names) != 1 else ''})",
                file=sys.stderr,
                flush=True,
            )

    previous = _install_sigint(stop)
    try:
        agent = NodeAgent(
            args.node,
            backend,
            args.capture_dir,
            settings,
            SystemClock(),
            on_status_change=on_status,
            # A replayed file that cannot be opened will not open later either.
            retry=None if replay else DEFAULT_RETRY,
            packet_limit=args.count,
        )
    except (PacketCaptureError, OSError) as exc:
        _err(str(exc))
        _restore_sigint(previous)
        return 1
    try:
        for capture in captures:
            agent.apply(capture)
        for endpoint in mine:
            agent.upsert_endpoint(endpoint)
        deadline = time.monotonic() + args.duration if args.duration else None
        while not stop.is_set():
            timeout = 0.25
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                timeout = min(timeout, left)
            agent.step(timeout=timeout)
            progress.show(agent)
            if agent.idle():
                break
    except PacketCaptureError as exc:
        # Not expected (the agent puts a failing interface in Error), but the final
        # status is printed and saved whatever happened.
        agent.close()
        progress.clear()
        _err(str(exc))
        _final_status(args, agent)
        return 1
    finally:
        _restore_sigint(previous)
    agent.close()
    progress.clear()
    return _final_status(args, agent)


def _backend(args: argparse.Namespace) -> CaptureBackend:
    if args.live:
        return get_backend("afpacket", promiscuous=args.promiscuous)
    if args.replay:
        # Several files for one interface are played one after the other, in order.
        files: dict[str, list[Path]] = {}
        for item in args.replay:
            iface, sep, file = item.partition("=")
            if not sep or not iface or not file:
                _err(f"--replay {item!r}: expected IFACE=FILE")
                raise _InputError
            if not Path(file).is_file():
                problem = "not a file" if Path(file).exists() else "no such file"
                _err(f"--replay {item!r}: {file}: {problem}")
                raise _InputError
            files.setdefault(iface, []).append(Path(file))
        return get_backend("replay", files=files, speed=args.speed)
    if not args.replay_dir.is_dir():
        problem = "not a directory" if args.replay_dir.exists() else "no such directory"
        _err(f"--replay-dir {args.replay_dir}: {problem}")
        raise _InputError
    return get_backend("replay", directory=args.replay_dir, speed=args.speed)


def _final_status(args: argparse.Namespace, agent: NodeAgent) -> int:
    documents = []
    failed = False
    for capture in agent.captures():
        status = agent.status(*capture.key)
        details = agent.details(*capture.key)
        for iface in details.interfaces:
            if iface.error:
                failed = True
                # Backends often start their reason with the interface name already.
                reason = iface.error.removeprefix(f"{iface.interface}: ")
                _err(f"{capture.namespace}/{capture.name} {iface.interface}: {reason}")
            print(
                f"{capture.namespace}/{capture.name} {iface.endpoint} {iface.interface}: "
                f"{iface.packets} packets, {iface.bytes} bytes, {iface.dropped} dropped, "
                f"{iface.filtered} filtered",
                file=sys.stderr,
            )
        documents.append(attrs.evolve(capture, status=status))
        # The file on disk ends equal to what is printed (or is gone, as said).
        if not _save_state(args.capture_dir, *capture.key, args.node, status.files[0]):
            failed = True
    text = dumps(documents[0]) if len(documents) == 1 else dumps(documents)
    sys.stdout.write(text)
    if args.status_file is not None:
        try:
            args.status_file.write_text(text)
        except OSError as exc:
            _err(f"--status-file {args.status_file}: {exc.strerror or exc}")
            return 1
    return 1 if failed else 0


def _save_state(
    capture_dir: Path, namespace: str, name: str, node: str, entry: PacketCaptureFile
) -> bool:
    """Leave this node's status entry for `status`, even when no capture file was made.

    A capture whose window is already over, or that captured nothing, still has a state to
    show, so the capture directory is created for it. The file is replaced atomically; when
    that fails (a full disk has no room for the new copy), it is rewritten in place (the
    blocks it holds take a status of about the same size); when that fails too, the old
    one is removed, so that it never claims a state the capture has left, and a warning
    says so. Returns False when the file could not be written.
    """
    path = capture_dir / namespace / name / STATUS_FILE.format(node=node)
    text = yaml.safe_dump(to_dict_entry(entry), sort_keys=False).encode()
    try:
        validate_part(node, "node")
        fd = open_capture_dir(capture_dir, namespace, name, create=True)
    except (PacketCaptureError, OSError) as exc:
        strerror = exc.strerror if isinstance(exc, OSError) else None
        _err(f"warning: cannot write {path}: {strerror or exc}")
        return False
    try:
        problem = _replace_state(fd, path.name, text)
        if problem is None:
            return True
        if _rewrite_state(fd, path.name, text):
            return True
        try:
            os.unlink(path.name, dir_fd=fd)
            gone = "removed the old one, which no longer holds"
        except FileNotFoundError:
            gone = "there is none"
        except OSError as exc:
            gone = f"cannot remove the old one either ({exc.strerror})"
        _err(f"warning: cannot write {path} ({problem}): {gone}; `status` shows no status")
        return False
    finally:
        os.close(fd)


def _replace_state(fd: int, name: str, text: bytes) -> str | None:
    """Write ``name`` in directory ``fd`` through a temporary file and a rename."""
    # Hidden too, and not a .pcap: listings skip it. Per process, so two runs never share it.
    tmp = f"{name}.{os.getpid()}.tmp"
    try:
        out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644, dir_fd=fd)
        try:
            os.fchmod(out, 0o644)  # like the capture files, whatever the umask
            _write_all(out, text)
            os.fsync(out)  # the rename must not publish an empty file after a crash
        finally:
            os.close(out)
        os.replace(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=fd)
        return exc.strerror or str(exc)
    return None


def _rewrite_state(fd: int, name: str, text: bytes) -> bool:
    """Overwrite an existing status file in place (needs no new space if it is no longer)."""
    try:
        out = os.open(name, os.O_WRONLY | os.O_NOFOLLOW, dir_fd=fd)
    except OSError:
        return False
    try:
        os.ftruncate(out, min(os.fstat(out).st_size, len(text)))  # frees, never allocates
        _write_all(out, text)
        os.fsync(out)
    except OSError:
        return False
    finally:
        os.close(out)
    return True


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def to_dict_entry(entry: PacketCaptureFile) -> dict[str, object]:
    """Return one status entry in its wire form (``fileNames``, ``state`` strings)."""
    capture = PacketCapture(status=PacketCaptureStatus(files=(entry,)))
    files = to_dict(capture)["status"]["files"]
    return dict(files[0])


def _stamp() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _install_sigint(stop: threading.Event) -> object:
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return previous


def _restore_sigint(previous: object) -> None:
    if previous is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, previous)  # type: ignore[arg-type]
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


class _Progress:
    """A live table on a terminal: one line per endpoint interface, redrawn in place."""

    def __init__(self, stream: TextIO, mode: str) -> None:
        self.stream = stream
        tty = hasattr(stream, "isatty") and stream.isatty()
        self.enabled = mode == "always" or (mode == "auto" and tty)
        self._lines = 0
        self._last = 0.0

    def show(self, agent: NodeAgent) -> None:
        if not self.enabled or time.monotonic() - self._last < 0.5:
            return
        self._last = time.monotonic()
        head = ("CAPTURE", "INTERFACE", "STATE", "PACKETS", "BYTES", "DROPS")
        rows = ["{:<32} {:<16} {:<18} {:>9} {:>11} {:>6}".format(*head)]
        for capture in agent.captures():
            details = agent.details(*capture.key)
            label = f"{capture.namespace}/{capture.name}"
            if not details.interfaces:
                rows.append(f"{label:<32} {'-':<16} {details.state.value:<18}")
            for iface in details.interfaces:
                rows.append(
                    f"{label:<32} {iface.interface:<16} {iface.state.value:<18} "
                    f"{iface.packets:>9} {iface.bytes:>11} {iface.dropped:>6}"
                )
        self.clear()
        self.stream.write("\n".join(rows) + "\n")
        self.stream.flush()
        self._lines = len(rows)

    def clear(self) -> None:
        if self.enabled and self._lines:
            self.stream.write(f"\x1b[{self._lines}F\x1b[J")
            self.stream.flush()
            self._lines = 0


# --- status -----------------------------------------------------------------------------


def run_status(args: argparse.Namespace) -> int:
    """Print a capture's status on a node, from the files and the state `run` left."""
    namespace, sep, name = args.target.partition("/")
    if not sep or not namespace or not name:
        return usage_error("status", f"{args.target!r}: expected NAMESPACE/NAME")
    try:
        validate_part(args.node, "node")
        directory = capture_directory(args.capture_dir, namespace, name)
        entry = list_capture_files(args.capture_dir, namespace, name, args.node)
    except PacketCaptureError as exc:
        _err(str(exc))
        return 1
    if not directory.is_dir():
        _err(f"no capture {namespace}/{name} under {args.capture_dir}")
        return 1
    state_path = directory / STATUS_FILE.format(node=args.node)
    if not state_path.is_file():
        # The directory holds one node's files; without this node's status file they may
        # be another node's, so nothing is shown as this node's.
        others = _status_nodes(directory)
        where = f"no status for node {args.node} of {namespace}/{name} under {args.capture_dir}"
        if others:
            _err(f"{where}; nodes with a status there: {', '.join(others)}")
        else:
            files = len(entry.file_names)
            _err(f"{where}; no node left a status there ({files} capture file(s))")
        return 1
    state, bases, problem = _read_state(state_path)
    if problem is not None:
        _err(f"warning: {state_path}: {problem}; showing files only")
    if bases is not None:
        # Only this node's interfaces: another node may write into the same directory.
        # Files rotated after the status was saved keep their interface's base name.
        mine = [f for f in entry.file_names if _base_of(f) in bases]
        entry = attrs.evolve(entry, file_names=tuple(mine))
    entry = attrs.evolve(entry, state=state)
    sys.stdout.write(yaml.safe_dump({"status": {"files": [to_dict_entry(entry)]}}, sort_keys=False))
    return 0


def _status_nodes(directory: Path) -> list[str]:
    """Return the nodes that left a status file in a capture directory, sorted."""
    prefix, suffix = STATUS_FILE.split("{node}")
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    return sorted(
        n[len(prefix) : -len(suffix)]
        for n in names
        if n.startswith(prefix) and n.endswith(suffix) and len(n) > len(prefix) + len(suffix)
    )


def _base_of(file_name: str) -> str | None:
    """Return the ``{pod}_{interface}`` a capture file belongs to (None if not ours)."""
    parsed = parse_file_name(file_name)
    return None if parsed is None else f"{parsed.pod}_{parsed.interface}"


def _read_state(path: Path) -> tuple[CaptureState | None, set[str | None] | None, str | None]:
    """Return the state and the interfaces' base names in a status file.

    On a problem: None, None and a one-line reason the file is unusable.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)  # as the layout code: no symlinks
        with os.fdopen(fd, "rb") as f:
            # libyaml, when there, refuses deep nesting at once; PyYAML's own parser recurses.
            saved = yaml.load(
                f.read().decode(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)
            )
    except OSError as exc:
        return None, None, f"cannot read: {exc.strerror or exc}"
    except UnicodeDecodeError:
        return None, None, "unreadable status (not UTF-8 text)"
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        return None, None, f"unreadable status (invalid YAML: {exc.problem or exc.context}{at})"
    except yaml.YAMLError as exc:
        return None, None, f"unreadable status (invalid YAML: {' '.join(str(exc).split())})"
    except RecursionError:  # PyYAML's composer recurses once per nesting level
        return None, None, "unreadable status (nested too deeply)"
    if not isinstance(saved, dict) or "state" not in saved:
        return None, None, "unreadable status (no state in it)"
    try:
        state = CaptureState(saved["state"])
    except ValueError:
        return None, None, f"unreadable status (unknown state {saved['state']!r})"
    names = saved.get("fileNames") or []
    if not isinstance(names, list):
        return None, None, "unreadable status (fileNames is not a list)"
    return state, {_base_of(str(n)) for n in names}, None


# --- plan -------------------------------------------------------------------------------


def run_plan(args: argparse.Namespace) -> int:
    """Print, without capturing, what each capture would capture where."""
    try:
        captures, endpoints = _load_inputs(args)
    except _InputError:
        return 1
    if args.node:
        endpoints = [e for e in endpoints if e.spec.node == args.node]
    _warn_no_interface(captures, endpoints)
    out: list[str] = []
    for capture in captures:
        scoped = parse(effective_selector(capture.spec.selector, capture.namespace))
        selected = _selected(capture, endpoints)
        program = compile_filters(capture.spec.filters)
        expression = pcap_expression(capture.spec.filters) or "(everything)"
        # An endpoint without an interface is not captured, so it takes no disk.
        interfaces = sum(1 for e in selected if e.spec.interface_name)
        worst = interfaces * (args.max_files + 1) * args.max_size_bytes
        out.append(f"{capture.namespace}/{capture.name}")
        out.append(f"  selector:   {scoped}")
        out.append(f"  filter:     {expression}")
        out.append(f"  bpf:        {len(program)} instructions")
        out.append(f"  schedule:   {_window(capture)}")
        nodes = sorted({e.spec.node for e in selected})
        if not selected:
            out.append("  endpoints:  none selected")
        for node in nodes:
            out.append(f"  node {node}:")
            for e in sorted(selected, key=lambda e: e.key):
                if e.spec.node == node:
                    out.append(
                        f"    {e.namespace}/{e.metadata.name}  pod {e.pod_name}  "
                        f"interface {e.spec.interface_name or '(none: not captured)'}"
                    )
        out.append(
            f"  disk:       at most {_size(worst)} "
            f"({interfaces} interface{'s' if interfaces != 1 else ''} x "
            f"({args.max_files} rotated + 1 active) x {_size(args.max_size_bytes)})"
        )
    print("\n".join(out))
    return 0


def _window(capture: PacketCapture) -> str:
    start, end = capture.spec.start_time, capture.spec.end_time
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    left = start.strftime(fmt) if start else "now"
    right = end.strftime(fmt) if end else "until deleted"
    return f"{left} -> {right}"


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    return str(n)

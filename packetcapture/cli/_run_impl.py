"""``packetcapture run``, ``status`` and ``plan``: the commands behind the parsers in ``_run``."""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
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

from packetcapture._lazylog import get_logger
from packetcapture.agent import NodeAgent, StatusCallback, effective_selector
from packetcapture.backends.base import CaptureBackend, get_backend
from packetcapture.backends.replay import ReplayBackend, ReplayClock
from packetcapture.bpf import compile_filters, pcap_expression
from packetcapture.cli._lock import BusyError, holder, lock_capture_dir
from packetcapture.cli._names import resolve_name
from packetcapture.cli._text import one_line
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
from packetcapture.serde import MAX_DOCUMENT_BYTES, dumps, load_all, parse_data, to_dict

__all__ = ["run_plan", "run_run", "run_status", "to_dict_entry"]

logger = get_logger("packetcapture.cli")

STATUS_FILE = ".status-{node}.yaml"
# A file name holds 255 bytes; the temporary copy adds ".{pid}.tmp" (at most 12 more).
_MAX_STATUS_NAME = 255 - 12


def status_file_name(node: str) -> str:
    """Return the name of a node's status file: ``.status-{node}.yaml``.

    A node name too long for a file name (Kubernetes allows 253 characters) keeps its first
    characters and gets a hash of the whole name, so the name stays unique and bounded.
    """
    name = STATUS_FILE.format(node=node)
    if len(name.encode()) <= _MAX_STATUS_NAME:
        return name
    import hashlib  # here: OpenSSL's start-up is not paid for short names

    digest = hashlib.sha256(node.encode()).hexdigest()[:16]
    return STATUS_FILE.format(node=f"{node[:200]}~{digest}")


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


def _warn_nothing_selected(
    captures: list[PacketCapture], endpoints: list[WorkloadEndpoint], read: str
) -> None:
    """Say why a capture selects no endpoint: its namespace has none, or its selector misses.

    ``read`` says where ``endpoints`` came from (``read from FILE``). A capture in the wrong
    namespace would otherwise end ``Finished`` with no files and no word (as ``selector
    --endpoints`` does, the namespaces seen are named).
    """
    for capture in captures:
        if _selected(capture, endpoints):
            continue
        label = f"{capture.namespace}/{capture.name} selects no endpoint"
        there = sum(1 for e in endpoints if e.namespace == capture.namespace)
        if there:
            _err(
                f"warning: {label}: its selector matches none of the {there} in namespace "
                f"{capture.namespace!r}"
            )
        else:
            namespaces = ", ".join(sorted({e.namespace for e in endpoints})) or "none"
            _err(
                f"warning: {label}: none in namespace {capture.namespace!r} "
                f"({len(endpoints)} {read}; their namespaces: {namespaces})"
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
        clock = _clock(args, backend)
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
    _warn_nothing_selected(captures, mine, f"of node {args.node} read from {args.endpoints}")
    _warn_shared_directory(args.capture_dir, args.node, captures)

    stop = threading.Event()
    progress = _Progress(sys.stderr, args.progress)
    saved: _Saved = {}

    def on_status(namespace: str, name: str, status: PacketCaptureStatus) -> None:
        entry = status.files[0]
        _save_state_once(args.capture_dir, namespace, name, args.node, entry, saved=saved)
        if not progress.enabled:
            print(
                f"{_stamp()} {namespace}/{name} on {args.node}: {entry.state} "
                f"({len(entry.file_names)} file{'s' if len(entry.file_names) != 1 else ''})",
                file=sys.stderr,
                flush=True,
            )

    previous = _install_sigint(stop)
    locks = _lock_all(args, captures, stop)
    if locks is None:
        _restore_sigint(previous)
        return 1
    try:
        return _run_agent(
            args,
            mine=mine,
            captures=captures,
            backend=backend,
            clock=clock,
            settings=settings,
            stop=stop,
            progress=progress,
            on_status=on_status,
            saved=saved,
        )
    finally:
        _restore_sigint(previous)
        for fd in locks:
            os.close(fd)  # releases the lock


def _run_agent(
    args: argparse.Namespace,
    *,
    mine: list[WorkloadEndpoint],
    captures: list[PacketCapture],
    backend: CaptureBackend,
    clock: SystemClock | ReplayClock,
    settings: CaptureSettings,
    stop: threading.Event,
    progress: _Progress,
    on_status: StatusCallback,
    saved: _Saved,
) -> int:
    """Run the agent until a stop condition; print the final status (run_run's body)."""
    replay = not args.live
    try:
        agent = NodeAgent(
            args.node,
            backend,
            args.capture_dir,
            settings,
            clock,
            on_status_change=on_status,
            # A replayed file that cannot be opened will not open later either.
            retry=None if replay else DEFAULT_RETRY,
            packet_limit=args.count,
        )
    except (PacketCaptureError, OSError) as exc:
        _err(str(exc))
        return 1
    try:
        # Ctrl-C / SIGTERM during set-up (thousands of endpoints) stop it at once.
        for capture in captures:
            if stop.is_set():
                break
            agent.apply(capture)
        for endpoint in mine:
            if stop.is_set():
                break
            agent.upsert_endpoint(endpoint)
        deadline = time.monotonic() + args.duration if args.duration else None
        replay_clock = clock if isinstance(clock, ReplayClock) else None
        horizon = _next_deadline(agent) if replay_clock is not None else None
        while not stop.is_set():
            timeout = 0.25
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                timeout = min(timeout, left)
            if replay_clock is not None:
                replay_clock.set_horizon(horizon)
                if replay_clock.stalled():
                    timeout = 0
            due = agent.step(timeout=timeout)
            progress.show(agent)
            # Live: an interface that went down or away restarts when it is back up, so
            # the run waits for it (Calico's lifecycle) until endTime, --duration or Ctrl-C.
            if args.live and _relink(agent):
                continue
            if agent.idle():
                break
            if replay_clock is not None:
                # The files' time: once every source waits at the next deadline (or none
                # is open), jump to it; a deadline that moved is first a new horizon.
                if due is not None and due == horizon and replay_clock.stalled():
                    replay_clock.advance_to(due)
                horizon = due
    except PacketCaptureError as exc:
        # Not expected (the agent puts a failing interface in Error), but the final
        # status is printed and saved whatever happened.
        agent.close()
        progress.clear()
        _err(str(exc))
        _final_status(args, agent, saved)
        return 1
    except BaseException:
        # Whatever else ends the run (Ctrl-C twice, a disk error in a status callback...)
        # still flushes the capture files and closes every replayed or live source.
        with contextlib.suppress(Exception):
            agent.close()
        raise
    agent.close()
    progress.clear()
    return _final_status(args, agent, saved)


def _relink(agent: NodeAgent) -> bool:
    """Restart the captures of interfaces back up; return whether some are still down."""
    from packetcapture.backends.afpacket import link_up

    down = agent.interfaces_down()
    for iface in down:
        if link_up(iface):
            logger.info("%s is up again: capturing again", iface)
            agent.set_interface_up(iface, True)
    return bool(agent.interfaces_down())


def _lock_all(
    args: argparse.Namespace, captures: list[PacketCapture], stop: threading.Event
) -> list[int] | None:
    """Lock every capture's directory (see :mod:`._lock`); None when refused (said)."""
    locks: list[int] = []
    for capture in captures:
        try:
            locks.append(
                lock_capture_dir(args.capture_dir, *capture.key, wait=args.wait, stop=stop)
            )
        except (BusyError, PacketCaptureError, OSError) as exc:
            for fd in locks:
                os.close(fd)
            where = args.capture_dir / capture.namespace / capture.name
            if isinstance(exc, BusyError):
                pid = f"pid {exc.pid}" if exc.pid else "pid unknown"
                _err(
                    f"{where}: in use by another packetcapture run ({pid}); two runs on one "
                    "capture directory would take each other's files: wait for it to end, "
                    "or pass --wait"
                )
            else:
                strerror = exc.strerror if isinstance(exc, OSError) else None
                _err(f"{where}: cannot lock: {strerror or exc}")
            return None
    return locks


def _next_deadline(agent: NodeAgent) -> _dt.datetime | None:
    """Return the earliest pending deadline of the agent's captures."""
    deadlines = [
        d for c in agent.captures() if (d := agent.details(*c.key).next_deadline) is not None
    ]
    return min(deadlines, default=None)


def _clock(args: argparse.Namespace, backend: CaptureBackend) -> SystemClock | ReplayClock:
    """Return the run's clock: a replay's files' time (``--replay-clock file``) or the wall's.

    The replay clock starts at the earliest first packet of the files that may be replayed
    (every file given, or every pcap/pcapng in --replay-dir); with no packet at all it
    starts at the wall clock's now.
    """
    if args.live or args.replay_clock == "wall" or not isinstance(backend, ReplayBackend):
        return SystemClock()
    if args.replay_dir is not None:
        paths = sorted(
            p for p in args.replay_dir.iterdir() if p.suffix in (".pcap", ".pcapng") and p.is_file()
        )
    else:
        paths = [p for files in backend.files.values() for p in files]
    start = ReplayClock.first_packet(paths) or _dt.datetime.now(_dt.UTC)
    clock = ReplayClock(start)
    backend.replay_clock = clock
    return clock


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


def _final_status(args: argparse.Namespace, agent: NodeAgent, saved: _Saved) -> int:
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
                one_line(
                    f"{capture.namespace}/{capture.name} {iface.endpoint} {iface.interface}: "
                    f"{iface.packets} packets, {iface.bytes} bytes, {iface.dropped} dropped, "
                    f"{iface.filtered} filtered" + (f" ({iface.reason})" if iface.reason else "")
                ),
                file=sys.stderr,
            )
        documents.append(attrs.evolve(capture, status=status))
        # The file on disk ends equal to what is printed (or is gone, as said).
        entry = status.files[0]
        if not _save_state_once(args.capture_dir, *capture.key, args.node, entry, saved=saved):
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


# A status file as this run left it: (st_dev, st_ino, st_size, st_mtime_ns); () if unknown.
_Identity = tuple[int, ...]
# Each capture's entry this run last wrote to its status file, and the file it made.
_Saved = dict[tuple[str, str], tuple[PacketCaptureFile, _Identity]]


def _save_state_once(
    capture_dir: Path,
    namespace: str,
    name: str,
    node: str,
    entry: PacketCaptureFile,
    *,
    saved: _Saved,
) -> bool:
    """:func:`_save_state`, unless the status file still holds this entry as last written.

    The final status is the last change's as a rule: it is not written (and synced) again
    when the file this run wrote is still there, untouched (``saved`` says which it was).
    """
    key = (namespace, name)
    last = saved.pop(key, None)
    if last is not None and last[0] == entry:
        now = _state_identity(capture_dir, namespace, name, node)
        if now and now == last[1]:
            saved[key] = last
            return True
    written = _save_state(capture_dir, namespace, name, node, entry)
    if written is None:
        return False
    saved[key] = (entry, written)
    return True


def _state_identity(capture_dir: Path, namespace: str, name: str, node: str) -> _Identity:
    """Return the identity of a node's status file as it is now (``()`` if unknown)."""
    try:
        fd = open_capture_dir(capture_dir, namespace, name)
    except (OSError, PacketCaptureError):
        return ()
    try:
        return _identity(fd, status_file_name(node))
    finally:
        os.close(fd)


def _identity(dir_fd: int, name: str) -> _Identity:
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return ()
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _save_state(
    capture_dir: Path, namespace: str, name: str, node: str, entry: PacketCaptureFile
) -> _Identity | None:
    """Leave this node's status entry for `status`, even when no capture file was made.

    A capture whose window is already over, or that captured nothing, still has a state to
    show, so the capture directory is created for it. The file is replaced atomically; when
    that fails (a full disk has no room for the new copy), it is rewritten in place (the
    blocks it holds take a status of about the same size); when that fails too, the old
    one is removed, so that it never claims a state the capture has left, and a warning
    says so. Returns the identity of the file written, None when it could not be written.
    """
    path = capture_dir / namespace / name / status_file_name(node)
    text = yaml.safe_dump(to_dict_entry(entry), sort_keys=False).encode()
    try:
        validate_part(node, "node")
        fd = open_capture_dir(capture_dir, namespace, name, create=True)
    except (PacketCaptureError, OSError) as exc:
        strerror = exc.strerror if isinstance(exc, OSError) else None
        _err(f"warning: cannot write {path}: {strerror or exc}")
        return None
    try:
        problem = _replace_state(fd, path.name, text)
        if problem is None or _rewrite_state(fd, path.name, text):
            return _identity(fd, path.name)
        try:
            os.unlink(path.name, dir_fd=fd)
            gone = "removed the old one, which no longer holds"
        except FileNotFoundError:
            gone = "there is none"
        except OSError as exc:
            gone = f"cannot remove the old one either ({exc.strerror})"
        _err(f"warning: cannot write {path} ({problem}): {gone}; `status` shows no status")
        return None
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


# The least width of each column of the live table.
_WIDTHS = (32, 16, 17, 9, 11, 6)


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
        cells: list[tuple[str, ...]] = [
            ("CAPTURE", "INTERFACE", "STATE", "PACKETS", "BYTES", "DROPS")
        ]
        for capture in agent.captures():
            details = agent.details(*capture.key)
            label = one_line(f"{capture.namespace}/{capture.name}")
            if not details.interfaces:
                cells.append((label, "-", details.state.value, "", "", ""))
            for iface in details.interfaces:
                counts = map(str, (iface.packets, iface.bytes, iface.dropped))
                cells.append((label, one_line(iface.interface), iface.state.value, *counts))
        # Each column as wide as its widest cell (a capture name may be up to 253 bytes), at
        # least as wide as usual so that it does not jitter: text left, numbers right.
        widths = [max(low, *(len(row[i]) for row in cells)) for i, low in enumerate(_WIDTHS)]
        rows = [
            " ".join(
                [*(c.ljust(w) for c, w in zip(row[:3], widths[:3], strict=True))]
                + [c.rjust(w) for c, w in zip(row[3:], widths[3:], strict=True)]
            ).rstrip()
            for row in cells
        ]
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
    if (usage := resolve_name(args, "status")) is not None:
        return usage
    namespace, name = args.namespace, args.name
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
    state_path = directory / status_file_name(args.node)
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
    if state in _RUNNING and holder(directory) is None:
        # Only a live run holds the directory's lock: this one ended without saving its
        # last state (killed, or a disk it could not write to).
        _err(
            f"warning: {state_path} says {state} but no run holds {directory}: the run "
            "that wrote it ended without saving its last state"
        )
        return 1
    return 0


def _open_capture_dir_of(directory: Path) -> int:
    """Open ``{capture_dir}/{namespace}/{name}`` given as one path, through descriptors."""
    return open_capture_dir(directory.parent.parent, directory.parent.name, directory.name)


_RUNNING = (CaptureState.SCHEDULED, CaptureState.WAITING_FOR_TRAFFIC, CaptureState.CAPTURING)


def _status_nodes(directory: Path) -> list[str]:
    """Return the nodes that left a status file in a capture directory, sorted."""
    prefix, suffix = STATUS_FILE.split("{node}")
    try:
        fd = _open_capture_dir_of(directory)
    except (OSError, PacketCaptureError):
        return []
    try:
        names = os.listdir(fd)
    except OSError:
        return []
    finally:
        os.close(fd)
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
        # As the layout code: through the capture directory's descriptor, no symlinks.
        dir_fd = _open_capture_dir_of(path.parent)
        try:
            fd = os.open(path.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
        finally:
            os.close(dir_fd)
        with os.fdopen(fd, "rb") as f:
            # Read one byte more than allowed, so parse_data sees an oversized file as such.
            data = f.read(MAX_DOCUMENT_BYTES + 1)
    except (OSError, PacketCaptureError) as exc:
        return None, None, f"cannot read: {getattr(exc, 'strerror', None) or exc}"
    try:
        # The limits of every other YAML input: size, nesting, aliases, duplicate keys.
        docs = parse_data(data)
    except ValidationError as exc:
        return None, None, f"unreadable status ({one_line(str(exc))})"
    saved = docs[0] if len(docs) == 1 else None
    if not isinstance(saved, dict) or "state" not in saved:
        return None, None, "unreadable status (no state in it)"
    try:
        state = CaptureState(saved["state"])
    except ValueError:
        return None, None, f"unreadable status (unknown state {saved['state']!r})"
    names = saved.get("fileNames") or []
    if not isinstance(names, list):
        return None, None, "unreadable status (fileNames is not a list)"
    if not all(isinstance(n, str) for n in names):
        return None, None, "unreadable status (fileNames holds something other than names)"
    return state, {_base_of(n) for n in names}, None


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
    on_node = f"of node {args.node} " if args.node else ""
    _warn_nothing_selected(captures, endpoints, f"{on_node}read from {args.endpoints}")
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
        out.append(f"  bpf:        {_count(len(program), 'instruction')}")
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
            f"({_count(interfaces, 'interface')} x "
            f"({args.max_files} rotated + 1 active) x {_size(args.max_size_bytes)})"
        )
    print("\n".join(out))
    return 0


def _count(n: int, noun: str) -> str:
    """Return ``1 noun`` or ``N nouns``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


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

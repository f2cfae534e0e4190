"""The node agent: PacketCaptures and WorkloadEndpoints in, rotated pcap files and status out.

One :class:`NodeAgent` does on one node what Calico's felix capture manager does:

* each capture's selector, scoped to the capture's namespace
  (``(<selector>) && projectcalico.org/namespace == "<ns>"``), is kept in a
  :class:`~packetcapture.selector.SelectorIndex` against the labels of this node's endpoints
  (their own labels plus Calico's implicit ones);
* an endpoint that starts matching is added to the capture's
  :class:`~packetcapture.schedule.CaptureSchedule`; the schedule says when to start and stop;
* a started interface gets a :class:`~packetcapture.backends.PacketSource` with the capture's
  compiled BPF program and a :class:`~packetcapture.pcap.RotatingWriter`;
* one I/O loop (:meth:`NodeAgent.step`) pumps every ready source into its writer and feeds
  first packets, failures and time to the schedules.

Calico's lifecycle rules hold: an endpoint that stops matching (or is deleted) stops and its
files are removed; an interface that goes down (or a source that ends) stops and keeps its
files; a change of filters or times restarts with files kept; deleting the capture stops it
and removes its files (``clean_files=True``).

The public methods are thread-safe: a controller thread may call :meth:`apply`,
:meth:`delete`, :meth:`upsert_endpoint` and :meth:`delete_endpoint` while another thread runs
:meth:`run`; they wake the loop at once.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import selectors
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from operator import itemgetter
from pathlib import Path

import attrs

from packetcapture._frozen import FieldsEq, FieldsRepr
from packetcapture._lazylog import get_logger
from packetcapture.backends.base import (
    CaptureBackend,
    LinktypeMismatchError,
    Packet,
    PacketSource,
)
from packetcapture.bpf import BpfProgram, compile_filters, pcap_expression
from packetcapture.clock import Clock, SystemClock
from packetcapture.errors import BackendError, PacketCaptureError, PcapError
from packetcapture.model import (
    CaptureState,
    PacketCapture,
    PacketCaptureFile,
    PacketCaptureStatus,
    WorkloadEndpoint,
)
from packetcapture.pcap import (
    CaptureSettings,
    RotatingWriter,
    capture_file_names,
    check_free_space,
    list_capture_files,
    parse_file_name,
    remove_capture_files,
)
from packetcapture.schedule import (
    DEFAULT_RETRY,
    CaptureSchedule,
    RetryPolicy,
    ScheduleResult,
    StartCapture,
    StopCapture,
)
from packetcapture.selector import SelectorIndex, in_namespace
from packetcapture.validation import validate

__all__ = [
    "CaptureDetails",
    "InterfaceDetails",
    "NodeAgent",
    "StatusCallback",
    "effective_selector",
    "merge_status",
]

logger = get_logger(__name__)

CaptureKey = tuple[str, str]
EndpointKey = tuple[str, str]
#: ``callback(namespace, name, status)``: called after a step in which this node's status of
#: a capture changed (state or file list), with the new status.
StatusCallback = Callable[[str, str, PacketCaptureStatus], object]

_READ_BATCH = 4096
# At stop, what a source still holds is written for at most this long (a replayed file
# played as fast as possible holds all of it); the rest is counted as dropped.
_DRAIN_SECONDS = 5.0
_data_of = itemgetter(1)  # a packet's bytes
_TICK_INTERVAL = _dt.timedelta(seconds=1)


def effective_selector(selector: str, namespace: str) -> str:
    """Return the selector Calico evaluates for a capture in ``namespace``.

    ``(<selector>) && projectcalico.org/namespace == "<namespace>"``, with an empty selector
    meaning ``all()``, in canonical form.
    """
    return str(in_namespace(selector, namespace))


@attrs.frozen(repr=False, eq=False)
class InterfaceDetails(FieldsRepr, FieldsEq):
    """One captured endpoint interface of a capture on this node."""

    endpoint: str  #: ``namespace/name`` of the WorkloadEndpoint
    pod: str
    interface: str
    state: CaptureState
    packets: int  #: packets written to files
    bytes: int  #: captured bytes written to files
    #: packets lost: in the kernel (live capture), or taken from the source but never
    #: written (the writer failed, or they were still queued when the capture stopped);
    #: ``packets + dropped`` is every packet the filter passed
    dropped: int
    filtered: int  #: packets the filter rejected, where the backend counts them
    packets_deleted: int  #: packets in rotated files deleted by retention
    error: str | None
    files: tuple[str, ...]
    #: why its capture last stopped by itself ("interface cali1 went down", "packet limit
    #: reached", "end of replay file"), until it starts again
    reason: str | None = None


@attrs.frozen(repr=False, eq=False)
class CaptureDetails(FieldsRepr, FieldsEq):
    """A capture on this node: its state, program and every interface."""

    namespace: str
    name: str
    node: str
    state: CaptureState
    selector: str  #: the effective (namespace-scoped) selector
    program_size: int  #: instructions in the BPF program (Ethernet)
    expression: str  #: the equivalent libpcap filter expression
    next_deadline: _dt.datetime | None
    interfaces: tuple[InterfaceDetails, ...]


class _Session:
    """One (capture, endpoint interface): its writer, source and counters."""

    # A plain slotted class, not attrs: private, never compared, and made at every start.
    __slots__ = (
        "bytes",
        "deleted",
        "dropped",
        "endpoint",
        "filtered",
        "interface",
        "lost",
        "packets",
        "pod",
        "reason",
        "seen_packet",
        "source",
        "writer",
    )

    def __init__(self, endpoint: EndpointKey, pod: str, interface: str) -> None:
        self.endpoint = endpoint
        self.pod = pod
        self.interface = interface
        self.source: PacketSource | None = None
        self.writer: RotatingWriter | None = None
        self.seen_packet = False
        self.packets = 0  # written by writers already closed
        self.bytes = 0
        self.dropped = 0  # from sources already closed
        self.lost = 0  # taken from a source but never written (see InterfaceDetails.dropped)
        self.reason: str | None = None  # why its source last ended by itself
        self.filtered = 0
        self.deleted = 0  # packets deleted by retention, from writers already closed

    def totals(self) -> tuple[int, int, int]:
        """Return (packets written, dropped, filtered), the open source and writer included."""
        packets, dropped, filtered = self.packets, self.dropped + self.lost, self.filtered
        if self.source is not None:
            stats = self.source.stats()
            dropped += stats.dropped
            filtered += stats.filtered
        if self.writer is not None:
            packets += self.writer.packets_written
            dropped += self.writer.packets_lost
        return packets, dropped, filtered


class _Run:
    """A capture applied on this node."""

    __slots__ = ("capture", "dirty", "programs", "reported", "schedule", "sessions")

    def __init__(
        self, capture: PacketCapture, schedule: CaptureSchedule, programs: dict[int, BpfProgram]
    ) -> None:
        self.capture = capture
        self.schedule = schedule
        self.programs = programs  # by link type, compiled on demand
        self.sessions: dict[str, _Session] = {}  # by interface name
        self.reported: PacketCaptureStatus | None = None
        self.dirty = True

    @property
    def key(self) -> CaptureKey:
        return self.capture.key


class NodeAgent:
    """Captures the selected endpoints of this node (see the module docstring).

    ``backend`` opens interfaces (live AF_PACKET, replay, memory, or your own);
    ``capture_dir`` is the directory files go under (``{capture_dir}/{ns}/{name}/``);
    ``settings`` holds rotation, retention, snap length and format; ``clock`` gives ``now``
    (a :class:`~packetcapture.testing.FakeClock` in tests). ``on_status_change`` is called
    as ``callback(namespace, name, status)`` when this node's status of a capture changes.
    ``packet_limit`` ends each interface's capture after that many packets.
    ``profile_labels`` maps profile names to labels that endpoints inherit.
    """

    def __init__(
        self,
        node_name: str,
        backend: CaptureBackend,
        capture_dir: str | os.PathLike[str],
        settings: CaptureSettings | None = None,
        clock: Clock | None = None,
        *,
        on_status_change: StatusCallback | None = None,
        retry: RetryPolicy | None = DEFAULT_RETRY,
        packet_limit: int | None = None,
        profile_labels: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        self.node_name = node_name
        self.backend = backend
        self.capture_dir = Path(capture_dir)
        self.settings = settings or CaptureSettings()
        self.clock: Clock = clock or SystemClock()
        self.on_status_change = on_status_change
        self.retry = retry
        self.packet_limit = packet_limit
        self.profile_labels = dict(profile_labels or {})
        self._lock = threading.RLock()
        self._runs: dict[CaptureKey, _Run] = {}
        self._endpoints: dict[EndpointKey, WorkloadEndpoint] = {}
        self._by_interface: dict[str, EndpointKey] = {}
        self._down: set[str] = set()
        self._index: SelectorIndex[CaptureKey, EndpointKey] = SelectorIndex(
            on_match_started=self._match_started, on_match_stopped=self._match_stopped
        )
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._now = self._utcnow()
        self._last_tick: _dt.datetime | None = None
        self._closed = False

    # -- inputs (thread-safe) -----------------------------------------------------------

    def apply(self, capture: PacketCapture) -> None:
        """Add or update a capture. Raises ``ValidationError`` for an invalid one.

        A new capture starts matching endpoints at once. A changed selector re-selects; a
        change of filters or times restarts the capture (files kept), as Calico does.
        """
        validate(capture)
        with self._lock:
            self._now = self._utcnow()
            key = capture.key
            run = self._runs.get(key)
            scoped = effective_selector(capture.spec.selector, capture.namespace)
            if run is None:
                schedule = CaptureSchedule.from_spec(capture.spec, retry=self.retry, now=self._now)
                run = _Run(capture, schedule, {})
                self._runs[key] = run
                self._compile(run, 1)
                self._index.update_selector(key, scoped)
                logger.info("capture %s/%s applied", *key)
            else:
                old = run.capture
                run.capture = capture
                if old.spec.filters != capture.spec.filters:
                    run.programs.clear()
                    self._compile(run, 1)
                if (old.spec.start_time, old.spec.end_time, old.spec.filters) != (
                    capture.spec.start_time,
                    capture.spec.end_time,
                    capture.spec.filters,
                ):
                    self._perform(run, run.schedule.update_spec(capture.spec, self._now))
                if old.spec.selector != capture.spec.selector:
                    self._index.update_selector(key, scoped)
            run.dirty = True
            self._wake()

    def delete(self, namespace: str, name: str, clean_files: bool = True) -> None:
        """Stop a capture; remove its files too when ``clean_files`` (Calico does)."""
        with self._lock:
            self._now = self._utcnow()
            run = self._runs.get((namespace, name))
            if run is None:
                return
            self._perform(run, run.schedule.stop(self._now, keep_files=not clean_files))
            for session in list(run.sessions.values()):
                self._close_session(run, session, keep_files=not clean_files)
            self._index.delete_selector(run.key)
            del self._runs[run.key]
            if clean_files:
                remove_capture_files(self.capture_dir, namespace, name)
            logger.info("capture %s/%s deleted", namespace, name)
            self._wake()

    def upsert_endpoint(self, endpoint: WorkloadEndpoint) -> None:
        """Add or update a WorkloadEndpoint; endpoints of other nodes are ignored."""
        with self._lock:
            self._now = self._utcnow()
            key = endpoint.key
            if endpoint.spec.node and endpoint.spec.node != self.node_name:
                self.delete_endpoint(*key)  # moved away, or never ours
                return
            old = self._endpoints.get(key)
            if old is not None and old.spec.interface_name != endpoint.spec.interface_name:
                # A new interface is a new endpoint as far as captures are concerned.
                self.delete_endpoint(*key)
            self._endpoints[key] = endpoint
            iface = endpoint.spec.interface_name
            if iface:
                self._by_interface[iface] = key
            self._index.update_labels(key, endpoint.selector_labels(self.profile_labels))
            if old is not None and old != endpoint and iface:
                self._endpoint_changed(iface)
            self._wake()

    def _endpoint_changed(self, iface: str) -> None:
        """Restart captures of a changed endpoint's interface (new container, MAC, ...).

        Its captures that stopped because the interface went away restart, and captures in
        ``Error`` retry at once, as felix does on an endpoint update.
        """
        self._down.discard(iface)
        for run in self._runs.values():
            if iface not in run.schedule or iface not in run.sessions:
                continue
            status = run.schedule.status(iface)
            if not status.up:
                self._perform(run, run.schedule.interface_up(iface, self._now))
            elif status.state is CaptureState.ERROR:
                self._perform(run, run.schedule.endpoint_changed(iface, self._now))

    def delete_endpoint(self, namespace: str, name: str) -> None:
        """Remove a WorkloadEndpoint: its captures stop and their files are removed."""
        with self._lock:
            self._now = self._utcnow()
            key = (namespace, name)
            endpoint = self._endpoints.pop(key, None)
            if endpoint is None:
                return
            self._index.delete_labels(key)
            self._by_interface.pop(endpoint.spec.interface_name, None)
            self._wake()

    def set_interface_up(self, interface: str, up: bool) -> None:
        """Report an interface going down (stop, keep files) or coming back (restart)."""
        with self._lock:
            self._now = self._utcnow()
            if up:
                self._down.discard(interface)
            else:
                self._down.add(interface)
            for run in self._runs.values():
                # Only a change: "up" for an interface already up is no input at all.
                if interface in run.schedule and run.schedule.status(interface).up != up:
                    if up:
                        self._perform(run, run.schedule.interface_up(interface, self._now))
                    else:
                        self._perform(run, run.schedule.interface_down(interface, self._now))
            self._wake()

    def interfaces_down(self) -> list[str]:
        """Return the captured interfaces that went down or away, sorted.

        Their captures stopped with files kept and restart on
        ``set_interface_up(name, True)`` (``run --live`` polls the links for it).
        """
        with self._lock:
            return sorted(
                iface
                for iface in self._down
                if any(
                    iface in run.schedule and not run.schedule.status(iface).up
                    for run in self._runs.values()
                )
            )

    # -- the loop -----------------------------------------------------------------------

    def step(
        self, now: _dt.datetime | None = None, timeout: float | None = 1.0
    ) -> _dt.datetime | None:
        """One pass of the loop; return the next deadline of any capture (or ``None``).

        Waits up to ``timeout`` seconds (``0`` polls) for packets, but never past the next
        deadline; pumps every ready source into its writer; feeds time, first packets and
        failures to the schedules and performs what they say; reports status changes.
        Pass ``now`` to drive the agent from a clock of your own.
        """
        with self._lock:
            self._now = self._at(now)
            for run in list(self._runs.values()):
                self._perform(run, run.schedule.tick(self._now))
            wait = self._wait_seconds(timeout)
        events = self._selector.select(wait) if self._has_work(wait) else []
        with self._lock:
            self._now = self._at(now)
            for key, _mask in events:
                if key.data is None:
                    self._drain_wake()
                    continue
                run_key, interface = key.data
                target = self._runs.get(run_key)
                session = target.sessions.get(interface) if target else None
                if target is None or session is None or session.source is None:
                    continue
                self._pump(target, session)
            self._tick_writers()
            self._report()
            return self._next_deadline()

    def run(self, stop_event: threading.Event, *, max_wait: float = 1.0) -> None:
        """Call :meth:`step` until ``stop_event`` is set (then :meth:`close` is not called)."""
        while not stop_event.is_set():
            self.step(timeout=max_wait)

    def idle(self) -> bool:
        """Return True when no packet can be captured any more without a new input.

        No source is open (every replayed file has ended, every interface stopped or
        failed) and no schedule can open one by itself: no interface waits for its
        ``startTime`` or for a retry. A pending ``endTime`` alone does not count: all it
        would do is mark the capture ``Finished``, as :meth:`close` does. New input (a
        capture, an endpoint, an interface coming up) can make the agent busy again. The
        CLI's ``run`` stops on it.
        """
        with self._lock:
            if any(s.source is not None for r in self._runs.values() for s in r.sessions.values()):
                return False
            return not any(_may_start(r.schedule) for r in self._runs.values())

    def flush(self) -> None:
        """Write every buffered packet to its file now (writers also flush on their own)."""
        with self._lock:
            for run in self._runs.values():
                for session in list(run.sessions.values()):
                    if session.writer is not None:
                        try:
                            session.writer.flush()
                        except PcapError as exc:
                            self._fail(run, session, _reason(exc, session.interface))

    def close(self) -> None:
        """Stop every capture (files kept, state Finished), flush and close everything."""
        with self._lock:
            if self._closed:
                return
            self._now = self._utcnow()
            for run in self._runs.values():
                # The capture ends here: the final status says Finished, files kept; a
                # capture in Error stays so, with its reasons, for the final report.
                if run.schedule.node_state() is not CaptureState.ERROR:
                    self._perform(run, run.schedule.stop(self._now, keep_files=True))
                for session in list(run.sessions.values()):
                    failure = self._stop_session(run, session, keep_files=True)
                    self._stop_failed(run, session, failure)
            self._report()
            self._closed = True
            self._selector.close()
            os.close(self._wake_r)
            os.close(self._wake_w)

    def __enter__(self) -> NodeAgent:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- queries ------------------------------------------------------------------------

    def captures(self) -> list[PacketCapture]:
        """Return the captures applied, sorted by namespace and name."""
        with self._lock:
            return [self._runs[k].capture for k in sorted(self._runs)]

    def endpoints(self) -> list[WorkloadEndpoint]:
        """Return this node's endpoints, sorted by namespace and name."""
        with self._lock:
            return [self._endpoints[k] for k in sorted(self._endpoints)]

    def matches(self, namespace: str, name: str) -> list[WorkloadEndpoint]:
        """Return the endpoints a capture selects on this node."""
        with self._lock:
            keys = self._index.matches((namespace, name)) if (namespace, name) in self._runs else ()
            return [self._endpoints[k] for k in sorted(keys)]

    def status(self, namespace: str, name: str) -> PacketCaptureStatus:
        """Return this node's status entry of a capture, as felix reports it."""
        with self._lock:
            run = self._get(namespace, name)
            return PacketCaptureStatus(files=(self._file_entry(run),))

    def details(self, namespace: str, name: str) -> CaptureDetails:
        """Return per-interface state, counters, drops, errors and files of a capture."""
        with self._lock:
            run = self._get(namespace, name)
            errors = run.schedule.errors()
            interfaces = []
            on_disk: list[str] | None = None  # the directory, listed once for all stopped ones
            for iface in sorted(run.schedule.interfaces()):
                session = run.sessions.get(iface)
                if session is None:
                    continue
                packets, dropped, filtered = session.totals()
                writer = session.writer
                deleted = session.deleted + (writer.packets_deleted if writer else 0)
                if writer is not None:
                    files = tuple(writer.file_names)
                else:
                    if on_disk is None:
                        on_disk = self._listing(run)
                    files = _files_of(on_disk, session.pod, session.interface)
                interfaces.append(
                    InterfaceDetails(
                        endpoint="/".join(session.endpoint),
                        pod=session.pod,
                        interface=iface,
                        state=run.schedule.state(iface),
                        packets=packets,
                        bytes=session.bytes,
                        dropped=dropped,
                        filtered=filtered,
                        packets_deleted=deleted,
                        error=errors.get(iface),
                        files=files,
                        reason=session.reason,
                    )
                )
            return CaptureDetails(
                namespace=namespace,
                name=name,
                node=self.node_name,
                state=run.schedule.node_state(),
                selector=effective_selector(run.capture.spec.selector, namespace),
                program_size=len(self._compile(run, 1)),
                expression=pcap_expression(run.capture.spec.filters),
                next_deadline=run.schedule.next_deadline(),
                interfaces=tuple(interfaces),
            )

    def _listing(self, run: _Run) -> list[str]:
        """Return the capture's file names on disk (none if the directory is unreadable)."""
        try:
            return capture_file_names(self.capture_dir, *run.key)
        except PcapError:
            return []

    # -- internals: matching --------------------------------------------------------------

    def _match_started(self, capture: CaptureKey, endpoint: EndpointKey) -> None:
        run = self._runs.get(capture)
        wep = self._endpoints.get(endpoint)
        if run is None or wep is None or not wep.spec.interface_name:
            return
        iface = wep.spec.interface_name
        run.sessions[iface] = _Session(endpoint, wep.pod_name, iface)
        logger.info("capture %s/%s selects %s/%s (%s)", *capture, *endpoint, iface)
        up = iface not in self._down
        self._perform(run, run.schedule.add_interface(iface, self._now, up=up))

    def _match_stopped(self, capture: CaptureKey, endpoint: EndpointKey) -> None:
        run = self._runs.get(capture)
        if run is None:
            return
        for iface, session in list(run.sessions.items()):
            if session.endpoint == endpoint:
                logger.info("capture %s/%s no longer selects %s/%s", *capture, *endpoint)
                if iface in run.schedule:
                    result = run.schedule.remove_interface(iface, self._now, keep_files=False)
                    self._perform(run, result)
                self._close_session(run, session, keep_files=False)

    # -- internals: actions -------------------------------------------------------------

    def _perform(self, run: _Run, result: ScheduleResult) -> None:
        """Carry out a schedule's actions in order; failures feed back into the schedule."""
        pending = list(result.actions)
        if result.transitions:
            run.dirty = True
        while pending:
            action = pending.pop(0)
            session = run.sessions.get(action.interface)
            if session is None:
                continue
            if isinstance(action, StopCapture):
                failure = self._stop_session(run, session, keep_files=action.keep_files)
                self._stop_failed(run, session, failure)
            elif isinstance(action, StartCapture):
                failure = self._start_session(run, session)
                if failure is not None:
                    logger.warning(
                        "capture %s/%s on %s failed: %s", *run.key, session.interface, failure
                    )
                    again = run.schedule.failure(session.interface, failure, self._now)
                    pending.extend(again.actions)
                    run.dirty = True
        if result.node_state_changed and run.key in self._runs:
            # Every node-state change is reported, not just the last one of a step.
            self._report_run(run)

    def _start_session(self, run: _Run, session: _Session) -> str | None:
        """Open the writer and the source; return the reason on failure."""
        self._stop_session(run, session, keep_files=True)
        session.seen_packet = False
        session.reason = None
        ns, name = run.key
        try:
            check_free_space(self.capture_dir, self.settings)
            session.writer = RotatingWriter(
                self.capture_dir,
                ns,
                name,
                session.pod,
                session.interface,
                settings=self.settings,
                node=self.node_name,  # in pcapng's interface description, for merge
            )
            session.source = self._open(run, session.interface)
        except (PacketCaptureError, OSError) as exc:
            self._stop_session(run, session, keep_files=True)
            return _reason(exc, session.interface)
        self._selector.register(
            session.source.fileno(), selectors.EVENT_READ, (run.key, session.interface)
        )
        return None

    def _open(self, run: _Run, interface: str) -> PacketSource:
        snaplen = self.settings.snaplen
        program = self._compile(run, 1)
        try:
            return self.backend.open(
                interface, program, snaplen=snaplen, packet_limit=self.packet_limit
            )
        except LinktypeMismatchError as exc:
            # A replayed file of another link type: compile the filter for it.
            program = self._compile(run, exc.actual)
            return self.backend.open(
                interface, program, snaplen=snaplen, packet_limit=self.packet_limit
            )

    def _compile(self, run: _Run, linktype: int) -> BpfProgram:
        program = run.programs.get(linktype)
        if program is None:
            program = compile_filters(
                run.capture.spec.filters, linktype=linktype, snaplen=self.settings.snaplen
            )
            run.programs[linktype] = program
        return program

    def _stop_session(self, run: _Run, session: _Session, *, keep_files: bool) -> str | None:
        """Stop an interface's source and writer; return why, if that lost packets.

        What the source still holds is written first (or, if that fails or takes too long,
        counted as dropped): packets written + dropped = packets the filter passed.
        """
        failure: str | None = None
        source, session.source = session.source, None
        if source is not None:
            with contextlib.suppress(KeyError, ValueError, BackendError):
                self._selector.unregister(source.fileno())
            if not source.closed:
                with contextlib.suppress(BackendError):  # the drain still ends (time bound)
                    source.stop_receiving()
                try:
                    self._pump_source(run, session, source, final=True)
                except PcapError as exc:
                    failure = _reason(exc, session.interface)
                except BackendError as exc:
                    logger.debug("%s: reading the last packets: %s", session.interface, exc)
            source.close()
            stats = source.stats()
            session.dropped += stats.dropped
            session.filtered += stats.filtered
            if not source.limit_reached:  # packets after the limit were not wanted
                session.lost += max(stats.received - stats.dropped - source.delivered, 0)
        writer, session.writer = session.writer, None
        if writer is not None:
            try:
                writer.close()
            except PcapError as exc:
                logger.warning("closing %s: %s", writer.active_path, exc)
                failure = failure or _reason(exc, session.interface)
            session.deleted += writer.packets_deleted
            session.packets += writer.packets_written
            session.lost += writer.packets_lost
        if not keep_files:
            try:
                remove_capture_files(
                    self.capture_dir, *run.key, pod=session.pod, interface=session.interface
                )
            except PcapError as exc:  # e.g. the directory was swapped for a symlink
                logger.warning("capture %s/%s: cannot delete its files: %s", *run.key, exc)
            session.packets = session.bytes = session.deleted = 0
        run.dirty = True
        return failure

    def _stop_failed(self, run: _Run, session: _Session, failure: str | None) -> None:
        """Put an interface whose stop lost packets in ``Error`` (never ``Finished``)."""
        if failure is None:
            return
        iface = session.interface
        logger.warning("capture %s/%s on %s failed: %s", *run.key, iface, failure)
        if iface in run.schedule and run.schedule.state(iface) is CaptureState.FINISHED:
            self._perform(run, run.schedule.stop_failed(iface, failure, self._now))

    def _close_session(self, run: _Run, session: _Session, *, keep_files: bool) -> None:
        self._stop_session(run, session, keep_files=keep_files)
        run.sessions.pop(session.interface, None)

    # -- internals: packets -------------------------------------------------------------

    def _pump(self, run: _Run, session: _Session) -> None:
        source = session.source
        if source is None:
            return
        try:
            self._pump_source(run, session, source, final=False)
        except (BackendError, PcapError) as exc:
            self._fail(run, session, _reason(exc, session.interface))
            return
        if source.exhausted:
            reason = source.end_reason or "source ended"
            session.reason = reason
            if source.link_lost:
                # Calico's lifecycle: stop, keep the files, capture again once it is back.
                self._down.add(session.interface)
                logger.warning(
                    "capture %s/%s on %s stopped: %s (files kept; capturing again when it is "
                    "back up)",
                    *run.key,
                    session.interface,
                    reason,
                )
            else:
                logger.info("capture %s/%s on %s: %s", *run.key, session.interface, reason)
            failure = self._stop_session(run, session, keep_files=True)
            if session.interface in run.schedule:
                self._perform(run, run.schedule.interface_down(session.interface, self._now))
            self._stop_failed(run, session, failure)

    def _pump_source(
        self, run: _Run, session: _Session, source: PacketSource, *, final: bool
    ) -> None:
        """Move ready packets from ``source`` to the writer.

        At most 64 batches, or, when ``final``, until the source holds nothing more or
        ``_DRAIN_SECONDS`` passed. A failed write raises :class:`PcapError`; the packets
        taken but not written are counted in ``session.lost``.
        """
        writer = session.writer
        if writer is None or source.closed:
            return
        now = self._now
        stamp = now.timestamp()  # writers take float seconds fastest, once per batch
        # A source with a raw lane (replayed classic pcap) into a classic pcap writer: records
        # are copied as they are, with the same result as decoding and re-encoding them.
        nano = writer.settings.nanosecond
        raw = writer.accepts_raw(nanosecond=nano)
        rounds = 0
        until = time.monotonic() + _DRAIN_SECONDS if final else 0.0
        while True:
            count = 0
            packets: list[Packet] = []
            written, lost = writer.packets_written, writer.packets_lost
            try:
                got = None
                if raw:
                    got = source.read_raw(_READ_BATCH, nanosecond=nano, snaplen=writer.snaplen)
                if got is None:
                    packets = source.read(_READ_BATCH)
                else:
                    records, count, rest = got
                    if count:
                        writer.write_raw(records, count, stamp)
                        session.bytes += len(records) - 16 * count  # minus record headers
                    # The rest of the batch, from a packet the raw lane cannot copy as is.
                    packets = source.read(rest) if rest else []
                if packets:
                    writer.write_many(packets, stamp)  # as write() per packet, faster
                    session.bytes += sum(map(len, map(_data_of, packets)))
            except BackendError:
                if final:
                    return
                raise
            except PcapError:
                # Taken from the source, neither written nor already counted as lost.
                accepted = writer.packets_written - written + writer.packets_lost - lost
                session.lost += count + len(packets) - accepted
                raise
            got_n = count + len(packets)
            if not got_n:
                break
            if not session.seen_packet:
                session.seen_packet = True
                run.dirty = True
                if not final and session.interface in run.schedule:
                    self._perform(run, run.schedule.packet_seen(session.interface, now))
            if final:
                if time.monotonic() > until:
                    logger.warning(
                        "capture %s/%s on %s: stopped writing the last packets after %g s",
                        *run.key,
                        session.interface,
                        _DRAIN_SECONDS,
                    )
                    break
                continue
            rounds += 1
            if got_n < _READ_BATCH or source.exhausted or rounds >= 64:
                break

    def _fail(self, run: _Run, session: _Session, reason: str) -> None:
        logger.warning("capture %s/%s on %s failed: %s", *run.key, session.interface, reason)
        self._stop_session(run, session, keep_files=True)
        if session.interface in run.schedule:
            self._perform(run, run.schedule.failure(session.interface, reason, self._now))

    def _tick_writers(self) -> None:
        if self._last_tick is not None and self._now - self._last_tick < _TICK_INTERVAL:
            return
        self._last_tick = self._now
        for run in self._runs.values():
            for session in run.sessions.values():
                writer = session.writer
                if writer is None:
                    continue
                try:
                    if writer.tick(self._now) is not None:
                        run.dirty = True
                except PcapError as exc:
                    self._fail(run, session, _reason(exc, session.interface))

    # -- internals: status --------------------------------------------------------------

    def _file_entry(self, run: _Run) -> PacketCaptureFile:
        try:
            listed = list_capture_files(self.capture_dir, *run.key, self.node_name)
        except PcapError as exc:
            # Someone swapped the directory for a symlink (or made it unreadable): the
            # run goes on, its status lists no file rather than one read through a symlink.
            logger.warning("capture %s/%s: cannot list its files: %s", *run.key, exc)
            listed = PacketCaptureFile(
                directory=os.fspath(self.capture_dir), file_names=(), node=self.node_name
            )
        return attrs.evolve(listed, state=run.schedule.node_state())

    def _report(self) -> None:
        for run in list(self._runs.values()):
            if run.dirty:
                self._report_run(run)

    def _report_run(self, run: _Run) -> None:
        run.dirty = False
        status = PacketCaptureStatus(files=(self._file_entry(run),))
        if status != run.reported:
            run.reported = status
            state = status.files[0].state
            logger.info("capture %s/%s on %s: %s", *run.key, self.node_name, state)
            if self.on_status_change is not None:
                self.on_status_change(*run.key, status)

    # -- internals: misc ----------------------------------------------------------------

    def _get(self, namespace: str, name: str) -> _Run:
        run = self._runs.get((namespace, name))
        if run is None:
            raise KeyError(f"no capture {namespace}/{name} on this agent")
        return run

    def _next_deadline(self) -> _dt.datetime | None:
        deadlines = [d for r in self._runs.values() if (d := r.schedule.next_deadline())]
        return min(deadlines) if deadlines else None

    def _wait_seconds(self, timeout: float | None) -> float | None:
        deadline = self._next_deadline()
        if deadline is None:
            return timeout
        until = max((deadline - self._now).total_seconds(), 0.0)
        return until if timeout is None else min(until, timeout)

    def _has_work(self, wait: float | None) -> bool:
        return wait is None or wait > 0 or len(self._selector.get_map()) > 1

    def _utcnow(self) -> _dt.datetime:
        return self.clock.now().astimezone(_dt.UTC)

    def _at(self, now: _dt.datetime | None) -> _dt.datetime:
        if now is None:
            return self._utcnow()
        if now.utcoffset() is None:
            raise ValueError("now must be timezone-aware")
        return now.astimezone(_dt.UTC)

    def _wake(self) -> None:
        if self._closed:
            return
        # A full pipe means the loop is already due to wake up.
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake_w, b"\0")

    def _drain_wake(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass


def _may_start(schedule: CaptureSchedule) -> bool:
    """Whether a schedule will start a capture by itself: a start time or a retry is due."""
    for name in schedule.interfaces():
        status = schedule.status(name)
        if status.state is CaptureState.SCHEDULED or status.retry_at is not None:
            return True
    return False


def _files_of(names: Iterable[str], pod: str, interface: str) -> tuple[str, ...]:
    """Return one interface's files among ``names``, in the writer's order.

    Files outlive their writer (Finished, interface down, Error), and Calico keeps listing
    them in the status, so the details list them too: rotated files oldest first, then the
    active one.
    """
    rotated: list[tuple[int, str]] = []
    active: list[str] = []
    for fname in names:
        parsed = parse_file_name(fname)
        if parsed is None or (parsed.pod, parsed.interface) != (pod, interface):
            continue
        if parsed.rotated_us is None:
            active.append(fname)
        else:
            rotated.append((parsed.rotated_us, fname))
    return tuple(fname for _, fname in sorted(rotated)) + tuple(active)


def _reason(exc: BaseException, interface: str) -> str:
    """Return why an interface failed, without the interface name backends often lead with.

    The reason is always shown next to the interface (details, logs, the CLI), so a
    leading ``"{interface}: "`` would only repeat it.
    """
    return str(exc).removeprefix(f"{interface}: ") or type(exc).__name__


def merge_status(
    statuses: Iterable[PacketCaptureStatus | PacketCaptureFile],
) -> PacketCaptureStatus:
    """Combine per-node status entries into one status, as the API server would hold it.

    Entries are keyed by node: a later entry for a node replaces that node's earlier one
    (felix's last-writer-wins), and a node seen first is appended (felix appends a new
    ``files[]`` entry the first time a node reports). Order of first appearance is kept.
    """
    by_node: dict[str | None, PacketCaptureFile] = {}
    for status in statuses:
        entries = status.files if isinstance(status, PacketCaptureStatus) else (status,)
        for entry in entries:
            by_node[entry.node] = entry
    return PacketCaptureStatus(files=tuple(by_node.values()))

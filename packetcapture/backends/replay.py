"""Replay pcap / pcapng files as if they were interfaces.

Each interface name maps to one or more capture files, played one after the other, or a
directory holds ``{interface}.pcap`` / ``{interface}.pcapng``. The filter program runs in
Python through :meth:`BpfProgram.executor`; the link type comes from the files (a program
built for another link type is refused). By default packets are handed out as fast as they
are read; with ``speed`` they are paced by their original timestamps (``speed=2.0`` plays
twice as fast), against ``clock`` (a :class:`packetcapture.clock.Clock`).

With a :class:`ReplayClock` (``replay_clock``), the files' own timestamps are the time of
the replay: the clock starts at the first packet and moves with the packets replayed; a
source opened at time T skips the packets before T (they went by before it was open, as
on a live interface) and hands out no packet at or after the clock's *horizon* (the next
deadline of whoever drives it) until the clock has moved past it. So a capture's
``startTime`` and ``endTime`` select the packets whose timestamps fall in the window.

A corrupt file (a bad header, or a record no capture can hold: longer than 262144 bytes)
raises :class:`ReplayFileError` (a :class:`~packetcapture.errors.PcapError` naming the file
and byte offset, and a :class:`~packetcapture.errors.BackendBrokenError`) from ``read()``,
after every packet before the bad spot was delivered. A torn tail (the file ends inside a
record, as after a crash) is not an error: its whole packets are delivered, a warning names
the file, and the next file plays on (the rule of ``docs/files.md``, as for ``merge``). The
end of the last file ends the source cleanly.
"""

from __future__ import annotations

import datetime as _dt
import os
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from packetcapture._lazylog import get_logger
from packetcapture.backends._wakeup import EventWakeup, TimerWakeup
from packetcapture.backends.base import (
    DEFAULT_SNAPLEN,
    CaptureBackend,
    LinktypeMismatchError,
    Packet,
    PacketSource,
    RawBatch,
    SourceStats,
    check_linktype,
)
from packetcapture.clock import Clock, SystemClock
from packetcapture.errors import BackendBrokenError, BackendUnavailableError, PcapError
from packetcapture.pcap import PcapReader, PcapTruncatedError

if TYPE_CHECKING:
    from packetcapture.bpf import BpfProgram
    from packetcapture.bpf._codegen import Scanner

__all__ = ["ReplayBackend", "ReplayClock", "ReplayFileError", "ReplaySource"]

logger = get_logger(__name__)

PathLike = str | os.PathLike[str]
_NS = 1_000_000_000
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)
_US = _dt.timedelta(microseconds=1)
_NEVER = 1 << 126  # a horizon beyond any timestamp
#: Up to this many bytes of input a program is run by the VM, record by record: generating
#: the raw lane's scanner (a compile() of some 25 KB of Python, ~5 ms) costs more than the
#: VM (~3 µs a record) spends on the few hundred records they hold. Counted per program
#: over all the sources that use it (many small interfaces of one capture add up): past
#: it, sources get the scanner, made once per program.
SMALL_INPUT_BYTES = 64 * 1024
#: Bytes of input each program has had the VM filter so far (see SMALL_INPUT_BYTES).
_VM_BYTES: weakref.WeakKeyDictionary[BpfProgram, int] = weakref.WeakKeyDictionary()


def _vm_takes(program: BpfProgram, input_bytes: int | None) -> bool:
    """Return True (and count the bytes) if the VM is to filter this input of ``program``."""
    if input_bytes is None:
        return False
    total = _VM_BYTES.get(program, 0) + input_bytes
    if total > SMALL_INPUT_BYTES:
        return False
    _VM_BYTES[program] = total
    return True


def _to_ns(when: _dt.datetime) -> int:
    return (when.astimezone(_dt.UTC) - _EPOCH) // _US * 1000


def _one_by_one(reader: PcapReader) -> Iterator[Packet]:
    while batch := reader.read_batch(1):
        yield batch[0]


class ReplayClock:
    """The time of a replay: the replayed packets' timestamps (a :class:`Clock`).

    ``start`` is where it begins (usually the first packet's time: :meth:`first_packet`).
    It moves forward with every packet a source made with it hands out, and jumps when
    told to (:meth:`advance_to`, :meth:`sleep_until`: a replay never waits for its own
    time). :meth:`set_horizon` bounds what the sources hand out: nothing at or after it, so
    whoever drives the clock can process a deadline (an ``endTime``) before the packets
    that follow it. :meth:`stalled` says when every open source waits at the horizon or
    has ended: then the clock may jump to the horizon. ``monotonic()`` is the real one
    (pacing with ``speed`` still runs in real time).
    """

    def __init__(self, start: _dt.datetime) -> None:
        if start.utcoffset() is None:
            raise ValueError("start must be timezone-aware")
        self._now_ns = _to_ns(start)
        self._horizon_ns: int | None = None
        self._sources: weakref.WeakSet[ReplaySource] = weakref.WeakSet()

    @staticmethod
    def first_packet(paths: Sequence[PathLike]) -> _dt.datetime | None:
        """Return the earliest first-packet time of ``paths`` (None: no packet in any).

        Files that cannot be read are left out: replaying them reports the problem.
        """
        firsts: list[int] = []
        for path in paths:
            try:
                with PcapReader(Path(path)) as reader:
                    first = next(iter(reader), None)
            except (OSError, PcapError):
                continue
            if first is not None:
                firsts.append(first[0])
        if not firsts:
            return None
        return _EPOCH + _dt.timedelta(microseconds=min(firsts) // 1000)

    def now(self) -> _dt.datetime:
        """Return the replay's current time (UTC, to the microsecond)."""
        return _EPOCH + _dt.timedelta(microseconds=self._now_ns // 1000)

    def now_ns(self) -> int:
        """Return the replay's current time in nanoseconds since the epoch."""
        return self._now_ns

    def monotonic(self) -> float:
        """Return ``time.monotonic()`` (durations and pacing are real)."""
        return time.monotonic()

    def sleep_until(self, deadline: _dt.datetime) -> None:
        """Jump to ``deadline`` at once (see :meth:`advance_to`)."""
        self.advance_to(deadline)

    def advance_to(self, when: _dt.datetime) -> None:
        """Move the clock to ``when`` if that is later; sources then read again."""
        self._move(_to_ns(when))
        for source in list(self._sources):
            source._waiting = False

    def set_horizon(self, deadline: _dt.datetime | None) -> None:
        """Hand out no packet at or after ``deadline`` (None: no bound) until passed."""
        horizon = None if deadline is None else _to_ns(deadline)
        if horizon != self._horizon_ns:
            self._horizon_ns = horizon
            for source in list(self._sources):
                source._waiting = False

    def horizon_ns(self) -> int | None:
        """Return the horizon in nanoseconds (None: no bound)."""
        return self._horizon_ns

    def stalled(self) -> bool:
        """Return True when no open source can hand out a packet before the horizon."""
        return all(s.closed or s.exhausted or s._waiting for s in list(self._sources))

    def _move(self, ns: int) -> None:
        self._now_ns = max(self._now_ns, ns)

    def _register(self, source: ReplaySource) -> None:
        self._sources.add(source)

    def __repr__(self) -> str:
        return f"ReplayClock({self.now().isoformat()})"


class ReplayFileError(BackendBrokenError, PcapError):
    """A replayed file is corrupt or truncated; ``path`` and ``offset`` say where.

    It is both a :class:`~packetcapture.errors.PcapError` and a
    :class:`~packetcapture.errors.BackendBrokenError`; ``__cause__`` is the reader's error.
    """

    def __init__(self, cause: PcapError) -> None:
        Exception.__init__(self, str(cause))
        self.path = cause.path
        self.offset = cause.offset


class ReplaySource(PacketSource):
    """Packets of one interface's capture files, filtered by the program in Python."""

    def __init__(
        self,
        interface: str,
        readers: list[PcapReader],
        program: BpfProgram,
        *,
        linktype: int,
        snaplen: int,
        packet_limit: int | None,
        speed: float | None,
        clock: Clock | None,
        replay_clock: ReplayClock | None = None,
        input_bytes: int | None = None,
    ) -> None:
        super().__init__(interface, linktype=linktype, snaplen=snaplen, packet_limit=packet_limit)
        self._readers = readers
        self._next_reader = 0
        self._reader: PcapReader | None = None  # the file being played
        self._it: Iterator[Packet] | None = None  # paced mode iterates over it
        self._timed = replay_clock is not None
        self._input_bytes = input_bytes
        self._verdict: Callable[[bytes], int]
        self._scanner: Scanner | None
        self._set_program(program)
        self._received = self._filtered = 0
        self._error: ReplayFileError | None = None
        self._speed = speed if speed else None
        self._clock: Clock = clock if clock is not None else SystemClock()
        # Only a real clock can arm the timer; with an injected one the descriptor stays
        # readable while packets remain and read() decides what is due.
        self._real_clock = isinstance(self._clock, SystemClock)
        self._pending: Packet | None = None  # paced: next packet that passed the filter
        self._start = self._clock.monotonic()
        self._first_ts: int | None = None
        # A timer only when packets are paced (arm_at); otherwise an eventfd does, and
        # ctypes (for timerfd) is not loaded.
        paced = self._speed is not None and self._real_clock
        self._wakeup: TimerWakeup | EventWakeup = TimerWakeup() if paced else EventWakeup()
        self._wakeup.set()
        # On a replay clock: packets before the time the source opened went by unseen; the
        # source waits (`_waiting`) at the clock's horizon.
        self._replay_clock = replay_clock
        self._skip_before = replay_clock.now_ns() if replay_clock is not None else 0
        self._waiting = False
        if replay_clock is not None:
            replay_clock._register(self)
        self._advance()

    def _advance(self) -> bool:
        """Move to the next file; False when there is none."""
        if self._next_reader >= len(self._readers):
            self._it = self._reader = None
            return False
        reader = self._readers[self._next_reader]
        self._next_reader += 1
        self._reader = reader
        # Made on first use: fast mode reads batches, which beat this iterator.
        self._it = None
        return True

    def _fail(self, exc: PcapError) -> ReplayFileError | None:
        if isinstance(exc, PcapTruncatedError):
            # The one rule for a torn tail (docs/files.md), as merge applies it: the file's
            # whole packets count, a warning names it, and the next file plays on.
            logger.warning(
                "%s ends in a torn record at byte %s; its whole packets were replayed",
                exc.path,
                exc.offset,
            )
            self._advance()
            return None
        error = ReplayFileError(exc)
        error.__cause__ = exc
        self._error = error
        self._it = self._reader = None
        return error

    # -- reading -----------------------------------------------------------------------
    def _read(self, max_packets: int) -> list[Packet]:
        if self._error is not None:
            raise self._error
        if self._speed is None and self._replay_clock is None:
            packets = self._read_fast(max_packets)
        else:
            packets = self._read_paced(max_packets)
        if self._error is not None and not packets:
            raise self._error
        return packets

    def _first_verdict(self, frame: bytes) -> int:
        """Generate the executor on first use and put it in ``_verdict`` for later calls."""
        self._verdict = verdict = self._program.executor()
        return verdict(frame)

    def _read_fast(self, max_packets: int) -> list[Packet]:
        out: list[Packet] = []
        verdict, snaplen = self._verdict, self.snaplen
        budget = max_packets  # records read per call, kept or not, as a live socket would
        while budget > 0:
            reader = self._reader
            if reader is None:
                if self._error is None:
                    self._finish("end of capture files")
                break
            try:
                # One tight loop in the reader decodes, filters and cuts. Packets before a
                # bad record come back first; the call after raises.
                packets, n = reader.read_filtered(budget, verdict, snaplen)
            except PcapError as exc:
                self._fail(exc)
                break
            if not n:  # this file is done: on to the next
                self._advance()
                continue
            budget -= n
            self._filtered += n - len(packets)
            if out:
                out += packets
            else:
                out = packets
        self._received += len(out)
        return out

    def read_raw(self, max_packets: int, *, nanosecond: bool, snaplen: int) -> RawBatch | None:
        """Read like :meth:`read`, but return the packets as raw classic pcap records.

        The fast lane for copying a replayed file into a classic pcap writer. Returns
        ``(records, count, rest)``: ``records`` holds the first ``count`` packets that
        ``read(max_packets)`` would return, as the little-endian records (timestamps in
        nanoseconds if ``nanosecond``, else microseconds) a writer of that resolution and
        snap length ``snaplen`` would write for them, taken from the file without decoding
        (see :meth:`RotatingWriter.write_raw`). ``rest`` is non-zero when reading stopped
        at a packet that needs the normal path: ``read(rest)`` then returns the remaining
        packets of the same batch. Counters, the packet limit, the end of the source and
        errors are as for :meth:`read`.

        Returns None, having consumed nothing, when the first packet cannot be served this
        way (paced replay, a pcapng, big-endian or other-resolution file, a packet that
        would need cutting or fixing, or on a replay clock one before the source opened or
        at the horizon): call :meth:`read` instead.
        """
        self._check_open()
        if self._end_reason is not None or max_packets <= 0:
            return b"", 0, 0
        if self._speed is not None or self._pending is not None or self._scanner is None:
            return None
        max_packets = self._budget(max_packets)
        if max_packets <= 0:
            return b"", 0, 0
        if self._error is not None:
            raise self._error
        clock = self._replay_clock
        window = None
        if clock is not None:
            # Records before the source opened and kept ones at the horizon stop the lane
            # (read() takes them); the clock follows the latest record handed out.
            horizon = clock.horizon_ns()
            window = [self._skip_before, _NEVER if horizon is None else horizon, 0]
        parts, count, rest = self._read_raw(max_packets, nanosecond, snaplen, window)
        if rest == max_packets:
            return None
        if self._error is not None and not count:
            raise self._error
        if clock is not None and window is not None:
            clock._move(window[2])
            self._waiting = False
        self._received += count
        self._count_delivered(count)
        return (parts[0] if len(parts) == 1 else b"".join(parts)), count, rest

    def _read_raw(
        self, max_packets: int, nanosecond: bool, snaplen: int, window: list[int] | None
    ) -> tuple[list[bytes], int, int]:
        """Run ``_read_fast``'s loop on raw batches: return ``(parts, count, records left)``."""
        parts: list[bytes] = []
        verdict = self._verdict  # not called when the scanner runs the filter
        count = 0
        budget = max_packets  # records read per call, kept or not, as in _read_fast
        while budget > 0:
            reader = self._reader
            if reader is None:
                if self._error is None:
                    self._finish("end of capture files")
                break
            if not reader.raw_capable or reader.nanosecond != nanosecond:
                return parts, count, budget
            try:
                got = reader.read_filtered_raw(
                    budget,
                    verdict,
                    self.snaplen,
                    limit=snaplen,
                    scanner=self._scanner,
                    window=window,
                )
            except PcapError as exc:
                self._fail(exc)
                break
            if got is None:
                return parts, count, budget
            records, kept, n = got
            if not n:  # this file is done: on to the next
                self._advance()
                continue
            budget -= n
            self._filtered += n - kept
            if kept:
                count += kept
                parts.append(records)
        return parts, count, 0

    def _next_passing(self) -> Packet | None:
        """Pull the next packet that passes the filter (paced mode), or None at the end."""
        verdict, snaplen = self._verdict, self.snaplen
        while self._reader is not None:
            for packet in self._records():
                if packet[0] < self._skip_before:
                    continue  # before the source opened, on the replay clock
                keep = verdict(packet[1])
                if not keep:
                    self._filtered += 1
                    continue
                keep = min(keep, snaplen)
                if len(packet[1]) > keep:
                    return (packet[0], packet[1][:keep], packet[2])
                return packet
            self._advance()
        return None

    def _records(self) -> Iterator[Packet]:
        """Return an iterator over the current file's records from where reading is."""
        reader = self._reader
        assert reader is not None
        if self._speed is None and self._it is None and reader.raw_capable:
            # Iterating would end the file's raw lane (read_raw after a horizon or an
            # early record); single-record batches leave it open.
            return _one_by_one(reader)
        if self._it is None:
            self._it = iter(reader)
        return self._it

    def _read_paced(self, max_packets: int) -> list[Packet]:
        """Read paced by ``speed`` (if set), up to the replay clock's horizon (if any)."""
        out: list[Packet] = []
        speed = self._speed
        replay_clock = self._replay_clock
        horizon = replay_clock.horizon_ns() if replay_clock is not None else None
        now = self._clock.monotonic()
        due = 0.0
        waiting = False
        try:
            while len(out) < max_packets:
                if self._pending is None:
                    self._pending = self._next_passing()
                    if self._pending is None:
                        self._finish("end of capture files")
                        break
                ts = self._pending[0]
                if horizon is not None and ts >= horizon:
                    waiting = True
                    break
                if speed is not None:
                    if self._first_ts is None:
                        self._first_ts = ts
                    due = self._start + (ts - self._first_ts) / _NS / speed
                    if due > now:
                        break
                out.append(self._pending)
                self._pending = None
                if replay_clock is not None:
                    replay_clock._move(ts)
        except PcapError as exc:
            self._fail(exc)
        self._received += len(out)
        self._waiting = waiting
        paced = speed is not None and not waiting
        if paced and self._pending is not None and self._real_clock and self._error is None:
            assert isinstance(self._wakeup, TimerWakeup)  # paced on a real clock: a timer
            self._wakeup.arm_at(int(due * _NS))
        else:
            self._wakeup.set()
        return out

    def next_due(self) -> float | None:
        """Paced mode: seconds (on the clock) until the next packet is due; else ``None``."""
        if self._speed is None or self._pending is None or self._first_ts is None:
            return None
        due = self._start + (self._pending[0] - self._first_ts) / _NS / self._speed
        return max(due - self._clock.monotonic(), 0.0)

    # -- the rest ----------------------------------------------------------------------
    def _fileno(self) -> int:
        return self._wakeup.fileno()

    def _set_program(self, program: BpfProgram) -> None:
        # The raw lane needs only the scanner, its fused filter loop (on a replay clock it
        # also keeps the time window); the per-packet executor is generated (a compile() of
        # the whole program) when a packet lane first asks for it. A small input
        # (``input_bytes``, the files' total size) gets neither: see SMALL_INPUT_BYTES.
        self._program = program
        if _vm_takes(program, self._input_bytes):
            self._verdict, self._scanner = program.run, None  # the VM: nothing generated
        else:
            self._verdict = self._first_verdict
            self._scanner = program.pcap_scanner(timed=self._timed)

    def _stats(self) -> SourceStats:
        return SourceStats(self._received, 0, self._filtered)

    def _close(self) -> None:
        for reader in self._readers:
            reader.close()
        self._wakeup.close()


class ReplayBackend(CaptureBackend):
    """Replay capture files as interfaces (no privilege needed).

    ``files`` maps an interface name to a file or a list of files (played in order);
    ``directory`` is searched for ``{interface}.pcap`` then ``{interface}.pcapng`` for
    names not in ``files``. ``speed``: ``None`` (default) replays as fast as possible, a
    positive factor paces packets by their timestamps. ``clock`` is used for pacing
    (default the system clock). ``replay_clock``, a :class:`ReplayClock`, makes the files'
    timestamps the time of the replay (see the module docstring); give the agent the same
    clock.
    """

    name = "replay"

    def __init__(
        self,
        files: Mapping[str, PathLike | Sequence[PathLike]] | None = None,
        *,
        directory: PathLike | None = None,
        speed: float | None = None,
        clock: Clock | None = None,
        replay_clock: ReplayClock | None = None,
    ) -> None:
        if speed is not None and speed < 0:
            raise ValueError(f"speed must be positive, got {speed}")
        self.files: dict[str, list[Path]] = {}
        for name, value in (files or {}).items():
            paths = [value] if isinstance(value, str | os.PathLike) else list(value)
            self.files[name] = [Path(p) for p in paths]
        self.directory = None if directory is None else Path(directory)
        self.speed = speed
        self.clock = clock
        self.replay_clock = replay_clock

    def files_for(self, interface: str) -> list[Path]:
        """Return the files replayed for ``interface`` (BackendUnavailableError if none)."""
        if interface in self.files:
            return self.files[interface]
        if self.directory is not None and "/" not in interface and interface not in ("", ".", ".."):
            for suffix in (".pcap", ".pcapng"):
                candidate = self.directory / f"{interface}{suffix}"
                if candidate.is_file():
                    return [candidate]
        raise BackendUnavailableError(f"{interface}: no capture file to replay")

    def open(
        self,
        interface: str,
        program: BpfProgram,
        *,
        snaplen: int = DEFAULT_SNAPLEN,
        packet_limit: int | None = None,
    ) -> ReplaySource:
        """Start replaying ``interface``'s files (see :meth:`CaptureBackend.open`).

        A missing or unreadable file raises BackendUnavailableError; a bad file header
        raises :class:`~packetcapture.errors.PcapError`; files whose link types differ from
        each other or from the program's raise :class:`LinktypeMismatchError`.
        """
        paths = self.files_for(interface)
        readers: list[PcapReader] = []
        try:
            for path in paths:
                if not path.is_file():
                    raise BackendUnavailableError(f"{interface}: no such file {path}")
                readers.append(PcapReader(path))
            size = sum(path.stat().st_size for path in paths)
            linktype = readers[0].linktype if readers else program.linktype
            for reader in readers[1:]:
                if reader.linktype != linktype:
                    raise LinktypeMismatchError(interface, linktype, reader.linktype)
            check_linktype(interface, linktype, program)
            return ReplaySource(
                interface,
                readers,
                program,
                linktype=linktype,
                snaplen=snaplen,
                packet_limit=packet_limit,
                speed=self.speed,
                clock=self.clock,
                replay_clock=self.replay_clock,
                input_bytes=size,
            )
        except BaseException:
            for reader in readers:
                reader.close()
            raise

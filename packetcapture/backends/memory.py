"""An in-memory capture backend for tests: packets are fed from Python.

It behaves like live capture: a packet given to :meth:`MemoryBackend.inject` reaches every
source currently open on that interface (through each source's filter, snap length and
packet limit); packets injected while no source is open are lost. :meth:`MemoryBackend.end`
ends the sources cleanly (like an interface being removed) and :meth:`MemoryBackend.fail`
makes their next read raise :class:`~packetcapture.errors.BackendBrokenError`.

Example::

    backend = MemoryBackend()
    with backend.open("eth0", BpfProgram.accept_all()) as source:
        backend.inject("eth0", frame, timestamp_ns=1_700_000_000_000_000_000)
        assert source.read() == [(1_700_000_000_000_000_000, frame, len(frame))]
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from packetcapture.backends._wakeup import EventWakeup
from packetcapture.backends.base import (
    DEFAULT_SNAPLEN,
    CaptureBackend,
    Packet,
    PacketSource,
    SourceStats,
    check_linktype,
)
from packetcapture.errors import BackendBrokenError, BackendUnavailableError

if TYPE_CHECKING:
    from packetcapture.bpf import BpfProgram

__all__ = ["MemoryBackend", "MemorySource"]


class MemorySource(PacketSource):
    """A source of :class:`MemoryBackend`; packets wait in a queue until read."""

    def __init__(
        self,
        backend: MemoryBackend,
        interface: str,
        program: BpfProgram,
        *,
        linktype: int,
        snaplen: int,
        packet_limit: int | None,
        queue_limit: int | None,
    ) -> None:
        super().__init__(interface, linktype=linktype, snaplen=snaplen, packet_limit=packet_limit)
        self._backend = backend
        self._lock = threading.Lock()
        self._queue: collections.deque[Packet] = collections.deque()
        self._queue_limit = queue_limit
        self._verdict: Callable[[bytes], int] = program.executor()
        self._received = self._dropped = self._filtered = 0
        self._pending_end: str | None = None
        self._pending_error: str | None = None
        self._deaf = False  # after stop_receiving: injected packets no longer reach it
        self._wakeup = EventWakeup()

    def _offer(self, timestamp_ns: int, data: bytes, wire_len: int) -> bool:
        """Run the filter on one injected packet and queue it; True if it was kept."""
        with self._lock:
            if (
                self._pending_end is not None
                or self._pending_error is not None
                or self.closed
                or self._deaf
            ):
                return False
            keep = self._verdict(data)
            if not keep:
                self._filtered += 1
                return False
            self._received += 1
            if self._queue_limit is not None and len(self._queue) >= self._queue_limit:
                self._dropped += 1
                return False
            keep = min(keep, self.snaplen)
            self._queue.append((timestamp_ns, data if keep >= len(data) else data[:keep], wire_len))
            self._wakeup.set()
            return True

    def _end(self, reason: str) -> None:
        with self._lock:
            if self._pending_end is None:
                self._pending_end = reason
            self._wakeup.set()

    def _break(self, message: str) -> None:
        with self._lock:
            self._pending_error = message
            self._wakeup.set()

    def _read(self, max_packets: int) -> list[Packet]:
        with self._lock:
            queue = self._queue
            if len(queue) <= max_packets:
                packets = list(queue)
                queue.clear()
            else:
                packets = [queue.popleft() for _ in range(max_packets)]
            if not queue:
                if self._pending_error is not None and not packets:
                    raise BackendBrokenError(f"{self.interface}: {self._pending_error}")
                if self._pending_end is not None:
                    self._finish(self._pending_end)
                elif self._pending_error is None:
                    self._wakeup.clear()
        return packets

    def _stop_receiving(self) -> None:
        with self._lock:
            self._deaf = True

    def _fileno(self) -> int:
        return self._wakeup.fileno()

    def _set_program(self, program: BpfProgram) -> None:
        verdict = program.executor()
        with self._lock:
            self._verdict = verdict

    def _stats(self) -> SourceStats:
        with self._lock:
            return SourceStats(self._received, self._dropped, self._filtered)

    def _close(self) -> None:
        self._backend._forget(self)
        with self._lock:
            self._queue.clear()
            self._wakeup.close()


class MemoryBackend(CaptureBackend):
    """Capture from packets given to :meth:`inject`; for users' unit tests.

    Options: ``linktype`` of every interface (default 1, Ethernet); ``interfaces``, when
    given, the only names :meth:`open` accepts (others raise
    :class:`~packetcapture.errors.BackendUnavailableError`, like a missing interface);
    ``queue_limit``, packets a source holds before further ones count as dropped;
    ``clock``, a function returning nanoseconds since the epoch used when :meth:`inject`
    gets no timestamp (default ``time.time_ns``).
    """

    name = "memory"

    def __init__(
        self,
        *,
        linktype: int = 1,
        interfaces: Iterable[str] | None = None,
        queue_limit: int | None = None,
        clock: Callable[[], int] | None = None,
    ) -> None:
        self.linktype = linktype
        self._interfaces = None if interfaces is None else set(interfaces)
        self._queue_limit = queue_limit
        self._clock = clock or time.time_ns
        self._lock = threading.Lock()
        self._sources: dict[str, list[MemorySource]] = {}

    def open(
        self,
        interface: str,
        program: BpfProgram,
        *,
        snaplen: int = DEFAULT_SNAPLEN,
        packet_limit: int | None = None,
    ) -> MemorySource:
        """Open a source on ``interface`` (see :meth:`CaptureBackend.open`)."""
        with self._lock:
            if self._interfaces is not None and interface not in self._interfaces:
                raise BackendUnavailableError(f"{interface}: no such interface")
        check_linktype(interface, self.linktype, program)
        source = MemorySource(
            self,
            interface,
            program,
            linktype=self.linktype,
            snaplen=snaplen,
            packet_limit=packet_limit,
            queue_limit=self._queue_limit,
        )
        with self._lock:
            self._sources.setdefault(interface, []).append(source)
        return source

    def _forget(self, source: MemorySource) -> None:
        with self._lock:
            sources = self._sources.get(source.interface, [])
            if source in sources:
                sources.remove(source)

    def _open_sources(self, interface: str) -> list[MemorySource]:
        with self._lock:
            return list(self._sources.get(interface, ()))

    def add_interface(self, interface: str) -> None:
        """Allow :meth:`open` on ``interface`` (only matters when ``interfaces`` was given)."""
        with self._lock:
            if self._interfaces is not None:
                self._interfaces.add(interface)

    def remove_interface(self, interface: str) -> None:
        """Remove ``interface``: its open sources end with reason ``"interface removed"``."""
        with self._lock:
            if self._interfaces is not None:
                self._interfaces.discard(interface)
        self.end(interface, "interface removed")

    def inject(
        self,
        interface: str,
        data: bytes,
        *,
        timestamp_ns: int | None = None,
        wire_len: int | None = None,
    ) -> int:
        """Deliver one packet to every source open on ``interface``.

        ``timestamp_ns`` defaults to the clock, ``wire_len`` to ``len(data)`` (give a larger
        one to simulate a packet truncated before capture). Returns how many sources kept it.
        """
        ts = self._clock() if timestamp_ns is None else timestamp_ns
        wire = len(data) if wire_len is None else wire_len
        if wire < len(data):
            raise ValueError(f"wire_len {wire} is shorter than the data ({len(data)} bytes)")
        data = bytes(data)
        return sum(source._offer(ts, data, wire) for source in self._open_sources(interface))

    def end(self, interface: str, reason: str = "ended") -> None:
        """End the sources open on ``interface`` cleanly once their queued packets are read."""
        for source in self._open_sources(interface):
            source._end(reason)

    def fail(self, interface: str, message: str = "simulated I/O error") -> None:
        """Make the sources on ``interface`` raise BackendBrokenError once their queue is read."""
        for source in self._open_sources(interface):
            source._break(message)

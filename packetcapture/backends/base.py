"""The capture backend interface, shared source behaviour and the backend registry.

A :class:`CaptureBackend` opens one :class:`PacketSource` per interface. A source hands out
packets as ``(timestamp_ns, data, wire_len)`` tuples from :meth:`PacketSource.read`, exposes a
file descriptor for one ``selectors`` loop over many sources, and keeps counters.

How a source ends (the one rule every backend follows):

- ``read()`` returns ``[]`` when nothing is ready yet; it never blocks.
- When the source ends *cleanly* (replay reached the end of its files, the packet limit was
  reached, the interface went down or was removed, a memory interface was ended) ``read()``
  returns the last packets and sets :attr:`PacketSource.exhausted`; :attr:`end_reason` says
  why. Later reads return ``[]``. The descriptor is readable until that read happens, so a
  selector loop always gets to it. Check ``exhausted`` after every read and close the source.
- When capturing *breaks* (an unexpected I/O error) ``read()`` raises
  :class:`~packetcapture.errors.BackendBrokenError` with the ``OSError`` as ``__cause__``.
- After :meth:`close` every method except ``close()``, ``stats()`` and the properties raises
  :class:`~packetcapture.errors.BackendClosedError`.

Backends are found by name through the entry-point group ``packetcapture.backends`` (plus
:func:`register_backend` at run time); each says whether it is usable on this host and why
not (:func:`available_backends`).
"""

from __future__ import annotations

import abc
import importlib
import inspect
import threading
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, ClassVar, Self

import attrs

from packetcapture._defaults import DEFAULT_SNAPLEN
from packetcapture._frozen import FieldsEq, FieldsRepr
from packetcapture._lazylog import get_logger
from packetcapture.errors import BackendClosedError, BackendUnavailableError

if TYPE_CHECKING:
    from packetcapture.bpf import BpfProgram

__all__ = [
    "DEFAULT_READ_BATCH",
    "DEFAULT_SNAPLEN",
    "ENTRY_POINT_GROUP",
    "BackendInfo",
    "CaptureBackend",
    "LinktypeMismatchError",
    "Packet",
    "PacketSource",
    "RawBatch",
    "SourceStats",
    "available_backends",
    "check_linktype",
    "get_backend",
    "register_backend",
    "unregister_backend",
]

logger = get_logger(__name__)

#: One captured packet: capture time in nanoseconds since the Unix epoch, the captured bytes
#: (at most the snap length) and the length the packet had on the wire.
Packet = tuple[int, bytes, int]

#: A batch from :meth:`PacketSource.read_raw`: ``(records, count, rest)``.
RawBatch = tuple[bytes, int, int]

#: Default ``max_packets`` of :meth:`PacketSource.read`.
DEFAULT_READ_BATCH = 4096
#: Entry-point group third-party backends register under.
ENTRY_POINT_GROUP = "packetcapture.backends"


class LinktypeMismatchError(BackendUnavailableError):
    """The program was compiled for another link type than the interface or file has.

    ``expected`` is the interface's (or file's) link type, ``actual`` the program's.
    """

    def __init__(self, interface: str, expected: int, actual: int) -> None:
        self.interface = interface
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"{interface}: link type {expected} does not match the filter program's "
            f"link type {actual}"
        )


def check_linktype(interface: str, linktype: int, program: BpfProgram) -> None:
    """Raise :class:`LinktypeMismatchError` unless ``program`` was built for ``linktype``."""
    if program.linktype != linktype:
        raise LinktypeMismatchError(interface, linktype, program.linktype)


@attrs.frozen(repr=False, eq=False)
class SourceStats(FieldsRepr, FieldsEq):
    """Counters of one packet source, since it was opened.

    ``received``: packets that passed the filter (including any later dropped);
    ``dropped``: packets that passed the filter but were lost for lack of buffer space
    (kernel drops for live capture); ``filtered``: packets the filter rejected, when the
    backend can count them (replay and memory do; the kernel does not report it, so live
    capture reports 0).
    """

    received: int = 0
    dropped: int = 0
    filtered: int = 0


class PacketSource(abc.ABC):
    """Packets captured on one interface (see the module docstring for how a source ends).

    Subclasses implement ``_read``, ``_fileno``, ``_set_program``, ``_stats`` and
    ``_close``; this class handles the closed/exhausted state, the packet limit and the
    context manager, so every backend behaves the same.
    """

    def __init__(
        self,
        interface: str,
        *,
        linktype: int,
        snaplen: int,
        packet_limit: int | None = None,
    ) -> None:
        if snaplen <= 0:
            raise ValueError(f"snaplen must be positive, got {snaplen}")
        if packet_limit is not None and packet_limit < 0:
            raise ValueError(f"packet_limit must be >= 0, got {packet_limit}")
        self._interface = interface
        self._linktype = linktype
        self._snaplen = snaplen
        self._limit = packet_limit
        self._delivered = 0
        self._closed = False
        self._end_reason: str | None = None

    # -- properties --------------------------------------------------------------------
    @property
    def interface(self) -> str:
        """Name of the interface this source captures on."""
        return self._interface

    @property
    def linktype(self) -> int:
        """LINKTYPE_* value of the packets (1 is Ethernet)."""
        return self._linktype

    @property
    def snaplen(self) -> int:
        """Largest number of bytes kept from each packet."""
        return self._snaplen

    @property
    def packet_limit(self) -> int | None:
        """Packets after which the source ends, or ``None`` for no limit."""
        return self._limit

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    @property
    def exhausted(self) -> bool:
        """True once the source ended cleanly: no packet will ever come again."""
        return self._end_reason is not None

    @property
    def end_reason(self) -> str | None:
        """Why the source ended (``"packet limit reached"``, ...) or ``None``."""
        return self._end_reason

    # -- public API --------------------------------------------------------------------
    def fileno(self) -> int:
        """Return a descriptor that is readable when :meth:`read` has something to report."""
        self._check_open()
        return self._fileno()

    def read(self, max_packets: int = DEFAULT_READ_BATCH) -> list[Packet]:
        """Return up to ``max_packets`` ready packets, oldest first; ``[]`` if none is ready.

        Never blocks. Raises :class:`~packetcapture.errors.BackendClosedError` after
        :meth:`close` and :class:`~packetcapture.errors.BackendBrokenError` on I/O failure.
        """
        self._check_open()
        if self._end_reason is not None:
            return []
        if max_packets <= 0:
            return []
        max_packets = self._budget(max_packets)
        if max_packets <= 0:
            return []
        packets = self._read(max_packets)
        self._count_delivered(len(packets))
        return packets

    def _budget(self, max_packets: int) -> int:
        """Cap a read at the packet limit; 0 (the source then ended) once it is reached."""
        limit = self._limit
        if limit is None:
            return max_packets
        max_packets = min(max_packets, limit - self._delivered)
        if max_packets <= 0:
            self._finish("packet limit reached")
        return max_packets

    def _count_delivered(self, count: int) -> None:
        """Count packets handed out; end the source when they reach the packet limit."""
        self._delivered += count
        if self._limit is not None and self._delivered >= self._limit:
            self._finish("packet limit reached")

    def read_raw(self, max_packets: int, *, nanosecond: bool, snaplen: int) -> RawBatch | None:
        """Return the next packets as raw little-endian classic pcap records, if supported.

        A source that can hand packets over exactly as a classic pcap writer of that
        timestamp resolution and ``snaplen`` would store them (the replay backend, for a
        classic pcap file) returns ``(records, count, rest)`` and a writer appends
        ``records`` as they are (:meth:`RotatingWriter.write_raw`); ``read(rest)`` then
        returns the rest of the batch. The default, for every other source, is ``None``:
        nothing was consumed, call :meth:`read`.
        """
        self._check_open()
        return None

    @property
    def link_lost(self) -> bool:
        """True when the source ended because its interface went down or was removed."""
        return False

    @property
    def delivered(self) -> int:
        """Packets handed out by :meth:`read` and :meth:`read_raw` so far."""
        return self._delivered

    @property
    def limit_reached(self) -> bool:
        """True once the packet limit was delivered (packets after it are not wanted)."""
        return self._limit is not None and self._delivered >= self._limit

    def stop_receiving(self) -> None:
        """Take no new packets from now on; those already held can still be read.

        Called before the last reads when a capture stops, so that reading until
        :meth:`read` returns nothing ends, and every packet the source took is either
        delivered or counted (``stats().received - stats().dropped - delivered`` is what
        it still holds). Live capture attaches a reject-all filter; the default does
        nothing (a replayed file only delivers what is due).
        """
        if not self._closed:
            self._stop_receiving()

    def set_program(self, program: BpfProgram) -> None:
        """Swap the filter without reopening; packets read afterwards match ``program``."""
        self._check_open()
        check_linktype(self._interface, self._linktype, program)
        self._set_program(program)

    def stats(self) -> SourceStats:
        """Return the counters (still valid after :meth:`close`: the last values)."""
        return self._stats()

    def close(self) -> None:
        """Release the socket, files and descriptors. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("ended" if self.exhausted else "open")
        return f"<{type(self).__name__} {self._interface!r} {state}>"

    # -- for subclasses ----------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise BackendClosedError(f"{self._interface}: packet source is closed")

    def _finish(self, reason: str) -> None:
        """Mark the source as ended cleanly (first reason wins)."""
        if self._end_reason is None:
            logger.debug("%s: source ended: %s", self._interface, reason)
            self._end_reason = reason

    def _stop_receiving(self) -> None:  # noqa: B027 - optional hook
        """Stop taking new packets (see :meth:`stop_receiving`)."""

    @abc.abstractmethod
    def _read(self, max_packets: int) -> list[Packet]:
        """Return up to ``max_packets`` (> 0) ready packets; may call :meth:`_finish`."""

    @abc.abstractmethod
    def _fileno(self) -> int:
        """Return the readiness descriptor."""

    @abc.abstractmethod
    def _set_program(self, program: BpfProgram) -> None:
        """Install ``program`` (its link type was already checked)."""

    @abc.abstractmethod
    def _stats(self) -> SourceStats:
        """Return the counters."""

    @abc.abstractmethod
    def _close(self) -> None:
        """Release resources (called once)."""


class CaptureBackend(abc.ABC):
    """A way to capture packets: opens one :class:`PacketSource` per interface.

    Subclasses set :attr:`name`, accept their options as keyword arguments of
    ``__init__``, implement :meth:`open` and may override :meth:`unusable_reason`.
    """

    #: Registry name (``"afpacket"``, ``"replay"``, ``"memory"``).
    name: ClassVar[str] = ""

    @classmethod
    def unusable_reason(cls) -> str | None:
        """Return why this backend cannot be used on this host, or ``None`` if it can."""
        return None

    @abc.abstractmethod
    def open(
        self,
        interface: str,
        program: BpfProgram,
        *,
        snaplen: int = DEFAULT_SNAPLEN,
        packet_limit: int | None = None,
    ) -> PacketSource:
        """Start capturing on ``interface`` through ``program``.

        Raises :class:`~packetcapture.errors.BackendUnavailableError` (naming the cause)
        when the interface cannot be captured on, and :class:`LinktypeMismatchError` when
        the program was built for another link type.
        """

    def close(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing
        """Release backend-wide resources (sources stay the caller's to close)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# -- registry ------------------------------------------------------------------------------

#: Backends shipped with packetcapture, usable even when the package is not installed (the
#: entry points name the same classes).
_BUILTIN: dict[str, str] = {
    "afpacket": "packetcapture.backends.afpacket:AfPacketBackend",
    "memory": "packetcapture.backends.memory:MemoryBackend",
    "replay": "packetcapture.backends.replay:ReplayBackend",
}
_registered: dict[str, type[CaptureBackend]] = {}
_lock = threading.Lock()


@attrs.frozen(repr=False, eq=False)
class BackendInfo(FieldsRepr, FieldsEq):
    """What the registry knows about one backend.

    ``usable`` says whether it can be used on this host; ``reason`` says why not (empty
    when usable); ``backend`` is the class, or ``None`` when it could not be loaded.
    """

    name: str
    usable: bool
    reason: str
    backend: type[CaptureBackend] | None


def register_backend(name: str, backend: type[CaptureBackend]) -> None:
    """Make ``backend`` available under ``name`` (overrides an entry point of that name)."""
    if not (isinstance(backend, type) and issubclass(backend, CaptureBackend)):
        raise TypeError(f"{backend!r} is not a CaptureBackend subclass")
    with _lock:
        _registered[name] = backend


def unregister_backend(name: str) -> None:
    """Undo :func:`register_backend` (no error if ``name`` was not registered)."""
    with _lock:
        _registered.pop(name, None)


def _targets() -> dict[str, str | type[CaptureBackend]]:
    # Imported here: importlib.metadata costs milliseconds and only lookups need it.
    from importlib.metadata import entry_points

    found: dict[str, str | type[CaptureBackend]] = {
        ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)
    }
    found.update(_BUILTIN)  # as get_backend resolves them
    with _lock:
        found.update(_registered)
    return found


def _load(name: str, target: str | type[CaptureBackend]) -> type[CaptureBackend]:
    if isinstance(target, type):
        return target
    module_name, _, attr = target.partition(":")
    obj: object = importlib.import_module(module_name.strip())
    for part in attr.strip().split(".") if attr else []:
        obj = getattr(obj, part)
    if not (isinstance(obj, type) and issubclass(obj, CaptureBackend)):
        raise TypeError(f"{target} is not a CaptureBackend subclass")
    return obj


def _info(name: str, target: str | type[CaptureBackend]) -> BackendInfo:
    try:
        cls = _load(name, target)
    except Exception as exc:  # a broken third-party plugin must not break the registry
        return BackendInfo(name, False, f"cannot load {target}: {exc}", None)
    try:
        reason = cls.unusable_reason()
    except Exception as exc:
        reason = f"usability check failed: {exc}"
    return BackendInfo(name, reason is None, reason or "", cls)


def available_backends() -> list[BackendInfo]:
    """Every known backend (built-in, entry points, registered), sorted by name."""
    return [_info(name, target) for name, target in sorted(_targets().items())]


def get_backend(name: str, **options: object) -> CaptureBackend:
    """Create the backend called ``name`` with its ``options``.

    Raises :class:`~packetcapture.errors.BackendUnavailableError` when no backend has that
    name, it is not usable here, or ``options`` are not the backend's (the message says why
    and lists the options it accepts).
    """
    with _lock:
        target = _registered.get(name)
    # A shipped backend needs no entry-point scan (importing importlib.metadata and reading
    # every installed distribution: ~15 ms of `packetcapture run`); so shipped names win over
    # a plugin's entry point of the same name (register_backend still overrides them).
    targets = {name: target or _BUILTIN[name]} if target or name in _BUILTIN else _targets()
    if name not in targets:
        known = ", ".join(sorted(targets))
        raise BackendUnavailableError(f"no capture backend named {name!r} (known: {known})")
    info = _info(name, targets[name])
    if not info.usable or info.backend is None:
        raise BackendUnavailableError(f"capture backend {name!r} is not usable: {info.reason}")
    _check_options(name, info.backend, options)
    factory: Callable[..., CaptureBackend] = info.backend
    return factory(**options)


def _check_options(name: str, cls: type[CaptureBackend], options: dict[str, object]) -> None:
    """Refuse options the backend's constructor does not take, naming them (not a TypeError)."""
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):  # no introspectable signature: let the call decide
        return
    params = signature.parameters.values()
    accepted = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params)
    unknown = [] if takes_any else [k for k in options if k not in accepted]
    listed = ", ".join(accepted) or "none"
    if unknown:
        import difflib  # only for this message

        # An abbreviation ("dir" for "directory") is as likely a slip as a misspelling.
        hints = [
            [a for a in accepted if a.startswith(k)][:1]
            or difflib.get_close_matches(k, accepted, 1)
            for k in unknown
        ]
        bad = ", ".join(
            f"{k!r}" + (f" (did you mean {h[0]!r}?)" if h else "")
            for k, h in zip(unknown, hints, strict=True)
        )
        word = "option" if len(unknown) == 1 else "options"
        raise BackendUnavailableError(
            f"capture backend {name!r} has no {word} {bad}; it accepts: {listed}"
        )
    try:
        signature.bind(**options)
    except TypeError as exc:  # a required option is missing
        raise BackendUnavailableError(
            f"capture backend {name!r}: {exc} (it accepts: {listed})"
        ) from exc

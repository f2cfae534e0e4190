"""The capture lifecycle as a sans-I/O state machine: start/end times to capture states.

A :class:`CaptureSchedule` tracks one ``PacketCapture`` on one node: a machine per interface
(states are :class:`~packetcapture.model.CaptureState`) and the node's aggregated state. It
never reads a clock, sleeps or does I/O. Every input takes ``now``; it returns a
:class:`ScheduleResult` saying what to do (:class:`StartCapture`, :class:`StopCapture`), what
changed, and when to call again (:meth:`CaptureSchedule.next_deadline`). The caller does the
work and calls :meth:`CaptureSchedule.tick` at the deadline (or earlier: ticking is always safe).

Every transition is in one table, :data:`TRANSITIONS`: ``(state, event)`` to an ordered tuple of
:class:`Rule` (guard, next state, actions). ``None`` stands for "no such interface" (before
``add``, after ``remove``). A pair missing from the table, or whose guards all fail, is an illegal
input: :class:`~packetcapture.errors.InvalidTransitionError` is raised and nothing changes. The
small pure functions :func:`phase_at`, :func:`select_rule`, :func:`apply_event` and
:func:`aggregate_state` do the rest.

Times must be timezone-aware (naive ones raise :class:`InvalidTimeError`) and are compared in
UTC, so DST folds and gaps and leap days need no special care. A ``now`` earlier than one seen
before is treated as the later one: wall clocks get stepped back, the machine never is.
"""

from __future__ import annotations

import datetime as _dt
import enum
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import Final, TypeAlias

import attrs

from packetcapture._frozen import FieldsEq, FieldsRepr
from packetcapture.errors import InvalidTransitionError
from packetcapture.model import CaptureState, PacketCaptureSpec

__all__ = [
    "Action",
    "ActionKind",
    "CaptureSchedule",
    "DEFAULT_RETRY",
    "Event",
    "Guard",
    "InterfaceStatus",
    "InvalidTimeError",
    "Phase",
    "RetryPolicy",
    "Rule",
    "ScheduleResult",
    "StartCapture",
    "StopCapture",
    "TRANSITIONS",
    "Transition",
    "aggregate_state",
    "apply_event",
    "phase_at",
    "select_rule",
]

_UTC = _dt.UTC


class InvalidTimeError(InvalidTransitionError, ValueError):
    """A time the schedule cannot use: naive (no timezone), or an end not after the start."""


def _utc(value: _dt.datetime, what: str) -> _dt.datetime:
    """Return ``value`` in UTC; refuse naive datetimes (their meaning depends on the host)."""
    if not isinstance(value, _dt.datetime):
        raise TypeError(f"{what} must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidTimeError(f"{what} must be timezone-aware (got naive {value.isoformat()})")
    return value.astimezone(_UTC)


def _times(
    start: _dt.datetime | None, end: _dt.datetime | None
) -> tuple[_dt.datetime | None, _dt.datetime | None]:
    start_utc = None if start is None else _utc(start, "start_time")
    end_utc = None if end is None else _utc(end, "end_time")
    if start_utc is not None and end_utc is not None and end_utc <= start_utc:
        raise InvalidTimeError(
            f"end_time ({end_utc.isoformat()}) must be after start_time ({start_utc.isoformat()})"
        )
    return start_utc, end_utc


# --------------------------------------------------------------------------------------------
# Vocabulary: phases, events, actions, guards, rules.


class Phase(enum.Enum):
    """Where ``now`` lies relative to the capture window ``[start_time, end_time)``."""

    BEFORE = "before start"
    ACTIVE = "in window"
    AFTER = "after end"


def phase_at(start: _dt.datetime | None, end: _dt.datetime | None, now: _dt.datetime) -> Phase:
    """Return the phase of ``now`` for the window ``[start, end)`` (``None`` = unbounded)."""
    if start is not None and now < start:
        return Phase.BEFORE
    if end is not None and now >= end:
        return Phase.AFTER
    return Phase.ACTIVE


class Event(enum.Enum):
    """Inputs of the per-interface machine (the value is the diagram label)."""

    ADD = "add"
    """The interface appears (:meth:`CaptureSchedule.add_interface`)."""
    REMOVE = "remove"
    """The interface goes away; its files are kept."""
    DELETE = "delete"
    """The interface goes away and its files are deleted (the endpoint stopped matching)."""
    UP = "up"
    """The interface comes back up."""
    DOWN = "down"
    """The interface goes down: capture stops, files are kept."""
    PACKET = "packet"
    """A packet was captured on the interface."""
    FAILURE = "failure"
    """The backend failed (cannot open, write error, disk full)."""
    WINDOW_OPENS = "start time"
    """Time reached ``start_time``."""
    WINDOW_CLOSES = "end time"
    """Time reached ``end_time``."""
    RETRY_DUE = "retry due"
    """The retry time of an interface in ``Error`` was reached."""
    SPEC_CHANGE = "spec change"
    """The capture's spec changed: every capture restarts (files kept)."""
    ENDPOINT_CHANGE = "endpoint change"
    """The interface's endpoint was updated: clears an error at once."""
    STOP = "stop"
    """The whole schedule stops (:meth:`CaptureSchedule.stop`); files are kept."""
    STOP_FAILED = "stop failed"
    """Stopping a capture failed: its last packets could not be written (disk full)."""


class ActionKind(enum.Enum):
    """What a rule asks the caller to do (turned into :data:`Action` objects)."""

    START = "start"
    STOP = "stop"
    STOP_AND_DELETE = "stop+delete"


@attrs.frozen(repr=False, eq=False)
class StartCapture(FieldsRepr, FieldsEq):
    """Open a capture on ``interface`` (with the current spec) and start writing packets."""

    interface: str


@attrs.frozen(repr=False, eq=False)
class StopCapture(FieldsRepr, FieldsEq):
    """Stop capturing on ``interface`` if it is running; delete its files unless ``keep_files``.

    Also emitted after a failure, to release whatever is half open, so performing it must be
    safe when nothing is running.
    """

    interface: str
    keep_files: bool = True


#: An action for the caller to perform, in the order given.
Action: TypeAlias = StartCapture | StopCapture


@attrs.frozen(repr=False, eq=False)
class Guard(FieldsRepr, FieldsEq):
    """A condition on the window phase and on whether the interface is up (``None``: any)."""

    phase: Phase | None = None
    up: bool | None = None

    def matches(self, phase: Phase, up: bool) -> bool:
        """Return whether the guard holds for this phase and interface state."""
        return (self.phase is None or self.phase is phase) and (self.up is None or self.up is up)

    def __str__(self) -> str:
        parts = []
        if self.up is not None:
            parts.append("interface up" if self.up else "interface down")
        if self.phase is not None:
            parts.append(self.phase.value)
        return ", ".join(parts)


@attrs.frozen(repr=False, eq=False)
class Rule(FieldsRepr, FieldsEq):
    """If ``guard`` holds, do ``actions`` and go to ``target`` (``None``: forget the interface)."""

    target: CaptureState | None
    guard: Guard = Guard()
    actions: tuple[ActionKind, ...] = ()


_S = CaptureState.SCHEDULED
_W = CaptureState.WAITING_FOR_TRAFFIC
_C = CaptureState.CAPTURING
_F = CaptureState.FINISHED
_E = CaptureState.ERROR
_START = ActionKind.START
_STOP = ActionKind.STOP
_DELETE = ActionKind.STOP_AND_DELETE


def _enter(*actions: ActionKind, up: bool | None = None) -> tuple[Rule, ...]:
    """Rules that (re)enter the state the window phase calls for, after ``actions``."""
    return (
        Rule(_S, Guard(Phase.BEFORE, up), actions),
        Rule(_W, Guard(Phase.ACTIVE, up), (*actions, _START)),
        Rule(_F, Guard(Phase.AFTER, up), actions),
    )


def _running(state: CaptureState) -> dict[tuple[CaptureState | None, Event], tuple[Rule, ...]]:
    """Rows shared by the two running states, ``WaitingForTraffic`` and ``Capturing``."""
    return {
        (state, Event.REMOVE): (Rule(None, actions=(_STOP,)),),
        (state, Event.DELETE): (Rule(None, actions=(_DELETE,)),),
        (state, Event.DOWN): (Rule(_F, actions=(_STOP,)),),
        (state, Event.PACKET): (Rule(_C),),
        (state, Event.FAILURE): (Rule(_E, actions=(_STOP,)),),
        (state, Event.WINDOW_CLOSES): (Rule(_F, actions=(_STOP,)),),
        (state, Event.SPEC_CHANGE): _enter(_STOP),
        (state, Event.ENDPOINT_CHANGE): (Rule(state),),
        (state, Event.STOP): (Rule(_F, actions=(_STOP,)),),
    }


#: The whole per-interface machine. ``None`` as a state means "no such interface". Rules of a
#: row are tried in order; at most one matches any (phase, up) (a test checks). Pairs absent
#: here are illegal inputs.
TRANSITIONS: Final[Mapping[tuple[CaptureState | None, Event], tuple[Rule, ...]]] = MappingProxyType(
    {
        (None, Event.ADD): (Rule(_F, Guard(up=False)), *_enter(up=True)),
        # Scheduled: interface up, before the window.
        (_S, Event.REMOVE): (Rule(None),),
        (_S, Event.DELETE): (Rule(None, actions=(_DELETE,)),),
        (_S, Event.DOWN): (Rule(_F),),
        (_S, Event.WINDOW_OPENS): (Rule(_W, actions=(_START,)),),
        (_S, Event.WINDOW_CLOSES): (Rule(_F),),
        (_S, Event.SPEC_CHANGE): _enter(),
        (_S, Event.ENDPOINT_CHANGE): (Rule(_S),),
        (_S, Event.STOP): (Rule(_F),),
        # WaitingForTraffic / Capturing: a capture is running, in the window.
        **_running(_W),
        **_running(_C),
        # Error: nothing running; a retry may be pending.
        (_E, Event.REMOVE): (Rule(None),),
        (_E, Event.DELETE): (Rule(None, actions=(_DELETE,)),),
        (_E, Event.DOWN): (Rule(_F),),
        (_E, Event.RETRY_DUE): (Rule(_W, actions=(_START,)),),
        (_E, Event.WINDOW_CLOSES): (Rule(_F),),
        (_E, Event.SPEC_CHANGE): _enter(),
        (_E, Event.ENDPOINT_CHANGE): _enter(),
        (_E, Event.STOP): (Rule(_F),),
        # A down interface whose final write failed (below) comes back.
        (_E, Event.UP): _enter(up=False),
        # Finished: after the window, interface down, or stopped.
        (_F, Event.REMOVE): (Rule(None),),
        (_F, Event.DELETE): (Rule(None, actions=(_DELETE,)),),
        # "up" is legal only for a down interface (the guard tests the state before it).
        (_F, Event.UP): _enter(up=False),
        (_F, Event.DOWN): (Rule(_F, Guard(up=True)),),
        (_F, Event.WINDOW_OPENS): (Rule(_F),),
        (_F, Event.WINDOW_CLOSES): (Rule(_F),),
        (_F, Event.SPEC_CHANGE): (Rule(_F, Guard(up=False)), *_enter(up=True)),
        (_F, Event.ENDPOINT_CHANGE): (Rule(_F),),
        (_F, Event.STOP): (Rule(_F),),
        # Stopping failed (the last packets could not be written, the file not closed):
        # the interface ends in Error with the reason, never Finished; no retry.
        (_F, Event.STOP_FAILED): (Rule(_E),),
    }
)


# --------------------------------------------------------------------------------------------
# Retry policy.


@attrs.frozen(repr=False, eq=False)
class RetryPolicy(FieldsRepr, FieldsEq):
    """When to retry an interface in ``Error``: capped exponential backoff.

    The n-th consecutive failure is retried after ``initial * factor**(n-1)``, at most
    ``maximum``; after ``max_attempts`` retries (``None``: no limit) the interface stays in
    ``Error`` until a spec or endpoint change. A packet captured resets the count.
    """

    initial: _dt.timedelta = attrs.field(default=_dt.timedelta(seconds=1))
    factor: float = 2.0
    maximum: _dt.timedelta = attrs.field(default=_dt.timedelta(seconds=60))
    max_attempts: int | None = None

    def __attrs_post_init__(self) -> None:
        if self.initial <= _dt.timedelta(0):
            raise ValueError(f"initial must be positive (got {self.initial})")
        if self.maximum < self.initial:
            raise ValueError(f"maximum ({self.maximum}) must be >= initial ({self.initial})")
        if not (math.isfinite(self.factor) and self.factor >= 1):
            raise ValueError(f"factor must be a finite number >= 1 (got {self.factor})")
        if self.max_attempts is not None and self.max_attempts < 0:
            raise ValueError(f"max_attempts must be >= 0 (got {self.max_attempts})")

    def delay(self, failures: int) -> _dt.timedelta | None:
        """Return the wait before retrying after ``failures`` consecutive failures (>= 1).

        ``None`` means do not retry.
        """
        if failures < 1:
            raise ValueError(f"failures must be >= 1 (got {failures})")
        if self.max_attempts is not None and failures > self.max_attempts:
            return None
        limit = self.maximum.total_seconds()
        # Compare logarithms so huge failure counts cannot overflow the float power.
        exponent = failures - 1
        first = self.initial.total_seconds()
        if self.factor > 1 and exponent * math.log(self.factor) >= math.log(limit / first):
            return self.maximum
        return min(_dt.timedelta(seconds=first * self.factor**exponent), self.maximum)


#: The default: retry after 1 s, 2 s, 4 s ... up to every 60 s, forever.
DEFAULT_RETRY: Final = RetryPolicy()


# --------------------------------------------------------------------------------------------
# Per-interface status and the pure step function.


@attrs.frozen(repr=False)
class InterfaceStatus(FieldsRepr):
    """Everything the schedule knows about one interface."""

    name: str
    state: CaptureState
    up: bool = True
    #: The reason of the last failure while in ``Error``, else ``None``.
    error: str | None = None
    #: Consecutive failures (reset by a packet, a spec change or an endpoint change).
    failures: int = 0
    #: When an automatic retry is due (only in ``Error``).
    retry_at: _dt.datetime | None = None
    #: Whether a packet was captured in the current window (for the node's ``Capturing``).
    captured: bool = False

    @property
    def running(self) -> bool:
        """True while a capture is open (``WaitingForTraffic`` or ``Capturing``)."""
        return self.state in (_W, _C)


def select_rule(state: CaptureState | None, event: Event, phase: Phase, up: bool = True) -> Rule:
    """Return the rule of :data:`TRANSITIONS` for this input; raise if the input is illegal."""
    rules = TRANSITIONS.get((state, event))
    where = "an unknown interface" if state is None else f"state {state.value}"
    if not rules:
        raise InvalidTransitionError(f"{event.value!r} is not allowed for {where}")
    for rule in rules:
        if rule.guard.matches(phase, up):
            return rule
    raise InvalidTransitionError(
        f"{event.value!r} is not allowed for {where} when "
        f"{'interface up' if up else 'interface down'}, {phase.value}"
    )


# Events after which the failure count starts again.
_RESETS_FAILURES = frozenset(
    {Event.ADD, Event.UP, Event.DOWN, Event.PACKET, Event.SPEC_CHANGE, Event.ENDPOINT_CHANGE}
)
# Events that start a new window for the "captured packets" flag.
_RESETS_CAPTURED = frozenset(
    {Event.ADD, Event.SPEC_CHANGE, Event.WINDOW_OPENS, Event.WINDOW_CLOSES}
)


def apply_event(
    name: str,
    status: InterfaceStatus | None,
    event: Event,
    *,
    phase: Phase,
    now: _dt.datetime,
    retry: RetryPolicy | None = DEFAULT_RETRY,
    up: bool = True,
    reason: str = "",
) -> tuple[InterfaceStatus | None, tuple[Action, ...]]:
    """Apply one event to one interface; return its new status and the actions to perform.

    ``up`` is the interface's link state for :attr:`Event.ADD`; ``reason`` the failure text for
    :attr:`Event.FAILURE`. Raises :class:`InvalidTransitionError` for an illegal input.
    """
    current_up = status.up if status is not None else up
    rule = select_rule(status.state if status else None, event, phase, current_up)
    actions = tuple(_action(kind, name) for kind in rule.actions)
    if rule.target is None:
        return None, actions
    if status is None:
        status = InterfaceStatus(name, rule.target, up=up)
    if event is Event.UP:
        current_up = True
    elif event is Event.DOWN:
        current_up = False
    failures = status.failures + 1 if event is Event.FAILURE else status.failures
    if event in _RESETS_FAILURES or rule.target in (_S, _F):
        failures = 0
    error, retry_at = None, None
    if rule.target is _E:
        error = reason if event in (Event.FAILURE, Event.STOP_FAILED) else status.error
        if event is Event.FAILURE:
            delay = retry.delay(failures) if retry is not None else None
            retry_at = None if delay is None else now + delay
        else:
            retry_at = status.retry_at
    captured = status.captured
    if event is Event.PACKET:
        captured = True
    elif event in _RESETS_CAPTURED:
        captured = False
    new = InterfaceStatus(name, rule.target, current_up, error, failures, retry_at, captured)
    return (status if new == status else new), actions


def _action(kind: ActionKind, name: str) -> Action:
    if kind is ActionKind.START:
        return StartCapture(name)
    return StopCapture(name, keep_files=kind is ActionKind.STOP)


def aggregate_state(
    interfaces: Iterable[InterfaceStatus], *, when_empty: CaptureState = _F
) -> CaptureState:
    """Return the node's state from its interfaces' states.

    Precedence: ``Error`` if any interface is in error; else ``Capturing`` if any running
    interface captured packets in the current window; else ``WaitingForTraffic`` if any is
    running; else ``Scheduled`` if any is scheduled; else ``Finished``. With no interfaces,
    ``when_empty``.
    """
    # One pass with flags, stopping at the first Error (the top of the precedence): this runs
    # on every input, so it avoids building a set of states.
    empty = True
    captured = waiting = scheduled = False
    for status in interfaces:
        empty = False
        state = status.state
        if state is _E:
            return _E
        if state is _C or state is _W:
            if status.captured:
                captured = True
            if state is _W:
                waiting = True
        elif state is _S:
            scheduled = True
    if empty:
        return when_empty
    if captured:
        return _C
    if waiting:
        return _W
    return _S if scheduled else _F


class _Tally:
    """How many interfaces count for each rule of :func:`aggregate_state`, kept up to date."""

    __slots__ = ("captured", "error", "scheduled", "total", "waiting")

    def __init__(self) -> None:
        self.total = self.error = self.captured = self.waiting = self.scheduled = 0

    def count(self, status: InterfaceStatus | None, sign: int) -> None:
        """Add (``sign`` 1) or take away (-1) one interface's status."""
        if status is None:
            return
        self.total += sign
        state = status.state
        if state is _E:
            self.error += sign
        elif state is _C or state is _W:
            if status.captured:
                self.captured += sign
            if state is _W:
                self.waiting += sign
        elif state is _S:
            self.scheduled += sign

    def state(self, when_empty: CaptureState) -> CaptureState:
        """Return the node state :func:`aggregate_state` gives for the interfaces counted."""
        if not self.total:
            return when_empty
        if self.error:
            return _E
        if self.captured:
            return _C
        if self.waiting:
            return _W
        return _S if self.scheduled else _F


class _States(Mapping[str, CaptureState]):
    """Every interface's state when a result was made: a snapshot that costs no copy.

    The newest snapshot reads the schedule's live dict. When a commit changes that dict in
    place, the snapshot it replaces keeps the old statuses of the changed interfaces
    (``_undo``) and a link to the next one, so an old snapshot reads as the live dict
    with every later change undone (rare: results are usually read at once).
    """

    __slots__ = ("_live", "_next", "_undo")

    def __init__(self, live: dict[str, InterfaceStatus]) -> None:
        self._live: dict[str, InterfaceStatus] | None = live
        self._undo: dict[str, InterfaceStatus | None] = {}
        self._next: _States | None = None

    def _retire(self, undo: dict[str, InterfaceStatus | None], after: _States) -> None:
        self._live, self._undo, self._next = None, undo, after

    def _status(self, name: str) -> InterfaceStatus | None:
        view: _States | None = self
        while view is not None:
            if view._live is not None:
                return view._live.get(name)
            if name in view._undo:
                return view._undo[name]
            view = view._next
        return None  # pragma: no cover - the chain always ends in the live dict

    def _snapshot(self) -> dict[str, InterfaceStatus]:
        chain: list[_States] = []
        view: _States | None = self
        while view is not None and view._live is None:
            chain.append(view)
            view = view._next
        assert view is not None and view._live is not None
        out = dict(view._live)
        for old in reversed(chain):  # undo the newest change first
            for name, status in old._undo.items():
                if status is None:
                    out.pop(name, None)
                else:
                    out[name] = status
        return out

    def __getitem__(self, name: str) -> CaptureState:
        status = self._status(name)
        if status is None:
            raise KeyError(name)
        return status.state

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._live if self._live is not None else self._snapshot()))

    def __len__(self) -> int:
        return len(self._live if self._live is not None else self._snapshot())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._status(name) is not None

    def __repr__(self) -> str:
        return repr(dict(self.items()))


class _Overlay:
    """A transaction's view of the interfaces: the live dict plus its own changes."""

    __slots__ = ("base", "changes")

    def __init__(self, base: dict[str, InterfaceStatus]) -> None:
        self.base = base
        self.changes: dict[str, InterfaceStatus | None] = {}  # None: removed

    def get(self, name: str) -> InterfaceStatus | None:
        if name in self.changes:
            return self.changes[name]
        return self.base.get(name)

    def __getitem__(self, name: str) -> InterfaceStatus:
        status = self.get(name)
        if status is None:
            raise KeyError(name)
        return status

    def __setitem__(self, name: str, status: InterfaceStatus) -> None:
        self.changes[name] = status

    def __delitem__(self, name: str) -> None:
        self.changes[name] = None

    def names(self) -> list[str]:
        """Return every interface's name, sorted (a pass over all: window edges, stop)."""
        names = set(self.base)
        for name, status in self.changes.items():
            if status is None:
                names.discard(name)
            else:
                names.add(name)
        return sorted(names)


# --------------------------------------------------------------------------------------------
# Results.


@attrs.frozen(repr=False, eq=False)
class Transition(FieldsRepr, FieldsEq):
    """One interface changed (or was told to act): the history entry of a result."""

    interface: str
    event: Event
    old: CaptureState | None
    new: CaptureState | None
    at: _dt.datetime
    actions: tuple[Action, ...] = ()


@attrs.frozen(repr=False, eq=False)
class ScheduleResult(FieldsRepr, FieldsEq):
    """What an input did.

    Perform ``actions`` in order. ``transitions`` lists every interface whose status changed
    (time-driven ones first). ``stale`` is true when a packet or failure report was dropped
    because that interface's capture had just been stopped by the time passing in the same call
    (its stop action is in ``actions``).
    """

    actions: tuple[Action, ...]
    transitions: tuple[Transition, ...]
    states: Mapping[str, CaptureState]
    node_state: CaptureState
    node_state_changed: bool
    next_deadline: _dt.datetime | None
    stale: bool = False


# --------------------------------------------------------------------------------------------
# The schedule.


class _Txn:
    """A working copy of the schedule's mutable state; committed only if the input is legal."""

    def __init__(self, schedule: CaptureSchedule, now: _dt.datetime) -> None:
        self.now = now
        self.start = schedule._start
        self.end = schedule._end
        self.phase = schedule._phase
        self.stopped = schedule._stopped
        self.retry = schedule._retry
        self.retrying = schedule._retrying
        # Changes are kept aside (no copy of every interface per input) and applied only
        # when the input turns out legal.
        self.ifaces = _Overlay(schedule._ifaces)
        self.transitions: list[Transition] = []
        self.actions: list[Action] = []
        self.stale = False

    def fire(self, name: str, event: Event, *, up: bool = True, reason: str = "") -> None:
        assert self.phase is not None
        old = self.ifaces.get(name)
        if event is Event.ADD and old is not None:
            raise InvalidTransitionError(f"interface {name!r} is already known")
        if event is not Event.ADD and old is None:
            raise InvalidTransitionError(f"interface {name!r} is not known")
        try:
            new, actions = apply_event(
                name,
                old,
                event,
                phase=self.phase,
                now=self.now,
                retry=self.retry,
                up=up,
                reason=reason,
            )
        except InvalidTransitionError as exc:
            raise InvalidTransitionError(f"interface {name!r}: {exc}") from None
        if new is None:
            del self.ifaces[name]
        else:
            self.ifaces[name] = new
        if new is not old or actions:
            self.transitions.append(
                Transition(
                    name,
                    event,
                    None if old is None else old.state,
                    None if new is None else new.state,
                    self.now,
                    actions,
                )
            )
            self.actions.extend(actions)

    def fire_all(self, event: Event) -> None:
        for name in self.ifaces.names():
            self.fire(name, event)

    def advance(self) -> None:
        """Process everything due at or before ``now``: window edges, then retries."""
        if self.stopped:
            return
        phase = phase_at(self.start, self.end, self.now)
        old, self.phase = self.phase, phase
        if old is not None and old is not phase:
            # Time only moves forward, so the phase only moves BEFORE -> ACTIVE -> AFTER; a jump
            # over the whole window goes straight to AFTER without starting anything.
            self.fire_all(Event.WINDOW_CLOSES if phase is Phase.AFTER else Event.WINDOW_OPENS)
        if phase is Phase.ACTIVE and self.retrying:
            # Only the interfaces waiting for a retry: no pass over all of them per input.
            for name in sorted(n for n, at in self.retrying.items() if at <= self.now):
                status = self.ifaces.get(name)
                if status is not None and status.state is _E and status.retry_at:
                    self.fire(name, Event.RETRY_DUE)


def _reason_text(reason: str | BaseException) -> str:
    if isinstance(reason, BaseException):
        text = str(reason)
        return f"{type(reason).__name__}: {text}" if text else type(reason).__name__
    return str(reason)


# Inputs refused once the schedule is stopped.
_REFUSED_WHEN_STOPPED = frozenset(
    {
        Event.ADD,
        Event.UP,
        Event.DOWN,
        Event.PACKET,
        Event.FAILURE,
        Event.SPEC_CHANGE,
        Event.ENDPOINT_CHANGE,
    }
)


class CaptureSchedule:
    """The lifecycle of one capture on one node: per-interface machines plus node aggregation.

    ``start_time``/``end_time`` bound the capture window ``[start, end)``; ``None`` leaves that
    side open (start at once / run until stopped). ``retry`` is the automatic retry policy for
    failed interfaces (``None``: never retry automatically). ``now``, if given, feeds the first
    time in at once, as ``tick(now)`` would; until the schedule has seen a time,
    :meth:`node_state` is ``Scheduled`` and :meth:`next_deadline` is ``None``.

    Every input takes ``now`` (timezone-aware), first processes what became due by then (window
    edges, retries) and then the input itself, all or nothing: an illegal input raises
    :class:`~packetcapture.errors.InvalidTransitionError` and changes nothing. Not thread-safe.
    """

    def __init__(
        self,
        start_time: _dt.datetime | None = None,
        end_time: _dt.datetime | None = None,
        *,
        retry: RetryPolicy | None = DEFAULT_RETRY,
        now: _dt.datetime | None = None,
    ) -> None:
        self._start, self._end = _times(start_time, end_time)
        self._retry = retry
        self._ifaces: dict[str, InterfaceStatus] = {}
        # Kept up to date at each commit from the interfaces that changed, so that an input
        # costs the same with 10 or 50,000 interfaces: the retry time of each interface in
        # Error, and how many interfaces count for each rule of aggregate_state.
        self._retrying: dict[str, _dt.datetime] = {}
        self._tally = _Tally()
        self._states = _States(self._ifaces)
        self._now: _dt.datetime | None = None
        self._phase: Phase | None = None
        self._stopped = False
        self._deadline: _dt.datetime | None = None
        self._node_state = _S
        self._idle = self._result((), (), False)
        if now is not None:
            self.tick(now)

    @classmethod
    def from_spec(
        cls,
        spec: PacketCaptureSpec,
        *,
        retry: RetryPolicy | None = DEFAULT_RETRY,
        now: _dt.datetime | None = None,
    ) -> CaptureSchedule:
        """Build a schedule from a spec's ``start_time`` and ``end_time``."""
        return cls(spec.start_time, spec.end_time, retry=retry, now=now)

    # ---- queries ---------------------------------------------------------------------------

    @property
    def start_time(self) -> _dt.datetime | None:
        """The window start in UTC (``None``: from the beginning)."""
        return self._start

    @property
    def end_time(self) -> _dt.datetime | None:
        """The window end in UTC (``None``: no end)."""
        return self._end

    @property
    def retry(self) -> RetryPolicy | None:
        """The automatic retry policy (``None``: none)."""
        return self._retry

    @property
    def now(self) -> _dt.datetime | None:
        """The latest time the schedule has seen (UTC), or ``None`` before any input."""
        return self._now

    @property
    def phase(self) -> Phase | None:
        """The window phase at :attr:`now` (``None`` before any input)."""
        return self._phase

    @property
    def stopped(self) -> bool:
        """True after :meth:`stop`."""
        return self._stopped

    def interfaces(self) -> tuple[str, ...]:
        """Return the known interface names, sorted."""
        return tuple(sorted(self._ifaces))

    def __contains__(self, name: object) -> bool:
        return name in self._ifaces

    def status(self, name: str) -> InterfaceStatus:
        """Return everything known about interface ``name`` (``KeyError`` if unknown)."""
        try:
            return self._ifaces[name]
        except KeyError:
            raise KeyError(f"interface {name!r} is not known") from None

    def state(self, name: str) -> CaptureState:
        """Return the state of interface ``name`` (``KeyError`` if unknown)."""
        return self.status(name).state

    def states(self) -> dict[str, CaptureState]:
        """Return every interface's state."""
        return {name: self._ifaces[name].state for name in sorted(self._ifaces)}

    def node_state(self) -> CaptureState:
        """Return the node's aggregated state (see :func:`aggregate_state`).

        With no interfaces it follows the window: ``Scheduled`` before it (or before any input),
        ``WaitingForTraffic`` in it, ``Finished`` after it or once stopped.
        """
        return self._node_state

    def errors(self) -> dict[str, str]:
        """Return the failure reason of every interface in ``Error``."""
        return {
            name: status.error or ""
            for name, status in sorted(self._ifaces.items())
            if status.state is _E
        }

    def next_deadline(self) -> _dt.datetime | None:
        """Return when to call :meth:`tick` next, or ``None`` if no time-driven change is pending.

        Always after :attr:`now`: everything due by then has been processed.
        """
        return self._deadline

    # ---- inputs ----------------------------------------------------------------------------

    def tick(self, now: _dt.datetime) -> ScheduleResult:
        """Let time pass until ``now``: open or close the window, run due retries."""
        now = self._clock(now)
        if self._now is not None and (self._deadline is None or now < self._deadline):
            self._now = now
            return self._idle
        return self._run(now, None, lambda txn: None)

    def add_interface(self, name: str, now: _dt.datetime, *, up: bool = True) -> ScheduleResult:
        """Report a new interface to capture on (``up=False``: it exists but is down)."""
        return self._run(now, Event.ADD, lambda txn: txn.fire(name, Event.ADD, up=up))

    def remove_interface(
        self, name: str, now: _dt.datetime, *, keep_files: bool = True
    ) -> ScheduleResult:
        """Report that an interface went away: stop it and forget it.

        ``keep_files=False`` (the endpoint stopped matching the selector, as Calico does) also
        asks for its files to be deleted, even if it was not running.
        """
        event = Event.REMOVE if keep_files else Event.DELETE
        return self._run(now, event, lambda txn: txn.fire(name, event))

    def interface_up(self, name: str, now: _dt.datetime) -> ScheduleResult:
        """Report that a down interface came back: it restarts if the window is open."""
        return self._interface(name, Event.UP, now)

    def interface_down(self, name: str, now: _dt.datetime) -> ScheduleResult:
        """Report that an interface went down: capture stops (files kept), ``Finished``."""
        return self._interface(name, Event.DOWN, now)

    def endpoint_changed(self, name: str, now: _dt.datetime) -> ScheduleResult:
        """Report an endpoint update: an ``Error`` is cleared and retried at once."""
        return self._interface(name, Event.ENDPOINT_CHANGE, now)

    def packet_seen(self, name: str, now: _dt.datetime) -> ScheduleResult:
        """Report a captured packet: ``WaitingForTraffic`` becomes ``Capturing``."""
        status = self._ifaces.get(name)
        if status is not None and status.state is _C and status.failures == 0:
            # Hot path (one call per packet): nothing changes unless a deadline is due.
            at = self._clock(now)
            if self._deadline is None or at < self._deadline:
                self._now = at
                return self._idle
        return self._interface(name, Event.PACKET, now)

    def failure(self, name: str, reason: str | BaseException, now: _dt.datetime) -> ScheduleResult:
        """Report a backend failure: ``Error`` (reason kept) and a retry is scheduled."""
        return self._interface(name, Event.FAILURE, now, reason=_reason_text(reason))

    def stop_failed(
        self, name: str, reason: str | BaseException, now: _dt.datetime
    ) -> ScheduleResult:
        """Report that stopping a ``Finished`` interface failed (its last write, disk full).

        The interface goes to ``Error`` with the reason and stays there (no retry): the node
        never reports ``Finished`` while an interface's data was lost.
        """
        return self._interface(name, Event.STOP_FAILED, now, reason=_reason_text(reason))

    def update_times(
        self, start_time: _dt.datetime | None, end_time: _dt.datetime | None, now: _dt.datetime
    ) -> ScheduleResult:
        """Report a spec change (any field: Calico restarts on every spec change).

        Every running capture is stopped (files kept) and each interface re-enters the state
        the new window calls for: restarted at once, ``Scheduled``, or ``Finished``. Errors
        are cleared.
        """
        start, end = _times(start_time, end_time)

        def change(txn: _Txn) -> None:
            txn.start, txn.end = start, end
            txn.phase = phase_at(start, end, txn.now)
            txn.fire_all(Event.SPEC_CHANGE)

        return self._run(now, Event.SPEC_CHANGE, change)

    def update_spec(self, spec: PacketCaptureSpec, now: _dt.datetime) -> ScheduleResult:
        """Report a spec change: :meth:`update_times` with the spec's times."""
        return self.update_times(spec.start_time, spec.end_time, now)

    def stop(self, now: _dt.datetime, *, keep_files: bool = True) -> ScheduleResult:
        """Stop everything for good (the agent shuts down, or the capture was deleted).

        Every interface becomes ``Finished`` (running ones are stopped). With
        ``keep_files=False`` every interface is also forgotten and its files deleted. After
        this only :meth:`tick`, :meth:`remove_interface`, :meth:`stop` and
        :meth:`stop_failed` are accepted.
        """
        event = Event.STOP if keep_files else Event.DELETE

        def stop(txn: _Txn) -> None:
            if not (txn.stopped and event is Event.STOP):
                txn.fire_all(event)
            txn.stopped = True

        return self._run(now, None, stop)

    # ---- machinery -------------------------------------------------------------------------

    def _clock(self, now: _dt.datetime) -> _dt.datetime:
        now = _utc(now, "now")
        if self._now is not None and now < self._now:
            return self._now
        return now

    def _interface(
        self, name: str, event: Event, now: _dt.datetime, *, reason: str = ""
    ) -> ScheduleResult:
        def one(txn: _Txn) -> None:
            before = self._ifaces.get(name)
            after = txn.ifaces.get(name)
            if (
                event in (Event.PACKET, Event.FAILURE)
                and before is not None
                and after is not None
                and before.running
                and not after.running
            ):
                # A report about a capture the time advance of this very call just stopped.
                txn.stale = True
                return
            txn.fire(name, event, reason=reason)

        return self._run(now, event, one)

    def _run(
        self, now: _dt.datetime, event: Event | None, body: Callable[[_Txn], None]
    ) -> ScheduleResult:
        if self._stopped and event in _REFUSED_WHEN_STOPPED:
            raise InvalidTransitionError(f"{event.value!r} refused: the schedule is stopped")
        txn = _Txn(self, self._clock(now))
        txn.advance()
        body(txn)
        return self._commit(txn)

    def _commit(self, txn: _Txn) -> ScheduleResult:
        live = self._ifaces
        changes = txn.ifaces.changes
        if changes:
            undo: dict[str, InterfaceStatus | None] = {}
            retrying = self._retrying
            for name, new in changes.items():
                old = live.get(name)
                if new is old:
                    continue
                undo[name] = old
                self._tally.count(old, -1)
                self._tally.count(new, 1)
                if new is None:
                    del live[name]
                else:
                    live[name] = new
                if new is not None and new.state is _E and new.retry_at is not None:
                    retrying[name] = new.retry_at
                else:
                    retrying.pop(name, None)
            if undo:
                view = _States(live)
                self._states._retire(undo, view)
                self._states = view
        self._now = txn.now
        self._start, self._end = txn.start, txn.end
        self._phase = txn.phase
        self._stopped = txn.stopped
        self._deadline = self._compute_deadline()
        old_node = self._node_state
        self._node_state = self._tally.state(self._empty_state())
        changed = self._node_state is not old_node
        states = self._states  # one snapshot serves both results
        self._idle = self._result((), (), False, states=states)
        if not (txn.transitions or changed or txn.stale):
            return self._idle
        return self._result(
            tuple(txn.actions), tuple(txn.transitions), changed, txn.stale, states=states
        )

    def _result(
        self,
        actions: tuple[Action, ...],
        transitions: tuple[Transition, ...],
        changed: bool,
        stale: bool = False,
        *,
        states: Mapping[str, CaptureState] | None = None,
    ) -> ScheduleResult:
        return ScheduleResult(
            actions=actions,
            transitions=transitions,
            states=self._states if states is None else states,
            node_state=self._node_state,
            node_state_changed=changed,
            next_deadline=self._deadline,
            stale=stale,
        )

    def _empty_state(self) -> CaptureState:
        if self._stopped or self._phase is Phase.AFTER:
            return _F
        return _W if self._phase is Phase.ACTIVE else _S

    def _compute_deadline(self) -> _dt.datetime | None:
        if self._stopped or self._phase is None or self._phase is Phase.AFTER:
            return None
        candidates = []
        if self._phase is Phase.BEFORE:
            assert self._start is not None
            candidates.append(self._start)
        if self._end is not None:
            candidates.append(self._end)
        candidates.extend(self._retrying.values())
        return min(candidates) if candidates else None

    def __repr__(self) -> str:
        start = self._start.isoformat() if self._start else None
        end = self._end.isoformat() if self._end else None
        return (
            f"<CaptureSchedule start={start} end={end} node={self._node_state.value} "
            f"interfaces={len(self._ifaces)}{' stopped' if self._stopped else ''}>"
        )

"""Table-driven tests: every (state, input) pair through the public API, illegal ones included.

The expectations are written out here by hand, independently of ``TRANSITIONS``: a change to
the table that changes behaviour must change this file too.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable

import pytest

from packetcapture.errors import InvalidTransitionError
from packetcapture.model import CaptureState
from packetcapture.schedule import (
    TRANSITIONS,
    CaptureSchedule,
    Event,
    InterfaceStatus,
    Phase,
    ScheduleResult,
    StartCapture,
    StopCapture,
    apply_event,
    select_rule,
)

UTC = dt.UTC
T0 = dt.datetime(2021, 8, 26, 12, 0, tzinfo=UTC)
START = T0 + dt.timedelta(seconds=100)
END = T0 + dt.timedelta(seconds=200)
AT = {
    "before": T0,
    "in": T0 + dt.timedelta(seconds=150),
    "after": T0 + dt.timedelta(seconds=250),
}
NAME = "cali0"


def make(config: str) -> tuple[CaptureSchedule, dt.datetime]:
    """Build a schedule whose interface NAME is in the configuration named ``config``."""
    kind, _, where = config.partition("@")
    now = AT[where]
    schedule = CaptureSchedule(START, END, now=now)
    if kind == "none":
        return schedule, now
    schedule.add_interface(NAME, now, up=kind != "down")
    if kind == "capturing":
        schedule.packet_seen(NAME, now)
    elif kind == "error":
        schedule.failure(NAME, "boom", now)
    elif kind == "stopped":
        schedule.stop(now)
    return schedule, now


INPUTS: dict[str, Callable[[CaptureSchedule, dt.datetime], ScheduleResult]] = {
    "add": lambda s, now: s.add_interface(NAME, now),
    "remove": lambda s, now: s.remove_interface(NAME, now),
    "delete": lambda s, now: s.remove_interface(NAME, now, keep_files=False),
    "up": lambda s, now: s.interface_up(NAME, now),
    "down": lambda s, now: s.interface_down(NAME, now),
    "packet": lambda s, now: s.packet_seen(NAME, now),
    "failure": lambda s, now: s.failure(NAME, "disk full", now),
    "endpoint": lambda s, now: s.endpoint_changed(NAME, now),
    "spec": lambda s, now: s.update_times(START, END, now),
    "stop": lambda s, now: s.stop(now),
    "stopfail": lambda s, now: s.stop_failed(NAME, "No space left on device", now),
}

# Expected outcome of every input (columns) in every configuration (rows): the next state
# (S W C E F, or - for "no interface") then, after ":", the actions in order (s = start,
# t = stop keeping files, d = stop and delete files); X is an illegal input.
MATRIX = """
config        add  remove  delete  up   down  packet  failure  endpoint  spec  stop  stopfail
none@before   S    X       X       X    X     X       X        X         -     -     X
none@in       W:s  X       X       X    X     X       X        X         -     -     X
none@after    F    X       X       X    X     X       X        X         -     -     X
up@before     X    -       -:d     X    F     X       X        S         S     F     X
up@in         X    -:t     -:d     X    F:t   C       E:t      W         W:ts  F:t   X
capturing@in  X    -:t     -:d     X    F:t   C       E:t      C         W:ts  F:t   X
error@in      X    -       -:d     X    F     X       X        W:s       W:s   F     X
up@after      X    -       -:d     X    F     X       X        F         F     F     E
down@before   X    -       -:d     S    X     X       X        F         F     F     E
down@in       X    -       -:d     W:s  X     X       X        F         F     F     E
down@after    X    -       -:d     F    X     X       X        F         F     F     E
stopped@in    X    -       -:d     X    X     X       X        X         X     F     E
"""
X = "X"
_header, *_rows = MATRIX.strip().splitlines()
assert _header.split()[1:] == list(INPUTS)
EXPECTED = {row.split()[0]: tuple(row.split()[1:]) for row in _rows}
CASES = [
    (config, name, EXPECTED[config][i]) for config in EXPECTED for i, name in enumerate(INPUTS)
]
LETTER = {
    "S": CaptureState.SCHEDULED,
    "W": CaptureState.WAITING_FOR_TRAFFIC,
    "C": CaptureState.CAPTURING,
    "E": CaptureState.ERROR,
    "F": CaptureState.FINISHED,
    "-": None,
}


def snapshot(schedule: CaptureSchedule) -> object:
    return (
        {n: schedule.status(n) for n in schedule.interfaces()},
        schedule.node_state(),
        schedule.next_deadline(),
        schedule.errors(),
        schedule.stopped,
        schedule.now,
        schedule.start_time,
        schedule.end_time,
    )


def expected_actions(codes: str) -> tuple[StartCapture | StopCapture, ...]:
    make_action = {
        "s": StartCapture(NAME),
        "t": StopCapture(NAME, keep_files=True),
        "d": StopCapture(NAME, keep_files=False),
    }
    return tuple(make_action[code] for code in codes)


@pytest.mark.parametrize(("config", "name", "outcome"), CASES)
def test_every_state_input_pair(config: str, name: str, outcome: str) -> None:
    schedule, now = make(config)
    if outcome == X:
        before = snapshot(schedule)
        with pytest.raises(InvalidTransitionError):
            INPUTS[name](schedule, now)
        assert snapshot(schedule) == before
        return
    letter, _, codes = outcome.partition(":")
    result = INPUTS[name](schedule, now)
    want = LETTER[letter]
    if want is None:
        assert NAME not in schedule
        assert NAME not in result.states
    else:
        assert schedule.state(NAME) is want
        assert result.states[NAME] is want
    assert result.actions == expected_actions(codes)
    assert not result.stale


def test_cases_cover_every_external_event() -> None:
    external = {e for e in Event} - {Event.WINDOW_OPENS, Event.WINDOW_CLOSES, Event.RETRY_DUE}
    covered = {
        "add": Event.ADD,
        "remove": Event.REMOVE,
        "delete": Event.DELETE,
        "up": Event.UP,
        "down": Event.DOWN,
        "packet": Event.PACKET,
        "failure": Event.FAILURE,
        "endpoint": Event.ENDPOINT_CHANGE,
        "spec": Event.SPEC_CHANGE,
        "stop": Event.STOP,
        "stopfail": Event.STOP_FAILED,
    }
    assert set(covered) == set(INPUTS)
    assert set(covered.values()) == external
    states_covered = {make(c)[0].states().get(NAME) for c in EXPECTED}
    assert states_covered == {None, *CaptureState}


def test_stop_failed_keeps_reason_without_retry_and_a_down_interface_comes_back() -> None:
    schedule, now = make("down@in")
    schedule.stop_failed(NAME, "No space left on device", now)
    status = schedule.status(NAME)
    assert (status.state, status.error, status.retry_at) == (
        CaptureState.ERROR,
        "No space left on device",
        None,
    )
    assert schedule.node_state() is CaptureState.ERROR
    result = schedule.interface_up(NAME, now)
    assert schedule.state(NAME) is CaptureState.WAITING_FOR_TRAFFIC
    assert result.actions == (StartCapture(NAME),)


# Time-driven inputs: (config, tick to, expected state, expected actions).
TICKS = [
    ("up@before", START, "W", "s"),
    ("up@before", AT["in"], "W", "s"),
    ("up@before", END, "F", ""),  # jumped over the whole window: nothing started
    ("up@in", END, "F", "t"),
    ("capturing@in", END + dt.timedelta(days=3), "F", "t"),
    ("error@in", END, "F", ""),
    ("error@in", AT["in"] + dt.timedelta(seconds=1), "W", "s"),  # the first retry
    ("down@before", START, "F", ""),
    ("down@in", END, "F", ""),
    ("up@after", END + dt.timedelta(days=1), "F", ""),
]


@pytest.mark.parametrize(("config", "to", "letter", "codes"), TICKS)
def test_time_driven_transitions(config: str, to: dt.datetime, letter: str, codes: str) -> None:
    schedule, _ = make(config)
    result = schedule.tick(to)
    assert schedule.state(NAME) is LETTER[letter]
    assert result.actions == expected_actions(codes)
    deadline = schedule.next_deadline()
    assert deadline is None or deadline > to


@pytest.mark.parametrize(("state", "event"), list(itertools.product([None, *CaptureState], Event)))
def test_pure_table_every_pair(state: CaptureState | None, event: Event) -> None:
    """At most one rule matches any (phase, up); missing pairs raise."""
    rules = TRANSITIONS.get((state, event), ())
    for phase, up in itertools.product(Phase, (True, False)):
        matching = [r for r in rules if r.guard.matches(phase, up)]
        assert len(matching) <= 1, (state, event, phase, up)
        if matching:
            assert select_rule(state, event, phase, up) is matching[0]
        else:
            with pytest.raises(InvalidTransitionError):
                select_rule(state, event, phase, up)


def test_pure_apply_event_keeps_status_identity_when_nothing_changes() -> None:
    status = InterfaceStatus(NAME, CaptureState.CAPTURING, captured=True)
    new, actions = apply_event(NAME, status, Event.PACKET, phase=Phase.ACTIVE, now=T0)
    assert new is status
    assert actions == ()


def test_pure_apply_event_failure_schedules_retry() -> None:
    status = InterfaceStatus(NAME, CaptureState.WAITING_FOR_TRAFFIC)
    new, actions = apply_event(
        NAME, status, Event.FAILURE, phase=Phase.ACTIVE, now=T0, reason="disk full"
    )
    assert new is not None
    assert new.state is CaptureState.ERROR
    assert (new.error, new.failures, new.retry_at) == ("disk full", 1, T0 + dt.timedelta(seconds=1))
    assert actions == (StopCapture(NAME),)


def test_unknown_and_duplicate_interface_messages() -> None:
    schedule, now = make("up@in")
    with pytest.raises(InvalidTransitionError, match="'nope' is not known"):
        schedule.packet_seen("nope", now)
    with pytest.raises(InvalidTransitionError, match="already known"):
        schedule.add_interface(NAME, now)
    with pytest.raises(InvalidTransitionError, match="'up' is not allowed for state"):
        schedule.interface_up(NAME, now)
    with pytest.raises(KeyError):
        schedule.state("nope")

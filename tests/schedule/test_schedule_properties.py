"""Hypothesis: random sequences of inputs keep the schedule's invariants.

Sequences mix spec changes, ticks at arbitrary times, packets, failures and interface changes.
After every step: no capture outside ``[start, end)``; ``Finished`` exactly when the window is
over, the interface down or the schedule stopped; deadlines never in the past; the actions keep
an executor's idea of what runs in step with the states; illegal inputs change nothing. And
jumping from deadline to deadline gives the same history as ticking every second.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from packetcapture.errors import InvalidTransitionError
from packetcapture.model import CaptureState
from packetcapture.schedule import (
    CaptureSchedule,
    ScheduleResult,
    StartCapture,
    StopCapture,
    Transition,
    aggregate_state,
)

UTC = dt.UTC
T0 = dt.datetime(2024, 2, 28, 23, 55, tzinfo=UTC)  # windows straddle a leap day
S = CaptureState.SCHEDULED
W = CaptureState.WAITING_FOR_TRAFFIC
C = CaptureState.CAPTURING
E = CaptureState.ERROR
F = CaptureState.FINISHED
NAMES = st.sampled_from(["cali0", "cali1"])

Op = tuple[Any, ...]


@st.composite
def windows(draw: st.DrawFn) -> tuple[int | None, int | None]:
    """A (start, end) pair in whole seconds from T0; ``end > start`` when both are set."""
    start = draw(st.none() | st.integers(-30, 120))
    low = -30 if start is None else start + 1
    end = draw(st.none() | st.integers(low, low + 300))
    return start, end


def ops(*, with_ticks: bool) -> st.SearchStrategy[Op]:
    choices = [
        st.tuples(st.just("add"), NAMES, st.sampled_from([True, True, True, False])),
        st.tuples(st.just("add"), NAMES, st.just(True)),
        st.tuples(st.just("remove"), NAMES, st.booleans()),
        st.tuples(st.just("up"), NAMES),
        st.tuples(st.just("down"), NAMES),
        st.tuples(st.just("packet"), NAMES),
        st.tuples(st.just("packet"), NAMES),
        st.tuples(st.just("failure"), NAMES),
        st.tuples(st.just("failure"), NAMES),
        st.tuples(st.just("endpoint"), NAMES),
        st.tuples(st.just("spec"), windows()),
    ]
    if with_ticks:
        choices += [st.tuples(st.just("tick")), st.tuples(st.just("tick"))]
    return st.one_of(*choices)


def steps(delays: st.SearchStrategy[Any], *, with_ticks: bool) -> st.SearchStrategy[Any]:
    """Timed ops; stopping is terminal, so it only ever comes last."""
    body = st.lists(st.tuples(delays, ops(with_ticks=with_ticks)), max_size=40)
    stop = st.tuples(delays, st.tuples(st.just("stop"), st.booleans()))
    tail = st.lists(stop, max_size=1)
    return st.tuples(body, tail).map(lambda parts: parts[0] + parts[1])


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def window_times(window: tuple[int | None, int | None]) -> tuple[dt.datetime | None, ...]:
    return tuple(None if s is None else at(s) for s in window)


def apply(schedule: CaptureSchedule, op: Op, now: dt.datetime) -> ScheduleResult:
    kind = op[0]
    if kind == "tick":
        return schedule.tick(now)
    if kind == "add":
        return schedule.add_interface(op[1], now, up=op[2])
    if kind == "remove":
        return schedule.remove_interface(op[1], now, keep_files=op[2])
    if kind == "up":
        return schedule.interface_up(op[1], now)
    if kind == "down":
        return schedule.interface_down(op[1], now)
    if kind == "packet":
        return schedule.packet_seen(op[1], now)
    if kind == "failure":
        return schedule.failure(op[1], "boom", now)
    if kind == "endpoint":
        return schedule.endpoint_changed(op[1], now)
    if kind == "spec":
        start, end = window_times(op[1])
        return schedule.update_times(start, end, now)
    assert kind == "stop"
    return schedule.stop(now, keep_files=op[1])


def snapshot(schedule: CaptureSchedule) -> object:
    return (
        {n: schedule.status(n) for n in schedule.interfaces()},
        schedule.node_state(),
        schedule.next_deadline(),
        schedule.now,
        schedule.start_time,
        schedule.end_time,
        schedule.stopped,
    )


class Executor:
    """What a driver performing the actions believes is running."""

    def __init__(self) -> None:
        self.running: set[str] = set()

    def perform(self, result: ScheduleResult) -> None:
        for action in result.actions:
            if isinstance(action, StartCapture):
                assert action.interface not in self.running, action
                self.running.add(action.interface)
            else:
                assert isinstance(action, StopCapture)
                if action.keep_files:
                    assert action.interface in self.running, action
                self.running.discard(action.interface)


def check_invariants(schedule: CaptureSchedule, result: ScheduleResult, ex: Executor) -> None:
    now = schedule.now
    assert now is not None
    start, end, stopped = schedule.start_time, schedule.end_time, schedule.stopped
    before = start is not None and now < start
    after = end is not None and now >= end
    in_window = not before and not after
    statuses = [schedule.status(n) for n in schedule.interfaces()]
    for status in statuses:
        if status.state in (W, C):
            assert in_window and status.up and not stopped, status
        if status.state is S:
            assert before and status.up and not stopped, status
        if status.state is E:
            assert in_window and status.up and not stopped and status.error, status
        else:
            assert status.error is None and status.retry_at is None, status
        assert (status.state is F) == (after or not status.up or stopped), status
        assert status.running == (status.name in ex.running), (status, ex.running)
    assert ex.running <= set(schedule.interfaces())
    node = schedule.node_state()
    if node in (W, C):
        assert in_window and not stopped
    if after or stopped:
        assert node is F
    if node is F:
        assert after or stopped or (statuses and not any(s.up for s in statuses))
    assert set(schedule.errors()) == {s.name for s in statuses if s.state is E}
    if statuses:  # the node state kept up to date per change is the one computed afresh
        assert node is aggregate_state(statuses)
    deadline = schedule.next_deadline()
    assert deadline is None or deadline > now
    assert result.next_deadline == deadline
    assert result.node_state is node
    assert dict(result.states) == schedule.states()


def run_checked(window: tuple[int | None, int | None], steps: list[tuple[float, Op]]) -> None:
    schedule = CaptureSchedule(*window_times(window))
    executor = Executor()
    clock = 0.0
    for delay, op in steps:
        clock += delay
        now = at(clock)
        before = snapshot(schedule)
        try:
            result = apply(schedule, op, now)
        except InvalidTransitionError:
            assert snapshot(schedule) == before, op
            continue
        executor.perform(result)
        if result.stale:
            assert op[0] in ("packet", "failure")
        check_invariants(schedule, result, executor)


WHOLE_SECONDS = steps(st.integers(0, 5) | st.integers(0, 60), with_ticks=True)
ARBITRARY = steps(st.integers(0, 20_000_000).map(lambda us: us / 1e6), with_ticks=True)
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(windows(), WHOLE_SECONDS)
def test_invariants_whole_seconds(
    window: tuple[int | None, int | None], steps: list[tuple[float, Op]]
) -> None:
    run_checked(window, steps)


@FAST
@given(windows(), ARBITRARY)
def test_invariants_arbitrary_times(
    window: tuple[int | None, int | None], steps: list[tuple[float, Op]]
) -> None:
    run_checked(window, steps)


@pytest.mark.slow
@SLOW
@given(windows(), WHOLE_SECONDS | ARBITRARY)
def test_invariants_many(
    window: tuple[int | None, int | None], steps: list[tuple[float, Op]]
) -> None:
    run_checked(window, steps)


History = tuple[list[Transition], list[object], list[tuple[dt.datetime, CaptureState]]]


def _record(result: ScheduleResult, schedule: CaptureSchedule, history: History) -> None:
    history[0].extend(result.transitions)
    if result.node_state_changed:
        assert schedule.now is not None
        history[2].append((schedule.now, result.node_state))


def _apply_recorded(schedule: CaptureSchedule, op: Op, now: dt.datetime, history: History) -> None:
    try:
        result = apply(schedule, op, now)
    except InvalidTransitionError:
        history[1].append(("illegal", op))
        return
    history[1].append(("ok", op, result.actions, result.stale))
    _record(result, schedule, history)


def tick_every_second(
    window: tuple[int | None, int | None], timed: list[tuple[int, Op]], horizon: int
) -> History:
    schedule = CaptureSchedule(*window_times(window), now=at(0))
    history: History = ([], [], [])
    pending = list(timed)
    for second in range(horizon + 1):
        _record(schedule.tick(at(second)), schedule, history)
        while pending and pending[0][0] == second:
            _apply_recorded(schedule, pending.pop(0)[1], at(second), history)
    return history


def jump_to_deadlines(
    window: tuple[int | None, int | None], timed: list[tuple[int, Op]], horizon: int
) -> History:
    schedule = CaptureSchedule(*window_times(window), now=at(0))
    history: History = ([], [], [])
    for second, op in [*timed, (horizon + 1, None)]:
        while (deadline := schedule.next_deadline()) is not None and deadline <= at(second):
            _record(schedule.tick(deadline), schedule, history)
        if op is not None:
            _apply_recorded(schedule, op, at(second), history)
    return history


def check_equivalence(window: tuple[int | None, int | None], steps: list[tuple[int, Op]]) -> None:
    timed: list[tuple[int, Op]] = []
    clock = 0
    for delay, op in steps:
        clock += delay
        timed.append((clock, op))
    # Past every op, the end of any window and the longest retry wait.
    horizon = max(clock, 400) + 61
    fine = tick_every_second(window, timed, horizon)
    jumped = jump_to_deadlines(window, timed, horizon)
    assert jumped == fine


TIMED_OPS = steps(st.integers(0, 5) | st.integers(0, 60), with_ticks=False)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(windows(), TIMED_OPS)
def test_jumping_to_deadlines_matches_ticking_every_second(
    window: tuple[int | None, int | None], steps: list[tuple[int, Op]]
) -> None:
    check_equivalence(window, steps)


@pytest.mark.slow
@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(windows(), TIMED_OPS)
def test_jumping_to_deadlines_matches_ticking_every_second_many(
    window: tuple[int | None, int | None], steps: list[tuple[int, Op]]
) -> None:
    check_equivalence(window, steps)

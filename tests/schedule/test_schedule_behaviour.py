"""Scenario tests: the behaviour the issue and Calico's docs describe, retries, time handling."""

from __future__ import annotations

import contextlib
import datetime as dt
import zoneinfo

import pytest
from dateutil import tz

from packetcapture.errors import InvalidTransitionError
from packetcapture.model import CaptureState, PacketCaptureSpec
from packetcapture.schedule import (
    DEFAULT_RETRY,
    CaptureSchedule,
    Event,
    InterfaceStatus,
    InvalidTimeError,
    RetryPolicy,
    StartCapture,
    StopCapture,
    aggregate_state,
)

UTC = dt.UTC
T0 = dt.datetime(2021, 8, 26, 12, 0, tzinfo=UTC)
S = CaptureState.SCHEDULED
W = CaptureState.WAITING_FOR_TRAFFIC
C = CaptureState.CAPTURING
E = CaptureState.ERROR
F = CaptureState.FINISHED


def sec(n: float) -> dt.timedelta:
    return dt.timedelta(seconds=n)


# ---- the window --------------------------------------------------------------------------


def test_no_start_time_starts_at_once_and_runs_forever() -> None:
    schedule = CaptureSchedule()
    result = schedule.add_interface("a", T0)
    assert result.actions == (StartCapture("a"),)
    assert schedule.state("a") is W
    assert schedule.next_deadline() is None
    assert schedule.tick(T0 + dt.timedelta(days=3650)).actions == ()
    assert schedule.state("a") is W


def test_start_time_in_the_past_starts_at_once() -> None:
    schedule = CaptureSchedule(T0 - dt.timedelta(days=1), T0 + sec(60))
    assert schedule.add_interface("a", T0).actions == (StartCapture("a"),)
    assert schedule.next_deadline() == T0 + sec(60)


def test_future_start_is_scheduled_then_starts_at_that_time() -> None:
    schedule = CaptureSchedule(T0 + sec(30), None)
    assert schedule.add_interface("a", T0).actions == ()
    assert schedule.state("a") is S
    assert schedule.next_deadline() == T0 + sec(30)
    assert schedule.tick(T0 + sec(29)).actions == ()
    result = schedule.tick(T0 + sec(30))
    assert result.actions == (StartCapture("a"),)
    assert [t.event for t in result.transitions] == [Event.WINDOW_OPENS]
    assert schedule.next_deadline() is None


def test_start_moved_to_future_while_capturing_stops_and_restarts_keeping_files() -> None:
    schedule = CaptureSchedule(now=T0)
    schedule.add_interface("a", T0)
    schedule.packet_seen("a", T0 + sec(1))
    assert schedule.state("a") is C
    result = schedule.update_times(T0 + sec(600), None, T0 + sec(2))
    assert result.actions == (StopCapture("a", keep_files=True),)
    assert schedule.state("a") is S
    assert schedule.node_state() is S
    assert schedule.tick(T0 + sec(600)).actions == (StartCapture("a"),)
    assert schedule.state("a") is W  # a new window: no packet yet


def test_end_reached_finishes() -> None:
    schedule = CaptureSchedule(None, T0 + sec(10), now=T0)
    schedule.add_interface("a", T0)
    schedule.packet_seen("a", T0 + sec(1))
    result = schedule.tick(T0 + sec(10))
    assert result.actions == (StopCapture("a"),)
    assert schedule.state("a") is F
    assert schedule.node_state() is F
    assert result.node_state_changed
    assert schedule.next_deadline() is None


def test_end_moved_to_the_past_stops_at_once_and_back_to_the_future_resumes() -> None:
    schedule = CaptureSchedule(None, T0 + sec(3600), now=T0)
    schedule.add_interface("a", T0)
    result = schedule.update_times(None, T0 - sec(1), T0 + sec(5))
    assert result.actions == (StopCapture("a"),)
    assert schedule.node_state() is F
    result = schedule.update_times(None, T0 + sec(7200), T0 + sec(6))
    assert result.actions == (StartCapture("a"),)
    assert schedule.state("a") is W


def test_spec_change_restarts_running_captures() -> None:
    spec = PacketCaptureSpec(start_time=T0 - sec(5), end_time=T0 + sec(100))
    schedule = CaptureSchedule.from_spec(spec, now=T0)
    schedule.add_interface("a", T0)
    schedule.add_interface("b", T0)
    schedule.packet_seen("b", T0)
    result = schedule.update_spec(spec, T0 + sec(1))  # e.g. only the filters changed
    assert result.actions == (
        StopCapture("a"),
        StartCapture("a"),
        StopCapture("b"),
        StartCapture("b"),
    )
    assert schedule.states() == {"a": W, "b": W}


def test_start_and_end_both_passed_in_one_tick_start_nothing() -> None:
    schedule = CaptureSchedule(T0 + sec(10), T0 + sec(20), now=T0)
    schedule.add_interface("a", T0)
    result = schedule.tick(T0 + sec(25))
    assert result.actions == ()
    assert [t.event for t in result.transitions] == [Event.WINDOW_CLOSES]
    assert schedule.state("a") is F


def test_end_not_after_start_is_refused() -> None:
    with pytest.raises(InvalidTimeError, match="must be after start_time"):
        CaptureSchedule(T0, T0)
    schedule = CaptureSchedule(now=T0)
    with pytest.raises(InvalidTimeError):
        schedule.update_times(T0 + sec(1), T0, T0)
    assert schedule.start_time is None


# ---- interfaces --------------------------------------------------------------------------


def test_interface_down_keeps_files_and_restarts_when_back() -> None:
    schedule = CaptureSchedule(now=T0)
    schedule.add_interface("a", T0)
    schedule.packet_seen("a", T0)
    assert schedule.interface_down("a", T0 + sec(1)).actions == (StopCapture("a", True),)
    assert schedule.state("a") is F
    assert schedule.node_state() is F
    assert schedule.interface_up("a", T0 + sec(2)).actions == (StartCapture("a"),)
    assert schedule.state("a") is W
    # The node already captured in this window: the flap does not send it back to waiting.
    assert schedule.node_state() is C


def test_interface_back_after_end_stays_finished() -> None:
    schedule = CaptureSchedule(None, T0 + sec(10), now=T0)
    schedule.add_interface("a", T0)
    schedule.interface_down("a", T0 + sec(1))
    assert schedule.interface_up("a", T0 + sec(11)).actions == ()
    assert schedule.state("a") is F


def test_remove_and_readd() -> None:
    schedule = CaptureSchedule(now=T0)
    schedule.add_interface("a", T0)
    assert schedule.remove_interface("a", T0).actions == (StopCapture("a", keep_files=True),)
    assert "a" not in schedule
    assert schedule.interfaces() == ()
    assert schedule.node_state() is W  # no interfaces: follows the window
    assert schedule.add_interface("a", T0).actions == (StartCapture("a"),)


def test_delete_asks_for_files_to_go_even_when_not_running() -> None:
    schedule = CaptureSchedule(T0 + sec(60), None, now=T0)
    schedule.add_interface("a", T0)
    result = schedule.remove_interface("a", T0, keep_files=False)
    assert result.actions == (StopCapture("a", keep_files=False),)


# ---- failures and retries ----------------------------------------------------------------


def test_failure_keeps_reason_and_retries_with_capped_backoff() -> None:
    schedule = CaptureSchedule(now=T0)
    schedule.add_interface("a", T0)
    now = T0
    waits = []
    for attempt in range(9):
        result = schedule.failure("a", f"open failed #{attempt}", now)
        assert result.actions == (StopCapture("a"),)
        assert schedule.errors() == {"a": f"open failed #{attempt}"}
        assert schedule.node_state() is E
        deadline = schedule.next_deadline()
        assert deadline is not None
        waits.append((deadline - now).total_seconds())
        result = schedule.tick(deadline)
        assert result.actions == (StartCapture("a"),)
        assert [t.event for t in result.transitions] == [Event.RETRY_DUE]
        assert schedule.errors() == {}
        now = deadline
    assert waits == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    schedule.packet_seen("a", now)  # it works again: the backoff starts over
    schedule.failure("a", "again", now)
    assert schedule.next_deadline() == now + sec(1)


def test_failure_reason_from_exception() -> None:
    schedule = CaptureSchedule(now=T0)
    schedule.add_interface("a", T0)
    schedule.failure("a", PermissionError(1, "Operation not permitted"), T0)
    assert schedule.errors() == {"a": "PermissionError: [Errno 1] Operation not permitted"}
    schedule.endpoint_changed("a", T0)
    schedule.failure("a", RuntimeError(), T0)
    assert schedule.errors() == {"a": "RuntimeError"}


def test_no_retry_policy_stays_in_error_until_cleared() -> None:
    schedule = CaptureSchedule(retry=None, now=T0)
    schedule.add_interface("a", T0)
    schedule.failure("a", "no space left for capture", T0)
    assert schedule.next_deadline() is None
    assert schedule.status("a").retry_at is None
    assert schedule.tick(T0 + dt.timedelta(hours=1)).actions == ()
    assert schedule.state("a") is E
    # Cleared by an endpoint change ...
    assert schedule.endpoint_changed("a", T0 + sec(3601)).actions == (StartCapture("a"),)
    schedule.failure("a", "again", T0 + sec(3602))
    # ... or by a spec change.
    assert schedule.update_times(None, None, T0 + sec(3603)).actions == (StartCapture("a"),)
    assert schedule.errors() == {}


def test_retry_policy_max_attempts() -> None:
    policy = RetryPolicy(initial=sec(2), factor=1, maximum=sec(2), max_attempts=2)
    schedule = CaptureSchedule(retry=policy, now=T0)
    schedule.add_interface("a", T0)
    now = T0
    for _ in range(2):
        schedule.failure("a", "x", now)
        deadline = schedule.next_deadline()
        assert deadline == now + sec(2)
        schedule.tick(deadline)
        now = deadline
    schedule.failure("a", "x", now)
    assert schedule.next_deadline() is None
    assert schedule.state("a") is E


def test_retry_policy_delays_and_validation() -> None:
    assert [DEFAULT_RETRY.delay(n) for n in (1, 2, 6, 7, 10_000)] == [
        sec(1),
        sec(2),
        sec(32),
        sec(60),
        sec(60),
    ]
    assert RetryPolicy(max_attempts=0).delay(1) is None
    with pytest.raises(ValueError, match="failures"):
        DEFAULT_RETRY.delay(0)
    for bad in (
        {"initial": sec(0)},
        {"maximum": sec(0.5)},
        {"factor": 0.5},
        {"factor": float("inf")},
        {"max_attempts": -1},
    ):
        with pytest.raises(ValueError):
            RetryPolicy(**bad)  # type: ignore[arg-type]


def test_window_end_cancels_pending_retry() -> None:
    schedule = CaptureSchedule(None, T0 + sec(10), now=T0)
    schedule.add_interface("a", T0)
    schedule.failure("a", "x", T0 + sec(9.5))
    assert schedule.next_deadline() == T0 + sec(10)  # the end comes before the retry
    result = schedule.tick(T0 + sec(11))
    assert result.actions == ()
    assert schedule.state("a") is F
    assert schedule.errors() == {}
    assert schedule.next_deadline() is None


# ---- node aggregation --------------------------------------------------------------------


def test_node_state_precedence() -> None:
    def agg(*specs: tuple[CaptureState, bool]) -> CaptureState:
        return aggregate_state(
            InterfaceStatus(f"i{n}", state, captured=captured)
            for n, (state, captured) in enumerate(specs)
        )

    assert agg((F, False), (C, True), (E, False)) is E
    assert agg((F, False), (W, False), (C, True), (S, False)) is C
    assert agg((W, True), (S, False)) is C  # restarted after capturing in this window
    assert agg((W, False), (S, False), (F, False)) is W
    assert agg((S, False), (F, False)) is S
    assert agg((F, True), (F, False)) is F  # captured, but nothing runs any more
    assert agg() is F
    assert aggregate_state([], when_empty=S) is S


def test_node_state_with_no_interfaces_follows_the_window() -> None:
    schedule = CaptureSchedule(T0 + sec(10), T0 + sec(20))
    assert schedule.node_state() is S  # no time seen yet
    assert schedule.next_deadline() is None
    schedule.tick(T0)
    assert schedule.node_state() is S
    assert schedule.tick(T0 + sec(10)).node_state is W
    assert schedule.tick(T0 + sec(20)).node_state is F


def test_errors_reported_per_interface() -> None:
    schedule = CaptureSchedule(now=T0)
    for name in ("a", "b", "c"):
        schedule.add_interface(name, T0)
    schedule.packet_seen("a", T0)
    schedule.failure("c", "pcap write failed", T0)
    assert schedule.node_state() is E
    assert schedule.errors() == {"c": "pcap write failed"}
    schedule.remove_interface("c", T0)
    assert schedule.node_state() is C


# ---- stopping ----------------------------------------------------------------------------


def test_stop_finishes_everything_and_refuses_further_inputs() -> None:
    schedule = CaptureSchedule(now=T0)
    schedule.add_interface("a", T0)
    schedule.add_interface("b", T0)
    schedule.failure("b", "x", T0)
    result = schedule.stop(T0 + sec(0.5))  # before b's retry
    assert result.actions == (StopCapture("a"),)
    assert schedule.states() == {"a": F, "b": F}
    assert schedule.node_state() is F
    assert schedule.stopped
    assert schedule.next_deadline() is None
    assert schedule.tick(T0 + sec(100)).actions == ()
    with pytest.raises(InvalidTransitionError, match="stopped"):
        schedule.update_times(None, None, T0 + sec(101))
    with pytest.raises(InvalidTransitionError, match="stopped"):
        schedule.add_interface("c", T0 + sec(101))
    assert schedule.stop(T0 + sec(102)).actions == ()
    # The capture was deleted after all: delete the files too.
    result = schedule.stop(T0 + sec(103), keep_files=False)
    assert result.actions == (StopCapture("a", False), StopCapture("b", False))
    assert schedule.interfaces() == ()


# ---- all-or-nothing and stale reports ----------------------------------------------------


def test_illegal_input_commits_nothing_not_even_the_time_advance() -> None:
    schedule = CaptureSchedule(None, T0 + sec(10), now=T0)
    schedule.add_interface("a", T0)
    with pytest.raises(InvalidTransitionError):
        schedule.interface_up("a", T0 + sec(20))  # the end passed, and "up" is illegal
    assert schedule.state("a") is W
    assert schedule.now == T0
    result = schedule.tick(T0 + sec(20))  # the stop is not lost
    assert result.actions == (StopCapture("a"),)


def test_packet_after_end_in_same_call_is_stale_not_an_error() -> None:
    schedule = CaptureSchedule(None, T0 + sec(10), now=T0)
    schedule.add_interface("a", T0)
    result = schedule.packet_seen("a", T0 + sec(10))
    assert result.stale
    assert result.actions == (StopCapture("a"),)
    assert schedule.state("a") is F
    with pytest.raises(InvalidTransitionError):  # now it is the caller's mistake
        schedule.packet_seen("a", T0 + sec(11))


def test_failure_after_end_in_same_call_is_stale() -> None:
    schedule = CaptureSchedule(None, T0 + sec(10), now=T0)
    schedule.add_interface("a", T0)
    result = schedule.failure("a", "x", T0 + sec(12))
    assert result.stale
    assert schedule.errors() == {}


def test_result_reports_node_state_changes_only_when_they_happen() -> None:
    schedule = CaptureSchedule(now=T0)
    first = schedule.add_interface("a", T0)
    assert first.node_state is W
    assert not first.node_state_changed  # with no interfaces it already followed the window
    second = schedule.packet_seen("a", T0)
    assert second.node_state_changed
    assert second.node_state is C
    third = schedule.packet_seen("a", T0 + sec(1))
    assert not third.node_state_changed
    assert third.transitions == ()
    assert third.actions == ()


# ---- time handling -----------------------------------------------------------------------


def test_naive_times_are_refused() -> None:
    naive = dt.datetime(2021, 8, 26, 12, 0)
    with pytest.raises(InvalidTimeError, match="timezone-aware"):
        CaptureSchedule(naive, None)
    schedule = CaptureSchedule()
    with pytest.raises(ValueError, match="timezone-aware"):
        schedule.tick(naive)
    with pytest.raises(InvalidTransitionError):
        schedule.add_interface("a", naive)
    with pytest.raises(TypeError):
        schedule.tick("2021-08-26T12:00:00Z")  # type: ignore[arg-type]
    assert schedule.now is None


def test_times_are_kept_in_utc() -> None:
    plus2 = dt.timezone(dt.timedelta(hours=2))
    schedule = CaptureSchedule(dt.datetime(2021, 8, 26, 14, 0, tzinfo=plus2), None)
    assert schedule.start_time == T0
    assert schedule.start_time is not None and schedule.start_time.tzinfo is UTC
    schedule.add_interface("a", dt.datetime(2021, 8, 26, 13, 59, tzinfo=plus2))
    assert schedule.next_deadline() == T0
    assert schedule.now is not None and schedule.now.utcoffset() == dt.timedelta(0)


def test_wall_clock_stepping_back_does_not_move_the_machine_back() -> None:
    schedule = CaptureSchedule(None, T0 + sec(10), now=T0)
    schedule.add_interface("a", T0)
    schedule.tick(T0 + sec(10))
    assert schedule.state("a") is F
    schedule.tick(T0 + sec(5))  # NTP stepped the clock back
    assert schedule.state("a") is F
    assert schedule.now == T0 + sec(10)


def _zones() -> list[dt.tzinfo]:
    zones: list[dt.tzinfo] = []
    ny = tz.gettz("America/New_York")  # dateutil ships its own database as a fallback
    assert ny is not None
    zones.append(ny)
    with contextlib.suppress(zoneinfo.ZoneInfoNotFoundError):
        zones.append(zoneinfo.ZoneInfo("America/New_York"))
    return zones


@pytest.mark.parametrize("ny", _zones(), ids=lambda z: type(z).__name__)
def test_dst_fall_back_fold(ny: dt.tzinfo) -> None:
    # 01:30 happens twice on 2021-11-07 in New York: EDT (05:30Z), then EST (06:30Z).
    start = dt.datetime(2021, 11, 7, 1, 30, tzinfo=ny)
    end = start.replace(fold=1)
    assert not end > start  # Python compares same-tzinfo times on the wall clock
    schedule = CaptureSchedule(start, end)
    assert schedule.start_time == dt.datetime(2021, 11, 7, 5, 30, tzinfo=UTC)
    assert schedule.end_time == dt.datetime(2021, 11, 7, 6, 30, tzinfo=UTC)
    schedule.add_interface("a", dt.datetime(2021, 11, 7, 1, 0, tzinfo=ny))  # 05:00Z
    assert schedule.state("a") is S
    assert schedule.tick(start).actions == (StartCapture("a"),)
    # 01:45 EDT (fold=0) is in the window; 01:45 EST (fold=1) is after it.
    schedule.tick(dt.datetime(2021, 11, 7, 1, 45, tzinfo=ny))
    assert schedule.state("a") is W
    schedule.tick(dt.datetime(2021, 11, 7, 1, 45, fold=1, tzinfo=ny))
    assert schedule.state("a") is F


@pytest.mark.parametrize("ny", _zones(), ids=lambda z: type(z).__name__)
def test_dst_spring_forward_gap(ny: dt.tzinfo) -> None:
    # On 2021-03-14 New York skips 02:00-03:00: 01:30 EST to 03:30 EDT is one hour.
    start = dt.datetime(2021, 3, 14, 1, 30, tzinfo=ny)
    end = dt.datetime(2021, 3, 14, 3, 30, tzinfo=ny)
    schedule = CaptureSchedule(start, end, now=start)
    schedule.add_interface("a", start)
    deadline = schedule.next_deadline()
    assert deadline is not None
    assert deadline - start == dt.timedelta(hours=1)
    schedule.tick(dt.datetime(2021, 3, 14, 6, 29, 59, tzinfo=UTC))
    assert schedule.state("a") is W
    schedule.tick(dt.datetime(2021, 3, 14, 7, 30, tzinfo=UTC))
    assert schedule.state("a") is F


def test_leap_day_window_and_retry_across_midnight() -> None:
    kiritimati = dt.timezone(dt.timedelta(hours=14))
    start = dt.datetime(2024, 2, 29, 0, 0, tzinfo=kiritimati)  # 2024-02-28T10:00Z
    end = dt.datetime(2024, 3, 1, 0, 0, tzinfo=dt.timezone(dt.timedelta(hours=-12)))
    schedule = CaptureSchedule(start, end)
    assert schedule.start_time == dt.datetime(2024, 2, 28, 10, 0, tzinfo=UTC)
    assert schedule.end_time == dt.datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
    before_midnight = dt.datetime(2024, 2, 28, 23, 59, 30, tzinfo=UTC)
    schedule.add_interface("a", before_midnight)
    for _ in range(7):  # push the backoff to its 60 s cap
        schedule.failure("a", "x", before_midnight)
        schedule.tick(schedule.next_deadline() or before_midnight)
        before_midnight = schedule.now or before_midnight
    schedule.failure("a", "x", before_midnight)
    retry = schedule.next_deadline()
    assert retry == before_midnight + sec(60)
    assert retry is not None and retry.date() == dt.date(2024, 2, 29)
    schedule.tick(dt.datetime(2024, 2, 29, 23, 59, 59, tzinfo=UTC))
    assert schedule.state("a") is W
    assert schedule.next_deadline() == dt.datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
    schedule.tick(dt.datetime(2024, 3, 1, 12, 0, tzinfo=UTC))
    assert schedule.state("a") is F

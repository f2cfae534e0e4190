"""Clocks: the protocol, the system clock and the fake one."""

from __future__ import annotations

import datetime as dt

import pytest

from packetcapture.clock import Clock, FakeClock, SystemClock, seconds_until
from packetcapture.testing import FakeClock as ExportedFakeClock

UTC = dt.UTC


def test_both_clocks_satisfy_the_protocol() -> None:
    assert isinstance(SystemClock(), Clock)
    assert isinstance(FakeClock(), Clock)
    assert ExportedFakeClock is FakeClock


def test_system_clock_is_utc_and_monotonic() -> None:
    clock = SystemClock()
    now = clock.now()
    assert now.tzinfo is UTC
    assert abs(now - dt.datetime.now(UTC)) < dt.timedelta(seconds=5)
    first = clock.monotonic()
    assert clock.monotonic() >= first
    clock.sleep_until(now - dt.timedelta(seconds=1))  # in the past: returns at once
    target = clock.now() + dt.timedelta(milliseconds=20)
    clock.sleep_until(target)
    assert clock.now() >= target


def test_fake_clock_advance_and_set() -> None:
    clock = FakeClock(dt.datetime(2024, 2, 28, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=5))))
    assert clock.now() == dt.datetime(2024, 2, 28, 7, 0, tzinfo=UTC)
    assert clock.now().tzinfo is UTC
    clock.advance(90)
    clock.advance(0.5)
    clock.advance(dt.timedelta(days=1))
    assert clock.now() == dt.datetime(2024, 2, 29, 7, 1, 30, 500000, tzinfo=UTC)
    assert clock.monotonic() == 86400 + 90.5
    clock.set(dt.datetime(2020, 1, 1, tzinfo=UTC))  # the wall clock steps back ...
    assert clock.now().year == 2020
    assert clock.monotonic() == 86400 + 90.5  # ... the monotonic one does not


def test_fake_clock_rejects_bad_input() -> None:
    clock = FakeClock()
    with pytest.raises(ValueError, match="negative"):
        clock.advance(-1)
    with pytest.raises(TypeError):
        clock.advance("1")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        clock.advance(True)
    with pytest.raises(ValueError, match="timezone-aware"):
        clock.set(dt.datetime(2021, 1, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        FakeClock(dt.datetime(2021, 1, 1))


def test_fake_clock_sleep_until_jumps() -> None:
    clock = FakeClock()
    start = clock.now()
    clock.sleep_until(start + dt.timedelta(minutes=5))
    assert clock.now() == start + dt.timedelta(minutes=5)
    clock.sleep_until(start)  # already past: no move
    assert clock.now() == start + dt.timedelta(minutes=5)
    assert clock.sleeps == [start + dt.timedelta(minutes=5), start]
    assert clock.monotonic() == 300.0
    assert "FakeClock(" in repr(clock)


def test_seconds_until() -> None:
    clock = FakeClock()
    assert seconds_until(clock, None) is None
    assert seconds_until(clock, clock.now() + dt.timedelta(seconds=2.5)) == 2.5
    assert seconds_until(clock, clock.now() - dt.timedelta(seconds=2)) == 0.0

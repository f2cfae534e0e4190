"""Clocks: where ``now`` comes from.

The schedule (:mod:`packetcapture.schedule`) never reads a clock; whoever drives it does, through
a :class:`Clock`. :class:`SystemClock` reads the real one. :class:`FakeClock` (also exported from
:mod:`packetcapture.testing`) only moves when told to, so tests of code that waits for deadlines
run instantly and deterministically: its :meth:`FakeClock.sleep_until` jumps straight to the
deadline instead of sleeping.

Wall-clock times are timezone-aware UTC ``datetime`` objects. ``monotonic()`` is a float number of
seconds for measuring durations; it never goes backwards, even when the wall clock is set back.
"""

from __future__ import annotations

import datetime as _dt
import time
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "FakeClock", "SystemClock", "seconds_until"]

_UTC = _dt.UTC


@runtime_checkable
class Clock(Protocol):
    """A source of time, and a way to wait for it."""

    def now(self) -> _dt.datetime:
        """Return the current wall-clock time, timezone-aware, in UTC."""
        ...

    def monotonic(self) -> float:
        """Return seconds on a clock that never goes backwards (for durations only)."""
        ...

    def sleep_until(self, deadline: _dt.datetime) -> None:
        """Block until the wall clock reaches ``deadline`` (return at once if it has)."""
        ...


def _aware(value: _dt.datetime, what: str) -> _dt.datetime:
    if not isinstance(value, _dt.datetime):
        raise TypeError(f"{what} must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware (got naive {value.isoformat()})")
    return value.astimezone(_UTC)


def seconds_until(clock: Clock, deadline: _dt.datetime | None) -> float | None:
    """Return the seconds from ``clock.now()`` to ``deadline``: ``None`` for no deadline, never < 0.

    Handy as a poll/select timeout when waiting for packets and a deadline at once.
    """
    if deadline is None:
        return None
    return max((_aware(deadline, "deadline") - clock.now()).total_seconds(), 0.0)


class SystemClock:
    """The real clocks: ``datetime.now(UTC)``, ``time.monotonic()`` and ``time.sleep()``."""

    def now(self) -> _dt.datetime:
        """Return the current UTC time."""
        return _dt.datetime.now(_UTC)

    def monotonic(self) -> float:
        """Return ``time.monotonic()``."""
        return time.monotonic()

    def sleep_until(self, deadline: _dt.datetime) -> None:
        """Sleep until ``deadline``, re-checking the wall clock after each wake-up."""
        deadline = _aware(deadline, "deadline")
        while True:
            left = (deadline - self.now()).total_seconds()
            if left <= 0:
                return
            time.sleep(left)

    def __repr__(self) -> str:
        return "SystemClock()"


#: Where a FakeClock starts unless told otherwise (the reference doc's example startTime).
DEFAULT_FAKE_START = _dt.datetime(2021, 8, 26, 12, 0, tzinfo=_UTC)


class FakeClock:
    """A clock for tests that moves only when told to.

    ``advance()`` moves both the wall clock and the monotonic clock forward; ``set()`` moves the
    wall clock only, to any time (also backwards), as an administrator or NTP would; the
    monotonic clock is unaffected. ``sleep_until()`` does not block: it advances the clock to the
    deadline (if it is in the future) and records the deadline in ``sleeps``.

    >>> import datetime as dt
    >>> clock = FakeClock(dt.datetime(2024, 2, 28, 23, 0, tzinfo=dt.UTC))
    >>> clock.advance(dt.timedelta(hours=2))
    >>> clock.now().isoformat()
    '2024-02-29T01:00:00+00:00'
    """

    def __init__(self, start: _dt.datetime = DEFAULT_FAKE_START, *, monotonic: float = 0.0):
        self._now = _aware(start, "start")
        self._monotonic = float(monotonic)
        #: Every deadline passed to :meth:`sleep_until`, in order.
        self.sleeps: list[_dt.datetime] = []

    def now(self) -> _dt.datetime:
        """Return the fake current time (UTC)."""
        return self._now

    def monotonic(self) -> float:
        """Return the fake monotonic time in seconds."""
        return self._monotonic

    def advance(self, delta: float | _dt.timedelta) -> None:
        """Move time forward by ``delta`` seconds (a number or a ``timedelta``; not negative)."""
        if isinstance(delta, _dt.timedelta):
            step = delta
        elif isinstance(delta, bool) or not isinstance(delta, int | float):
            raise TypeError(f"delta must be seconds or a timedelta, not {type(delta).__name__}")
        else:
            step = _dt.timedelta(seconds=delta)
        if step < _dt.timedelta(0):
            raise ValueError(f"cannot advance by a negative amount ({step})")
        self._now += step
        self._monotonic += step.total_seconds()

    def set(self, when: _dt.datetime) -> None:
        """Set the wall clock to ``when`` (timezone-aware; may go backwards)."""
        self._now = _aware(when, "when")

    def sleep_until(self, deadline: _dt.datetime) -> None:
        """Jump to ``deadline`` if it is in the future; never blocks."""
        deadline = _aware(deadline, "deadline")
        self.sleeps.append(deadline)
        if deadline > self._now:
            self.advance(deadline - self._now)

    def __repr__(self) -> str:
        return f"FakeClock({self._now.isoformat()!r}, monotonic={self._monotonic!r})"

"""When to rotate: a pure decision, kept apart from the rotation itself.

Mirrors CPython's ``logging.handlers`` split of ``shouldRollover`` and ``doRollover``: the
writer asks :func:`should_rotate` before each write (and on each tick) and, when it answers,
calls its own ``rotate()``. Times are Unix seconds passed in by the caller.
"""

from __future__ import annotations

import datetime as _dt
import enum

__all__ = ["RotationReason", "seconds_of", "should_rotate", "unix_microseconds"]

_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)


class RotationReason(enum.Enum):
    """Why a file is rotated."""

    SIZE = "size"
    TIME = "time"


def seconds_of(now: float | _dt.datetime) -> float:
    """Return ``now`` as Unix seconds: a number is taken as is, a datetime converted.

    A naive datetime is taken as UTC.
    """
    if isinstance(now, _dt.datetime):
        if now.tzinfo is None:
            now = now.replace(tzinfo=_dt.UTC)
        return (now - _EPOCH).total_seconds()
    return float(now)


def unix_microseconds(now: float | _dt.datetime) -> int:
    """Return ``now`` as whole Unix microseconds (exact for a datetime)."""
    if isinstance(now, _dt.datetime):
        if now.tzinfo is None:
            now = now.replace(tzinfo=_dt.UTC)
        return (now - _EPOCH) // _dt.timedelta(microseconds=1)
    return round(float(now) * 1_000_000)


def should_rotate(
    size: int,
    now: float,
    *,
    incoming: int,
    packets: int,
    period_start: float,
    max_size_bytes: int,
    rotation_seconds: int,
) -> RotationReason | None:
    """Decide whether the active file must be rotated before writing ``incoming`` bytes.

    ``size`` is the file's size so far (header included, buffered bytes included),
    ``packets`` how many packets it holds, ``period_start`` when the current rotation period
    began. A file without packets is never rotated. Size rotation happens before a write
    that would take the file past ``max_size_bytes`` (so a file exceeds the limit only when
    a single record does); time rotation once ``rotation_seconds`` have passed.
    ``incoming=0`` asks about time alone.
    """
    if packets <= 0:
        return None
    if incoming and size + incoming > max_size_bytes:
        return RotationReason.SIZE
    if now - period_start >= rotation_seconds:
        return RotationReason.TIME
    return None

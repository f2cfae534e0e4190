"""Real file descriptors that signal readiness for sources without a socket.

:class:`EventWakeup` is an eventfd that is readable while set. :class:`TimerWakeup` is a
timerfd (through ``ctypes``: the ``os`` module has no timerfd before Python 3.13) that can
also be armed to become readable at a future ``CLOCK_MONOTONIC`` time, which paced replay
needs so that a ``selectors`` loop sleeps until the next packet is due.
"""

from __future__ import annotations

import contextlib
import functools
import os

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    import ctypes
    from typing import Any

__all__ = ["EventWakeup", "TimerWakeup"]


class EventWakeup:
    """An eventfd: readable after :meth:`set` until :meth:`clear`."""

    def __init__(self) -> None:
        self._fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._set = False

    def fileno(self) -> int:
        """Return the descriptor."""
        return self._fd

    def set(self) -> None:
        """Make the descriptor readable."""
        if not self._set:
            os.eventfd_write(self._fd, 1)
            self._set = True

    def clear(self) -> None:
        """Make the descriptor not readable."""
        if self._set:
            with contextlib.suppress(BlockingIOError):
                os.eventfd_read(self._fd)
            self._set = False

    def close(self) -> None:
        """Close the descriptor."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


_CLOCK_MONOTONIC = 1
_TFD_NONBLOCK = os.O_NONBLOCK
_TFD_CLOEXEC = os.O_CLOEXEC
_TFD_TIMER_ABSTIME = 1


@functools.cache
def _lib() -> tuple[Any, ctypes.CDLL, type[ctypes.Structure]]:
    """Return ctypes, libc and ``struct itimerspec``; only paced replays import ctypes."""
    import ctypes

    class Timespec(ctypes.Structure):
        _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]

    class Itimerspec(ctypes.Structure):
        _fields_ = [("it_interval", Timespec), ("it_value", Timespec)]

    # The process's own symbols, libc's among them (ctypes.util.find_library("c") would
    # run ldconfig in a subprocess: ~5-10 ms of every start-up that opens a source).
    return ctypes, ctypes.CDLL(None, use_errno=True), Itimerspec


class TimerWakeup:
    """A timerfd: readable after :meth:`set`, or once the time given to :meth:`arm_at` passed."""

    def __init__(self) -> None:
        ctypes, libc, _ = _lib()
        fd = libc.timerfd_create(_CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        self._fd: int = fd

    def fileno(self) -> int:
        """Return the descriptor."""
        return self._fd

    def _settime(self, monotonic_ns: int) -> None:
        ctypes, libc, itimerspec = _lib()
        spec: Any = itimerspec()
        spec.it_value.tv_sec, spec.it_value.tv_nsec = divmod(monotonic_ns, 1_000_000_000)
        if libc.timerfd_settime(self._fd, _TFD_TIMER_ABSTIME, ctypes.byref(spec), None) < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))

    def _drain(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.read(self._fd, 8)

    def set(self) -> None:
        """Make the descriptor readable now."""
        self._settime(1)  # an absolute time in the past fires at once

    def arm_at(self, monotonic_ns: int) -> None:
        """Make the descriptor not readable until ``CLOCK_MONOTONIC`` reaches ``monotonic_ns``."""
        self._drain()
        self._settime(max(monotonic_ns, 1))

    def clear(self) -> None:
        """Make the descriptor not readable (disarm)."""
        self._settime(0)  # a zero value disarms
        self._drain()

    def close(self) -> None:
        """Close the descriptor."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

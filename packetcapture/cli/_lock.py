"""One `packetcapture run` per capture directory: an advisory lock file in it.

``run`` takes ``fcntl.flock(LOCK_EX)`` on ``{dir}/{ns}/{name}/.packetcapture.lock`` for each
capture before capturing, writes its pid there, and holds the lock until it exits (the
kernel releases it if the process dies, even by SIGKILL). A second run on the same
directory is refused, naming the holder, or waits with ``--wait``. ``status`` uses the lock
to tell a live run's state from one left by a run that is gone.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from pathlib import Path

from packetcapture.pcap._layout import open_capture_dir

__all__ = ["LOCK_FILE", "BusyError", "holder", "lock_capture_dir"]

#: Hidden and not a ``.pcap``: listings skip it, as the status file.
LOCK_FILE = ".packetcapture.lock"


class BusyError(Exception):
    """Another run holds the capture directory; ``pid`` is its process id, if known."""

    def __init__(self, pid: int | None) -> None:
        super().__init__(pid)
        self.pid = pid


def lock_capture_dir(
    capture_dir: Path, namespace: str, name: str, *, wait: bool, stop: threading.Event
) -> int:
    """Lock a capture's directory (made if missing); return the lock's descriptor.

    Raises :class:`BusyError` when another run holds it (with ``wait``: only once ``stop``
    is set while waiting), and ``OSError`` or ``PcapError`` when it cannot be opened.
    """
    dfd = open_capture_dir(capture_dir, namespace, name, create=True)
    try:
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(LOCK_FILE, flags, 0o644, dir_fd=dfd)
    finally:
        os.close(dfd)
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if not wait or stop.is_set():
                pid = _read_pid(fd)
                os.close(fd)
                raise BusyError(pid) from None
            time.sleep(0.1)  # polled, so that Ctrl-C ends the wait
    with contextlib.suppress(OSError):  # a full disk: the lock holds all the same
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def holder(directory: Path) -> int | None:
    """Return the pid of the run holding a capture directory; ``None`` when none does.

    ``0`` means held by a run whose pid is unknown.
    """
    try:
        fd = os.open(directory / LOCK_FILE, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _read_pid(fd) or 0
    except OSError:
        return None
    finally:
        os.close(fd)
    return None


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None

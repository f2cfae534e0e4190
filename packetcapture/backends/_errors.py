"""The one place where ``OSError`` becomes a :class:`~packetcapture.errors.BackendError`.

Backends wrap socket, file and descriptor calls in :func:`map_os_errors`; the raised error
names the interface, what was being done and the cause, and keeps the ``OSError`` as
``__cause__``. Errors meaning "the interface went down or away" are not failures while
capturing: :func:`interface_gone` lets a source end cleanly on them instead.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

from packetcapture.errors import (
    BackendBrokenError,
    BackendClosedError,
    BackendError,
    BackendUnavailableError,
)

__all__ = ["INTERFACE_GONE_ERRNOS", "interface_gone", "map_os_error", "map_os_errors"]

#: errno values a capture socket reports when its interface went down or was removed.
INTERFACE_GONE_ERRNOS = frozenset({errno.ENETDOWN, errno.ENXIO, errno.ENODEV})

_PERMISSION = frozenset({errno.EPERM, errno.EACCES})
_NO_SUPPORT = frozenset(
    {errno.EAFNOSUPPORT, errno.EPROTONOSUPPORT, errno.ENOPROTOOPT, errno.ESOCKTNOSUPPORT}
)
_NO_MEMORY = frozenset({errno.ENOMEM, errno.ENOBUFS})
_NO_FILE = frozenset({errno.ENOENT, errno.ENOTDIR, errno.EISDIR})

Phase = Literal["open", "capture"]


def interface_gone(exc: OSError) -> bool:
    """Whether ``exc`` says the interface went down or was removed."""
    return exc.errno in INTERFACE_GONE_ERRNOS


def map_os_error(exc: OSError, *, interface: str, action: str, phase: Phase) -> BackendError:
    """Return our error for ``exc`` (raised while doing ``action`` on ``interface``).

    While opening (``phase="open"``) missing privilege, interface, file, kernel support or
    memory make the backend *unavailable*; while capturing, a bad descriptor means the source
    was *closed* and anything else means it is *broken*.
    """
    code = exc.errno
    cause = exc.strerror or str(exc)
    where = f"{interface}: {action}"
    error: BackendError
    if code == errno.EBADF:
        error = BackendClosedError(f"{where}: source is closed ({cause})")
    elif phase == "open":
        if code in _PERMISSION:
            why = "permission denied: needs root or CAP_NET_RAW"
        elif code in INTERFACE_GONE_ERRNOS and code != errno.ENETDOWN:
            why = "no such interface"
        elif code in _NO_SUPPORT:
            why = "not supported by this kernel"
        elif code in _NO_MEMORY:
            why = "not enough memory for the capture buffer"
        elif code in _NO_FILE:
            why = "no such file"
        else:
            why = cause
        error = BackendUnavailableError(f"{where}: {why} ({cause})")
    else:
        error = BackendBrokenError(f"{where}: {cause}")
    error.__cause__ = exc
    return error


@contextmanager
def map_os_errors(interface: str, action: str, phase: Phase) -> Iterator[None]:
    """Re-raise any ``OSError`` in the block as :func:`map_os_error` says."""
    try:
        yield
    except OSError as exc:
        raise map_os_error(exc, interface=interface, action=action, phase=phase) from exc

"""Loggers for modules on the start-up path: :mod:`logging` is imported when a record needs it.

``get_logger(name)`` stands for ``logging.getLogger(name)``. Importing :mod:`logging` (with
the traceback, string and weakref modules it loads) is about 3% of a short ``packetcapture
run``, which, at the default level, logs nothing: its ``info`` and ``debug`` calls are
dropped. While nothing has imported :mod:`logging`, nothing can have configured it either,
so its levels are still the defaults (the root logger's ``WARNING``, or the level the CLI
is about to set, :func:`configure_on_first_use`): a call below that level is dropped here
without importing it, exactly as the real logger would drop it. Any other call (or any
call once :mod:`logging` is loaded, by anyone) goes to the real logger, found by name: the
bound method is returned to the caller, who calls it, so records name the caller's file,
function and line as usual.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up)
if TYPE_CHECKING:
    import logging
    from collections.abc import Callable

__all__ = ["configure_on_first_use", "get_logger"]

# The level the loggers have while logging is not loaded: the root logger's default, or the
# one the pending configuration sets.
_level = 30  # logging.WARNING
_LEVELS = {"debug": 10, "info": 20}
# What to run (once) before the first record goes to logging: the CLI's handler set-up.
_pending: list[Callable[[], None]] = []


def get_logger(name: str) -> logging.Logger:
    """Return a stand-in for ``logging.getLogger(name)`` that imports logging when needed."""
    return _LazyLogger(name)  # type: ignore[return-value]


def configure_on_first_use(level: int, configure: Callable[[], None]) -> None:
    """Run ``configure`` (which sets the level to ``level``) when logging is first needed.

    Until then, calls below ``level`` are dropped without importing logging. Used by the
    command line, whose configuration is one handler on the root logger. If logging is
    already loaded, ``configure`` runs now.
    """
    global _level  # noqa: PLW0603 - the process's one pending configuration
    if "logging" in sys.modules:
        configure()
        return
    _level = level
    _pending.append(configure)


def _drop(*args: object, **kwargs: object) -> None:
    """Drop a record below every logger's level while logging is not loaded."""


class _LazyLogger:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __getattr__(self, attr: str) -> object:
        if "logging" not in sys.modules and _LEVELS.get(attr, 99) < _level:
            return _drop
        return getattr(_logger(self.name), attr)

    def __repr__(self) -> str:
        return f"<lazy logger {self.name}>"


def _logger(name: str) -> logging.Logger:
    """Return the real logger (importing logging and running the pending configuration)."""
    import logging

    while _pending:
        _pending.pop()()
    return logging.getLogger(name)

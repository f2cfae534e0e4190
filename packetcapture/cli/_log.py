"""The CLI's log lines: warnings and errors in the CLI's own form, the rest with their logger."""

from __future__ import annotations

import logging
import sys

from packetcapture.cli._text import one_line

__all__ = ["CliLogFormatter", "setup_logging"]


class CliLogFormatter(logging.Formatter):
    """Warnings and errors as the CLI prints its own: ``packetcapture: warning: …``.

    Info and debug lines (``-v``, ``-vv``) keep their level and logger name
    (``INFO packetcapture.agent: …``). Every line is kept on one line.
    """

    def __init__(self) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as one line."""
        if record.levelno >= logging.WARNING:
            kind = "warning" if record.levelno < logging.ERROR else "error"
            return f"packetcapture: {kind}: {one_line(record.getMessage())}"
        return one_line(super().format(record))


def setup_logging(level: int) -> None:
    """Log records of ``level`` and above to stderr, in the CLI's form."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(CliLogFormatter())
    logging.basicConfig(level=level, handlers=[handler])

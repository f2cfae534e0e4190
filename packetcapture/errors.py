"""Every exception packetcapture raises.

The tree::

    PacketCaptureError                      root: catch this to catch everything of ours
    ├── ValidationError (ValueError)        a resource or setting is invalid; .problems
    ├── SelectorSyntaxError (ValueError)    a label selector does not parse; .column
    ├── FilterCompileError (ValueError)     filters cannot become a BPF program
    ├── InvalidTransitionError              an input the schedule state machine refuses
    │   └── InvalidTimeError (ValueError)   naive datetime, or end not after start
    │                                       (packetcapture.schedule)
    ├── PcapError                           reading or writing capture files; .path, .offset
    │   └── PcapTruncatedError              a file ends inside a record (packetcapture.pcap)
    └── BackendError                        a capture backend failed
        ├── BackendUnavailableError         cannot be used here (no root, no interface)
        │   └── LinktypeMismatchError       file/interface link type != the program's
        ├── BackendClosedError              the source was closed, or its interface went away
        └── BackendBrokenError              an I/O failure while capturing
            └── ReplayFileError (+PcapError) a replayed file is corrupt (backends.replay)

The subclasses in parentheses live beside the code that raises them and are re-exported from
``packetcapture``.

Errors raised because of an ``OSError`` keep it as ``__cause__``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = [
    "BackendBrokenError",
    "BackendClosedError",
    "BackendError",
    "BackendUnavailableError",
    "FilterCompileError",
    "InvalidTransitionError",
    "PacketCaptureError",
    "PcapError",
    "Problem",
    "SelectorSyntaxError",
    "ValidationError",
]

#: One validation problem: a path such as ``spec.filters[1].ports[0]`` and a message.
Problem = tuple[str, str]


class PacketCaptureError(Exception):
    """Root of every exception raised by packetcapture."""


class ValidationError(PacketCaptureError, ValueError):
    """A resource, document or setting is invalid.

    ``problems`` lists every problem found, each a ``(path, message)`` pair where the path
    names the field (``metadata.name``, ``spec.filters[1].ports[0]``; empty for the whole
    document). ``str()`` gives one ``path: message`` line per problem.
    """

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: list[Problem] = list(problems)
        if not self.problems:
            self.problems = [("", "invalid")]
        super().__init__("\n".join(self.lines()))

    def lines(self) -> list[str]:
        """Return one ``path: message`` line per problem."""
        return [f"{path}: {message}" if path else message for path, message in self.problems]

    def prefixed(self, prefix: str) -> ValidationError:
        """Return a copy whose paths are placed under ``prefix`` (``items[2]``, say)."""

        def join(path: str) -> str:
            if not path:
                return prefix
            return f"{prefix}{path}" if path.startswith("[") else f"{prefix}.{path}"

        return ValidationError((join(p), m) for p, m in self.problems)


_BLANKS = dict.fromkeys((*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029), " ")


class SelectorSyntaxError(PacketCaptureError, ValueError):
    """A label selector does not parse.

    ``selector`` is the source text, ``column`` the 1-based column of the problem and
    ``reason`` the bare message (worded as Calico's parser words it). ``str()`` shows the
    message, the source and a caret under the problem.
    """

    def __init__(self, reason: str, selector: str, column: int) -> None:
        self.reason = reason
        self.selector = selector
        self.column = column
        super().__init__(self.render())

    def render(self) -> str:
        """Return the message with the source line and a caret under the problem column."""
        # Every control or line-break character becomes one space: the source stays on one
        # line and the caret under the same column.
        shown = self.selector.translate(_BLANKS)
        caret = " " * max(self.column - 1, 0) + "^"
        return f"{self.reason} (column {self.column})\n    {shown}\n    {caret}"


class FilterCompileError(PacketCaptureError, ValueError):
    """Capture filters cannot be compiled into a valid classic BPF program."""


class InvalidTransitionError(PacketCaptureError):
    """The schedule state machine was given an input it cannot take in its current state."""


class PcapError(PacketCaptureError):
    """A capture file could not be read or written, or a file name is unsafe.

    ``path`` and ``offset`` say where, when known.
    """

    def __init__(self, message: str, *, path: str | None = None, offset: int | None = None):
        self.path = path
        self.offset = offset
        where = ""
        if path is not None:
            where = f"{path}: " if offset is None else f"{path} at byte {offset}: "
        super().__init__(where + message)


class BackendError(PacketCaptureError):
    """A capture backend failed."""


class BackendUnavailableError(BackendError):
    """The backend cannot be used here: missing privilege, interface or platform support."""


class BackendClosedError(BackendError):
    """The packet source is closed, or its interface went away."""


class BackendBrokenError(BackendError):
    """An I/O error while capturing."""


def format_problems(problems: Sequence[Problem], prefix: str = "") -> list[str]:
    """Render problems as ``prefix: path: message`` lines (used by the CLI)."""
    head = f"{prefix}: " if prefix else ""
    return [f"{head}{p}: {m}" if p else f"{head}{m}" for p, m in problems]

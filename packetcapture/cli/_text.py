"""Keep a message on one line whatever text from argv or a file ends up in it."""

from __future__ import annotations

__all__ = ["one_line", "usage_error"]

# C0 and C1 controls (newline, carriage return, escape sequences...) and the Unicode line
# and paragraph separators, each shown as its Python escape (`\n`, `\x1b`, `\u2028`); and
# the bytes of a name that is not UTF-8 (held as lone surrogates) as `\xff`.
_ESCAPES = {c: repr(chr(c))[1:-1] for c in (*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029)}
_ESCAPES.update({c: f"\\x{c - 0xDC00:02x}" for c in range(0xDC80, 0xDD00)})


def one_line(text: str) -> str:
    r"""Return ``text`` with control and line-break characters escaped (``a\nb``).

    A file name or value taken from the command line may hold any of them; printed as they
    are they would split an error message over several lines, or drive the terminal. The
    bytes of a name that is not UTF-8 show as ``\xff``. Printable text, non-ASCII letters
    included, is unchanged.
    """
    return text.translate(_ESCAPES)


def usage_error(command: str, message: str) -> int:
    """Print a usage error found after parsing as argparse prints its own; return 2.

    ``packetcapture COMMAND: error: MESSAGE (see 'packetcapture COMMAND --help')``.
    """
    import sys

    prog = f"packetcapture {command}"
    print(f"{prog}: error: {one_line(message)} (see '{prog} --help')", file=sys.stderr)
    return 2

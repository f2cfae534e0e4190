"""The ``packetcapture`` command line: an argparse front end over the library.

Each subcommand lives in its own module exposing ``register(subparsers)``; the module adds
its parser and sets ``func`` to a callable taking the parsed ``argparse.Namespace`` and
returning the exit code. Exit codes: 0 success, 1 invalid input or failure, 2 usage error.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from packetcapture._version import __version__
from packetcapture.errors import PacketCaptureError

# typing.TYPE_CHECKING without importing typing (~3 ms at start-up); type checkers know it.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any, NoReturn

__all__ = ["main"]

# Subcommand modules, in the order `--help` lists them.
COMMAND_MODULES = [
    "packetcapture.cli._run",
    "packetcapture.cli._validate",
    "packetcapture.cli._files",
    "packetcapture.cli._selector",
    "packetcapture.cli._compile",
    "packetcapture.cli._summary",
    "packetcapture.cli._node",
    "packetcapture.cli._kube",
]
# The module registering each command (a test checks it against what they register): a
# command line naming one builds only that module's parsers, not all fifteen.
COMMANDS = {
    "run": "packetcapture.cli._run",
    "status": "packetcapture.cli._run",
    "plan": "packetcapture.cli._run",
    "validate": "packetcapture.cli._validate",
    "copy": "packetcapture.cli._files",
    "clean": "packetcapture.cli._files",
    "merge": "packetcapture.cli._files",
    "selector": "packetcapture.cli._selector",
    "compile": "packetcapture.cli._compile",
    "summary": "packetcapture.cli._summary",
    "node": "packetcapture.cli._node",
    "get": "packetcapture.cli._kube",
    "describe": "packetcapture.cli._kube",
    "stream": "packetcapture.cli._kube",
    "follow": "packetcapture.cli._kube",
}


# True while main() runs as the program (its arguments from sys.argv), not a library call.
_as_program = False
# Commands whose code calls imports_done() once it has imported what it needs. Run as the
# program, they import with the garbage collector paused: imports make many objects and
# next to no garbage, so the collections they would set off are wasted work.
_SETTLES = frozenset({"run", "status", "plan", "validate"})
_gc_paused = False
# Commands whose code (and the libraries it uses) log only through packetcapture._lazylog.
_LAZY_LOGGING = frozenset({"run", "status", "plan"})


def imports_done() -> None:
    """Tell the CLI that a command has imported what it needs (called by the commands).

    Run as the program, the objects those imports made (classes, functions, modules: all
    live until exit) are moved out of the garbage collector's sight with ``gc.freeze()``:
    the collections at interpreter exit then skip them, about 15 ms of every short command.
    The collector, paused for the imports, runs again: objects the command makes from now
    on are collected as usual. A library call of main() (a test, an embedding program)
    freezes and pauses nothing.
    """
    global _gc_paused  # noqa: PLW0603 - the process's one pause, undone once
    if _as_program:
        import gc

        gc.freeze()
        if _gc_paused:
            gc.enable()
            _gc_paused = False


def _pause_collector() -> None:
    """Pause the garbage collector for a command's imports (imports_done() resumes it)."""
    import gc

    global _gc_paused  # noqa: PLW0603 - the process's one pause
    _gc_paused = gc.isenabled()
    gc.disable()


class _Formatter(argparse.HelpFormatter):
    """argparse's help formatter, told the terminal's width without importing shutil.

    argparse makes a formatter for every flag added and asks ``shutil`` for the width;
    importing shutil (and the compression modules it loads) is a cost every command paid.
    """

    def __init__(
        self,
        prog: str,
        indent_increment: int = 2,
        max_help_position: int = 24,
        width: int | None = None,
    ) -> None:
        if width is None:
            width = _terminal_columns() - 2
        super().__init__(prog, indent_increment, max_help_position, width)


def _terminal_columns() -> int:
    """Return the terminal's columns as ``shutil.get_terminal_size`` finds them.

    That is ``$COLUMNS``, else standard output's terminal, else 80.
    """
    import os

    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns if columns > 0 else 80


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line (exit 2), pointing at ``--help``.

    Flags must be spelt out: prefix matching is off (``--endpoint`` is not ``--endpoints``),
    for the top-level parser and every subcommand's (they are made with this class).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["allow_abbrev"] = False
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        """Print ``prog: error: message (see prog --help)`` and exit 2."""
        from packetcapture.cli._text import one_line  # argparse echoes argv as it is

        self.exit(2, f"{self.prog}: error: {one_line(message)} (see '{self.prog} --help')\n")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """Build the argument parser with every subcommand registered.

    With ``command`` (a name in :data:`COMMANDS`) only the parsers of the module defining it
    are built: enough to parse a command line naming it, at a fraction of the start-up.
    """
    modules = [COMMANDS[command]] if command in COMMANDS else COMMAND_MODULES
    parser = _Parser(
        prog="packetcapture",
        description="Calico PacketCapture: validate, select, compile filters and capture.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="log more (repeat for debug)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in modules:
        importlib.import_module(name).register(sub)
    # `-v` also after the subcommand (`packetcapture run -v ...`); counts add up with the
    # ones before it. A parser registered under aliases gets the flag once.
    for each in {id(p): p for p in sub.choices.values()}.values():
        each.add_argument(
            "-v",
            "--verbose",
            dest="sub_verbose",
            action="count",
            default=0,
            help="log more (repeat for debug)",
        )
    return parser


def _subcommand(parser: argparse.ArgumentParser, name: str | None) -> argparse.ArgumentParser:
    """Return the parser of subcommand ``name`` (``parser`` itself if there is none)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and name in action.choices:
            chosen: argparse.ArgumentParser = action.choices[name]
            return chosen
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code (the console script exits with it)."""
    global _as_program  # noqa: PLW0603 - one flag for the process's one program run
    _undecodable_names_printable()
    if argv is None:
        _as_program = True
        argv = sys.argv[1:]
    parser = build_parser(_command_named(argv))
    args, extra = parser.parse_known_args(argv)
    if extra:
        # Report it as the subcommand's error, pointing at `packetcapture COMMAND --help`.
        _subcommand(parser, args.command).error(f"unrecognized arguments: {' '.join(extra)}")
    # Only now: --help, --version and usage errors never need logging; nor do commands
    # whose code logs nothing (they set `logs=False`), which skip importing logging.
    if getattr(args, "logs", True):
        _setup_logging(args.verbose + getattr(args, "sub_verbose", 0), args.command)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    if _as_program and args.command in _SETTLES:
        _pause_collector()
    if args.command in _SETTLES:
        # Their code reads YAML: PyYAML without compiling what only its pure reader uses.
        from packetcapture._yaml import import_yaml

        import_yaml()
    try:
        code: int = func(args)
    except KeyboardInterrupt:
        return 130
    except PacketCaptureError as exc:
        # Last line of defence: our errors are always one clean message, never a traceback.
        print(f"packetcapture: error: {_one_line(str(exc))}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"packetcapture: error: {_one_line(str(exc))}", file=sys.stderr)
        return 1
    return code


def _setup_logging(verbose: int, command: str | None) -> None:
    """Log warnings (info with ``verbose`` 1, debug with 2 or more) to stderr, in our form.

    Run as the program, the commands whose code logs through :mod:`packetcapture._lazylog`
    set this up when a record is first logged: a run that logs nothing does not import
    logging at all.
    """
    level = 30 - 10 * min(verbose, 2)  # logging.WARNING, INFO, DEBUG

    def setup() -> None:
        from packetcapture.cli._log import setup_logging

        setup_logging(level)

    if _as_program and command in _LAZY_LOGGING:
        from packetcapture._lazylog import configure_on_first_use

        configure_on_first_use(level, setup)
    else:
        setup()


def _command_named(argv: Sequence[str]) -> str | None:
    """Return the subcommand ``argv`` names, or None when it names none (or asks for help).

    Only the top level's own options may come before it: ``-v``/``--verbose`` (``-vv``).
    Anything else there (``--help``, ``--version``, a typo) gets the full parser, whose
    help and errors list every command.
    """
    for arg in argv:
        if arg == "--verbose" or (arg.startswith("-v") and set(arg[1:]) == {"v"}):
            continue
        return arg if arg in COMMANDS else None
    return None


def _undecodable_names_printable() -> None:
    """Let names that are not UTF-8 be printed, as the original bytes (like ``ls`` does).

    argv and file names hold such bytes as lone surrogates; outside Python's UTF-8 mode
    standard output is strict, so printing one (``FILE: ok``) would raise.
    """
    for stream in (sys.stdout, sys.stderr):
        if getattr(stream, "errors", None) == "strict" and hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="surrogateescape")


def _one_line(text: str) -> str:
    from packetcapture.cli._text import one_line

    lines = [one_line(line) for line in text.split("\n") if line.strip()]
    return " | ".join(lines)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

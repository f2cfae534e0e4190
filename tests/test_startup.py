"""Start-up stays cheap: the CLI and ``import packetcapture`` load only what they use.

Each check runs in a fresh interpreter, because this test process has long since imported
everything. No timings are asserted: the modules loaded are what decides start-up time.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from packetcapture.cli import COMMAND_MODULES
from tests.conftest import readme_run, require_root

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
# The subcommand modules (built only when a parser needs them).
_MODULES = tuple(COMMAND_MODULES)

# Dependencies and subpackages that parsing arguments never needs.
HEAVY = (
    "attr",
    "attrs",
    "cattrs",
    "ctypes",
    "dateutil",
    "importlib.metadata",
    "lark",
    "logging",
    "yaml",
    "packetcapture.agent",
    "packetcapture.backends",
    "packetcapture.bpf",
    "packetcapture.bpf._compiler",
    "packetcapture.model",
    "packetcapture.pcap",
    "packetcapture.selector",
    "packetcapture.serde",
    "packetcapture.cli._run_impl",
)


def _run(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=False
    )


def _loaded_after(code: str, *args: str) -> set[str]:
    """Run ``code`` in a fresh interpreter; return the modules loaded when it ended."""
    done = _run(
        "import atexit, json, sys\n"
        "atexit.register(lambda: print(json.dumps(sorted(sys.modules)), file=sys.stderr))\n" + code,
        *args,
    )
    return set(json.loads(done.stderr.strip().splitlines()[-1]))


def test_import_cli_loads_no_heavy_module() -> None:
    loaded = _loaded_after("import packetcapture.cli")
    assert "packetcapture.cli" in loaded
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))
    # Not even the subcommand modules: they are imported when the parser is built.
    assert "packetcapture.cli._validate" not in loaded


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["--version"],
        ["run", "--help"],
        ["validate", "--help"],
        ["compile", "--help"],
        ["merge", "--help"],
        ["summary", "--help"],
        ["validate"],  # a usage error
        ["frob"],
    ],
)
def test_parsing_loads_no_heavy_module(argv: list[str]) -> None:
    code = "import sys\nfrom packetcapture.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    loaded = _loaded_after(code, *argv)
    assert loaded & set(_MODULES)  # the parser was built
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))


def test_commands_name_the_module_registering_each_command() -> None:
    import argparse
    import importlib

    from packetcapture.cli import COMMAND_MODULES, COMMANDS, _Parser

    registered: dict[str, str] = {}
    for module in COMMAND_MODULES:
        parser = _Parser(prog="packetcapture")
        sub = parser.add_subparsers(dest="command", parser_class=_Parser)
        importlib.import_module(module).register(sub)
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                registered.update(dict.fromkeys(action.choices, module))
    assert registered == COMMANDS


@pytest.mark.parametrize(
    ("argv", "built"),
    [
        (["run", "--help"], {"run"}),
        (["-v", "validate", "--help"], {"validate"}),
        # copy/clean take --kubernetes and its flags from _kube.
        (["-v", "merge", "--help"], {"files", "kube"}),
        (["-vv", "--verbose", "get", "--help"], {"kube"}),
    ],
)
def test_a_named_command_builds_only_its_module(argv: list[str], built: set[str]) -> None:
    code = "import sys\nfrom packetcapture.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    loaded = _loaded_after(code, *argv)
    # _run also holds the flag types other commands share.
    allowed = {f"packetcapture.cli._{name}" for name in built | {"run"}}
    assert loaded & set(_MODULES) <= allowed
    assert {f"packetcapture.cli._{name}" for name in built} <= loaded


@pytest.mark.parametrize("argv", [["--help"], ["-v"], ["frob"], ["-h", "run"], []])
def test_no_command_named_builds_every_command(argv: list[str]) -> None:
    code = "import sys\nfrom packetcapture.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    loaded = _loaded_after(code, *argv)
    assert set(_MODULES) <= loaded


def test_validate_loads_what_it_needs_and_no_more() -> None:
    code = "import sys\nfrom packetcapture.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    loaded = _loaded_after(code, "validate", "-q", str(EXAMPLES / "sample-capture.yaml"))
    assert {"packetcapture.serde", "packetcapture.model", "yaml"} <= loaded
    for name in ("packetcapture.agent", "packetcapture.bpf._compiler", "packetcapture.pcap"):
        assert name not in loaded
    # A valid document never needs cattrs (the fast lane loads it)...
    assert "cattrs" not in loaded


def test_an_invalid_document_is_explained_by_cattrs(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    text = (EXAMPLES / "sample-capture.yaml").read_text().replace("- 80", "- 80000")
    bad.write_text(text)
    code = "import sys\nfrom packetcapture.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    loaded = _loaded_after(code, "validate", str(bad))
    # ...an invalid one does: its detailed error tree names every problem with its path.
    assert {"cattrs", "cattrs.errors"} <= loaded
    done = _run(code, "validate", str(bad))
    assert done.returncode == 1
    assert "spec.filters[0].ports[0]" in done.stderr + done.stdout


def test_import_package_loads_no_subpackage() -> None:
    loaded = _loaded_after("import packetcapture")
    ours = {m for m in loaded if m.startswith("packetcapture")}
    assert ours == {"packetcapture", "packetcapture._version"}


def test_public_names_resolve_lazily_in_a_fresh_interpreter() -> None:
    code = """
import sys
import packetcapture

assert "packetcapture.model" not in sys.modules
from packetcapture import PacketCapture
from packetcapture.model import PacketCapture as Defined
assert PacketCapture is Defined
assert "packetcapture.agent" not in sys.modules  # only what was asked for

for name in packetcapture.__all__:
    getattr(packetcapture, name)
    assert name in vars(packetcapture), name  # kept: later lookups skip __getattr__
assert set(packetcapture.__all__) <= set(dir(packetcapture))
assert "TYPE_CHECKING" not in vars(packetcapture)

# Submodules the package used to import eagerly are still attributes.
for sub in ("agent", "backends", "bpf", "clock", "errors", "model", "pcap", "schedule",
            "selector", "serde", "validation"):
    assert getattr(packetcapture, sub) is sys.modules["packetcapture." + sub], sub

try:
    packetcapture.Nope
except AttributeError as exc:
    assert str(exc) == "module 'packetcapture' has no attribute 'Nope'", exc
else:
    raise AssertionError("packetcapture.Nope resolved")
print("ok")
"""
    done = _run(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "ok\n"


def test_star_import_binds_every_public_name() -> None:
    code = """
ns = {}
exec("from packetcapture import *", ns)
import packetcapture
missing = [n for n in packetcapture.__all__ if ns.get(n) is not getattr(packetcapture, n)]
assert not missing, missing
from packetcapture.agent import NodeAgent
assert ns["NodeAgent"] is NodeAgent
print("ok")
"""
    done = _run(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "ok\n"


def test_defaults_are_one_value_everywhere() -> None:
    from packetcapture import _defaults, backends, bpf, pcap
    from packetcapture.backends import base

    assert bpf.DEFAULT_SNAPLEN == backends.DEFAULT_SNAPLEN == base.DEFAULT_SNAPLEN == 262144
    assert bpf.DEFAULT_SNAPLEN is _defaults.DEFAULT_SNAPLEN
    assert pcap.DEFAULT_CAPTURE_DIR == _defaults.DEFAULT_CAPTURE_DIR == "/var/log/calico/pcap"


# What each command must not load: the parts of the package it does not use, and the
# dependencies those parts bring (start-up time is mostly imports and what they build).
_SELECTOR_UNNEEDED = (
    "attr",
    "attrs",
    "cattrs",
    "lark",
    "yaml",
    "hashlib",
    "packetcapture.model",
    "typing",  # annotations only (TYPE_CHECKING); the generic index loads on first use
    "packetcapture.selector._index",
)
_RUN_REPLAY_UNNEEDED = (
    "lark",
    "importlib.metadata",  # the entry-point scan: shipped backends resolve without it
    "ctypes.util",  # find_library runs ldconfig
    "socket",
    "difflib",
    "packetcapture.backends.afpacket",
    "packetcapture.backends.memory",
    "hashlib",  # OpenSSL: only a status file name too long for the file system needs it
    "ctypes",  # timerfd: only a paced replay (--speed) needs it
    "logging",  # a run that logs nothing (at the default level) never needs it
    "packetcapture.pcap._merge",
    "packetcapture.cli._kube",  # other commands' parsers are not built
    "packetcapture.cli._summary",
    "cattrs",  # valid documents load through the fast lane; cattrs explains invalid ones
    # The sample's few records are filtered by the VM: no generated code, no text forms,
    # nothing attached to a socket.
    "packetcapture.bpf._codegen",
    "packetcapture.bpf._disasm",
    "packetcapture.bpf._attach",
    "packetcapture.bpf._typed",  # the compiler and the VM work on raw instructions
)


def test_selector_loads_neither_attrs_nor_lark() -> None:
    loaded = _loaded_after("import packetcapture.selector as s\ns.parse('a == \"b\"')")
    assert "packetcapture.selector._tables" in loaded
    assert loaded.isdisjoint(_SELECTOR_UNNEEDED), sorted(loaded & set(_SELECTOR_UNNEEDED))


def test_run_replay_loads_only_the_replay_path(tmp_path: Path) -> None:
    # As the console script calls it: main() reads sys.argv (the program's run).
    code = "import sys\nfrom packetcapture.cli import main\nsys.exit(main())\n"
    argv = readme_run(tmp_path)
    loaded = _loaded_after(code, *argv)
    assert {"packetcapture.agent", "packetcapture.backends.replay", "yaml"} <= loaded  # it ran
    assert (tmp_path / "sample-namespace" / "sample-capture").is_dir()
    assert loaded.isdisjoint(_RUN_REPLAY_UNNEEDED), sorted(loaded & set(_RUN_REPLAY_UNNEEDED))


def test_compiling_and_running_a_filter_loads_only_the_compiler_and_the_vm() -> None:
    code = """
import sys
from packetcapture.bpf import compile_filters
from packetcapture.model import PacketCaptureRule

prog = compile_filters([PacketCaptureRule("TCP", [80])])
assert prog.run(bytes(64)) == 0
lazy = ("_codegen", "_disasm", "_attach", "_typed")
assert not [m for m in lazy if "packetcapture.bpf." + m in sys.modules]
# Generated code and the text form work on raw opcodes: no typed instruction classes.
prog.executor(), prog.disassemble()
assert "packetcapture.bpf._typed" not in sys.modules
# The lazily loaded parts are there on first use, the package's names as before.
import packetcapture.bpf as bpf
from packetcapture.bpf._attach import attach
from packetcapture.bpf._disasm import disassemble
assert bpf.attach is attach and bpf.disassemble is disassemble and "detach" in dir(bpf)
from packetcapture.bpf._typed import ALUOp, decode
assert bpf.ALUOp is ALUOp and bpf.decode is decode and "JumpIf" in dir(bpf)
assert prog.disassemble().startswith("(000) ldh      [12]")
assert prog.executor()(bytes(64)) == 0
assert all("packetcapture.bpf." + m in sys.modules for m in lazy)
print("ok")
"""
    done = _run(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "ok\n"


def test_a_live_capture_attaches_its_filter_without_ctypes() -> None:
    # The filter's address comes from array, which socket imports anyway: ctypes would
    # cost every live run 3 ms of start-up. (An AF_PACKET socket on lo: root only.)
    require_root()
    code = """
from packetcapture.backends.afpacket import AfPacketBackend
from packetcapture.bpf import compile_filters
from packetcapture.model import PacketCaptureRule

source = AfPacketBackend().open("lo", compile_filters([PacketCaptureRule("UDP", [9])]))
source.close()
"""
    loaded = _loaded_after(code)
    assert {"socket", "packetcapture.bpf._attach"} <= loaded  # it attached a filter
    assert "ctypes" not in loaded


def test_validate_loads_no_capture_machinery() -> None:
    code = "import sys\nfrom packetcapture.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    loaded = _loaded_after(code, "validate", "-q", str(EXAMPLES / "sample-capture.yaml"))
    unneeded = {"lark", "importlib.metadata", "socket", "ctypes", "packetcapture.backends"}
    assert loaded.isdisjoint(unneeded), sorted(loaded & unneeded)


@pytest.mark.parametrize(("as_program", "frozen"), [(True, True), (False, False)])
def test_only_a_program_run_freezes_what_its_imports_made(as_program: bool, frozen: bool) -> None:
    # Run as the program, the command's imports are moved out of the collector's sight
    # (exit is cheaper); main() called by a library or a test leaves the collector alone.
    sample = str(EXAMPLES / "sample-capture.yaml")
    call = "main()" if as_program else f"main(['validate', '-q', {sample!r}])"
    code = (
        "import atexit, gc, sys\n"
        "atexit.register(lambda: print('frozen', gc.get_freeze_count(), file=sys.stderr))\n"
        "from packetcapture.cli import main\n"
        f"code = {call}\n"
        "assert code == 0, code\n"
    )
    done = _run(code, "validate", "-q", sample)
    assert done.returncode == 0, done.stderr
    count = int(done.stderr.split("frozen ")[-1])
    assert (count > 10_000) is frozen, count


def _settle_argv(command: str, tmp: Path) -> list[str]:
    sample = str(EXAMPLES / "sample-capture.yaml")
    endpoints = str(EXAMPLES / "endpoints.yaml")
    return {
        "validate": ["validate", "-q", sample],
        "run": ["run", sample, "--endpoints", endpoints, "--node", "node-1",
                "--replay-dir", str(EXAMPLES / "traffic"), "--capture-dir", str(tmp)],
        "status": ["status", "--capture-dir", str(tmp), "--node", "node-1",
                   "sample-namespace/sample-capture"],
        "plan": ["plan", sample, "--endpoints", endpoints, "--node", "node-1"],
    }[command]  # fmt: skip


@pytest.mark.parametrize("command", sorted(__import__("packetcapture.cli").cli._SETTLES))
def test_a_command_that_pauses_the_collector_runs_it_again(command: str, tmp_path: Path) -> None:
    # Run as the program, these commands import with the collector paused; each must call
    # imports_done(), which freezes the imports and lets the collector run again.
    code = (
        "import atexit, gc, sys\n"
        "atexit.register(lambda: print('gc', gc.isenabled(), gc.get_freeze_count() > 10_000,"
        " file=sys.stderr))\n"
        "from packetcapture.cli import main\n"
        "sys.exit(main())\n"
    )
    done = _run(code, *_settle_argv(command, tmp_path))
    assert done.returncode in (0, 1), done.stderr  # status of a capture not run: 1
    assert done.stderr.splitlines()[-1] == "gc True True", done.stderr


@pytest.mark.parametrize("columns", ["60", "200", "abc", "0", "-5", None])
def test_help_width_is_what_shutil_would_say(
    monkeypatch: pytest.MonkeyPatch, columns: str | None
) -> None:
    # The CLI's formatter finds the width without importing shutil; the same answer.
    import shutil

    from packetcapture.cli import _terminal_columns

    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", columns)
    assert _terminal_columns() == shutil.get_terminal_size().columns


@pytest.mark.parametrize(
    "argv",
    [
        ["validate", str(EXAMPLES / "sample-capture.yaml"), str(EXAMPLES / "endpoints.yaml")],
        ["validate", "-v", str(EXAMPLES / "sample-capture-scheduled.yaml")],
        ["validate", str(EXAMPLES / "traffic" / "cali1a2b3c4d5e6.pcap")],  # not YAML
        ["compile", str(EXAMPLES / "sample-capture.yaml")],
        ["selector", "app == 'web'", "--labels", "app=web"],
    ],
)
def test_commands_that_log_nothing_do_not_load_logging(argv: list[str]) -> None:
    # They set logs=False: nothing on their path may import logging (or a warning would
    # come out without the CLI's own form).
    code = "import sys\nfrom packetcapture.cli import main\nmain(sys.argv[1:])\n"
    loaded = _loaded_after(code, *argv)
    assert "logging" not in loaded


def test_parsing_a_command_loads_no_shutil() -> None:
    code = "import sys\nfrom packetcapture.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    loaded = _loaded_after(code, "validate", "-q", str(EXAMPLES / "sample-capture.yaml"))
    assert "shutil" not in loaded

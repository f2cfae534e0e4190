"""The schedule's docs are current and their examples run; the core stays free of I/O imports."""

from __future__ import annotations

import ast
import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

import packetcapture.schedule
import packetcapture.testing
from packetcapture.clock import FakeClock

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "schedule.md"
SCRIPT = REPO / "scripts" / "render_state_diagram.py"


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("render_state_diagram", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_blocks_are_current() -> None:
    script = load_script()
    text = DOC.read_text(encoding="utf-8")
    assert script.render_doc(text) == text, "run scripts/render_state_diagram.py"


def test_render_script_check_mode(tmp_path: Path) -> None:
    stale = tmp_path / "schedule.md"
    stale.write_text(
        DOC.read_text(encoding="utf-8").replace("stateDiagram-v2", "stateDiagram-old"),
        encoding="utf-8",
    )
    cmd = [sys.executable, str(SCRIPT), "--check", "--doc"]
    assert subprocess.run([*cmd, str(DOC)], check=False).returncode == 0
    failed = subprocess.run([*cmd, str(stale)], capture_output=True, text=True, check=False)
    assert failed.returncode == 1
    assert "out of date" in failed.stderr
    subprocess.run([sys.executable, str(SCRIPT), "--doc", str(stale)], check=True)
    assert stale.read_text(encoding="utf-8") == DOC.read_text(encoding="utf-8")


def test_diagram_has_an_edge_for_every_state_change() -> None:
    script = load_script()
    diagram = script.render_mermaid()
    for (state, _event), rules in packetcapture.schedule.TRANSITIONS.items():
        for rule in rules:
            if rule.target is state and not rule.actions:
                continue
            src = "[*]" if state is None else state.value
            dst = "[*]" if rule.target is None else rule.target.value
            assert f"    {src} --> {dst} : " in diagram
    table = script.render_table()
    rows = sum(len(r) for r in packetcapture.schedule.TRANSITIONS.values())
    assert len(table.splitlines()) == rows + 2


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)


@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_doc_examples_run(index: int) -> None:
    code = python_blocks()[index]
    exec(compile(code, f"{DOC}:block{index}", "exec"), {"__name__": "docs_example"})


def test_doc_examples_found() -> None:
    assert len(python_blocks()) >= 4


FORBIDDEN = {"time", "socket", "os", "threading", "select", "subprocess", "asyncio"}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_schedule_does_no_io_imports() -> None:
    path = Path(packetcapture.schedule.__file__)
    assert imported_modules(path) & FORBIDDEN == set()


def test_testing_exports_fake_clock() -> None:
    assert "FakeClock" in packetcapture.testing.__all__
    assert packetcapture.testing.FakeClock is FakeClock
    assert packetcapture.schedule.__all__ == sorted(packetcapture.schedule.__all__)
    for name in packetcapture.schedule.__all__:
        assert getattr(packetcapture.schedule, name).__doc__ or name.isupper()

"""The docs stay true: links resolve, every command is documented, examples run."""

from __future__ import annotations

import doctest
import os
import re
import tempfile
from pathlib import Path

import pytest

from packetcapture.cli import COMMAND_MODULES, build_parser
from tests.conftest import REPO

DOCS = REPO / "docs"
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_every_relative_link_resolves() -> None:
    broken = []
    for page in [*DOCS.glob("*.md"), REPO / "README.md"]:
        for target in LINK.findall(page.read_text()):
            if "://" in target:
                continue
            if not (page.parent / target).exists():
                broken.append(f"{page.name}: {target}")
    assert broken == []


def test_every_page_is_linked_from_the_index() -> None:
    index = (DOCS / "index.md").read_text()
    pages = {p.name for p in DOCS.glob("*.md")} - {"index.md"}
    assert {p for p in pages if f"({p})" not in index} == set()


def test_every_command_is_in_the_cli_reference() -> None:
    reference = (DOCS / "cli.md").read_text()
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    commands = set(sub.choices)  # type: ignore[arg-type]
    assert len(commands) >= len(COMMAND_MODULES)
    assert {c for c in commands if f"`{c}" not in reference} == set()


def test_run_flags_are_documented() -> None:
    reference = (DOCS / "cli.md").read_text()
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    run = sub.choices["run"]  # type: ignore[index]
    flags = {s for a in run._actions for s in a.option_strings if s.startswith("--")} - {"--help"}
    assert {f for f in flags if f"`{f}" not in reference} == set()


def _python_blocks(page: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", page.read_text(), re.S)


def test_quickstart_python_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (block,) = _python_blocks(DOCS / "quickstart.md")
    monkeypatch.chdir(REPO)
    code = block.replace('"./captures"', repr(os.fspath(tmp_path)))
    namespace: dict[str, object] = {}
    exec(compile(code, "quickstart.md", "exec"), namespace)
    assert (tmp_path / "sample-namespace" / "sample-capture").is_dir()


def test_serde_python_example_runs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    block = _python_blocks(DOCS / "serde.md")[0]
    monkeypatch.chdir(REPO)
    exec(compile(block, "serde.md", "exec"), {})
    assert "kind: PacketCapture" in capsys.readouterr().out


def test_serde_dump_example_runs() -> None:
    """The "What dumps writes" example asserts the exact output of dumps and to_dict."""
    (block,) = [b for b in _python_blocks(DOCS / "serde.md") if "assert pc.dumps(cap) ==" in b]
    exec(compile(block, "serde.md", "exec"), {})


def _doctest_pages() -> list[Path]:
    return sorted(p for p in DOCS.glob("*.md") if "\n>>> " in p.read_text())


@pytest.mark.parametrize("page", _doctest_pages(), ids=lambda p: p.name)
def test_page_doctests_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every ``>>>`` example of every page runs, from the repository root, and prints what
    the page shows; temporary directories the examples make go under ``tmp_path``."""
    monkeypatch.chdir(REPO)
    monkeypatch.setattr(tempfile, "tempdir", os.fspath(tmp_path))
    test = doctest.DocTestParser().get_doctest(page.read_text(), {}, page.name, str(page), 0)
    assert test.examples
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    assert runner.summarize(verbose=False).failed == 0


def test_api_reference_pages_have_doctests() -> None:
    names = {p.name for p in _doctest_pages()}
    assert {"api.md", "backends.md", "bpf.md", "files.md", "selector.md"} <= names

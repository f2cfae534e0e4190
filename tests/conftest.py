"""Shared fixtures: peer-tool and root requirements.

Tests that need a peer tool (tcpdump, tshark, capinfos) skip when it is missing on a
developer machine, but fail in CI (``CI`` set), where `.ci/run` installs them.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).parent.parent


def readme_run(capture_dir: Path) -> list[str]:
    """Return the README's quick-start ``run`` command line (without the program)."""
    examples = REPO / "examples"
    return [
        "run",
        str(examples / "sample-capture.yaml"),
        "--endpoints",
        str(examples / "endpoints.yaml"),
        "--node",
        "node-1",
        "--replay-dir",
        str(examples / "traffic"),
        "--capture-dir",
        str(capture_dir),
    ]


def require_tool(name: str) -> str:
    """Return the path of a peer tool, skipping (or failing in CI) when it is missing."""
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is required in CI but not installed")
        pytest.skip(f"{name} is not installed")
    return path


def run_on_terminal(argv: list[str]) -> tuple[int, str]:
    """Run ``argv`` under a pseudo-terminal; return its exit code and all it wrote there."""
    import pty

    pid, fd = pty.fork()
    if pid == 0:  # child: the command with its output on the terminal
        os.execv(argv[0], argv)
    chunks = []
    while True:
        try:
            data = os.read(fd, 4096)
        except OSError:  # EIO once the child has closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), b"".join(chunks).decode(errors="replace")


def require_root() -> None:
    """Skip unless running as root (network namespaces, raw sockets)."""
    if os.geteuid() != 0:
        pytest.skip("needs root: creates network namespaces and raw sockets")


@pytest.fixture(autouse=True)
def _scanner_for_small_replays(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the tests' small replayed files on the raw lane big inputs take.

    A replay of at most ``SMALL_INPUT_BYTES`` is filtered by the VM packet by packet (no
    scanner is generated); the tests' files are small, and they are there to exercise the
    scanner. ``tests/backends/test_backends_small_input.py`` tests the small-input lane
    (and that both give the same files) with the threshold as shipped.
    """
    from packetcapture.backends import replay

    monkeypatch.setattr(replay, "SMALL_INPUT_BYTES", -1)


@pytest.fixture
def tool() -> Callable[[str], str]:
    """Fixture form of :func:`require_tool`."""
    return require_tool


@pytest.fixture
def data_dir() -> Path:
    """The tests' data directory."""
    return DATA


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Skip every ``root``-marked test when not root, with the reason."""
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root: creates network namespaces and raw sockets")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)

"""The examples' command lines work without their optional dependencies."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO

# Runs the example as a script with `kubernetes` made unimportable, installed or not.
_RUN_WITHOUT_KUBERNETES = (
    "import runpy, sys; sys.modules['kubernetes'] = None; sys.argv = sys.argv[1:]; "
    "runpy.run_path(sys.argv[0], run_name='__main__')"
)


def _controller(*args: str) -> subprocess.CompletedProcess[str]:
    script = str(REPO / "examples" / "kubernetes_controller.py")
    return subprocess.run(
        [sys.executable, "-c", _RUN_WITHOUT_KUBERNETES, script, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_kubernetes_controller_help_without_kubernetes() -> None:
    result = _controller("--help")
    assert result.returncode == 0, result.stderr
    assert "--capture-dir" in result.stdout and result.stderr == ""


def test_kubernetes_controller_without_kubernetes_says_what_to_install() -> None:
    result = _controller("--node", "node-1")
    assert result.returncode == 1
    assert result.stderr == "this example needs the kubernetes package: pip install kubernetes\n"
    assert result.stdout == ""

"""`run` writes a capture's status file when its entry changes, and once more only if needed.

The final status is, as a rule, the last change's: it is not written and synced again
while the file the run wrote is still there untouched; removed or replaced, it is.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from packetcapture.agent import NodeAgent
from packetcapture.cli import _run_impl, main
from tests.conftest import REPO

EXAMPLES = REPO / "examples"
NODE = "node-1"
STATUS = Path("sample-namespace", "sample-capture", f".status-{NODE}.yaml")


def _run(
    out_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[dict[str, object], list[str]]:
    """Run the README sample; return the printed status entry and each state written."""
    written: list[str] = []
    replace = _run_impl._replace_state

    def counted(fd: int, name: str, text: bytes) -> str | None:
        written.append(yaml.safe_load(text)["state"])
        return replace(fd, name, text)

    monkeypatch.setattr(_run_impl, "_replace_state", counted)
    sample, endpoints = EXAMPLES / "sample-capture.yaml", EXAMPLES / "endpoints.yaml"
    source = ["--replay-dir", str(EXAMPLES / "traffic"), "--capture-dir", str(out_dir)]
    code = main(["run", str(sample), "--endpoints", str(endpoints), "--node", NODE, *source])
    out, err = capsys.readouterr()
    assert code == 0, err
    return yaml.safe_load(out)["status"]["files"][0], written


def _after_close(monkeypatch: pytest.MonkeyPatch, then: Callable[[NodeAgent], None]) -> None:
    """Do ``then`` once the agent is closed: after the last change, before the final status."""
    close = NodeAgent.close

    def closing(agent: NodeAgent) -> None:
        close(agent)
        then(agent)

    monkeypatch.setattr(NodeAgent, "close", closing)


def test_each_state_is_written_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    printed, written = _run(tmp_path, monkeypatch, capsys)
    assert written == ["Capturing", "Finished"]
    assert yaml.safe_load((tmp_path / STATUS).read_text()) == printed


@pytest.mark.parametrize("change", ["removed", "replaced", "rewritten"])
def test_a_status_file_changed_before_the_end_is_written_again(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    change: str,
) -> None:
    path = tmp_path / STATUS

    def tamper(agent: NodeAgent) -> None:
        if change == "removed":
            path.unlink()
        elif change == "replaced":
            other = path.with_name("other")
            other.write_text("state: Capturing\n")
            other.replace(path)
        else:  # in place, a different size
            path.write_text("state: Capturing\n")

    _after_close(monkeypatch, tamper)
    printed, written = _run(tmp_path, monkeypatch, capsys)
    assert written == ["Capturing", "Finished", "Finished"]
    assert yaml.safe_load(path.read_text()) == printed

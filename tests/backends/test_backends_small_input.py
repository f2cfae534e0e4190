"""A small replay is filtered by the VM, record by record, with no scanner generated.

The files it writes, its counters and its status are those of the raw lane (which big
inputs take, and which the rest of the suite exercises with ``SMALL_INPUT_BYTES`` off).
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

from packetcapture.backends import replay
from packetcapture.bpf import _codegen, _compiler
from packetcapture.cli import main
from tests.conftest import REPO

EXAMPLES = REPO / "examples"
CAPTURES = ["sample-capture.yaml", "sample-capture-scheduled.yaml", "capture-with-filters.yaml"]


def _run(capture: str, out: Path, replay_dir: Path) -> tuple[int, str, dict[str, bytes]]:
    argv = [
        "run", str(EXAMPLES / capture), "--endpoints", str(EXAMPLES / "endpoints.yaml"),
        "--node", "node-1", "--replay-dir", str(replay_dir), "--capture-dir", str(out),
    ]  # fmt: skip
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(argv)
    files = {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*.pcap"))}
    status = stdout.getvalue().replace(str(out), "DIR")
    return code, status, files


@pytest.fixture
def scanners(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the scanners generated; the shipped threshold (conftest turns it off) back."""
    monkeypatch.undo()
    # Compiled programs are cached with their scanners: start from fresh ones, with no
    # VM budget spent.
    _compiler._compile_cached.cache_clear()
    replay._VM_BYTES.clear()
    made: list[int] = []
    make = _codegen.make_scanner

    def counting(*args: object, **kwargs: object) -> _codegen.Scanner:
        made.append(1)
        return make(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(_codegen, "make_scanner", counting)
    return made


@pytest.mark.parametrize("capture", CAPTURES)
def test_small_replays_write_what_the_raw_lane_writes(
    capture: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scanners: list[int]
) -> None:
    traffic = EXAMPLES / "traffic"
    assert sum(p.stat().st_size for p in traffic.iterdir()) < replay.SMALL_INPUT_BYTES
    small = _run(capture, tmp_path / "small", traffic)
    assert scanners == []  # the VM filtered every record
    monkeypatch.setattr(replay, "SMALL_INPUT_BYTES", -1)
    raw = _run(capture, tmp_path / "raw", traffic)
    assert scanners  # the raw lane's scanner, so the two runs did differ
    assert small == raw
    assert small[2], "the capture wrote packets"


def test_an_input_over_the_threshold_takes_the_raw_lane(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scanners: list[int]
) -> None:
    traffic = EXAMPLES / "traffic"
    biggest = max(p.stat().st_size for p in traffic.iterdir())
    monkeypatch.setattr(replay, "SMALL_INPUT_BYTES", biggest - 1)
    code, _, files = _run("sample-capture.yaml", tmp_path, traffic)
    assert code == 0 and files
    assert len(scanners) == 1  # the one file over the threshold


def test_many_small_interfaces_of_one_capture_share_the_vm_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scanners: list[int]
) -> None:
    # The scheduled sample selects both endpoints of its namespace: two files, one program.
    # With a budget for the bigger one alone, the VM takes the first opened and the other
    # the raw lane (whichever order), so one scanner is made.
    traffic = EXAMPLES / "traffic"
    sizes = sorted(p.stat().st_size for p in traffic.iterdir())
    monkeypatch.setattr(replay, "SMALL_INPUT_BYTES", sizes[-1])
    mixed = _run("sample-capture-scheduled.yaml", tmp_path / "mixed", traffic)
    assert len(scanners) == 1
    monkeypatch.setattr(replay, "SMALL_INPUT_BYTES", -1)
    raw = _run("sample-capture-scheduled.yaml", tmp_path / "raw", traffic)
    assert mixed == raw and len(raw[2]) == 2

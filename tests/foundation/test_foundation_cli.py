"""`packetcapture validate` and `--version`: output lines and exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import packetcapture
from packetcapture.cli import main

EXAMPLES = Path(__file__).parent.parent.parent / "examples"


def test_validate_examples_ok(capsys: pytest.CaptureFixture[str]) -> None:
    files = sorted(str(p) for p in EXAMPLES.glob("*.yaml"))
    assert main(["validate", *files]) == 0
    out = capsys.readouterr().out
    assert "endpoints.yaml: ok (0 captures, 5 endpoints)" in out


def test_validate_reports_each_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: projectcalico.org/v3\nkind: PacketCapture\nmetadata:\n  name: Bad\n"
        "spec:\n  filters:\n  - protocol: ICMP\n    ports: [80]\n"
    )
    good = EXAMPLES / "sample-capture.yaml"
    assert main(["validate", str(good), str(bad)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert f"{bad}: metadata.name: name 'Bad' must consist" in out[1]
    assert out[2].startswith(f"{bad}: spec.filters[0].ports: protocol 'ICMP' does not accept ports")


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"kind: [unclosed\n", "invalid YAML at line"),
        (b"apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n", "kind: kind 'Pod'"),
        (b"\x00\x01\x02binary", "NUL byte"),
        (b"", "no resources found"),
    ],
)
def test_validate_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, needle: str
) -> None:
    path = tmp_path / "in.yaml"
    path.write_bytes(content)
    assert main(["validate", str(path)]) == 1
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert len(lines) == 1 and needle in lines[0]
    assert "Traceback" not in captured.err


def test_validate_missing_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "/nonexistent/x.yaml"]) == 1
    err = capsys.readouterr().err
    assert err.strip() == "/nonexistent/x.yaml: cannot read: No such file or directory"


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["validate"])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        main(["no-such-command"])
    assert info.value.code == 2
    assert main([]) == 2


def test_version_via_subprocess() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "packetcapture", "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0
    assert done.stdout.strip() == f"packetcapture {packetcapture.__version__}"


def test_validate_stdin() -> None:
    text = (EXAMPLES / "sample-capture.yaml").read_text()
    done = subprocess.run(
        [sys.executable, "-m", "packetcapture", "validate", "-"],
        input=text,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("-: ok")

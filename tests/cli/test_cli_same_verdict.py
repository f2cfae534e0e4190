"""Commands agree (issue 16): `validate` and `run` on endpoints, and `status` under YAML limits."""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import pytest
import yaml

from tests.cli.test_cli_walkthrough import cli
from tests.conftest import REPO

EXAMPLES = REPO / "examples"
TARGET = "sample-namespace/sample-capture"
POD = "sample-app-7d4b9c-x2k8p"
IFACE = "cali1a2b3c4d5e6"


# --- 2: every endpoint rule `run` applies, `validate` applies --------------------------------

#: (field, value, what the message says): every rule of packetcapture.validation's file-name
#: rules, each with a value that breaks it.
BAD_ENDPOINT_VALUES = [
    ("pod", "../x", "path separator"),
    ("pod", "a/b", "path separator"),
    ("pod", "..", "is not allowed"),
    ("pod", ".", "is not allowed"),
    ("pod", "a\\b", "path separator"),
    ("pod", "p" * 300, "too long"),
    ("pod", "a\x00b", "NUL or control"),
    ("pod", "a\x1bb", "NUL or control"),
    ("pod", "a_b", "must not contain '_'"),
    ("interfaceName", "../x", "path separator"),
    ("interfaceName", "a/b", "path separator"),
    ("interfaceName", "..", "is not allowed"),
    ("interfaceName", "i" * 300, "too long"),
    ("interfaceName", "a\x00b", "NUL or control"),
    ("interfaceName", "a\nb", "NUL or control"),
    ("interfaceName", "eth0-12", "-<digits>"),
    ("interfaceName", "i" * 230, "too long together"),
]


def _endpoints_with(tmp_path: Path, field: str, value: str) -> Path:
    docs = yaml.safe_load((EXAMPLES / "endpoints.yaml").read_text())
    docs["items"][0]["spec"][field] = value
    path = tmp_path / "endpoints.yaml"
    # JSON-style escapes keep NUL and control characters inside the YAML text.
    path.write_text(yaml.safe_dump(docs, allow_unicode=False, width=10_000))
    return path


@pytest.mark.parametrize(("field", "value", "says"), BAD_ENDPOINT_VALUES)
def test_validate_and_run_give_the_same_verdict_on_an_endpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], field: str, value: str, says: str
) -> None:
    """Reproduces issue 16.2: these passed `validate` ("ok") and then failed in `run`."""
    endpoints = _endpoints_with(tmp_path, field, value)
    v_code, v_out, _ = cli(["validate", str(endpoints)], capsys)
    run = ["run", str(EXAMPLES / "sample-capture.yaml"), "--endpoints", str(endpoints)]
    run += ["--node", "node-1", "--replay-dir", str(EXAMPLES / "traffic")]
    r_code, r_out, r_err = cli([*run, "--capture-dir", str(tmp_path / "c")], capsys)
    assert (v_code, r_code) == (1, 1)
    (problem,) = v_out.splitlines()
    assert says in problem and f"items[0].spec.{field}: " in problem
    # run says the same thing, about the same field, before capturing anything.
    assert problem.split(": ", 1)[1] in r_err
    assert r_out == "" and not (tmp_path / "c").exists()


def test_a_good_endpoint_list_passes_both(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    endpoints = _endpoints_with(tmp_path, "pod", POD)
    assert cli(["validate", str(endpoints)], capsys)[0] == 0
    run = ["run", str(EXAMPLES / "sample-capture.yaml"), "--endpoints", str(endpoints)]
    run += ["--node", "node-1", "--replay-dir", str(EXAMPLES / "traffic")]
    assert cli([*run, "--capture-dir", str(tmp_path / "c")], capsys)[0] == 0


def test_an_endpoint_without_interface_is_not_held_to_file_rules(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It is never captured on (run warns and skips it), so its pod name makes no file."""
    docs = yaml.safe_load((EXAMPLES / "endpoints.yaml").read_text())
    docs["items"][0]["spec"]["pod"] = "a_b"
    del docs["items"][0]["spec"]["interfaceName"]
    path = tmp_path / "e.yaml"
    path.write_text(yaml.safe_dump(docs))
    assert cli(["validate", str(path)], capsys)[0] == 0


# --- 11: `status` reads the node's status file under the limits of every YAML input -------------


def _bounded_status(capsys: pytest.CaptureFixture[str], capture_dir: Path) -> tuple[int, str, str]:
    tracemalloc.start()
    start = time.perf_counter()
    try:
        result = cli(
            ["status", "--capture-dir", str(capture_dir), TARGET, "--node", "node-1"], capsys
        )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # Generous: the alias bomb below took 96 s and 3 GB before.
    assert time.perf_counter() - start < 30 and peak < 256 * 1024 * 1024
    return result


@pytest.mark.parametrize(
    ("content", "says"),
    [
        # 374 bytes in the report; this one is 310: nine levels of nine aliases.
        (
            "a: &a [x, x, x, x, x, x, x, x, x]\n"
            + "".join(
                f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
                for p, c in zip("abcdefgh", "bcdefghi", strict=True)
            )
            + "state: Capturing\nfileNames: *i\n",
            "alias bomb",
        ),
        ("state: Capturing\nstate: Finished\n", "duplicate key 'state'"),
        ("state: Capturing\nfileNames: [[1, 2]]\n", "fileNames holds something other"),
        ("a:\n" + "".join(" " * i + "- \n" for i in range(1, 100)), "nest"),
    ],
)
def test_a_hostile_status_file_is_one_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, says: str
) -> None:
    """Reproduces issue 16.11: the status file was loaded without any limit."""
    directory = tmp_path / TARGET
    directory.mkdir(parents=True)
    (directory / f"{POD}_{IFACE}.pcap").write_bytes(b"")
    (directory / ".status-node-1.yaml").write_text(content)
    code, out, err = _bounded_status(capsys, tmp_path)
    assert code == 0
    (line,) = err.splitlines()
    assert line.startswith("packetcapture: warning: ") and "unreadable status" in line
    assert says in line and line.endswith("showing files only")
    assert yaml.safe_load(out)["status"]["files"][0]["node"] == "node-1"

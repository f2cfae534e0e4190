"""CLI fixes from a new user's walkthrough: status on disk, flags, one-line messages."""

from __future__ import annotations

import io
import logging
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from packetcapture.cli import main
from packetcapture.pcap import PcapReader
from tests.conftest import REPO

EXAMPLES = REPO / "examples"
ENDPOINTS = EXAMPLES / "endpoints.yaml"
IFACE = "cali1a2b3c4d5e6"
PCAP = f"sample-app-7d4b9c-x2k8p_{IFACE}.pcap"
TARGET = "sample-namespace/sample-capture"


def cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run the CLI in-process; usage errors (SystemExit) give their exit code."""
    try:
        code = main(args)
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def run_node1(
    capsys: pytest.CaptureFixture[str],
    out_dir: Path,
    capture: Path = EXAMPLES / "sample-capture.yaml",
    *extra: str,
    source: tuple[str, ...] = ("--replay-dir", str(EXAMPLES / "traffic")),
    endpoints: Path = ENDPOINTS,
) -> tuple[int, str, str]:
    argv = ["run", str(capture), "--endpoints", str(endpoints), "--node", "node-1"]
    return cli([*argv, *source, "--capture-dir", str(out_dir), *extra], capsys)


def status(
    capsys: pytest.CaptureFixture[str], out_dir: Path, node: str = "node-1"
) -> tuple[int, str, str]:
    return cli(["status", "--capture-dir", str(out_dir), TARGET, "--node", node], capsys)


# --- 1.2: a run that made no file still leaves its status --------------------------------


def test_run_after_the_window_leaves_its_status(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "c1"
    # On the wall clock the example's window (2021) is long over.
    scheduled = EXAMPLES / "sample-capture-scheduled.yaml"
    code, out, err = run_node1(capsys, out_dir, scheduled, "--replay-clock", "wall")
    assert code == 0, err
    printed = yaml.safe_load(out)["status"]["files"][0]
    assert printed == {"directory": str(out_dir), "node": "node-1", "state": "Finished"}
    target = "sample-namespace/sample-capture-scheduled"
    assert (out_dir / target / ".status-node-1.yaml").is_file()
    assert not list((out_dir / target).glob("*.pcap"))
    argv = ["status", "--capture-dir", str(out_dir), target, "--node", "node-1"]
    code, out, err = cli(argv, capsys)
    assert code == 0, err
    assert yaml.safe_load(out)["status"]["files"] == [printed]


def test_status_shows_what_run_printed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_node1(capsys, tmp_path / "c")
    assert code == 0, err
    printed = yaml.safe_load(out)["status"]["files"]
    assert printed[0]["fileNames"] == [PCAP]
    code, out, err = status(capsys, tmp_path / "c")
    assert (code, err) == (0, "")
    assert yaml.safe_load(out)["status"]["files"] == printed


# --- 1.3: no status for a node that never ran --------------------------------------------


def test_status_of_another_node_is_not_made_up(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "c2"
    assert run_node1(capsys, out_dir)[0] == 0
    code, out, err = status(capsys, out_dir, node="node-2")
    assert (code, out) == (1, "")
    assert lines(err) == [
        f"packetcapture: error: no status for node node-2 of {TARGET} under {out_dir}; "
        "nodes with a status there: node-1"
    ]
    # Files but no node's status (a run killed before it wrote one): still no entry.
    (out_dir / TARGET / ".status-node-1.yaml").unlink()
    code, out, err = status(capsys, out_dir)
    assert (code, out) == (1, "")
    assert "no node left a status there (1 capture file(s))" in err and len(lines(err)) == 1


def test_status_lists_only_its_nodes_files_in_a_shared_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Not a supported set-up (a directory belongs to one node, as in Calico): the second
    # run says so, and status still shows each node what its own run printed.
    out_dir = tmp_path / "shared"
    printed = {}
    warned = []
    for node in ("node-1", "node-2"):
        code, out, err = cli(
            [
                *("run", str(EXAMPLES / "sample-capture.yaml"), "--endpoints", str(ENDPOINTS)),
                *("--node", node, "--replay-dir", str(EXAMPLES / "traffic")),
                *("--capture-dir", str(out_dir)),
            ],
            capsys,
        )
        assert code == 0, err
        printed[node] = yaml.safe_load(out)["status"]["files"][0]["fileNames"]
        warned.append([line for line in lines(err) if "belongs to one node" in line])
    assert warned[0] == [] and len(warned[1]) == 1 and "node(s) node-1:" in warned[1][0]
    assert printed["node-1"] != printed["node-2"]
    for node in ("node-1", "node-2"):
        code, out, err = status(capsys, out_dir, node)
        assert code == 0, err
        assert yaml.safe_load(out)["status"]["files"][0]["fileNames"] == printed[node]


def test_status_file_mode_ignores_the_umask(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = os.umask(0o077)
    try:
        assert run_node1(capsys, tmp_path / "c")[0] == 0
    finally:
        os.umask(old)
    saved = tmp_path / "c" / TARGET / ".status-node-1.yaml"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o644
    assert sorted(p.name for p in saved.parent.iterdir() if p.name.startswith(".")) == [
        ".packetcapture.lock",  # the run's lock (see docs/files.md)
        ".status-node-1.yaml",  # no temporary file left behind
    ]


def test_status_refuses_a_node_name_that_is_a_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_node1(capsys, tmp_path / "c")[0] == 0
    code, out, err = status(capsys, tmp_path / "c", "../x")
    assert code == 1 and out == "" and len(lines(err)) == 1 and "node" in err


def test_corrupt_status_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "c"
    assert run_node1(capsys, out_dir)[0] == 0
    (out_dir / TARGET / ".status-node-1.yaml").write_text("state: [\nfileNames: {\n")
    code, out, err = status(capsys, out_dir)
    assert code == 0
    (line,) = lines(err)
    assert "unreadable status (invalid YAML" in line and line.endswith("showing files only")
    assert yaml.safe_load(out)["status"]["files"][0] == {
        "directory": str(out_dir),
        "fileNames": [PCAP],
        "node": "node-1",
    }
    (out_dir / TARGET / ".status-node-1.yaml").write_text("state: Sleeping\n")
    code, _, err = status(capsys, out_dir)
    assert code == 0 and lines(err) == [
        f"packetcapture: warning: {out_dir / TARGET / '.status-node-1.yaml'}: "
        "unreadable status (unknown state 'Sleeping'); showing files only"
    ]


# --- 1.4, 1.5 and a misspelt flag: argument parsing ---------------------------------------


def test_merge_node_takes_several_names(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for d in ("n1", "n2"):
        assert run_node1(capsys, tmp_path / d)[0] == 0
    dirs = ["--capture-dir", str(tmp_path / "n1"), "--capture-dir", str(tmp_path / "n2")]
    head = ["merge", "sample-capture", "-n", "sample-namespace", *dirs]
    code, out, err = cli([*head, "--node", "a,b", "-o", str(tmp_path / "m.pcapng")], capsys)
    assert code == 0, err
    assert "merged 36 packet(s) from 2 file(s), 2 interface(s)" in out
    with PcapReader(tmp_path / "m.pcapng") as reader:
        assert len(list(reader.records())) == 36
        nodes = sorted(
            re.sub(r".* node=(\S+) .*", r"\1", str(i.description)) for i in reader.interfaces
        )
    assert nodes == ["a", "b"]
    # Repeating --node still works; a count that does not match the directories is usage.
    code, _, err = cli(
        [*head, "--node", "a", "--node", "b", "-o", str(tmp_path / "m2.pcapng")], capsys
    )
    assert code == 0, err
    code, _, err = cli([*head, "--node", "a,b,c", "-o", str(tmp_path / "m3.pcapng")], capsys)
    assert code == 2 and lines(err) == [
        "packetcapture merge: error: --node names 3 node(s) for 2 directory(ies) "
        "(see 'packetcapture merge --help')"
    ]
    code, _, err = cli([*head, "--node", "a,,b", "-o", str(tmp_path / "m5.pcapng")], capsys)
    assert code == 2 and "empty node name in 'a,,b'" in err
    # --node takes one word, so NAME may follow it (as it always could).
    code, out, err = cli(
        [
            *("merge", "-n", "sample-namespace", "--node", "a,b"),
            *("sample-capture", *dirs),
            *("-o", str(tmp_path / "m6.pcapng")),
        ],
        capsys,
    )
    assert code == 0, err
    # --capture-dir takes one word, so NAME may follow it too.
    code, out, err = cli(
        [
            *("merge", "-n", "sample-namespace", *dirs, "sample-capture"),
            *("-o", str(tmp_path / "m4.pcapng")),
        ],
        capsys,
    )
    assert code == 0, err
    assert "merged 36 packet(s) from 2 file(s), 2 interface(s)" in out


def test_verbose_after_the_subcommand(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "packetcapture",
            "run",
            "-v",
            str(EXAMPLES / "sample-capture-scheduled.yaml"),
            "--endpoints",
            str(ENDPOINTS),
            "--node",
            "node-1",
            "--replay-dir",
            str(EXAMPLES / "traffic"),
            "--capture-dir",
            str(tmp_path / "c"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    applied = "capture sample-namespace/sample-capture-scheduled applied"
    assert f"INFO packetcapture.agent: {applied}" in done.stderr
    assert "DEBUG" not in done.stderr


def test_verbose_counts_add_up() -> None:
    from packetcapture.cli import build_parser

    args, extra = build_parser().parse_known_args(["-v", "validate", "-v", "x.yaml"])
    assert extra == [] and args.verbose + args.sub_verbose == 2
    args, _ = build_parser().parse_known_args(["compile", "-vv", "x.yaml"])
    assert args.sub_verbose == 2 and args.fmt == "d"


def test_misspelt_flag_points_at_the_subcommand_help(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_node1(capsys, tmp_path / "c", EXAMPLES / "sample-capture.yaml", "--duraton")
    assert code == 2
    assert lines(err) == [
        "packetcapture run: error: unrecognized arguments: --duraton "
        "(see 'packetcapture run --help')"
    ]
    code, _, err = cli(["--bogus"], capsys)
    assert code == 2 and "(see 'packetcapture --help')" in err


@pytest.mark.parametrize("command", ["run", "plan"])
def test_help_shows_defaults(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli([command, "--help"], capsys)
    assert code == 0
    text = " ".join(out.split())  # argparse wraps lines
    assert "(default: 10000000)" in text and "(default: 2)" in text
    if command == "run":
        assert "(default: 3600)" in text and "(default: 262144)" in text
        assert "(default: pcap)" in text


# --- section 3: one clear line for each problem ---------------------------------------------


def test_selector_endpoints_errors_match_other_commands(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nofile.yaml"
    code, out, err = cli(["selector", "all()", "--endpoints", str(missing)], capsys)
    assert (code, out) == (1, "")
    assert lines(err) == [
        f"packetcapture: error: {missing}: cannot read: No such file or directory"
    ]
    # compile says the same for a missing file.
    assert lines(cli(["compile", str(missing)], capsys)[2]) == lines(err)
    capture = EXAMPLES / "sample-capture.yaml"
    code, out, err = cli(["selector", "all()", "--endpoints", str(capture)], capsys)
    assert (code, out) == (1, "")
    assert lines(err) == [f"packetcapture: error: {capture}: no WorkloadEndpoint resources found"]


def test_backend_error_names_the_interface_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = EXAMPLES / "traffic" / f"{IFACE}.pcap"
    code, _, err = run_node1(capsys, tmp_path / "c", source=("--replay", f"calixxxx={other}"))
    assert code == 1
    assert f"{TARGET} {IFACE}: no capture file to replay" in err
    assert f"{IFACE}: {IFACE}:" not in err


def test_merge_of_a_torn_file_warns_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    assert run_node1(capsys, tmp_path / "c")[0] == 0
    pcap = tmp_path / "c" / TARGET / PCAP
    pcap.write_bytes(pcap.read_bytes()[:-10])
    with caplog.at_level(logging.WARNING):
        code, out, err = cli(
            [
                *("merge", "sample-capture", "-n", "sample-namespace", "--capture-dir"),
                *(str(tmp_path / "c"), "-o", str(tmp_path / "m.pcapng")),
            ],
            capsys,
        )
    assert code == 0
    assert lines(err) == [
        f"packetcapture: warning: {pcap} ends in a torn record; its whole packets were kept"
    ]
    assert [r for r in caplog.records if "truncated" in r.getMessage()] == []
    assert "merged 17 packet(s)" in out


@pytest.mark.parametrize("command", ["plan", "run"])
def test_capture_from_stdin(
    command: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = (EXAMPLES / "sample-capture.yaml").read_bytes()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    argv = [command, "-", "--endpoints", str(ENDPOINTS)]
    if command == "run":
        argv += ["--node", "node-1", "--replay-dir", str(EXAMPLES / "traffic")]
        argv += ["--capture-dir", str(tmp_path / "c")]
    code, out, err = cli(argv, capsys)
    assert code == 0, err
    assert "sample-capture" in out
    code, _, err = cli([command, "-", "--endpoints", "-", "--node", "node-1"], capsys)
    if command == "run":  # usage: the source flag is missing
        assert code == 2
    else:
        assert code == 1 and "cannot both be '-'" in err


def test_replay_several_files_for_one_interface(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pcap = EXAMPLES / "traffic" / f"{IFACE}.pcap"
    code, _, err = run_node1(
        capsys,
        tmp_path / "c",
        source=("--replay", f"{IFACE}={pcap}", "--replay", f"{IFACE}={pcap}"),
    )
    assert code == 0, err
    assert re.search(rf"{IFACE}: 36 packets", err), err
    with PcapReader(tmp_path / "c" / TARGET / PCAP) as reader:
        twice = [data for _, data, _ in reader]
    assert len(twice) == 36 and twice[:18] == twice[18:]  # the file, then the file again


def _without_interface(tmp_path: Path) -> Path:
    doc = yaml.safe_load(ENDPOINTS.read_text())
    del doc["items"][0]["spec"]["interfaceName"]
    path = tmp_path / "endpoints.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


SKIPPED = (
    "packetcapture: warning: endpoint sample-namespace/node-1-k8s-sample--app--7d4b9c--x2k8p-eth0"
    f" selected by {TARGET} is skipped: it has no spec.interfaceName"
)


def test_run_says_an_endpoint_without_interface_is_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_node1(capsys, tmp_path / "c", endpoints=_without_interface(tmp_path))
    assert code == 0
    assert [line for line in lines(err) if "skipped" in line] == [SKIPPED]
    assert "fileNames" not in out


def test_plan_says_an_endpoint_without_interface_is_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capture = EXAMPLES / "sample-capture.yaml"
    code, out, err = cli(
        ["plan", str(capture), "--endpoints", str(_without_interface(tmp_path))], capsys
    )
    assert code == 0
    assert lines(err) == [SKIPPED]
    assert "interface (none: not captured)" in out
    assert "at most 30.0 MB (1 interface x" in out  # only the one with an interface


def test_a_misspelt_interface_name_is_refused_when_loaded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = yaml.safe_load(ENDPOINTS.read_text())
    spec = doc["items"][0]["spec"]
    spec["interfaceNme"] = spec.pop("interfaceName")
    path = tmp_path / "endpoints.yaml"
    path.write_text(yaml.safe_dump(doc))
    capture = EXAMPLES / "sample-capture.yaml"
    code, out, err = cli(["plan", str(capture), "--endpoints", str(path)], capsys)
    assert code == 1 and out == ""
    assert lines(err) == [
        f"packetcapture: error: {path}: items[0].spec.interfaceNme: unknown field 'interfaceNme': "
        "did you mean 'interfaceName'?"
    ]


# --- docs --------------------------------------------------------------------------------


def test_quickstart_run_prints_what_the_page_shows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    page = (REPO / "docs" / "quickstart.md").read_text()
    shown = re.search(r"status:\n  files:\n(.*?)\$ ", page, re.S)
    assert shown is not None
    (tmp_path / "examples").symlink_to(EXAMPLES)
    monkeypatch.chdir(tmp_path)
    code, out, err = cli(
        [
            *("run", "examples/sample-capture.yaml", "--endpoints", "examples/endpoints.yaml"),
            *(
                "--node",
                "node-1",
                "--replay-dir",
                "examples/traffic",
                "--capture-dir",
                "./captures",
            ),
        ],
        capsys,
    )
    assert code == 0, err
    assert yaml.safe_load(out)["status"]["files"] == yaml.safe_load(shown.group(1))
    code, out, _ = status(capsys, Path("./captures"))
    assert code == 0 and yaml.safe_load(out)["status"]["files"] == yaml.safe_load(shown.group(1))


def test_status_target_forms(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A bare NAME is in namespace `default` (as for copy, clean and merge): not a usage error.
    code, out, err = cli(["status", "--capture-dir", str(tmp_path), "cap", "--node", "n"], capsys)
    assert code == 1 and out == ""
    assert lines(err) == [f"packetcapture: error: no capture default/cap under {tmp_path}"]
    code, out, err = cli(["status", "--capture-dir", str(tmp_path), "a/b/c", "--node", "n"], capsys)
    assert code == 2 and out == ""
    assert lines(err) == [
        "packetcapture status: error: 'a/b/c': expected NAME or NAMESPACE/NAME "
        "(see 'packetcapture status --help')"
    ]

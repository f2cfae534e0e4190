"""Issue 15: what a newcomer tripped over, each reproduced through the CLI.

1 a replay that waited for endTime, abbreviated flags; 2 the replay's clock and the examples'
names; 3 the README's BPF size claim; 4 one warning format; 5 a hint for a wrong namespace;
6 one way to name a capture and one default directory; 7 merge's --capture-dir; 8 clean's
count; 9 selector errors, plan's wording, the live table with long names.
"""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from packetcapture.cli import main
from packetcapture.pcap import PcapReader
from tests.conftest import REPO, require_tool, run_on_terminal

EXAMPLES = REPO / "examples"
ENDPOINTS = EXAMPLES / "endpoints.yaml"
TRAFFIC = EXAMPLES / "traffic"
IFACE = "cali1a2b3c4d5e6"
PCAP = f"sample-app-7d4b9c-x2k8p_{IFACE}.pcap"
# 2021-08-26T12:00:01Z, the first packet of cali1a2b3c4d5e6 (the other files: 12:00:00-12:00:04).
FIRST = dt.datetime(2021, 8, 26, 12, 0, 1, tzinfo=dt.UTC)


def cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run the CLI in-process; usage errors (SystemExit) give their exit code."""
    try:
        code = main(args)
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def run_node1(
    capsys: pytest.CaptureFixture[str], capture: Path, out_dir: Path, *extra: str
) -> tuple[int, str, str]:
    argv = ["run", str(capture), "--endpoints", str(ENDPOINTS), "--node", "node-1"]
    return cli([*argv, "--replay-dir", str(TRAFFIC), "--capture-dir", str(out_dir), *extra], capsys)


def subprocess_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "packetcapture", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def write_capture(path: Path, namespace: str = "sample-namespace", **spec: object) -> Path:
    doc = {
        "apiVersion": "projectcalico.org/v3",
        "kind": "PacketCapture",
        "metadata": {"name": "cap", "namespace": namespace},
        "spec": {"selector": 'k8s-app == "sample-app"', **spec},
    }
    path.write_text(yaml.safe_dump(doc))
    return path


def stamp(when: dt.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def timestamps(path: Path) -> list[dt.datetime]:
    with PcapReader(path) as reader:
        return [dt.datetime.fromtimestamp(ts / 1e9, dt.UTC) for ts, _, _ in reader]


# --- 1: a replay ends when its files have ----------------------------------------------


@pytest.mark.parametrize("clock", ["file", "wall"])
def test_replay_ends_with_its_files_though_end_time_is_ahead(tmp_path: Path, clock: str) -> None:
    end = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    cap = write_capture(tmp_path / "cap.yaml", endTime=end.strftime("%Y-%m-%dT%H:%M:%SZ"))
    done = subprocess_cli(
        *("run", str(cap), "--endpoints", str(ENDPOINTS), "--node", "node-1"),
        *("--replay-dir", str(TRAFFIC), "--capture-dir", str(tmp_path / "c")),
        *("--replay-clock", clock),
        timeout=40,  # it used to block until endTime, an hour away
    )
    assert done.returncode == 0, done.stderr
    entry = yaml.safe_load(done.stdout)["status"]["files"][0]
    assert entry["state"] == "Finished" and entry["fileNames"] == [PCAP]
    # No filter: every packet of the interface's file.
    kept = timestamps(tmp_path / "c" / "sample-namespace" / "cap" / PCAP)
    assert kept == timestamps(TRAFFIC / f"{IFACE}.pcap")


def test_abbreviated_flags_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["run", str(EXAMPLES / "sample-capture.yaml"), "--endpoint", str(ENDPOINTS)]
    argv += ["--node", "node-1", "--replay-dir", str(TRAFFIC), "--capture-dir", str(tmp_path)]
    code, _, err = cli(argv, capsys)
    assert code == 2
    assert "unrecognized arguments: --endpoint" in err or "--endpoints" in err
    code, _, err = cli(["--verb", "validate", str(ENDPOINTS)], capsys)
    assert code == 2


# --- 2: the replay's clock and the examples' names ---------------------------------------


def test_examples_have_distinct_names() -> None:
    names = set()
    for path in EXAMPLES.glob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "PacketCapture":
                key = (doc["metadata"]["namespace"], doc["metadata"]["name"])
                assert key not in names, f"{path.name} reuses {key}"
                names.add(key)


def test_scheduled_example_follows_the_files_clock(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The quickstart: both examples into one directory; the window holds the traffic."""
    out = tmp_path / "captures"
    assert run_node1(capsys, EXAMPLES / "sample-capture.yaml", out)[0] == 0
    code, stdout, err = run_node1(capsys, EXAMPLES / "sample-capture-scheduled.yaml", out)
    assert code == 0, err
    entry = yaml.safe_load(stdout)["status"]["files"][0]
    # all() in sample-namespace: both node-1 pods there, each with its own file, in a
    # directory of its own.
    assert entry["state"] == "Finished" and len(entry["fileNames"]) == 2
    assert sorted(p.name for p in out.iterdir()) == ["sample-namespace"]
    assert sorted(p.name for p in (out / "sample-namespace").iterdir()) == [
        "sample-capture",
        "sample-capture-scheduled",
    ]
    # On the wall clock the window is long over: nothing.
    code, stdout, err = run_node1(
        capsys, EXAMPLES / "sample-capture-scheduled.yaml", tmp_path / "w", "--replay-clock", "wall"
    )
    assert code == 0, err
    entry = yaml.safe_load(stdout)["status"]["files"][0]
    assert entry["state"] == "Finished" and "fileNames" not in entry


def test_file_clock_window_cuts_the_replay(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    every = timestamps(TRAFFIC / f"{IFACE}.pcap")
    start, end = every[4], every[10]
    cap = write_capture(tmp_path / "cap.yaml", startTime=stamp(start), endTime=stamp(end))
    code, _, err = run_node1(capsys, cap, tmp_path / "c")
    assert code == 0, err
    assert "Scheduled" in err and "Finished" in err
    kept = timestamps(tmp_path / "c" / "sample-namespace" / "cap" / PCAP)
    # Timestamps keep the file's: exactly the packets in [start, end).
    assert kept == [t for t in every if start <= t < end] and len(kept) == 6


def test_file_clock_window_after_the_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    start = FIRST + dt.timedelta(hours=1)
    cap = write_capture(tmp_path / "cap.yaml", startTime=stamp(start))
    code, stdout, err = run_node1(capsys, cap, tmp_path / "c")
    assert code == 0, err
    entry = yaml.safe_load(stdout)["status"]["files"][0]
    assert entry["state"] == "Finished"
    assert not list((tmp_path / "c").rglob("*.pcap")) or "0 packets" in err


# --- 3: the README's BPF claim ------------------------------------------------------------


def test_readme_bpf_sizes_are_true(capsys: pytest.CaptureFixture[str]) -> None:
    tcpdump = require_tool("tcpdump")
    readme = (REPO / "README.md").read_text()
    assert "smaller than libpcap's" not in readme
    found = re.search(
        r"(\d+) instructions against libpcap's (\d+) for `examples/sample-capture.yaml`.*?"
        r"(\d+) with `--no-vlan --no-ipv6-ext`",
        readme,
        re.S,
    )
    assert found, "README: the BPF size sentence is gone"
    sample = str(EXAMPLES / "sample-capture.yaml")
    sizes = []
    for extra in ([], ["--no-vlan", "--no-ipv6-ext"]):
        code, out, _ = cli(["compile", sample, "-d", *extra], capsys)
        assert code == 0
        sizes.append(len(out.splitlines()))
    code, expression, _ = cli(["compile", sample, "--expression"], capsys)
    libpcap = subprocess.run(
        [tcpdump, "-d", expression.strip()], capture_output=True, text=True, check=True
    ).stdout
    assert [int(g) for g in found.groups()] == [sizes[0], len(libpcap.splitlines()), sizes[1]]


# --- 4: one warning format ----------------------------------------------------------------


@pytest.mark.root
def test_live_missing_interface_warns_in_one_format(tmp_path: Path) -> None:
    done = subprocess_cli(
        *("run", str(EXAMPLES / "sample-capture.yaml"), "--endpoints", str(ENDPOINTS)),
        *("--node", "node-1", "--live", "--capture-dir", str(tmp_path / "c")),
        *("--duration", "1", "--progress", "never"),
    )
    assert done.returncode == 1
    problems = [line for line in done.stderr.splitlines() if "no such interface" in line]
    assert problems
    for line in problems:
        assert line.startswith(("packetcapture: warning: ", "packetcapture: error: ")), line
    assert "WARNING" not in done.stderr


# --- 5: a capture in a namespace without endpoints ----------------------------------------


def test_wrong_namespace_hint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cap = write_capture(tmp_path / "cap.yaml", namespace="sample-ns")
    code, _, err = run_node1(capsys, cap, tmp_path / "c")
    assert code == 0
    hint = (
        "packetcapture: warning: sample-ns/cap selects no endpoint: none in namespace 'sample-ns'"
    )
    assert f"{hint} (3 of node node-1 read from {ENDPOINTS}; their namespaces: " in err
    code, out, err = cli(["plan", str(cap), "--endpoints", str(ENDPOINTS)], capsys)
    assert code == 0 and "endpoints:  none selected" in out
    assert (
        f"{hint} (5 read from {ENDPOINTS}; their namespaces: other-namespace, sample-namespace)"
        in err
    )
    # A selector that matches nothing in the right namespace says so differently.
    cap = write_capture(tmp_path / "cap2.yaml", selector="app == 'nothing'")
    code, out, err = cli(["plan", str(cap), "--endpoints", str(ENDPOINTS)], capsys)
    assert "sample-namespace/cap selects no endpoint: its selector matches none of the 4 " in err
    # A capture that selects something says nothing of the kind.
    code, out, err = cli(
        ["plan", str(EXAMPLES / "sample-capture.yaml"), "--endpoints", str(ENDPOINTS)], capsys
    )
    assert "selects no endpoint" not in err


# --- 6: one way to name a capture, one default directory ----------------------------------


def test_every_command_takes_both_name_forms(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "c"
    assert run_node1(capsys, EXAMPLES / "sample-capture.yaml", out)[0] == 0
    where = ["--capture-dir", str(out)]
    status_args = ["--node", "node-1", *where]
    first = cli(["status", "sample-namespace/sample-capture", *status_args], capsys)
    second = cli(["status", "sample-capture", "-n", "sample-namespace", *status_args], capsys)
    assert first[0] == 0 and first == second
    for form in (["sample-namespace/sample-capture"], ["sample-capture", "-n", "sample-namespace"]):
        dest = tmp_path / "d" / str(len(form))
        code, _, err = cli(["copy", *form, *where, "-d", str(dest)], capsys)
        assert code == 0, err
        assert (dest / PCAP).is_file()
        m = tmp_path / f"m{len(form)}.pcapng"
        code, _, err = cli(["merge", *form, *where, "-o", str(m)], capsys)
        assert code == 0 and m.is_file(), err
    code, _, err = cli(["clean", "sample-namespace/sample-capture", *where], capsys)
    assert code == 0, err
    assert not (out / "sample-namespace" / "sample-capture").exists()
    # Both at once must agree.
    code, _, err = cli(["copy", "a/b", "-n", "c", *where], capsys)
    assert code == 2 and "namespace" in err
    code, _, err = cli(["copy", "a/b", "-a", *where], capsys)
    assert code == 2


def test_one_default_capture_dir(capsys: pytest.CaptureFixture[str]) -> None:
    helps = {}
    for command in ("run", "status", "copy", "clean", "merge"):
        code, out, _ = cli([command, "--help"], capsys)
        assert code == 0
        helps[command] = " ".join(out.split())
    for command, text in helps.items():
        assert "/var/log/calico/pcap" in text, command


# --- 7: merge --capture-dir takes one directory a flag ------------------------------------


def test_merge_capture_dir_takes_one_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for d in ("a", "b"):
        assert run_node1(capsys, EXAMPLES / "sample-capture.yaml", tmp_path / d)[0] == 0
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    code, out, err = cli(
        [
            *("merge", "-n", "sample-namespace", "--capture-dir", a, "--capture-dir", b),
            *("sample-capture", "-o", str(tmp_path / "x.pcapng")),
        ],
        capsys,
    )
    assert code == 0, err
    assert "from 2 file(s), 2 interface(s)" in out
    # The trap: the second word is NAME now, not a second directory; the old NAME is extra.
    code, _, err = cli(
        [
            *("merge", "-n", "sample-namespace", "--capture-dir", a, b, "sample-capture"),
            *("-o", str(tmp_path / "y.pcapng")),
        ],
        capsys,
    )
    assert code == 2 and "unrecognized arguments: sample-capture" in err


# --- 8: clean counts what copy counts -----------------------------------------------------


def test_clean_counts_capture_files_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "c"
    assert run_node1(capsys, EXAMPLES / "sample-capture.yaml", out)[0] == 0
    where = ["-n", "sample-namespace", "--capture-dir", str(out)]
    code, copied, _ = cli(["copy", "sample-capture", *where, "-d", str(tmp_path / "d")], capsys)
    assert code == 0 and "copied 1 file(s)" in copied
    code, cleaned, _ = cli(["clean", "sample-capture", *where], capsys)
    assert code == 0 and cleaned.rstrip().endswith("(1 file(s))"), cleaned


# --- 9: small things ----------------------------------------------------------------------


def test_selector_errors_say_end_of_selector(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(["selector", 'a == "b" &&'], capsys)
    assert code == 1
    assert "TokEOF" not in err and "unexpected end of selector" in err
    code, _, err = cli(["selector", 'a == "b" )'], capsys)
    assert "TokEOF" not in err and "[TokRParen()]" in err


def test_plan_one_instruction(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # No filters: the program is the one accepting `ret`.
    cap = write_capture(tmp_path / "cap.yaml")
    code, out, _ = cli(["plan", str(cap), "--endpoints", str(ENDPOINTS)], capsys)
    assert code == 0 and re.search(r"bpf:\s+1 instruction$", out, re.M)


def test_progress_table_keeps_columns_with_long_names(tmp_path: Path) -> None:
    name = "a-capture-with-a-rather-long-name-indeed"
    cap = write_capture(tmp_path / "cap.yaml")
    cap.write_text(cap.read_text().replace("name: cap", f"name: {name}"))
    code, screen = run_on_terminal(
        [
            *(sys.executable, "-m", "packetcapture", "run", str(cap)),
            *("--endpoints", str(ENDPOINTS), "--node", "node-1"),
            *("--replay-dir", str(TRAFFIC), "--speed", "0.02"),
            *("--capture-dir", str(tmp_path / "c"), "--duration", "1.5"),
        ]
    )
    assert code == 0, screen
    table = [
        re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", line)
        for line in screen.replace("\r", "").split("\n")
        if "INTERFACE" in line or IFACE in line
    ]
    head = next(line for line in table if "INTERFACE" in line)
    rows = [
        line
        for line in table
        if line.startswith("sample-namespace/") and IFACE in line and "packets," not in line
    ]
    assert rows
    for row in rows:
        # Each column starts where its heading does.
        assert row.index(IFACE) == head.index("INTERFACE"), (head, row)

"""End to end through the CLI with the replay backend: run, status, plan, and bad input."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import sys
from pathlib import Path

import dpkt
import pytest
import yaml

from packetcapture.cli import main
from packetcapture.pcap import PcapReader, merge_captures
from packetcapture.pcap._format import parse_description
from tests.conftest import REPO, require_tool, run_on_terminal

EXAMPLES = REPO / "examples"


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def run_node1(
    capsys: pytest.CaptureFixture[str],
    capture: str | Path,
    out_dir: str | Path,
    *extra: str,
    source: tuple[str, ...] = ("--replay-dir", str(EXAMPLES / "traffic")),
) -> tuple[int, str, str]:
    """Run the CLI for node-1 of the example endpoints, replaying the example traffic."""
    args = [
        "run",
        str(capture),
        "--endpoints",
        str(EXAMPLES / "endpoints.yaml"),
        "--node",
        "node-1",
    ]
    return run_cli([*args, *source, "--capture-dir", str(out_dir), *extra], capsys)


def packets(path: Path) -> list[bytes]:
    with PcapReader(path) as reader:
        return [data for _, data, _ in reader]


def write_capture(path: Path, **spec: object) -> Path:
    doc = {
        "apiVersion": "projectcalico.org/v3",
        "kind": "PacketCapture",
        "metadata": {"name": "cap", "namespace": "sample-namespace"},
        "spec": spec,
    }
    path.write_text(yaml.safe_dump(doc))
    return path


def test_readme_example(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_dir = tmp_path / "captures"
    code, out, err = run_node1(
        capsys,
        str(EXAMPLES / "sample-capture.yaml"),
        str(out_dir),
        "--status-file",
        str(tmp_path / "status.yaml"),
    )
    assert code == 0, err
    status = yaml.safe_load(out)
    assert status["kind"] == "PacketCapture"
    assert status["status"] == {
        "files": [
            {
                "directory": str(out_dir),
                "fileNames": ["sample-app-7d4b9c-x2k8p_cali1a2b3c4d5e6.pcap"],
                "node": "node-1",
                "state": "Finished",
            }
        ]
    }
    assert yaml.safe_load((tmp_path / "status.yaml").read_text()) == status
    written = (
        out_dir
        / "sample-namespace"
        / "sample-capture"
        / ("sample-app-7d4b9c-x2k8p_cali1a2b3c4d5e6.pcap")
    )
    got = packets(written)
    assert len(got) == 18  # the TCP port 80 exchanges, IPv4 and IPv6, and a refused one
    # tcpdump, given the same filter, keeps exactly these packets from the source file.
    tcpdump = require_tool("tcpdump")
    ref = tmp_path / "ref.pcap"
    subprocess.run(
        [
            tcpdump,
            "-r",
            str(EXAMPLES / "traffic" / "cali1a2b3c4d5e6.pcap"),
            "-w",
            str(ref),
            "tcp port 80",
        ],
        check=True,
        capture_output=True,
    )
    assert got == packets(ref)
    listing = subprocess.run(
        [tcpdump, "-nr", str(written)], capture_output=True, text=True, check=True
    )
    assert len(listing.stdout.splitlines()) == 18


def test_namespace_scoping_and_selector(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cap = write_capture(tmp_path / "cap.yaml", selector="has(k8s-app)")
    code, out, err = run_node1(capsys, str(cap), str(tmp_path / "c"))
    assert code == 0, err
    names = yaml.safe_load(out)["status"]["files"][0]["fileNames"]
    # node-1 has sample-app and api in sample-namespace; the other-namespace pod is excluded.
    assert names == [
        "api-5c9f6d-lw3nt_calia9b8c7d6e5f.pcap",
        "sample-app-7d4b9c-x2k8p_cali1a2b3c4d5e6.pcap",
    ]
    assert len(packets(tmp_path / "c" / "sample-namespace" / "cap" / names[0])) == 27


def test_replay_mapping_and_rotation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A bigger file to rotate: the example traffic repeated 40 times.
    src = tmp_path / "big.pcap"
    with (EXAMPLES / "traffic" / "cali1a2b3c4d5e6.pcap").open("rb") as fh:
        frames = [(ts, buf) for ts, buf in dpkt.pcap.Reader(fh)]
    with src.open("wb") as fh:
        writer = dpkt.pcap.Writer(fh)
        for i in range(40):
            for ts, buf in frames:
                writer.writepkt(buf, ts=ts + i)
    cap = write_capture(tmp_path / "cap.yaml", selector='k8s-app == "sample-app"')
    code, out, err = run_node1(
        capsys,
        str(cap),
        str(tmp_path / "c"),
        "--max-size-bytes",
        "8000",
        "--max-files",
        "3",
        source=(
            "--replay",
            f"cali1a2b3c4d5e6={src}",
        ),
    )
    assert code == 0, err
    names = yaml.safe_load(out)["status"]["files"][0]["fileNames"]
    assert len(names) == 4  # three rotated + the active file
    assert names[-1] == "sample-app-7d4b9c-x2k8p_cali1a2b3c4d5e6.pcap"
    for name in names:
        assert (tmp_path / "c" / "sample-namespace" / "cap" / name).stat().st_size <= 8000 + 200
    assert "1400 packets" in err  # every packet of the file was captured (some then rotated out)


def test_schedule_in_the_past_captures_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The window holds the bundled traffic's timestamps, so only on the wall clock is it past.
    cap = write_capture(
        tmp_path / "cap.yaml", startTime="2021-08-26T12:00:00Z", endTime="2021-08-26T12:30:00Z"
    )
    code, out, err = run_node1(capsys, str(cap), str(tmp_path / "c"), "--replay-clock", "wall")
    assert code == 0, err
    entry = yaml.safe_load(out)["status"]["files"][0]
    assert entry["state"] == "Finished" and "fileNames" not in entry


def test_schedule_with_short_real_times(tmp_path: Path) -> None:
    start = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(seconds=2)
    cap = write_capture(
        tmp_path / "cap.yaml",
        startTime=start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        endTime=(start + dt.timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "packetcapture",
            "run",
            str(cap),
            "--endpoints",
            str(EXAMPLES / "endpoints.yaml"),
            "--node",
            "node-1",
            "--replay-dir",
            str(EXAMPLES / "traffic"),
            "--capture-dir",
            str(tmp_path / "c"),
            "--replay-clock",
            "wall",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    log = done.stderr
    assert log.index(": Scheduled") < log.index(": WaitingForTraffic") < log.index(": Finished")
    assert dt.datetime.now(dt.UTC) >= start
    assert yaml.safe_load(done.stdout)["status"]["files"][0]["state"] == "Finished"


def test_status_from_disk(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_dir = tmp_path / "c"
    code, _, err = run_node1(capsys, str(EXAMPLES / "sample-capture.yaml"), str(out_dir))
    assert code == 0, err
    code, out, err = run_cli(
        [
            "status",
            "--capture-dir",
            str(out_dir),
            "sample-namespace/sample-capture",
            "--node",
            "node-1",
        ],
        capsys,
    )
    assert code == 0, err
    assert yaml.safe_load(out)["status"]["files"][0] == {
        "directory": str(out_dir),
        "fileNames": ["sample-app-7d4b9c-x2k8p_cali1a2b3c4d5e6.pcap"],
        "node": "node-1",
        "state": "Finished",
    }
    code, _, err = run_cli(
        ["status", "--capture-dir", str(out_dir), "sample-namespace/nope", "--node", "node-1"],
        capsys,
    )
    assert code == 1 and "no capture sample-namespace/nope" in err


def test_plan(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(
        [
            "plan",
            str(EXAMPLES / "capture-with-filters.yaml"),
            "--endpoints",
            str(EXAMPLES / "endpoints.yaml"),
        ],
        capsys,
    )
    assert code == 0, err
    assert "node node-1:" in out and "node node-2:" in out
    assert "api-5c9f6d-lw3nt" in out and "api-canary" not in out  # !has(canary)
    assert "sample-app-7d4b9c-x2k8p" in out and "sample-app-55d8f" not in out
    assert "instructions" in out and "portrange 30000-32767" in out
    assert "at most 90.0 MB (3 interfaces x (2 rotated + 1 active) x 10.0 MB)" in out


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (
            "run {missing} --endpoints {endpoints} --node node-1 --replay-dir {traffic} "
            "--capture-dir {out}",
            1,
            "cannot read: No such file or directory",
        ),
        (
            "run {capture} --endpoints {capture} --node node-1 --replay-dir {traffic} "
            "--capture-dir {out}",
            1,
            "no WorkloadEndpoint resources found",
        ),
        (
            "run {capture} --endpoints {endpoints} --node node-9 --replay-dir {traffic} "
            "--capture-dir {out}",
            1,
            "no endpoints on node 'node-9'",
        ),
        (
            "run {capture} --endpoints {endpoints} --node node-1 --replay-dir {missing} "
            "--capture-dir {out}",
            1,
            "no such directory",
        ),
        (
            "run {capture} --endpoints {endpoints} --node node-1 --replay nofile "
            "--capture-dir {out}",
            1,
            "expected IFACE=FILE",
        ),
        (
            "run {bad} --endpoints {endpoints} --node node-1 --replay-dir {traffic} "
            "--capture-dir {out}",
            1,
            "spec.filters[0].protocol",
        ),
        (
            "run {capture} --endpoints {endpoints} --node node-1 --replay-dir {traffic} "
            "--capture-dir {out} --max-files 0",
            2,
            "must be at least 1",
        ),
        (
            "run {capture} --endpoints {endpoints} --node node-1 --capture-dir {out}",
            2,
            "one of the arguments",
        ),
        (
            "run {capture} --endpoints {endpoints} --node node-1 --replay-dir {traffic} "
            "--capture-dir {out} --duration abc",
            2,
            "not a number",
        ),
        (
            "status --capture-dir {out} a/b/c --node n",
            2,
            "expected NAME or NAMESPACE/NAME",
        ),
        (
            "plan {bad} --endpoints {endpoints}",
            1,
            "spec.filters[0].protocol",
        ),
    ],
)
def test_bad_input_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: str, code: int, needle: str
) -> None:
    bad = write_capture(tmp_path / "bad.yaml", filters=[{"protocol": "tcp"}])
    values = {
        "missing": str(tmp_path / "missing"),
        "endpoints": str(EXAMPLES / "endpoints.yaml"),
        "traffic": str(EXAMPLES / "traffic"),
        "capture": str(EXAMPLES / "sample-capture.yaml"),
        "out": str(tmp_path / "out"),
        "bad": str(bad),
    }
    argv = [a.format(**values) for a in args.split()]
    try:
        got = main(argv)
    except SystemExit as exc:  # argparse usage errors
        got = int(exc.code or 0)
    err = capsys.readouterr().err
    assert got == code
    assert needle in err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, lines


def test_replay_corrupt_file_keeps_earlier_packets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = (EXAMPLES / "traffic" / "cali1a2b3c4d5e6.pcap").read_bytes()
    corrupt = tmp_path / "corrupt.pcap"
    # A record no capture can hold (300000 > libpcap's 262144 bytes): corrupt, not torn.
    corrupt.write_bytes(good + bytes(8) + (300_000).to_bytes(4, "little") + bytes(4) + b"x" * 9)
    cap = write_capture(tmp_path / "cap.yaml", selector='k8s-app == "sample-app"')
    code, out, err = run_node1(
        capsys,
        str(cap),
        str(tmp_path / "c"),
        source=(
            "--replay",
            f"cali1a2b3c4d5e6={corrupt}",
        ),
    )
    assert code == 1
    assert str(corrupt) in err and "byte" in err
    entry = yaml.safe_load(out)["status"]["files"][0]
    assert entry["state"] == "Error"
    name = entry["fileNames"][0]
    assert len(packets(tmp_path / "c" / "sample-namespace" / "cap" / name)) == 35


def test_ctrl_c_stops_cleanly(tmp_path: Path) -> None:
    import signal
    import time

    fifo_dir = tmp_path / "traffic"
    fifo_dir.mkdir()
    shutil.copy(EXAMPLES / "traffic" / "cali1a2b3c4d5e6.pcap", fifo_dir)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "packetcapture",
            "run",
            str(EXAMPLES / "sample-capture.yaml"),
            "--endpoints",
            str(EXAMPLES / "endpoints.yaml"),
            "--node",
            "node-1",
            "--replay-dir",
            str(fifo_dir),
            "--speed",
            "0.001",
            "--capture-dir",
            str(tmp_path / "c"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert yaml.safe_load(out)["status"]["files"][0]["state"] == "Finished"


def test_progress_table_on_a_terminal(tmp_path: Path) -> None:
    """Under a pseudo-terminal the run shows a live table, redrawn in place."""
    code, screen = run_on_terminal(
        [
            sys.executable,
            "-m",
            "packetcapture",
            "run",
            str(EXAMPLES / "sample-capture.yaml"),
            "--endpoints",
            str(EXAMPLES / "endpoints.yaml"),
            "--node",
            "node-1",
            "--replay-dir",
            str(EXAMPLES / "traffic"),
            "--speed",
            "0.02",
            "--capture-dir",
            str(tmp_path / "c"),
            "--duration",
            "2",
        ]
    )
    assert code == 0, screen
    assert "CAPTURE" in screen and "INTERFACE" in screen and "STATE" in screen
    assert "sample-namespace/sample-capture" in screen and "cali1a2b3c4d5e6" in screen
    assert "\x1b[" in screen  # redrawn in place
    assert "Traceback" not in screen


def test_pcapng_files_name_the_node_so_merge_keeps_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The agent's pcapng interface descriptions carry the node: merging a copied directory
    # (whose name is not the node's) still says node-1.
    cap = EXAMPLES / "sample-capture.yaml"
    code, _, err = run_node1(capsys, cap, tmp_path / "c", "--format", "pcapng")
    assert code == 0, err
    (src,) = (tmp_path / "c" / "sample-namespace" / "sample-capture").glob("*.pcap")
    with PcapReader(src) as reader:
        list(reader)
        (iface,) = reader.interfaces
    assert parse_description(iface.description or "") == {
        "endpoint": "sample-namespace/" + src.name.split("_")[0],
        "interface": src.stem.split("_")[1],
        "node": "node-1",
        "capture": "sample-namespace/sample-capture",
    }
    copied = tmp_path / "copied-elsewhere"
    copied.mkdir()
    shutil.copy(src, copied)
    with (tmp_path / "m.pcapng").open("wb") as out:
        merge_captures([copied], "sample-namespace", "sample-capture", out)
    with PcapReader(tmp_path / "m.pcapng") as reader:
        list(reader)
        assert [parse_description(i.description or "")["node"] for i in reader.interfaces] == [
            "node-1"
        ]

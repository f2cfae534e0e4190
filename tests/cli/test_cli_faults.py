"""Faults during `packetcapture run` (issue 16, part A): a full disk and a removed capture
directory at random (seeded) moments; one failing writer through
the agent API; packets queued at stop; two runs on one directory.

After every fault: the exit code, the printed status, the status file and `packetcapture
status` agree, every pcap left reads with tcpdump, and there is no traceback.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import dpkt
import pytest
import yaml

import packetcapture as pc
from packetcapture.agent import NodeAgent
from packetcapture.backends.replay import ReplayBackend
from packetcapture.pcap import CaptureSettings
from packetcapture.testing import FakeClock, MemoryBackend
from tests.conftest import readme_run, require_tool

EXAMPLES = Path(__file__).parents[2] / "examples"
NS, NAME, NODE, IFACE = "sample-namespace", "sample-capture", "node-1", "cali1a2b3c4d5e6"
T0 = dt.datetime(2021, 8, 26, 12, 0, tzinfo=dt.UTC)


def frame(dport: int = 80, size: int = 200) -> bytes:
    tcp = dpkt.tcp.TCP(sport=40000, dport=dport, flags=dpkt.tcp.TH_ACK, data=b"x" * (size - 54))
    ip = dpkt.ip.IP(src=b"\x0a\x00\x00\x01", dst=b"\x0a\x00\x00\x02", p=6, data=tcp)
    ip.len = len(ip)
    return bytes(dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\xee" * 6, data=ip))


def write_pcap(path: Path, count: int, gap: float) -> Path:
    data = frame()
    with path.open("wb") as f:
        writer = dpkt.pcap.Writer(f)
        for i in range(count):
            writer.writepkt(data, ts=1_700_000_000 + i * gap)
    return path


@contextlib.contextmanager
def tmpfs(size: str) -> Iterator[Path]:
    """A small tmpfs in a temporary directory, always unmounted."""
    where = Path(tempfile.mkdtemp(prefix="pc-tmpfs-"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)
        with contextlib.suppress(OSError):
            where.rmdir()


def fill(directory: Path) -> None:
    """Take every free byte of the file system under ``directory``."""
    with contextlib.suppress(OSError), (directory / "fill").open("wb") as f:
        while True:
            f.write(b"\0" * 65536)
            f.flush()


def remove_capture(directory: Path) -> None:
    shutil.rmtree(directory / NS / NAME, ignore_errors=True)


def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "packetcapture", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)


def run_with_fault(
    root: Path, big: Path, fault: Callable[[Path], None], at: float
) -> subprocess.CompletedProcess[str]:
    cmd = [
        sys.executable,
        "-m",
        "packetcapture",
        "run",
        str(EXAMPLES / "sample-capture.yaml"),
        "--endpoints",
        str(EXAMPLES / "endpoints.yaml"),
        "--node",
        NODE,
        "--replay",
        f"{IFACE}={big}",
        "--capture-dir",
        str(root),
        "--max-size-bytes",
        "100000",
        "--max-files",
        "2",
        "--speed",
        "2",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def later() -> None:
        # ``at`` seconds after the first capture file appears (start-up time varies).
        deadline = time.monotonic() + 20
        while not list((root / NS / NAME).glob("*.pcap")) and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(at)
        fault(root)

    timer = threading.Thread(target=later)
    timer.start()
    try:
        out, err = proc.communicate(timeout=60)
    finally:
        timer.join()
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def check_agreement(root: Path, done: subprocess.CompletedProcess[str]) -> str:
    """Check that every view of the run's end agrees; return the printed state."""
    assert done.returncode in (0, 1), done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    printed = yaml.safe_load(done.stdout)["status"]["files"][0]
    state = printed["state"]
    if state == "Error":
        assert done.returncode == 1, done.stderr
        assert "packetcapture: error:" in done.stderr
    directory = root / NS / NAME
    status_file = directory / f".status-{NODE}.yaml"
    shown = cli("status", f"{NS}/{NAME}", "--capture-dir", root, "--node", NODE)
    assert "Traceback" not in shown.stderr, shown.stderr
    saved = yaml.safe_load(status_file.read_text()) if status_file.exists() else None
    if saved == printed:
        assert shown.returncode == 0, shown.stderr
        assert yaml.safe_load(shown.stdout)["status"]["files"][0] == printed
    else:
        # Not saved (a read-only file system): the run said so and exited 1, and `status`
        # does not pass an old state off as the live one.
        assert done.returncode == 1
        assert f"cannot write {status_file}" in done.stderr, done.stderr
        assert shown.returncode == 1, shown.stdout
    tcpdump = require_tool("tcpdump")
    for pcap in sorted(directory.glob("*.pcap")) if directory.is_dir() else []:
        read = subprocess.run(
            [tcpdump, "-nr", str(pcap)], capture_output=True, text=True, check=False
        )
        assert read.returncode == 0, read.stderr
        assert "truncated" not in read.stderr, read.stderr
    return str(state)


# A read-only remount is not among them: the kernel refuses ``mount -o remount,ro`` (EBUSY)
# while a file is open for writing, so it cannot happen under a running capture.
FAULTS = {"full": fill, "removed": remove_capture}


@pytest.mark.root
@pytest.mark.parametrize("fault", list(FAULTS))
def test_run_with_a_fault_at_random_moments_tells_one_truth(tmp_path: Path, fault: str) -> None:
    big = write_pcap(tmp_path / "big.pcap", 12_000, 0.0001)  # 1.2 s, played in 0.6 s
    rng = random.Random(f"faults-{fault}")
    states = []
    for _ in range(3):
        with tmpfs("400k") as root:
            done = run_with_fault(root, big, FAULTS[fault], rng.uniform(0.0, 0.4))
            states.append(check_agreement(root, done))
    # The fault hit a running capture at least once: that is never a plain success.
    assert "Error" in states, states


@pytest.mark.root
def test_full_disk_repro_of_the_issue_prints_and_saves_error(tmp_path: Path) -> None:
    big = write_pcap(tmp_path / "big.pcap", 12_000, 0.0001)
    with tmpfs("300k") as root:
        done = run_with_fault(root, big, fill, 0.3)
        assert check_agreement(root, done) == "Error"
        assert "No space left on device" in done.stderr
        assert "Finished" not in done.stderr


# --- the agent API --------------------------------------------------------------------


def capture() -> pc.PacketCapture:
    return pc.PacketCapture(
        metadata=pc.ObjectMeta(name="cap", namespace="ns"),
        spec=pc.PacketCaptureSpec(selector='app == "web"'),
    )


def endpoint(pod: str, iface: str) -> pc.WorkloadEndpoint:
    return pc.WorkloadEndpoint(
        metadata=pc.ObjectMeta(
            name=f"node-1-k8s-{pod}-eth0", namespace="ns", labels={"app": "web"}
        ),
        spec=pc.WorkloadEndpointSpec(
            node="node-1", orchestrator="k8s", pod=pod, endpoint="eth0", interface_name=iface
        ),
    )


@pytest.mark.root
def test_one_failing_writer_never_stops_the_others(tmp_path: Path) -> None:
    """A writer whose file is removed goes to Error with the reason; the others go on.
    Then the disk fills: every interface is in Error, and step() never raises."""
    backend = MemoryBackend()
    clock = FakeClock(T0)
    seen: list[pc.CaptureState] = []
    batch = 5000  # more than one read: packets are still queued when a write fails
    data = frame()

    def inject_all() -> None:
        for i in (1, 2, 3):
            for k in range(batch):
                backend.inject(f"cali{i}", data, timestamp_ns=1_700_000_000 * 10**9 + k)

    with tmpfs("8m") as root:
        agent = NodeAgent(
            "node-1",
            backend,
            root,
            CaptureSettings(max_size_bytes=600_000, max_files=2),
            clock,
            retry=None,
            on_status_change=lambda ns, name, status: seen.append(status.files[0].state),
        )
        agent.apply(capture())
        for i in (1, 2, 3):
            agent.upsert_endpoint(endpoint(f"p{i}", f"cali{i}"))
        agent.step(timeout=0)
        for n in range(4):
            if n == 2:
                (root / "ns" / "cap" / "p2_cali2.pcap").unlink()
            inject_all()
            clock.advance(1)
            agent.step(timeout=0)
        states = {i.interface: (i.state, i.error) for i in agent.details("ns", "cap").interfaces}
        assert states["cali2"][0] is pc.CaptureState.ERROR
        assert "No such file or directory" in (states["cali2"][1] or "")  # rotate, or tick
        assert states["cali1"] == states["cali3"] == (pc.CaptureState.CAPTURING, None)
        assert seen[-1] is pc.CaptureState.ERROR
        fill(root)  # now every writer hits a full disk on its next write
        for _ in range(2):
            inject_all()
            clock.advance(1)
            agent.step(timeout=0)  # never raises
        details = agent.details("ns", "cap")
        assert details.state is pc.CaptureState.ERROR
        for iface in details.interfaces:
            assert iface.state is pc.CaptureState.ERROR, iface
            if iface.interface != "cali2":
                assert "No space left on device" in (iface.error or ""), iface
        agent.close()
        after = agent.details("ns", "cap")
        assert after.state is pc.CaptureState.ERROR
        for iface in after.interfaces:
            # written + dropped = offered: every batch injected while its source was open
            offered = iface.packets + iface.dropped
            assert offered % batch == 0 and offered > 0, iface
            if iface.interface != "cali2":
                assert offered == 5 * batch, iface  # the last batch found no source open


def test_queued_at_stop_are_written_or_counted(tmp_path: Path) -> None:
    """100k packets waiting in a source at stop: written + dropped == offered."""
    backend = MemoryBackend()
    clock = FakeClock(T0)
    agent = NodeAgent("node-1", backend, tmp_path, CaptureSettings(), clock)
    agent.apply(capture())
    agent.upsert_endpoint(endpoint("p1", "cali1"))
    agent.step(timeout=0)
    data = frame(size=64)
    for k in range(100_000):
        backend.inject("cali1", data, timestamp_ns=1_700_000_000 * 10**9 + k)
    agent.close()
    (iface,) = agent.details("ns", "cap").interfaces
    assert iface.packets == 100_000
    assert iface.dropped == 0
    with pc.pcap.PcapReader(tmp_path / "ns" / "cap" / "p1_cali1.pcap") as reader:
        assert sum(1 for _ in reader) == 100_000


def test_queued_at_stop_replay(tmp_path: Path) -> None:
    """A replayed file of 100k packets stopped after its first read: all of it is written."""
    big = write_pcap(tmp_path / "big.pcap", 100_000, 0.0)
    agent = NodeAgent(
        "node-1",
        ReplayBackend(files={"cali1": [big]}),
        tmp_path / "out",
        CaptureSettings(),
        FakeClock(T0),
    )
    agent.apply(capture())
    agent.upsert_endpoint(endpoint("p1", "cali1"))  # opens the source
    agent.close()  # before any step: the whole file is due
    (iface,) = agent.details("ns", "cap").interfaces
    assert iface.packets + iface.dropped == 100_000
    assert iface.dropped == 0


@pytest.mark.root
def test_two_runs_on_one_directory(tmp_path: Path) -> None:
    slow = write_pcap(tmp_path / "slow.pcap", 50, 0.1)  # 5 s at speed 1
    args = [
        "run",
        EXAMPLES / "sample-capture.yaml",
        "--endpoints",
        EXAMPLES / "endpoints.yaml",
        "--node",
        NODE,
        "--capture-dir",
        tmp_path / "c",
        "--replay",
        f"{IFACE}={slow}",
        "--speed",
        "1",
    ]
    cmd = [sys.executable, "-m", "packetcapture", *map(str, args)]
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lock = tmp_path / "c" / NS / NAME / ".packetcapture.lock"
        deadline = time.monotonic() + 20
        while not (lock.exists() and lock.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.05)
        second = cli(*args)
        assert second.returncode == 1
        assert f"in use by another packetcapture run (pid {first.pid})" in second.stderr
        assert second.stdout == ""
        waited = cli(*args, "--wait", "--duration", "0.2")
        assert waited.returncode == 0, waited.stderr
        assert first.poll() is not None  # it waited for the first one to end
    finally:
        first.kill() if first.poll() is None else None
        first.communicate()
    assert first.returncode == 0
    os.stat(tmp_path / "c" / NS / NAME / ".packetcapture.lock")


def test_long_node_name_gets_a_bounded_status_file(tmp_path: Path) -> None:
    """A 250-character node name: the status file name is cut and hashed, and `status` finds it."""
    from packetcapture.cli._run_impl import status_file_name

    node = "n" * 250
    names = {status_file_name(node), status_file_name(node[:-1] + "m")}
    assert len(names) == 2 and all(len(n) <= 243 for n in names)
    assert status_file_name("node-1") == ".status-node-1.yaml"
    endpoints = tmp_path / "endpoints.yaml"
    text = (EXAMPLES / "endpoints.yaml").read_text()
    endpoints.write_text(text.replace("node: node-1", f"node: {node}"))
    replay = write_pcap(tmp_path / "small.pcap", 5, 0.0)
    done = cli(
        "run",
        EXAMPLES / "sample-capture.yaml",
        "--endpoints",
        endpoints,
        "--node",
        node,
        "--capture-dir",
        tmp_path / "c",
        "--replay",
        f"{IFACE}={replay}",
    )
    assert done.returncode == 0, done.stderr
    assert "warning" not in done.stderr
    assert (tmp_path / "c" / NS / NAME / status_file_name(node)).is_file()
    shown = cli("status", f"{NS}/{NAME}", "--capture-dir", tmp_path / "c", "--node", node)
    assert shown.returncode == 0, shown.stderr
    assert yaml.safe_load(shown.stdout)["status"]["files"][0]["state"] == "Finished"


def test_log_lines_stay_one_line(tmp_path: Path) -> None:
    """A control character in a logged name does not split the CLI's stderr lines."""
    script = (
        "import logging, sys; from packetcapture.cli import main; "
        f"main(['-v', 'status', 'ns/x', '--capture-dir', {str(tmp_path)!r}, '--node', 'n']); "
        "log = logging.getLogger('packetcapture.test'); "
        "log.warning('interface %s failed', 'ca\\nli\\x1b'); "
        "log.info('interface %s is up', 'ca\\rli')"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    lines = done.stderr.splitlines()
    assert "packetcapture: warning: interface ca\\nli\\x1b failed" in lines, lines
    assert "INFO packetcapture.test: interface ca\\rli is up" in lines, lines


def test_sigterm_during_set_up_stops_it(tmp_path: Path) -> None:
    """Thousands of endpoints: SIGTERM while the agent sets them up ends the run there."""
    import json
    import signal

    count = 6000
    items = [
        {
            "apiVersion": "projectcalico.org/v3",
            "kind": "WorkloadEndpoint",
            "metadata": {
                "name": f"{NODE}-k8s-p{i}-eth0",
                "namespace": NS,
                "labels": {"k8s-app": "sample-app"},
            },
            "spec": {
                "node": NODE,
                "orchestrator": "k8s",
                "pod": f"p{i}",
                "endpoint": "eth0",
                "interfaceName": f"cali{i}",
            },
        }
        for i in range(count)
    ]
    endpoints = tmp_path / "endpoints.yaml"
    endpoints.write_text(json.dumps({"kind": "WorkloadEndpointList", "items": items}))
    (tmp_path / "replays").mkdir()
    cmd = [
        sys.executable,
        "-m",
        "packetcapture",
        "run",
        str(EXAMPLES / "sample-capture.yaml"),
        "--endpoints",
        str(endpoints),
        "--node",
        NODE,
        "--capture-dir",
        str(tmp_path / "c"),
        "--replay-dir",
        str(tmp_path / "replays"),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lock = tmp_path / "c" / NS / NAME / ".packetcapture.lock"
    deadline = time.monotonic() + 60
    while not lock.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    time.sleep(0.3)  # into the set-up
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert "Traceback" not in err
    counters = [line for line in err.splitlines() if " packets, " in line]
    assert 0 < len(counters) < count, len(counters)  # stopped part of the way
    assert yaml.safe_load(out)["status"]["files"][0]["node"] == NODE


def test_an_unforeseen_error_mid_run_still_closes_files_and_sources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from packetcapture.backends.replay import ReplaySource
    from packetcapture.cli import main

    closed: list[str] = []
    real_close = ReplaySource.close

    def close(self: ReplaySource) -> None:
        closed.append(self.interface)
        real_close(self)

    def step(self: NodeAgent, timeout: float | None = None) -> None:
        raise RuntimeError("unforeseen")

    monkeypatch.setattr(ReplaySource, "close", close)
    monkeypatch.setattr(NodeAgent, "step", step)
    with pytest.raises(RuntimeError, match="unforeseen"):
        main(readme_run(tmp_path))
    assert IFACE in closed  # the replayed file is closed, not left to the collector
    files = list((tmp_path / NS / NAME).glob("*.pcap"))
    assert files
    for path in files:  # every capture file was flushed and closed: a whole pcap
        with pc.pcap.PcapReader(path) as reader:
            list(reader)

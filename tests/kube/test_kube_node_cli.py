"""``packetcapture node``: flags, environment fallbacks, start-up imports, SIGTERM."""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from packetcapture.cli import main
from packetcapture.cli._node import ENVIRONMENT, resolve_environment
from tests.kube.kube_helpers import capture, entries, pod, replay_dir, wait_for

pytest.importorskip("kubernetes")


def _env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PACKETCAPTURE_") and k not in ("NODE_NAME", "KUBECONFIG")
    }
    env.update(extra)
    return env


def _loaded(code: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", "import atexit, json, sys\n"
         "atexit.register(lambda: print(json.dumps(sorted(sys.modules)), file=sys.stderr))\n"
         + code],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    return set(json.loads(done.stderr.strip().splitlines()[-1]))


@pytest.mark.parametrize(
    "code",
    [
        "import packetcapture",
        "import packetcapture.kube",
        "from packetcapture.kube import CaptureResource, interface_name",
        "from packetcapture.cli import main\ntry:\n    main(['--help'])\n"
        "except SystemExit:\n    pass",
        "from packetcapture.cli import main\ntry:\n    main(['node', '--help'])\n"
        "except SystemExit:\n    pass",
    ],
    ids=["package", "kube", "kube-names", "help", "node-help"],
)
def test_start_up_imports_no_kubernetes_module(code: str) -> None:
    loaded = _loaded(code)
    assert not {m for m in loaded if m == "kubernetes" or m.startswith("kubernetes.")}
    assert "urllib3" not in loaded


def test_environment_fallbacks() -> None:
    args = argparse.Namespace(**dict.fromkeys(ENVIRONMENT))
    args.max_files = 9  # a flag given wins over the environment
    resolve_environment(
        args,
        {
            "NODE_NAME": "n7",
            "PACKETCAPTURE_MAX_FILES": "3",
            "PACKETCAPTURE_MAX_SIZE_BYTES": "1000",
            "PACKETCAPTURE_FORMAT": "pcapng",
            "PACKETCAPTURE_STATUS_INTERVAL": "0.5",
        },
    )
    assert args.node == "n7" and args.max_files == 9 and args.max_size_bytes == 1000
    assert args.format == "pcapng" and args.status_interval == 0.5
    assert args.capture_dir == "/var/log/calico/pcap" and args.rotation_seconds == 3600
    assert args.interface_prefix == "cali" and args.health_port is None


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"PACKETCAPTURE_MAX_FILES": "abc"}, "PACKETCAPTURE_MAX_FILES='abc': 'abc' is not"),
        ({"PACKETCAPTURE_ROTATION_SECONDS": "0"}, "PACKETCAPTURE_ROTATION_SECONDS='0'"),
        ({"PACKETCAPTURE_FORMAT": "cap"}, "PACKETCAPTURE_FORMAT='cap': must be pcap or pcapng"),
        ({"PACKETCAPTURE_HEALTH_PORT": "70000"}, "must be at most 65535"),
        ({}, "--node is required (or set NODE_NAME"),
    ],
)
def test_bad_settings_are_one_line_errors(
    env: dict[str, str], says: str, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    for key in list(os.environ):
        if key.startswith("PACKETCAPTURE_") or key == "NODE_NAME":
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    if env:
        monkeypatch.setenv("NODE_NAME", "n1")
    assert main(["node"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("packetcapture: error: ") and says in err
    assert err.count("\n") == 1


def test_missing_kubeconfig_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    code = main(["node", "--node", "n1", "--kubeconfig", str(tmp_path / "nope")])
    assert code == 1
    err = capsys.readouterr().err
    assert err == f"packetcapture: error: kubeconfig {tmp_path / 'nope'}: no such file\n"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        return int(exc.code)
    except OSError:
        return 0


def _node(tmp_path: Path, emulator: Any, *extra: str) -> subprocess.Popen[str]:
    kubeconfig = emulator.write_kubeconfig(tmp_path / "kubeconfig")
    return subprocess.Popen(
        [sys.executable, "-m", "packetcapture", "node", "--kubeconfig", str(kubeconfig), *extra],
        env=_env(NODE_NAME="n1", PACKETCAPTURE_STATUS_INTERVAL="0.1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _stop(proc: subprocess.Popen[str]) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise AssertionError("packetcapture node did not exit within 15 s of SIGTERM") from None
    return proc.returncode, err


def test_sigterm_stops_cleanly_with_the_final_status(emulator: Any, tmp_path: Path) -> None:
    emulator.create(pod("ns", "a", "n1"))
    emulator.create(capture("ns", "later", startTime="2099-01-01T00:00:00Z"))
    replay = replay_dir(tmp_path / "replay", [("ns", "a")])
    port = _free_port()
    proc = _node(
        tmp_path, emulator, "--capture-dir", str(tmp_path / "pcap"), "--replay-dir",
        str(replay), "--health-port", str(port),
    )  # fmt: skip
    try:
        wait_for(lambda: _get(f"http://127.0.0.1:{port}/readyz") == 200, 20, "ready")
        assert _get(f"http://127.0.0.1:{port}/livez") == 200
        wait_for(
            lambda: entries(emulator, "ns", "later").get("n1", {}).get("state") == "Scheduled",
            20,
            "Scheduled",
        )
        started = time.monotonic()
        code, err = _stop(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert code == 0, err
    assert time.monotonic() - started < 10
    assert entries(emulator, "ns", "later")["n1"]["state"] == "Finished"
    lines = err.splitlines()
    assert any("SIGTERM: stopping" in line for line in lines)
    # One line per state change of the capture on this node.
    changes = [line for line in lines if "capture ns/later on n1:" in line]
    assert [c.rsplit(": ", 1)[1] for c in changes] == ["Scheduled", "Finished"]
    assert "Traceback" not in err


def test_dry_run_subprocess_logs_what_it_would_capture(emulator: Any, tmp_path: Path) -> None:
    emulator.create(pod("ns", "a", "n1", {"app": "x"}))
    emulator.create(capture("ns", "cap", 'app == "x"'))
    proc = _node(tmp_path, emulator, "--dry-run", "--capture-dir", str(tmp_path / "pcap"))
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not any(
            r.path.endswith("/packetcaptures") and r.query.get("watch")
            for r in list(emulator.requests)
        ):
            time.sleep(0.05)
        time.sleep(0.3)
        code, err = _stop(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert code == 0, err
    assert "dry run: capture ns/cap would capture pod a (cali" in err
    assert not (tmp_path / "pcap").exists()
    assert not [r for r in emulator.requests if r.method in ("PUT", "PATCH", "POST")]

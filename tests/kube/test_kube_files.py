"""copy / clean / stream --kubernetes against the emulator: real client, real HTTP, real exec.

Exec runs through the emulator's WebSocket (``v4.channel.k8s.io``) into ``LocalExec``, which
runs the real ``tar``, ``rm`` and ``packetcapture follow`` on a host directory standing for
each node's /var/log/calico/pcap. Hostile tar streams come from a handler that writes them.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
import threading
from pathlib import Path
from typing import Any

import pytest

from packetcapture.cli import main
from packetcapture.kube._files import (
    AGENT_LABEL_SELECTOR,
    DEFAULT_AGENT_NAMESPACE,
    NodeOutcome,
    copy_capture_files,
    stream_capture,
)
from packetcapture.pcap import PcapReader, PcapWriter
from tests.kube.emulator import ApiEmulator, LocalExec
from tests.kube.kube_helpers import PC, SAMPLE_PCAP, capture, wait_for

NS, NAME = "shop", "cap"
DIR = "/var/log/calico/pcap"
FILES = {
    "node-a": ["web_cali1a2b3c4d5e6-1700000000000000.pcap", "web_cali1a2b3c4d5e6.pcap"],
    "node-b": ["db_cali0f1e2d3c4b5.pcap"],
}


def agent_pod(node: str) -> dict[str, Any]:
    key, _, value = AGENT_LABEL_SELECTOR.partition("=")
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"packetcapture-node-{node}",
            "namespace": DEFAULT_AGENT_NAMESPACE,
            "labels": {key: value},
        },
        "spec": {"nodeName": node, "containers": [{"name": "packetcapture-node", "image": "x"}]},
        "status": {"phase": "Running"},
    }


class Cluster:
    """Two nodes with an agent pod each and a capture's files on their host directories."""

    def __init__(self, emulator: ApiEmulator, tmp: Path, state: str = "Finished") -> None:
        self.emulator = emulator
        self.roots = {node: tmp / "hosts" / node for node in FILES}
        self.kubeconfig = str(emulator.write_kubeconfig(tmp / "kubeconfig"))
        self.dest = tmp / "dest"
        for node, names in FILES.items():
            where = self.roots[node] / NS / NAME
            where.mkdir(parents=True)
            for fname in names:
                shutil.copyfile(SAMPLE_PCAP, where / fname)
            (where / f".status-{node}.yaml").write_text("state: Finished\n")
            emulator.create(agent_pod(node))
        self.exec = LocalExec(
            pod_roots={
                (DEFAULT_AGENT_NAMESPACE, f"packetcapture-node-{n}"): {DIR: r}
                for n, r in self.roots.items()
            },
            commands={"packetcapture": [sys.executable, "-m", "packetcapture"]},
        )
        emulator.set_exec_handler(self.exec)
        obj = capture(NS, NAME)
        obj["status"] = {
            "files": [
                {"node": n, "directory": DIR, "fileNames": names, "state": state}
                for n, names in FILES.items()
            ]
        }
        emulator.create(obj)

    def run(self, *argv: str) -> int:
        return main([*argv, "--kubeconfig", self.kubeconfig])

    def copy(self) -> list[NodeOutcome]:
        client = self.emulator.api_client()
        try:
            return copy_capture_files(client, NS, NAME, self.dest)
        finally:
            client.close()

    def status(self) -> dict[str, dict[str, Any]]:
        obj = self.emulator.get(*PC, NS, NAME)
        return {e["node"]: e for e in obj["status"]["files"]}


@pytest.fixture
def cluster(emulator: ApiEmulator, tmp_path: Path) -> Cluster:
    return Cluster(emulator, tmp_path)


def _packets(path: Path) -> int:
    with PcapReader(path) as reader:
        return sum(1 for _ in reader)


# --- copy -------------------------------------------------------------------------------------


def test_copy_fetches_every_nodes_files_and_merge_reads_them(
    cluster: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cluster.run("copy", "--kubernetes", f"{NS}/{NAME}", "--dest", str(cluster.dest)) == 0
    out = capsys.readouterr().out
    assert "copied 2 file(s) from node node-a" in out
    assert "copied 1 file(s) from node node-b" in out
    for node, names in FILES.items():
        got = sorted(p.name for p in (cluster.dest / node).iterdir())
        assert got == sorted(names)  # no hidden status file, nothing else
        for fname in names:
            assert (cluster.dest / node / fname).read_bytes() == SAMPLE_PCAP.read_bytes()
    # the tar really ran in each "pod", on that node's directory
    assert [call[1] for call in cluster.exec.calls] == [
        "packetcapture-node-node-a",
        "packetcapture-node-node-b",
    ]
    assert all(Path(call[2][0]).name == "tar" for call in cluster.exec.calls)

    merged = tmp_path / "all.pcapng"
    dirs = [arg for n in FILES for arg in ("--capture-dir", str(cluster.dest / n))]
    assert main(["merge", "-n", NS, NAME, *dirs, "-o", str(merged)]) == 0
    per_file = _packets(SAMPLE_PCAP)
    assert _packets(merged) == 3 * per_file
    if shutil.which("tcpdump"):
        read = subprocess.run(
            ["tcpdump", "-nr", str(merged)], capture_output=True, text=True, check=True
        )
        assert len(read.stdout.splitlines()) == 3 * per_file


def test_copy_is_partial_when_a_node_has_no_agent(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster.emulator.delete("v1", "Pod", DEFAULT_AGENT_NAMESPACE, "packetcapture-node-node-b")
    assert cluster.run("copy", "--kubernetes", f"{NS}/{NAME}", "--dest", str(cluster.dest)) == 1
    err = capsys.readouterr().err
    assert err.startswith("packetcapture: error: partial: copied 1 of 2 node(s); node node-b:")
    assert "no running agent pod" in err
    assert len(list((cluster.dest / "node-a").iterdir())) == 2


def test_copy_of_a_missing_capture_is_one_line(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cluster.run("copy", "--kubernetes", f"{NS}/nope", "--dest", str(cluster.dest)) == 1
    err = capsys.readouterr().err
    assert err == "packetcapture: error: packetcapture shop/nope not found (projectcalico.org/v3)\n"


def test_copy_reports_a_file_the_status_names_but_the_node_lacks(cluster: Cluster) -> None:
    (cluster.roots["node-b"] / NS / NAME / "db_cali0f1e2d3c4b5.pcap").unlink()
    outcomes = cluster.copy()
    by_node = {o.node: o for o in outcomes}
    assert by_node["node-a"].ok
    assert by_node["node-b"].error is not None
    assert "not found on the node: db_cali0f1e2d3c4b5.pcap" in by_node["node-b"].error


def _tar_handler(build: Any) -> Any:
    def handler(ns: str, pod: str, container: Any, argv: list[str], stdin: Any, out: Any, err: Any):
        buf = io.BytesIO()
        build(buf)
        out(buf.getvalue())
        return 0

    return handler


def _member(tar: tarfile.TarFile, name: str, data: bytes = b"x", **kw: Any) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data) if kw.get("type", tarfile.REGTYPE) == tarfile.REGTYPE else 0
    for k, v in kw.items():
        setattr(info, k, v)
    tar.addfile(info, io.BytesIO(data) if info.size else None)


@pytest.mark.parametrize(
    ("entry", "kw", "message"),
    [
        ("shop/cap/../../../../evil.pcap", {}, "unsafe path"),
        ("/etc/evil.pcap", {}, "unsafe path"),
        ("other/cap/a_b.pcap", {}, "unexpected entry"),
        ("shop/cap/a_b.pcap", {"type": tarfile.SYMTYPE, "linkname": "/etc/passwd"}, "link"),
        ("shop/cap/a_b.pcap", {"type": tarfile.LNKTYPE, "linkname": "shop/cap/x"}, "link"),
        ("shop/cap/a_b.pcap", {"type": tarfile.CHRTYPE}, "device"),
    ],
)
def test_hostile_tar_streams_are_refused(
    cluster: Cluster, tmp_path: Path, entry: str, kw: dict[str, Any], message: str
) -> None:
    def build(buf: io.BytesIO) -> None:
        with tarfile.open(fileobj=buf, mode="w") as tar:
            _member(tar, entry, **kw)

    cluster.emulator.set_exec_handler(_tar_handler(build))
    outcomes = cluster.copy()
    assert all(not o.ok and message in (o.error or "") for o in outcomes), outcomes
    written = [p for p in tmp_path.rglob("*") if p.is_file() or p.is_symlink()]
    assert not [p for p in written if "evil" in p.name or p.is_symlink()]
    assert not list(cluster.dest.rglob("a_b.pcap"))


def test_a_truncated_tar_stream_is_an_error_and_leaves_no_partial_file(cluster: Cluster) -> None:
    def build(buf: io.BytesIO) -> None:
        with tarfile.open(fileobj=buf, mode="w") as tar:
            _member(tar, "shop/cap/web_cali1a2b3c4d5e6.pcap", b"y" * 5000)
        data = buf.getvalue()
        buf.seek(0)
        buf.truncate()
        buf.write(data[: 512 + 1000])  # header and 1000 of the 5000 bytes

    cluster.emulator.set_exec_handler(_tar_handler(build))
    outcomes = cluster.copy()
    assert all(not o.ok for o in outcomes)
    assert not [p for p in cluster.dest.rglob("*") if p.is_file()]


def test_copy_skips_names_of_no_capture_file_and_warns_of_files_not_in_status(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    where = cluster.roots["node-a"] / NS / NAME
    (where / "notes.txt").write_text("not a capture file")
    shutil.copyfile(SAMPLE_PCAP, where / "web_cali1a2b3c4d5e6-1700000000000001.pcap")
    assert cluster.run("copy", "--kubernetes", f"{NS}/{NAME}", "--dest", str(cluster.dest)) == 0
    names = sorted(p.name for p in (cluster.dest / "node-a").iterdir())
    assert "notes.txt" not in names
    assert "web_cali1a2b3c4d5e6-1700000000000001.pcap" in names
    assert "1 file(s) not yet in the status" in capsys.readouterr().err


def test_copy_needs_name_or_kubernetes_not_both(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["copy", "cap", "--kubernetes", "shop/cap"]) == 2
    assert "not both" in capsys.readouterr().err
    assert main(["copy"]) == 2
    assert "NAME (or --kubernetes NAMESPACE/NAME) is required" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["copy", "--kubernetes", "no-slash"])
    assert "expected NAMESPACE/NAME" in capsys.readouterr().err


# --- clean ------------------------------------------------------------------------------------


def test_clean_removes_files_on_each_node_and_empties_file_names(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cluster.run("clean", "--kubernetes", f"{NS}/{NAME}") == 0
    out = capsys.readouterr().out
    assert "removed 2 file(s) of shop/cap on node-a" in out
    for root in cluster.roots.values():
        assert not (root / NS / NAME).exists()
        assert (root / NS).is_dir()  # only the capture's directory goes
    status = cluster.status()
    assert {n: e["fileNames"] for n, e in status.items()} == {"node-a": [], "node-b": []}
    assert {e["state"] for e in status.values()} == {"Finished"}


def test_clean_refuses_unless_every_node_finished(
    emulator: ApiEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster = Cluster(emulator, tmp_path, state="Capturing")
    assert cluster.run("clean", "--kubernetes", f"{NS}/{NAME}") == 1
    err = capsys.readouterr().err
    assert err.startswith("packetcapture: error: refusing to clean shop/cap: node node-a: ")
    assert "capture state is Capturing, not Finished" in err and "(use --force)" in err
    assert all((r / NS / NAME).is_dir() for r in cluster.roots.values())
    assert cluster.run("clean", "--kubernetes", f"{NS}/{NAME}", "--force") == 0
    assert not any((r / NS / NAME).exists() for r in cluster.roots.values())


def test_clean_keeps_file_names_of_a_node_it_could_not_clean(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster.emulator.delete("v1", "Pod", DEFAULT_AGENT_NAMESPACE, "packetcapture-node-node-b")
    assert cluster.run("clean", "--kubernetes", f"{NS}/{NAME}") == 1
    assert "partial: cleaned 1 of 2 node(s)" in capsys.readouterr().err
    status = cluster.status()
    assert status["node-a"]["fileNames"] == []
    assert status["node-b"]["fileNames"] == FILES["node-b"]


def test_clean_retries_on_conflict_and_keeps_a_concurrent_writers_entry(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    import packetcapture.kube._files as files

    real = files.read_capture
    reads = []

    def read_then_a_node_writes(*args: Any, **kwargs: Any) -> dict[str, Any]:
        obj = real(*args, **kwargs)
        reads.append(obj["metadata"]["resourceVersion"])
        if len(reads) == 2:  # the status read of clean: another node writes right after it
            patch = {"status": {"files": [*obj["status"]["files"], {"node": "node-c"}]}}
            patch["status"]["files"][-1].update(
                directory=DIR, fileNames=["x_caliabc.pcap"], state="Capturing"
            )
            cluster.emulator.patch(*PC, NS, NAME, patch, subresource="status")
        return obj

    monkeypatch.setattr(files, "read_capture", read_then_a_node_writes)
    assert cluster.run("clean", "--kubernetes", f"{NS}/{NAME}") == 0
    assert len(reads) == 3  # first read, stale status read (409), fresh read
    puts = [
        r for r in cluster.emulator.requests if r.method == "PUT" and r.path.endswith("/status")
    ]
    assert len(puts) == 2
    status = cluster.status()
    assert status["node-c"]["fileNames"] == ["x_caliabc.pcap"]  # not lost
    assert status["node-a"]["fileNames"] == [] and status["node-b"]["fileNames"] == []


# --- stream -----------------------------------------------------------------------------------


def _writer_packets(n: int, start: int = 0) -> list[tuple[int, bytes]]:
    frame = bytes(14) + b"\x45" + bytes(40)
    return [((1_700_000_000 + start + i) * 10**9, frame + bytes([i % 256])) for i in range(n)]


def _write(path: Path, packets: list[tuple[int, bytes]], *, header: bool) -> None:
    buf = io.BytesIO()
    writer = PcapWriter(buf)
    for ts, data in packets:
        writer.write(ts, data)
    data = buf.getvalue()
    with open(path, "ab") as f:
        f.write(data if header else data[24:])


def test_stream_relays_a_growing_rotating_capture_as_one_pcap(
    cluster: Cluster, tmp_path: Path
) -> None:
    where = cluster.roots["node-b"] / NS / NAME
    active = where / "db_cali0f1e2d3c4b5.pcap"
    active.unlink()
    _write(active, _writer_packets(3), header=True)
    out = io.BytesIO()
    lock = threading.Lock()

    class Sink:
        def write(self, b: bytes) -> None:
            with lock:
                out.write(b)

        def flush(self) -> None:
            pass

    def size() -> int:
        with lock:
            return out.tell()

    client = cluster.emulator.api_client()
    done: list[str] = []
    thread = threading.Thread(
        target=lambda: done.append(
            stream_capture(client, NS, NAME, Sink(), node="node-b", count=9)
        ),
        daemon=True,
    )
    thread.start()
    try:
        wait_for(lambda: size() > 24 + 3 * 16, 20, "the first packets")
        first = size()
        _write(active, _writer_packets(3, start=3), header=False)  # the file grows
        wait_for(lambda: size() > first, 20, "the appended packets")
        os.rename(active, where / "db_cali0f1e2d3c4b5-1700000006000000.pcap")  # rotation
        _write(active, _writer_packets(3, start=6), header=True)
        thread.join(30)
    finally:
        client.close()
    assert done == ["node-b"]
    stream = tmp_path / "stream.pcap"
    stream.write_bytes(out.getvalue())
    with PcapReader(stream) as reader:
        stamps = [rec[0] for rec in reader]
    assert stamps == [(1_700_000_000 + i) * 10**9 for i in range(9)]
    if shutil.which("tcpdump"):
        read = subprocess.run(
            ["tcpdump", "-nr", "-"], input=out.getvalue(), capture_output=True, check=True
        )
        assert len(read.stdout.splitlines()) == 9


def test_stream_needs_a_node_when_several_report(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cluster.run("stream", "--kubernetes", f"{NS}/{NAME}") == 1
    err = capsys.readouterr().err
    assert "reported by 2 node(s) (node-a, node-b): choose one with --node" in err


def test_stream_reports_the_follow_error(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    where = cluster.roots["node-a"] / NS / NAME
    shutil.copyfile(SAMPLE_PCAP, where / "api_cali5e4d3c2b1a0.pcap")  # a second interface
    code = cluster.run("stream", "--kubernetes", f"{NS}/{NAME}", "--node", "node-a")
    captured = capsys.readouterr()
    assert code == 1
    assert captured.err.startswith("packetcapture: error: follow in pod packetcapture-node-node-a")
    assert "captures 2 interfaces here: choose one with --interface" in captured.err
    assert "(api_cali5e4d3c2b1a0, web_cali1a2b3c4d5e6)" in captured.err


# --- the user's RBAC, from the requests really made -------------------------------------------


def test_user_requests_are_those_the_user_roles_grant(cluster: Cluster) -> None:
    cluster.emulator.clear_requests()
    assert cluster.run("get", "-A") == 0
    assert cluster.run("get", "-n", NS) == 0
    assert cluster.run("describe", f"{NS}/{NAME}") == 0
    assert cluster.run("copy", "--kubernetes", f"{NS}/{NAME}", "--dest", str(cluster.dest)) == 0
    assert cluster.run("clean", "--kubernetes", f"{NS}/{NAME}") == 0
    seen = set()
    for r in cluster.emulator.requests:
        parts = r.path.strip("/").split("/")
        group = "" if parts[0] == "api" else parts[1]
        rest = parts[2:] if parts[0] == "api" else parts[3:]
        namespaced = rest[:1] == ["namespaces"]
        if namespaced:
            rest = rest[2:]
        resource = rest[0] + (f"/{rest[2]}" if len(rest) > 2 else "")
        verb = {"GET": "get" if len(rest) > 1 else "list", "PUT": "update", "POST": "create"}[
            r.method
        ]
        if resource == "pods/exec":
            verb = "create"
        seen.add((group, resource, verb))
    from tests.kube.test_deploy import _grants, the

    granted = _grants(the("ClusterRole", "packetcapture-user")) | _grants(
        the("Role", "packetcapture-user-exec")
    )
    assert seen <= granted
    assert ("", "pods/exec", "create") in seen
    assert ("projectcalico.org", "packetcaptures/status", "update") in seen

"""Shared helpers of the node-agent tests: objects, a running agent, waiting with a timeout."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from packetcapture.agent import NodeAgent
from packetcapture.backends import get_backend
from packetcapture.kube import DryRunAgent, KubeAgentConfig, KubeNodeAgent, interface_name

REPO = Path(__file__).resolve().parents[2]
TRAFFIC = REPO / "examples" / "traffic"
SAMPLE_PCAP = TRAFFIC / "cali1a2b3c4d5e6.pcap"
PC = ("projectcalico.org/v3", "PacketCapture")


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    """Poll ``predicate`` until it returns a true value; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        time.sleep(0.02)


def pod(
    namespace: str,
    name: str,
    node: str,
    labels: dict[str, Any] | None = None,
    *,
    ip: str | None = "10.0.0.1",
    service_account: str | None = None,
    host_network: bool = False,
    phase: str = "Running",
) -> dict[str, Any]:
    spec: dict[str, Any] = {"nodeName": node, "containers": [{"name": "c", "image": "x"}]}
    if service_account:
        spec["serviceAccountName"] = service_account
    if host_network:
        spec["hostNetwork"] = True
    status: dict[str, Any] = {"phase": phase}
    if ip:
        status["podIP"] = ip
        status["podIPs"] = [{"ip": ip}]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
        "spec": spec,
        "status": status,
    }


def capture(namespace: str, name: str, selector: str = "all()", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "projectcalico.org/v3",
        "kind": "PacketCapture",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"selector": selector, **spec},
    }


def entries(emulator: Any, namespace: str, name: str) -> dict[str, dict[str, Any]]:
    """Return a capture's status entries by node (empty when it has none or is gone)."""
    obj = emulator.get(*PC, namespace, name)
    if obj is None:
        return {}
    files = (obj.get("status") or {}).get("files") or []
    return {f.get("node"): f for f in files}


def replay_dir(root: Path, pods: list[tuple[str, str]], prefix: str = "cali") -> Path:
    """A replay directory with the sample traffic as each pod's interface."""
    root.mkdir(parents=True, exist_ok=True)
    for ns, name in pods:
        shutil.copy(SAMPLE_PCAP, root / f"{interface_name(ns, name, prefix)}.pcap")
    return root


@contextmanager
def running_agent(
    api_client: Any,
    node: str,
    capture_dir: Path,
    replay: Path | None,
    *,
    backend: Any = None,
    dry_run: bool = False,
    **config: Any,
) -> Iterator[KubeNodeAgent]:
    """A KubeNodeAgent (replay backend by default) run in a thread, shut down after."""
    config.setdefault("status_interval", 0.05)
    config.setdefault("watch_seconds", 5)
    config.setdefault("request_timeout", 5.0)
    agent: NodeAgent | DryRunAgent
    if dry_run:
        agent = DryRunAgent(node)
    else:
        backend = backend or get_backend("replay", directory=replay)
        agent = NodeAgent(node, backend, capture_dir, retry=None)
    kube = KubeNodeAgent(api_client, agent, KubeAgentConfig(node=node, **config))
    stop = threading.Event()
    result: list[bool] = []
    thread = threading.Thread(
        target=lambda: result.append(kube.run(stop, step_seconds=0.05, shutdown_seconds=5)),
        daemon=True,
    )
    thread.start()
    try:
        wait_for(kube.ready, what=f"agent {node} ready")
        yield kube
    finally:
        stop.set()
        thread.join(15)
        assert not thread.is_alive(), "agent did not stop"
    kube.final = result  # type: ignore[attr-defined]

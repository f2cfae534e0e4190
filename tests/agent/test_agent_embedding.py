"""The Kubernetes controller example's event handling, without a cluster."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

import packetcapture as pc
from packetcapture.agent import NodeAgent
from packetcapture.testing import FakeClock, MemoryBackend
from tests.conftest import REPO


def load_example() -> ModuleType:
    path = REPO / "examples" / "kubernetes_controller.py"
    spec = importlib.util.spec_from_file_location("kubernetes_controller", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["kubernetes_controller"] = module
    spec.loader.exec_module(module)
    return module


class FakeApi:
    """The two CustomObjectsApi calls the example makes, over an in-memory store."""

    def __init__(self, objects: dict[tuple[str, str], dict[str, Any]]) -> None:
        self.objects = objects
        self.patches: list[dict[str, Any]] = []

    def get_namespaced_custom_object(
        self, group: str, version: str, ns: str, plural: str, name: str
    ) -> dict[str, Any]:
        assert (group, version, plural) == ("projectcalico.org", "v3", "packetcaptures")
        return self.objects[(ns, name)]

    def patch_namespaced_custom_object_status(
        self, group: str, version: str, ns: str, plural: str, name: str, body: dict[str, Any]
    ) -> None:
        self.patches.append(body)
        self.objects[(ns, name)] = {**self.objects[(ns, name)], **body}


def test_watch_events_drive_the_agent(tmp_path: Path) -> None:
    example = load_example()
    capture = yaml.safe_load((REPO / "examples" / "sample-capture.yaml").read_text())
    endpoints = yaml.safe_load((REPO / "examples" / "endpoints.yaml").read_text())["items"]
    other_node = {
        **capture,
        "status": {
            "files": [
                {
                    "directory": "/var/log/calico/pcap",
                    "fileNames": [],
                    "node": "node-2",
                    "state": "WaitingForTraffic",
                }
            ]
        },
    }
    api = FakeApi({("sample-namespace", "sample-capture"): other_node})
    backend = MemoryBackend()
    agent = NodeAgent(
        "node-1",
        backend,
        tmp_path,
        clock=FakeClock(),
        on_status_change=lambda ns, n, s: example.patch_status(api, ns, n, s),
    )
    with agent:
        example.handle_event(agent, {"type": "ADDED", "object": capture})
        for wep in endpoints:
            example.handle_event(agent, {"type": "ADDED", "object": wep})
        example.handle_event(
            agent, {"type": "ADDED", "object": {**capture, "spec": {"selector": "bad&"}}}
        )
        agent.step(timeout=0)
        assert [e.spec.pod for e in agent.matches("sample-namespace", "sample-capture")] == [
            "sample-app-7d4b9c-x2k8p"
        ]
        files = api.patches[-1]["status"]["files"]
        assert [(f["node"], f["state"]) for f in files] == [
            ("node-2", "WaitingForTraffic"),
            ("node-1", "WaitingForTraffic"),
        ]
        deleted = {"type": "DELETED", "object": endpoints[0]}
        example.handle_event(agent, deleted)
        assert agent.matches("sample-namespace", "sample-capture") == []
        example.handle_event(agent, {"type": "DELETED", "object": capture})
        assert agent.captures() == []
    assert isinstance(
        pc.from_dict(api.objects[("sample-namespace", "sample-capture")]), pc.PacketCapture
    )

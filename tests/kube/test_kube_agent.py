"""The node agent against the API emulator: real client, real HTTP, replay backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.kube.kube_helpers import PC, capture, entries, pod, replay_dir, running_agent, wait_for

pytest.importorskip("kubernetes")

from packetcapture.kube import interface_name  # noqa: E402


def test_capture_selected_pods_on_this_node_only(
    emulator: Any, api_client: Any, tmp_path: Path
) -> None:
    emulator.create(pod("web", "a", "node-1", {"app": "web"}))
    emulator.create(pod("web", "b", "node-1", {"app": "db"}))
    emulator.create(pod("web", "c", "node-2", {"app": "web"}))
    replay = replay_dir(tmp_path / "replay", [("web", "a"), ("web", "b"), ("web", "c")])
    with running_agent(api_client, "node-1", tmp_path / "pcap", replay) as kube:
        emulator.create(capture("web", "cap", 'app == "web"'))
        got = wait_for(lambda: entries(emulator, "web", "cap").get("node-1", {}).get("fileNames"))
        iface = interface_name("web", "a")
        assert got == [f"a_{iface}.pcap"]
        assert (tmp_path / "pcap" / "web" / "cap" / f"a_{iface}.pcap").stat().st_size > 24
        entry = entries(emulator, "web", "cap")["node-1"]
        assert entry["directory"] == str(tmp_path / "pcap")
        assert [e.spec.pod for e in kube.agent.matches("web", "cap")] == ["a"]

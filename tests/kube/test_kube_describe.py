"""get / describe against the emulator, and the pure table and text functions."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from packetcapture.cli import main
from packetcapture.kube._describe import capture_table, describe_capture, node_rows
from tests.kube.emulator import ApiEmulator
from tests.kube.kube_helpers import capture

NOW = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)


def with_status(obj: dict[str, Any], *entries: dict[str, Any]) -> dict[str, Any]:
    obj["status"] = {"files": list(entries)}
    return obj


def entry(node: str, state: str | None, files: list[str], **extra: Any) -> dict[str, Any]:
    e: dict[str, Any] = {"node": node, "directory": "/var/log/calico/pcap", "fileNames": files}
    if state is not None:
        e["state"] = state
    return {**e, **extra}


@pytest.fixture
def kubeconfig(emulator: ApiEmulator, tmp_path: Path) -> str:
    emulator.create(
        with_status(
            capture("shop", "web", 'app == "web"', filters=[{"protocol": "TCP", "ports": [80]}]),
            entry("node-a", "Capturing", ["web_cali1.pcap", "web_cali1-17.pcap"]),
            entry("node-b", "WaitingForTraffic", []),
        )
    )
    emulator.create(capture("shop", "idle"))
    emulator.create(with_status(capture("bank", "db"), entry("node-c", "Finished", ["db_c.pcap"])))
    return str(emulator.write_kubeconfig(tmp_path / "kubeconfig"))


def _lines(text: str) -> list[list[str]]:
    return [line.split() for line in text.strip().splitlines()]


def test_get_lists_a_namespace_with_nodes_states_and_files(
    kubeconfig: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["get", "-n", "shop", "--kubeconfig", kubeconfig]) == 0
    rows = _lines(capsys.readouterr().out)
    assert rows[0] == ["NAME", "SELECTOR", "NODES", "STATE", "FILES", "AGE"]
    assert [r[0] for r in rows[1:]] == ["idle", "web"]
    idle, web = rows[1:]
    assert idle[1:5] == ["all()", "0", "<none>", "0"]
    assert web[-4:-1] == ["2", "Capturing,WaitingForTraffic", "2"]
    assert " ".join(web[1:-4]) == 'app == "web"'


def test_get_all_namespaces_and_one_capture(
    kubeconfig: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["get", "-A", "--kubeconfig", kubeconfig]) == 0
    rows = _lines(capsys.readouterr().out)
    assert rows[0][0] == "NAMESPACE"
    assert [(r[0], r[1]) for r in rows[1:]] == [("bank", "db"), ("shop", "idle"), ("shop", "web")]
    assert main(["get", "bank/db", "--kubeconfig", kubeconfig]) == 0
    rows = _lines(capsys.readouterr().out)
    assert rows[1][:5] == ["db", "all()", "1", "Finished", "1"]


def test_get_output_json_and_yaml_are_the_objects(
    kubeconfig: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["get", "-n", "shop", "-o", "json", "--kubeconfig", kubeconfig]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["kind"] == "List"
    assert [o["metadata"]["name"] for o in listed["items"]] == ["idle", "web"]
    assert main(["describe", "shop/web", "-o", "yaml", "--kubeconfig", kubeconfig]) == 0
    obj = yaml.safe_load(capsys.readouterr().out)
    assert [e["node"] for e in obj["status"]["files"]] == ["node-a", "node-b"]


def test_get_of_nothing_and_of_a_missing_capture(
    kubeconfig: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["get", "-n", "empty", "--kubeconfig", kubeconfig]) == 0
    assert capsys.readouterr().err == "No packetcaptures found in namespace empty.\n"
    assert main(["describe", "shop/nope", "--kubeconfig", kubeconfig]) == 1
    assert capsys.readouterr().err == (
        "packetcapture: error: packetcapture shop/nope not found (projectcalico.org/v3)\n"
    )
    assert main(["get", "shop/web", "-n", "x", "--kubeconfig", kubeconfig]) == 2


def test_describe_shows_each_node(kubeconfig: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["describe", "shop/web", "--kubeconfig", kubeconfig]) == 0
    out = capsys.readouterr().out
    assert "Name:         web\nNamespace:    shop\n" in out
    assert '  Selector:   app == "web"\n' in out
    assert "  Filters:    protocol TCP ports 80\n" in out
    table = out[out.index("Status:") :]
    rows = _lines(table[: table.index("Files:")])[1:]
    assert rows[0] == ["NODE", "STATE", "FILES", "PACKETS", "DROPS", "DIRECTORY"]
    assert rows[1] == ["node-a", "Capturing", "2", "unknown", "unknown", "/var/log/calico/pcap"]
    assert rows[2][:3] == ["node-b", "WaitingForTraffic", "0"]
    assert "  node-a: /var/log/calico/pcap/shop/web/\n    web_cali1.pcap\n" in out
    assert "  node-b: /var/log/calico/pcap/shop/web/ <none>" in out


def test_no_cluster_configuration_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["get", "--kubeconfig", str(tmp_path / "missing")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("packetcapture: error: kubeconfig ") and err.count("\n") == 1


# --- the pure functions -----------------------------------------------------------------------


def test_packets_and_drops_come_from_the_status_when_there() -> None:
    obj = with_status(
        capture("a", "b"),
        entry("n1", "Capturing", ["x.pcap"], packets=120, drops=3),
        entry("n2", None, [], packets="many"),
    )
    assert node_rows(obj) == [
        ["n1", "Capturing", "1", "120", "3", "/var/log/calico/pcap"],
        ["n2", "unknown", "0", "unknown", "unknown", "/var/log/calico/pcap"],
    ]


@pytest.mark.parametrize(
    ("created", "age"),
    [
        ("2024-05-01T11:59:15Z", "45s"),
        ("2024-05-01T11:48:00Z", "12m"),
        ("2024-05-01T09:00:00Z", "3h"),
        ("2024-04-26T12:00:00Z", "5d"),
        (None, "<unknown>"),
        ("yesterday", "<unknown>"),
    ],
)
def test_age_like_kubectl(created: str | None, age: str) -> None:
    obj = capture("a", "b")
    if created:
        obj["metadata"]["creationTimestamp"] = created
    assert capture_table([obj], all_namespaces=False, now=NOW).splitlines()[1].endswith(age)


def test_hostile_names_stay_on_one_line() -> None:
    obj = with_status(capture("a", "b\nc"), entry("n\x1b[31m", "Capturing", []))
    text = describe_capture(obj, now=NOW)
    table = capture_table([obj], all_namespaces=True, now=NOW)
    for out in (text, table):
        assert "\x1b" not in out and "b\nc" not in out
    assert "Name:         b\\nc" in text
    assert "  n\\x1b[31m: " in text

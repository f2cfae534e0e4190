"""``packetcapture selector``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from packetcapture.cli import main

ENDPOINTS = """\
apiVersion: projectcalico.org/v3
kind: WorkloadEndpointList
items:
- apiVersion: projectcalico.org/v3
  kind: WorkloadEndpoint
  metadata:
    name: node--1-k8s-web--1-eth0
    namespace: prod
    labels: {app: web, tier: a}
  spec: {node: node-1, orchestrator: k8s, pod: web-1, endpoint: eth0, interfaceName: cali111}
- apiVersion: projectcalico.org/v3
  kind: WorkloadEndpoint
  metadata:
    name: node--2-k8s-web--2-eth0
    namespace: prod
    labels: {app: web, tier: b, canary: "true"}
  spec: {node: node-2, orchestrator: k8s, pod: web-2, endpoint: eth0, interfaceName: cali222}
- apiVersion: projectcalico.org/v3
  kind: WorkloadEndpoint
  metadata:
    name: node--1-k8s-web--3-eth0
    namespace: dev
    labels: {app: web, tier: a}
  spec: {node: node-1, orchestrator: k8s, pod: web-3, endpoint: eth0, interfaceName: cali333}
- apiVersion: projectcalico.org/v3
  kind: WorkloadEndpoint
  metadata:
    name: node--1-k8s-db--1-eth0
    labels: {app: db}
  spec: {node: node-1, orchestrator: k8s, pod: db-1, endpoint: eth0, interfaceName: cali444}
"""


@pytest.fixture
def endpoints(tmp_path: Path) -> Path:
    path = tmp_path / "weps.yaml"
    path.write_text(ENDPOINTS)
    return path


def test_prints_canonical_form(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["selector", "tier in {'b','a'} && app=='web'"]) == 0
    assert capsys.readouterr().out == '(tier in {"a", "b"} && app == "web")\n'
    assert main(["selector", ""]) == 0
    assert capsys.readouterr().out == "all()\n"


def test_id_and_tree(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["selector", " all() ", "--id"]) == 0
    assert capsys.readouterr().out == "s:5y5I3VdRZfDU01O--xXAPx2yxCQQqMf0M6IWug\n"
    assert main(["selector", "has(a) || !has(b)", "--tree"]) == 0
    assert capsys.readouterr().out == "OR\n+-has(a)\n+-NOT\n  +-has(b)\n"


def test_invalid_selector_prints_caret(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["selector", "app == web"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        "packetcapture selector: expected string (column 8)",
        "    app == web",
        "           ^",
    ]


def test_labels(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["selector", "app == 'web' && !has(canary)", "--labels", "app=web,tier="]) == 0
    assert capsys.readouterr().out == "match\n"
    args = [
        "selector",
        "app == 'web' && !has(canary)",
        "--labels",
        "app=web",
        "--labels",
        "canary=",
    ]
    assert main(args) == 0
    assert capsys.readouterr().out == "no match\n"
    assert main(["selector", "!has(a)", "--labels", ""]) == 0
    assert capsys.readouterr().out == "match\n"


def test_bad_labels_are_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["selector", "all()", "--labels", "novalue"])
    assert info.value.code == 2
    assert "expected key=value" in capsys.readouterr().err


def test_endpoints_are_namespace_scoped(
    endpoints: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["selector", "app == 'web'", "--endpoints", str(endpoints), "-n", "prod"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "prod/node--1-k8s-web--1-eth0 node-1 cali111",
        "prod/node--2-k8s-web--2-eth0 node-2 cali222",
    ]
    assert main(["selector", "!has(canary)", "--endpoints", str(endpoints), "-n", "prod"]) == 0
    assert capsys.readouterr().out == "prod/node--1-k8s-web--1-eth0 node-1 cali111\n"
    # Default namespace "default"; the endpoint without a namespace lives there.
    assert main(["selector", "all()", "--endpoints", str(endpoints)]) == 0
    assert capsys.readouterr().out == "default/node--1-k8s-db--1-eth0 node-1 cali444\n"
    # Calico's implicit namespace label is visible to the selector.
    text = "projectcalico.org/namespace == 'dev'"
    assert main(["selector", text, "--endpoints", str(endpoints), "--namespace", "dev"]) == 0
    assert capsys.readouterr().out == "dev/node--1-k8s-web--3-eth0 node-1 cali333\n"
    assert main(["selector", "app == 'none'", "--endpoints", str(endpoints), "-n", "prod"]) == 0
    out, err = capsys.readouterr()
    # Nothing matched: still exit 0, and stderr says what was checked (a forgotten -n shows).
    assert out == ""
    assert err == (
        f"packetcapture: no endpoint matches in namespace 'prod' (4 read from {endpoints}; "
        "their namespaces: default, dev, prod)\n"
    )


def test_endpoint_file_problems(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: WorkloadEndpoint\napiVersion: projectcalico.org/v3\nspec: [1]\n")
    assert main(["selector", "all()", "--endpoints", str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"{bad}: ") and "\n" in err
    assert main(["selector", "all()", "--endpoints", str(tmp_path / "missing.yaml")]) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "missing.yaml" in err


def test_subprocess_with_stdin(endpoints: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "packetcapture", "selector", "tier == 'b'", "--endpoints", "-",
         "-n", "prod"],
        input=endpoints.read_bytes(),
        capture_output=True,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"prod/node--2-k8s-web--2-eth0 node-2 cali222\n"
    proc = subprocess.run(
        [sys.executable, "-m", "packetcapture", "selector", "a ="],
        capture_output=True,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr.decode().splitlines()[0] == "packetcapture selector: expected == (column 3)"

"""WorkloadEndpoints from Pods, as Calico's Kubernetes datastore derives them (pure)."""

from __future__ import annotations

import hashlib
import shutil
import subprocess

import pytest
from hypothesis import given
from hypothesis import strategies as st

from packetcapture.kube import PodEndpoints, endpoint_from_pod, interface_name
from packetcapture.kube._endpoints import workload_endpoint_name
from packetcapture.selector import parse
from tests.kube.kube_helpers import pod

NAMES = [("default", "nginx"), ("kube-system", "coredns-5d78c9869d-abcde"), ("a", "b.c")]


@pytest.mark.parametrize(("ns", "name"), NAMES)
def test_interface_name_matches_the_shell_recipe(ns: str, name: str) -> None:
    sha1sum = shutil.which("sha1sum")
    if sha1sum is None:
        pytest.skip("sha1sum not installed")
    # echo -n "$ns.$pod" | sha1sum | cut -c1-11
    digest = subprocess.run(
        [sha1sum], input=f"{ns}.{name}".encode(), capture_output=True, check=True
    ).stdout.decode()[:11]
    assert interface_name(ns, name) == "cali" + digest
    assert interface_name(ns, name, "tap") == "tap" + digest


@given(st.text(min_size=1, max_size=30), st.text(min_size=1, max_size=60))
def test_interface_name_is_prefix_and_11_hex_digits(ns: str, name: str) -> None:
    got = interface_name(ns, name)
    assert got.startswith("cali") and len(got) == 15
    assert got[4:] == hashlib.sha1(f"{ns}.{name}".encode()).hexdigest()[:11]


def test_workload_endpoint_name_doubles_dashes() -> None:
    assert workload_endpoint_name("node-1", "web-0") == "node--1-k8s-web--0-eth0"


def _labels(obj: dict, **kw: object) -> dict[str, str]:
    wep = endpoint_from_pod(obj, "n1", **kw)  # type: ignore[arg-type]
    assert wep is not None
    return wep.selector_labels()


def test_labels_are_the_pods_plus_calicos_implicit_ones() -> None:
    labels = _labels(
        pod("ns1", "p", "n1", {"app": "web"}, service_account="builder"),
        namespace_labels={"team": "blue"},
        service_account_labels={"role": "ci"},
    )
    assert labels == {
        "app": "web",
        "pcns.team": "blue",
        "pcsa.role": "ci",
        "projectcalico.org/namespace": "ns1",
        "projectcalico.org/orchestrator": "k8s",
        "projectcalico.org/serviceaccount": "builder",
    }
    # Calico selectors see them as Felix does.
    assert parse('pcns.team == "blue" && has(pcsa.role) && app == "web"').evaluate(labels)


def test_endpoint_fields() -> None:
    wep = endpoint_from_pod(pod("ns1", "p-1", "n1", ip="fd00::5"), "n1")
    assert wep is not None
    assert wep.spec.node == "n1" and wep.spec.pod == "p-1" and wep.pod_name == "p-1"
    assert wep.spec.interface_name == interface_name("ns1", "p-1")
    assert wep.spec.ip_networks == ("fd00::5/128",)
    assert wep.key == ("ns1", "n1-k8s-p--1-eth0")
    assert "projectcalico.org/serviceaccount" not in wep.selector_labels()


@pytest.mark.parametrize(
    "obj",
    [
        pod("ns", "p", "n1", host_network=True),
        pod("ns", "p", "n1", ip=None),
        pod("ns", "p", "n1", phase="Succeeded"),
        pod("ns", "p", "n1", phase="Failed"),
        pod("ns", "p", "other-node"),
        {"metadata": {"namespace": "ns"}, "spec": {"nodeName": "n1"}},
        {},
    ],
    ids=["host-network", "no-ip", "succeeded", "failed", "other-node", "no-name", "empty"],
)
def test_pods_without_an_endpoint(obj: dict) -> None:
    assert endpoint_from_pod(obj, "n1") is None


def test_odd_labels_never_break_it() -> None:
    obj = pod("ns", "p", "n1")
    obj["metadata"]["labels"] = {
        "n": 5,
        "empty": "",
        "none": None,
        "projectcalico.org/namespace": "spoofed",  # the implicit label wins, as in Calico
        "x" * 300: "long key",
    }
    labels = _labels(obj)
    assert labels["n"] == "5" and labels["empty"] == "" and labels["none"] == ""
    assert labels["projectcalico.org/namespace"] == "ns"
    obj["metadata"]["labels"] = ["not", "a", "map"]
    assert _labels(obj)["projectcalico.org/namespace"] == "ns"


def test_namespace_and_service_account_label_changes_re_evaluate() -> None:
    index = PodEndpoints("n1")
    assert not index.upsert_namespace({"metadata": {"name": "ns"}})  # no pods yet
    first = index.upsert_pod(pod("ns", "p", "n1", service_account="sa"))
    assert [e.spec.pod for e in first.upserted] == ["p"]
    index.upsert_pod(pod("other", "q", "n1"))

    changed = index.upsert_namespace({"metadata": {"name": "ns", "labels": {"env": "prod"}}})
    assert [e.selector_labels()["pcns.env"] for e in changed.upserted] == ["prod"]
    # Same labels again (a resync, an annotation change): nothing to do.
    assert not index.upsert_namespace({"metadata": {"name": "ns", "labels": {"env": "prod"}}})

    changed = index.upsert_service_account(
        {"metadata": {"name": "sa", "namespace": "ns", "labels": {"tier": "1"}}}
    )
    assert [e.selector_labels()["pcsa.tier"] for e in changed.upserted] == ["1"]
    # Another namespace's account of the same name touches nothing here.
    assert not index.upsert_service_account(
        {"metadata": {"name": "sa", "namespace": "other", "labels": {"tier": "2"}}}
    )

    # A deleted namespace: its pods lose pcns.* at once (their own deletion follows).
    changed = index.delete_namespace({"metadata": {"name": "ns"}})
    assert len(changed.upserted) == 1
    assert "pcns.env" not in changed.upserted[0].selector_labels()
    changed = index.delete_service_account({"metadata": {"name": "sa", "namespace": "ns"}})
    assert "pcsa.tier" not in changed.upserted[0].selector_labels()


def test_pod_lifecycle_changes() -> None:
    index = PodEndpoints("n1")
    assert not index.upsert_pod(pod("ns", "p", "n1", ip=None))  # pending: no endpoint
    added = index.upsert_pod(pod("ns", "p", "n1"))
    assert len(added.upserted) == 1 and not added.deleted
    assert not index.upsert_pod(pod("ns", "p", "n1"))  # unchanged
    relabelled = index.upsert_pod(pod("ns", "p", "n1", {"a": "b"}))
    assert relabelled.upserted[0].metadata.labels["a"] == "b"
    finished = index.upsert_pod(pod("ns", "p", "n1", phase="Succeeded"))
    assert finished.deleted == (added.upserted[0].key,)
    assert not index.delete_pod(pod("ns", "p", "n1"))  # already gone
    index.upsert_pod(pod("ns", "p", "n1"))
    assert index.delete_pod(pod("ns", "p", "n1")).deleted
    assert index.endpoints() == []


def test_prefix_is_configurable() -> None:
    index = PodEndpoints("n1", prefix="tap")
    (wep,) = index.upsert_pod(pod("ns", "p", "n1")).upserted
    assert wep.spec.interface_name.startswith("tap")

"""Calico's validation rules: each accepted and rejected, with the exact path in the error."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

import packetcapture as pc
from packetcapture import ValidationError, loads


def capture(spec: dict[str, Any] | None = None, **meta: Any) -> dict[str, Any]:
    metadata = {"name": "cap", "namespace": "default", **meta}
    return {
        "apiVersion": "projectcalico.org/v3",
        "kind": "PacketCapture",
        "metadata": metadata,
        "spec": spec if spec is not None else {},
    }


def problems(doc: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as info:
        pc.from_dict(doc)
    return info.value.problems


def paths(doc: dict[str, Any]) -> list[str]:
    return [p for p, _ in problems(doc)]


# --- name ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a", "sample-capture", "a.b-c", "x" * 253, "0abc", "a1.b2"])
def test_valid_names(name: str) -> None:
    assert pc.from_dict(capture(name=name)).name == name


@pytest.mark.parametrize(
    "name",
    ["test-malformed-name$/&", "Upper", "under_score", "-lead", "trail-", "a..b", "x" * 254, ""],
)
def test_invalid_names(name: str) -> None:
    found = problems(capture(name=name))
    assert [p for p, _ in found] == ["metadata.name"]
    if name and len(name) <= 253:
        assert "lower case alphanumeric characters, '-' or '.'" in found[0][1]


def test_missing_metadata_and_name() -> None:
    doc = capture()
    del doc["metadata"]
    assert "metadata" in paths(doc)
    doc = capture()
    del doc["metadata"]["name"]
    assert paths(doc) == ["metadata.name"]


def test_namespace_default_and_invalid() -> None:
    doc = capture()
    del doc["metadata"]["namespace"]
    assert pc.from_dict(doc).namespace == "default"
    assert paths(capture(namespace="Bad_NS")) == ["metadata.namespace"]


# --- labels ----------------------------------------------------------------------------


def test_a_label_with_a_bad_key_and_a_bad_value_reports_both() -> None:
    found = problems(capture(labels={"other bad!": 5, "ok": "fine"}))
    assert [p for p, _ in found] == ["metadata.labels['other bad!']"] * 2
    assert sorted(m.split(" ")[0] for _, m in found) == ["label", "value"]


def test_endpoints_carry_calicos_own_labels() -> None:
    # calicoctl shows these on every Kubernetes WorkloadEndpoint: they must load, and
    # validate() must accept them; only a capture may not set the namespace label.
    wep = loads(
        """
apiVersion: projectcalico.org/v3
kind: WorkloadEndpoint
metadata:
  name: node1-k8s-web-eth0
  namespace: shop
  labels:
    app: web
    projectcalico.org/namespace: shop
    projectcalico.org/orchestrator: k8s
    projectcalico.org/serviceaccount: default
spec: {node: node1, orchestrator: k8s, pod: web, endpoint: eth0, interfaceName: cali1}
"""
    )
    assert isinstance(wep, pc.WorkloadEndpoint)
    assert wep.metadata.labels["projectcalico.org/namespace"] == "shop"
    pc.validate(wep)
    cap = pc.PacketCapture(
        metadata=pc.ObjectMeta(name="c", labels={"projectcalico.org/namespace": "x"})
    )
    with pytest.raises(ValidationError, match="reserved"):
        pc.validate(cap)


def test_reserved_label_key_rejected() -> None:
    found = problems(capture(labels={"projectcalico.org/namespace": "x"}))
    assert found[0][0] == "metadata.labels['projectcalico.org/namespace']"
    assert "reserved" in found[0][1]


def test_label_keys_and_values() -> None:
    ok = pc.from_dict(capture(labels={"app": "web", "example.com/tier": "a.b_c-d", "e": ""}))
    assert ok.metadata.labels["example.com/tier"] == "a.b_c-d"
    assert paths(capture(labels={"bad key": "x"})) == ["metadata.labels['bad key']"]
    assert paths(capture(labels={"app": "-bad"})) == ["metadata.labels.app"]
    assert paths(capture(labels={"app": "x" * 64})) == ["metadata.labels.app"]
    assert paths(capture(labels={"Bad_Prefix/app": "x"})) == ["metadata.labels['Bad_Prefix/app']"]


def test_label_values_must_be_strings() -> None:
    found = problems(capture(labels={"enabled": True}))
    assert found == [
        (
            "metadata.labels.enabled",
            "value must be a string, not a boolean (quote values like 'true' or '123' in YAML)",
        )
    ]


def test_every_label_problem_is_reported_at_once() -> None:
    labels = {"k": 5, "ok": "fine", "bad key": "x", "a.b/c": 1.5, "app": "-bad", 7: "x"}
    found = problems(capture(labels=labels, name="Bad"))
    assert sorted(p for p, _ in found) == [
        "metadata.labels.app",
        "metadata.labels.k",
        "metadata.labels['a.b/c']",
        "metadata.labels['bad key']",
        "metadata.labels[7]",
        "metadata.name",
    ]
    messages = dict(found)
    assert messages["metadata.labels.k"].startswith("value must be a string, not a number")
    assert messages["metadata.labels[7]"] == "key must be a string, not a number"


# --- selector --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "selector", ["", "all()", 'capture == "true"', 'app == "client" && capture == "true"']
)
def test_valid_selectors(selector: str) -> None:
    assert pc.from_dict(capture({"selector": selector})).spec.selector == selector


@pytest.mark.parametrize("selector", ["malformed$&/?!", "malformed&"])
def test_invalid_selectors(selector: str) -> None:
    found = problems(capture({"selector": selector}))
    assert [p for p, _ in found] == ["spec.selector"]
    assert "column" in found[0][1]


def test_selector_default_is_all() -> None:
    assert pc.from_dict(capture({})).spec.selector == "all()"


# --- protocol --------------------------------------------------------------------------


@pytest.mark.parametrize("proto", ["TCP", "UDP", "ICMP", "ICMPv6", "SCTP", "UDPLite", 1, 255, 47])
def test_valid_protocols(proto: Any) -> None:
    rule = pc.from_dict(capture({"filters": [{"protocol": proto}]})).spec.filters[0]
    assert rule.protocol == proto


def test_numeric_string_protocol_is_stored_as_number() -> None:
    rule = pc.from_dict(capture({"filters": [{"protocol": "6"}]})).spec.filters[0]
    assert rule.protocol == 6
    assert pc.to_dict(pc.from_dict(capture({"filters": [{"protocol": "6"}]})))["spec"][
        "filters"
    ] == [{"protocol": 6}]


@pytest.mark.parametrize("proto", ["tcp", "Udp", "icmpv6", "GRE", 0, 256, -1, True, 1.5, "0"])
def test_invalid_protocols(proto: Any) -> None:
    found = problems(capture({"filters": [{"protocol": proto}]}))
    assert [p for p, _ in found] == ["spec.filters[0].protocol"]


def test_protocol_zero_message() -> None:
    assert "protocol number invalid" in problems(capture({"filters": [{"protocol": 0}]}))[0][1]


def test_lowercase_protocol_hint() -> None:
    msg = problems(capture({"filters": [{"protocol": "tcp"}]}))[0][1]
    assert "case-sensitive" in msg and "'TCP'" in msg


# --- ports -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ports", "expected"),
    [
        ([80], [(80, 80)]),
        (["80"], [(80, 80)]),
        (["8000:8080"], [(8000, 8080)]),
        ([1, 65535, "1:65535", "5:5"], [(1, 1), (65535, 65535), (1, 65535), (5, 5)]),
    ],
)
def test_valid_ports(ports: list[Any], expected: list[tuple[int, int]]) -> None:
    rule = pc.from_dict(capture({"filters": [{"protocol": "TCP", "ports": ports}]})).spec.filters[0]
    assert [(p.min, p.max) for p in rule.ports] == expected


@pytest.mark.parametrize(
    ("port", "needle"),
    [
        (0, "between 1 and 65535"),
        (65536, "between 1 and 65535"),
        ("0:10", "between 1 and 65535"),
        ("10:70000", "between 1 and 65535"),
        ("20:10", "minimum port number (20) is greater than maximum port number (10)"),
        ("http", "accepts only numerical values"),
        ("80-90", "accepts only numerical values"),
        (True, "port must be a number"),
        (8.5, "port must be a number"),
    ],
)
def test_invalid_ports(port: Any, needle: str) -> None:
    found = problems(capture({"filters": [{"protocol": "TCP", "ports": [80, port]}]}))
    assert found[0][0] == "spec.filters[0].ports[1]"
    assert needle in found[0][1]


@pytest.mark.parametrize("proto", ["TCP", "UDP", "SCTP", 6, 17, 132, None])
def test_ports_allowed_with(proto: Any) -> None:
    rule = {"ports": [53]} if proto is None else {"protocol": proto, "ports": [53]}
    assert pc.from_dict(capture({"filters": [rule]})).spec.filters[0].ports


@pytest.mark.parametrize("proto", ["ICMP", "ICMPv6", "UDPLite", 1, 47, 136])
def test_ports_refused_with(proto: Any) -> None:
    found = problems(capture({"filters": [{"protocol": proto, "ports": [53]}]}))
    assert found == [("spec.filters[0].ports", found[0][1])]
    assert "does not accept ports" in found[0][1]


def test_ports_must_be_a_list() -> None:
    assert paths(capture({"filters": [{"protocol": "TCP", "ports": "80"}]})) == [
        "spec.filters[0].ports"
    ]


# --- times -----------------------------------------------------------------------------


def test_times_parse_to_aware_utc() -> None:
    spec = pc.from_dict(
        capture({"startTime": "2021-08-26T14:00:00+02:00", "endTime": "2021-08-26T12:30:00Z"})
    ).spec
    assert spec.start_time == dt.datetime(2021, 8, 26, 12, 0, tzinfo=dt.UTC)
    assert spec.start_time is not None and spec.start_time.tzinfo is dt.UTC


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        (
            "2021-08-26T12:00:00Z",
            "2021-08-26T12:00:00Z",
            "must have a different value than startTime",
        ),
        ("2021-08-26T12:30:00Z", "2021-08-26T12:00:00Z", "must be set after startTime"),
    ],
)
def test_end_must_follow_start(start: str, end: str, message: str) -> None:
    found = problems(capture({"startTime": start, "endTime": end}))
    assert found == [("spec.endTime", message)]


@pytest.mark.parametrize(
    "value", ["2021-08-26T12:00:00", "2021-08-26", "yesterday", "2021-13-01T00:00:00Z", 5]
)
def test_bad_times(value: Any) -> None:
    assert paths(capture({"startTime": value})) == ["spec.startTime"]


# --- unknown fields and all-at-once ------------------------------------------------------


def test_unknown_spec_field_named_with_suggestion() -> None:
    found = problems(capture({"filter": [{"protocol": "TCP"}]}))
    assert found == [("spec.filter", "unknown field 'filter': did you mean 'filters'?")]


def test_unknown_rule_field() -> None:
    assert paths(capture({"filters": [{"protocol": "TCP", "port": [80]}]})) == [
        "spec.filters[0].port"
    ]


def test_unknown_top_level_field() -> None:
    doc = capture()
    doc["sepc"] = {}
    assert paths(doc) == ["sepc"]


def test_unknown_metadata_fields_round_trip() -> None:
    doc = capture(uid="1234", resourceVersion="99", managedFields=[{"manager": "kubectl"}])
    obj = pc.from_dict(doc)
    assert obj.metadata.uid == "1234"
    assert obj.metadata.extra == {"managedFields": [{"manager": "kubectl"}]}
    assert pc.to_dict(obj)["metadata"]["managedFields"] == [{"manager": "kubectl"}]


def test_every_problem_reported_at_once() -> None:
    doc = capture(
        {
            "selector": "malformed&",
            "filters": [
                {"protocol": "tcp"},
                {"protocol": "TCP", "ports": [0, "http"]},
                {"protocol": "ICMP", "ports": [1]},
            ],
            "startTime": "2021-08-26T12:00:00",
            "extra": 1,
        },
        name="Bad",
    )
    assert sorted(paths(doc)) == sorted(
        [
            "metadata.name",
            "spec.selector",
            "spec.filters[0].protocol",
            "spec.filters[1].ports[0]",
            "spec.filters[1].ports[1]",
            "spec.filters[2].ports",
            "spec.startTime",
            "spec.extra",
        ]
    )


def test_missing_kind_and_api_version_say_missing() -> None:
    doc = capture()
    del doc["apiVersion"]
    assert problems(doc) == [("apiVersion", "missing (expected projectcalico.org/v3)")]
    doc["apiVersion"] = None
    assert problems(doc) == [("apiVersion", "missing (expected projectcalico.org/v3)")]
    doc = capture()
    del doc["kind"]
    assert problems(doc) == [("kind", "missing (expected PacketCapture or WorkloadEndpoint)")]
    doc = capture()
    doc["apiVersion"] = "v1"
    assert problems(doc) == [("apiVersion", "apiVersion 'v1' is not projectcalico.org/v3")]


def endpoint(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "projectcalico.org/v3",
        "kind": "WorkloadEndpoint",
        "metadata": {"name": "w", "namespace": "ns"},
        "spec": spec,
    }


def test_endpoint_typo_of_a_missing_key_field_is_reported() -> None:
    found = problems(endpoint(node="n", interfaceNme="cali1", Pod="p", ipNATs=[], ports=[]))
    assert found == [
        ("spec.Pod", "unknown field 'Pod': did you mean 'pod'?"),
        ("spec.interfaceNme", "unknown field 'interfaceNme': did you mean 'interfaceName'?"),
    ]
    # validate() on a model built in Python reports the same (the field sits in extra).
    wep = pc.WorkloadEndpoint(
        metadata=pc.ObjectMeta(name="w"),
        spec=pc.WorkloadEndpointSpec(node="n", extra={"interfaceNme": "cali1"}),
    )
    with pytest.raises(ValidationError) as info:
        pc.validate(wep)
    assert info.value.problems == [
        ("spec.interfaceNme", "unknown field 'interfaceNme': did you mean 'interfaceName'?")
    ]


def test_endpoint_unknown_fields_are_kept_when_key_fields_are_present() -> None:
    # Calico's own fields we do not model, and a near miss of a field that is present.
    doc = endpoint(
        node="n",
        pod="p",
        orchestrator="k8s",
        endpoint="eth0",
        interfaceName="cali1",
        interfaceNames="x",
        ipNATs=[],
        ports=[{"name": "http", "port": 80}],
        qosControls={},
        allowSpoofedSourcePrefixes=[],
    )
    wep = pc.from_dict(doc)
    assert isinstance(wep, pc.WorkloadEndpoint)
    assert set(wep.spec.extra) == {
        "interfaceNames",
        "ipNATs",
        "ports",
        "qosControls",
        "allowSpoofedSourcePrefixes",
    }
    pc.validate(wep)
    # A minimal endpoint with only Calico's extra fields is accepted too.
    assert isinstance(
        pc.from_dict(endpoint(ipNATs=[], ipv4Gateway="10.0.0.1")), pc.WorkloadEndpoint
    )


def test_wrong_kind_and_api_version() -> None:
    doc = capture()
    doc["kind"] = "NetworkPolicy"
    assert "kind" in paths(doc)
    doc = capture()
    doc["apiVersion"] = "v1"
    assert paths(doc) == ["apiVersion"]


def test_validate_on_constructed_models() -> None:
    good = pc.PacketCapture(
        metadata=pc.ObjectMeta(name="ok"),
        spec=pc.PacketCaptureSpec(filters=[pc.PacketCaptureRule(protocol="TCP", ports=[80])]),
    )
    pc.validate(good)
    bad = pc.PacketCapture(
        metadata=pc.ObjectMeta(name="BAD"),
        spec=pc.PacketCaptureSpec(
            filters=[pc.PacketCaptureRule(protocol="ICMP", ports=[pc.PortRange(0, 0)])],
            start_time=dt.datetime(2021, 1, 1, tzinfo=dt.UTC),
            end_time=dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
        ),
    )
    with pytest.raises(ValidationError) as info:
        pc.validate(bad)
    assert [p for p, _ in info.value.problems] == [
        "metadata.name",
        "spec.filters[0].ports[0]",
        "spec.endTime",
    ]


def test_validation_error_is_value_error_and_package_error() -> None:
    with pytest.raises(ValueError):
        loads("kind: PacketCapture")
    with pytest.raises(pc.PacketCaptureError):
        loads("kind: PacketCapture")

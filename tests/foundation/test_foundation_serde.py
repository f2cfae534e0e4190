"""Loading and dumping: round trips, Calico's wire shapes, lists, and hostile input."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import packetcapture as pc
from packetcapture import ValidationError, dumps, load_all, loads

EXAMPLES = Path(__file__).parent.parent.parent / "examples"

SAMPLE_1 = """
apiVersion: projectcalico.org/v3
kind: PacketCapture
metadata:
  name: sample-capture
  namespace: sample-namespace
spec:
  selector: k8s-app == "sample-app"
  filters:
    - protocol: TCP
      ports:
        - 80
"""

CALICOCTL_LIST = """
apiVersion: projectcalico.org/v3
items:
- apiVersion: projectcalico.org/v3
  kind: PacketCapture
  metadata:
    creationTimestamp: "2021-08-26T11:58:01Z"
    name: sample-capture
    namespace: sample-namespace
    resourceVersion: "123456"
    uid: 0e7c1a52-2a53-4b3c-9c61-3c0b6f3c8f5e
  spec:
    selector: k8s-app == "sample-app"
    filters:
    - protocol: TCP
      ports:
      - 80
  status:
    files:
    - directory: /var/log/calico/pcap
      fileNames:
      - sample-app-7d4b9c-x2k8p_cali1a2b3c4d5e6-1629979081000000.pcap
      - sample-app-7d4b9c-x2k8p_cali1a2b3c4d5e6.pcap
      node: node-1
      state: Capturing
- apiVersion: projectcalico.org/v3
  kind: PacketCapture
  metadata:
    name: scheduled
    namespace: default
  spec:
    selector: all()
    startTime: "2021-08-26T12:00:00Z"
    endTime: "2021-08-26T12:30:00Z"
kind: PacketCaptureList
metadata:
  resourceVersion: "123460"
"""


def test_reference_sample_loads() -> None:
    cap = loads(SAMPLE_1)
    assert isinstance(cap, pc.PacketCapture)
    assert cap.key == ("sample-namespace", "sample-capture")
    assert cap.spec.filters == (
        pc.PacketCaptureRule(protocol="TCP", ports=(pc.PortRange(80, 80),)),
    )


def test_calicoctl_list_loads_with_status() -> None:
    caps = load_all(CALICOCTL_LIST)
    assert [c.key for c in caps] == [
        ("sample-namespace", "sample-capture"),
        ("default", "scheduled"),
    ]
    first = caps[0]
    assert isinstance(first, pc.PacketCapture) and first.status is not None
    entry = first.status.files[0]
    assert entry.state is pc.CaptureState.CAPTURING
    assert entry.node == "node-1" and entry.directory == "/var/log/calico/pcap"
    assert first.metadata.creation_timestamp == dt.datetime(2021, 8, 26, 11, 58, 1, tzinfo=dt.UTC)
    assert loads(dumps(first)) == first


def test_examples_load() -> None:
    names = sorted(p.name for p in EXAMPLES.glob("*.yaml"))
    assert "endpoints.yaml" in names and "sample-capture.yaml" in names
    for path in EXAMPLES.glob("*.yaml"):
        assert load_all(path), path


def test_endpoints_and_implicit_labels() -> None:
    weps = load_all(EXAMPLES / "endpoints.yaml")
    assert all(isinstance(w, pc.WorkloadEndpoint) for w in weps)
    wep = weps[0]
    assert isinstance(wep, pc.WorkloadEndpoint)
    labels = wep.selector_labels()
    assert labels["projectcalico.org/namespace"] == "sample-namespace"
    assert labels["projectcalico.org/orchestrator"] == "k8s"
    assert labels["projectcalico.org/serviceaccount"] == "default"
    assert labels["k8s-app"] == "sample-app"
    assert {w.spec.node for w in weps if isinstance(w, pc.WorkloadEndpoint)} == {"node-1", "node-2"}


def test_profile_labels_are_inherited_and_overridden() -> None:
    wep = pc.WorkloadEndpoint(
        metadata=pc.ObjectMeta(name="w", namespace="ns", labels={"app": "own"}),
        spec=pc.WorkloadEndpointSpec(profiles=("kns.ns",)),
    )
    labels = wep.selector_labels({"kns.ns": {"pcns.team": "a", "app": "profile"}})
    assert labels["pcns.team"] == "a" and labels["app"] == "own"


def test_wire_shapes_match_calico() -> None:
    cap = pc.PacketCapture(
        metadata=pc.ObjectMeta(name="c", namespace="ns"),
        spec=pc.PacketCaptureSpec(
            filters=[pc.PacketCaptureRule(protocol="6", ports=[80, "8080:8090", "5:5"])],
            start_time=dt.datetime(2021, 8, 26, 14, 0, tzinfo=dt.timezone(dt.timedelta(hours=2))),
        ),
        status=pc.PacketCaptureStatus(
            files=[
                pc.PacketCaptureFile(
                    directory="/d",
                    file_names=["a"],
                    node="n",
                    state=pc.CaptureState.WAITING_FOR_TRAFFIC,
                )
            ]
        ),
    )
    wire = json.loads(dumps(cap, format="json"))
    assert wire["spec"] == {
        "selector": "all()",
        "filters": [{"protocol": 6, "ports": [80, "8080:8090", 5]}],
        "startTime": "2021-08-26T12:00:00Z",
    }
    assert wire["status"]["files"] == [
        {"directory": "/d", "fileNames": ["a"], "node": "n", "state": "WaitingForTraffic"}
    ]
    assert wire["apiVersion"] == "projectcalico.org/v3" and wire["kind"] == "PacketCapture"
    assert "labels" not in wire["metadata"]  # unset fields are omitted


def test_unquoted_yaml_port_range_stays_a_range() -> None:
    # YAML 1.1 would read 10:20 as the base-60 number 620.
    doc = SAMPLE_1.replace("- 80", "- 10:20")
    assert loads(doc).spec.filters[0].ports == (pc.PortRange(10, 20),)


def test_unquoted_yaml_timestamp_is_accepted() -> None:
    doc = SAMPLE_1 + "  startTime: 2021-08-26T12:00:00Z\n"
    start = loads(doc).spec.start_time
    assert start == dt.datetime(2021, 8, 26, 12, tzinfo=dt.UTC)


def test_json_input() -> None:
    cap = loads(SAMPLE_1)
    assert isinstance(cap, pc.PacketCapture)
    assert loads(json.dumps(pc.to_dict(cap))) == cap


def test_multi_document_yaml_and_v1_list() -> None:
    text = SAMPLE_1 + "---\n" + SAMPLE_1.replace("sample-capture", "second")
    assert [r.metadata.name for r in load_all(text)] == ["sample-capture", "second"]
    v1 = {"apiVersion": "v1", "kind": "List", "items": [yaml.safe_load(SAMPLE_1)]}
    assert len(load_all(json.dumps(v1))) == 1


def test_multi_document_problem_paths() -> None:
    bad = SAMPLE_1.replace("TCP", "tcp")
    with pytest.raises(ValidationError) as info:
        load_all(SAMPLE_1 + "---\n" + bad)
    assert [p for p, _ in info.value.problems] == ["documents[1].spec.filters[0].protocol"]
    lst = {"apiVersion": "v1", "kind": "List", "items": [yaml.safe_load(SAMPLE_1), {"kind": 1}]}
    with pytest.raises(ValidationError) as info:
        load_all(json.dumps(lst))
    assert info.value.problems[0][0].startswith("items[1].")


def test_loads_wants_exactly_one_document() -> None:
    with pytest.raises(ValidationError, match="expected one document, found 2"):
        loads(SAMPLE_1 + "---\n" + SAMPLE_1)
    with pytest.raises(ValidationError, match="found 0"):
        loads("")


def test_a_file_name_given_as_text_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValidationError) as info:
        load_all("nofile.yaml")
    assert str(info.value) == (
        "a resource must be a mapping, not a string; to read a file pass a pathlib.Path "
        "(no such file: 'nofile.yaml')"
    )
    with pytest.raises(ValidationError, match=r"read_text\(\) \(no such file: 'x/b.JSON'\)$"):
        loads(" x/b.JSON\n")
    # loads() never reads files: an existing one gets the hint without "no such file".
    (tmp_path / "c.yml").write_text(SAMPLE_1)
    with pytest.raises(ValidationError) as info:
        loads("c.yml")
    assert "loads() takes YAML or JSON text" in str(info.value)
    assert "no such file" not in str(info.value)
    assert len(load_all("c.yml")) == 1  # load_all reads an existing file named by a str
    # Other bare strings keep the plain message.
    for text in ("nofile", "a: b.yaml"):
        with pytest.raises(ValidationError) as info:
            load_all(text)
        assert "pathlib" not in str(info.value)


def test_bad_yaml_reports_line_and_column() -> None:
    with pytest.raises(ValidationError, match=r"line 3, column 10: mapping values"):
        loads("kind: PacketCapture\nmetadata:\n  name: a: b\n")


# --- property: round trip -------------------------------------------------------------

names = st.from_regex(r"\A[a-z0-9]([-a-z0-9]{0,10}[a-z0-9])?\Z")
label_values = st.from_regex(r"\A([A-Za-z0-9]([-A-Za-z0-9_.]{0,8}[A-Za-z0-9])?)?\Z")
ports = st.one_of(
    st.integers(1, 65535).map(pc.PortRange.single),
    st.tuples(st.integers(1, 65535), st.integers(1, 65535)).map(
        lambda t: pc.PortRange(min(t), max(t))
    ),
)
rules = st.one_of(
    st.builds(
        pc.PacketCaptureRule,
        protocol=st.sampled_from(["TCP", "UDP", "SCTP", 6, 17, 132]),
        ports=st.lists(ports, max_size=4),
    ),
    st.builds(
        pc.PacketCaptureRule,
        protocol=st.one_of(st.sampled_from(["ICMP", "ICMPv6", "UDPLite"]), st.integers(1, 255)),
    ),
    st.builds(pc.PacketCaptureRule, ports=st.lists(ports, max_size=4)),
)
times = st.datetimes(
    min_value=dt.datetime(1970, 1, 1),
    max_value=dt.datetime(9999, 1, 1),
    timezones=st.just(dt.UTC),
)
selectors = st.sampled_from(["all()", "", 'app == "web"', "has(a) && !has(b)", "x in {'a','b'}"])


@st.composite
def captures(draw: st.DrawFn) -> pc.PacketCapture:
    start = draw(st.none() | times)
    end = draw(st.none() | times)
    if start is not None and end is not None and end <= start:
        end = start + dt.timedelta(seconds=draw(st.integers(1, 10**6)))
    return pc.PacketCapture(
        metadata=pc.ObjectMeta(
            name=draw(names),
            namespace=draw(names),
            labels=draw(st.dictionaries(st.sampled_from(["app", "tier", "a.b/c"]), label_values)),
            annotations=draw(st.dictionaries(st.text(min_size=1, max_size=5), st.text(max_size=5))),
        ),
        spec=pc.PacketCaptureSpec(
            selector=draw(selectors),
            filters=draw(st.lists(rules, max_size=4)),
            start_time=start,
            end_time=end,
        ),
    )


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(captures(), st.sampled_from(["yaml", "json"]))
def test_round_trip(cap: pc.PacketCapture, fmt: Any) -> None:
    pc.validate(cap)
    assert loads(dumps(cap, format=fmt)) == cap


# --- fuzz: only ValidationError --------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
FIELDS = {
    ("metadata", "name"),
    ("metadata", "namespace"),
    ("metadata", "labels"),
    ("spec", "selector"),
    ("spec", "filters"),
    ("spec", "startTime"),
    ("spec", "endTime"),
    ("status", "files"),
}


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(FIELDS)), json_values, st.sampled_from(["yaml", "json"]))
def test_random_field_values_raise_only_validation_error(
    field: tuple[str, str], value: Any, fmt: str
) -> None:
    doc = yaml.safe_load(SAMPLE_1)
    doc.setdefault(field[0], {})[field[1]] = value
    text = json.dumps(doc) if fmt == "json" else yaml.safe_dump(doc)
    with contextlib.suppress(ValidationError):
        loads(text)


@settings(max_examples=200)
@given(json_values)
def test_random_documents_raise_only_validation_error(value: Any) -> None:
    with contextlib.suppress(ValidationError):
        load_all(yaml.safe_dump(value))


@settings(max_examples=200)
@given(st.binary(max_size=200) | st.text(max_size=200))
def test_random_bytes_raise_only_validation_error(blob: bytes | str) -> None:
    with contextlib.suppress(ValidationError):
        load_all(blob if isinstance(blob, bytes) else blob + "\n")


@settings(max_examples=100)
@given(st.sampled_from(["items", "filters", "ports", "files"]), json_values)
def test_random_rule_lists(where: str, value: Any) -> None:
    doc = yaml.safe_load(SAMPLE_1)
    if where == "items":
        doc = {"apiVersion": "v1", "kind": "List", "items": value}
    elif where == "filters":
        doc["spec"]["filters"] = [value]
    elif where == "ports":
        doc["spec"]["filters"][0]["ports"] = [value]
    else:
        doc["status"] = {"files": [value]}
    with contextlib.suppress(ValidationError):
        load_all(json.dumps(doc))


# --- hostile input --------------------------------------------------------------------


def _bounded(func: Any, *args: Any) -> ValidationError:
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(ValidationError) as info:
            func(*args)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    elapsed = time.perf_counter() - start
    # Generous bounds: a bomb that expanded would take minutes and gigabytes.
    assert elapsed < 30 and peak < 512 * 1024 * 1024
    return info.value


def test_alias_bomb() -> None:
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for i in range(1, 10):
        prev = chr(ord("a") + i - 1)
        cur = chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]")
    err = _bounded(load_all, "\n".join(lines))
    assert "alias bomb" in str(err)


def test_deep_nesting_yaml_and_json() -> None:
    assert "nest" in str(_bounded(load_all, "[" * 5000 + "]" * 5000))
    assert "nest" in str(
        _bounded(load_all, "a:\n" + "".join(" " * i + "- \n" for i in range(1, 200)))
    )
    assert "nest" in str(_bounded(loads, '{"a":' * 100_000 + "1" + "}" * 100_000))


def test_huge_document_refused_fast() -> None:
    blob = "a: " + "x" * (pc.serde.MAX_DOCUMENT_BYTES + 1)
    assert "larger than" in str(_bounded(load_all, blob))


def test_multi_megabyte_document_is_handled() -> None:
    doc = yaml.safe_load(SAMPLE_1)
    doc["metadata"]["annotations"] = {"big": "x" * 3_000_000}
    err = _bounded(loads, json.dumps(doc))
    assert err.problems[0][0] == "metadata.annotations"


def test_binary_junk() -> None:
    assert "not UTF-8" in str(_bounded(load_all, b"\x89PNG\r\n\x1a\n\xff\xfe\x00"))
    assert "NUL" in str(_bounded(load_all, "kind: x\x00"))

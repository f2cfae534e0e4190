"""The fast lane and the cattrs converter: the same objects, the same wire dicts, the same errors.

``from_dict``/``to_dict`` try the fast lane first and leave to cattrs whatever it refuses, so
the lane must never accept a document the converter refuses, must build the very object the
converter builds, and must dump exactly what the converter dumps (keys, order, types).
"""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import packetcapture as pc
from packetcapture import ValidationError, serde
from tests.foundation.test_foundation_serde import (
    captures,
    json_values,
    label_values,
    names,
    times,
)

EXAMPLES = Path(__file__).parent.parent.parent / "examples"
FAILED = object()


def _same(a: Any, b: Any, where: str = "") -> None:
    """Equal, of the same types all the way down, dict keys in the same order."""
    assert type(a) is type(b), (where, a, b)
    if isinstance(a, dict):
        assert list(a) == list(b), where
        for key in a:
            _same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{where}[{i}]")
    else:
        assert a == b, (where, a, b)


def _structure(conv: Any, doc: Any, cls: type) -> Any:
    try:
        return conv.structure(doc, cls)
    except Exception:
        return FAILED


def _agree(doc: Any, cls: type) -> Any:
    """Structure ``doc`` both ways; the lane may refuse more, never accept more or differ."""
    fast = _structure(serde._lane(), doc, cls)
    slow = _structure(serde._converter(), doc, cls)
    if fast is not FAILED:
        assert slow is not FAILED, f"the fast lane accepted what cattrs refuses: {doc!r}"
        assert type(fast) is type(slow)
        assert fast == slow
        assert repr(fast) == repr(slow)
    return slow


def _dumps_agree(obj: Any) -> None:
    _same(serde._lane().unstructure(obj), serde._converter().unstructure(obj))


refs = st.fixed_dictionaries(
    {"apiVersion": st.just("v1"), "kind": st.just("Pod"), "name": names, "uid": names},
    optional={"controller": st.booleans(), "extra": json_values},
)


@st.composite
def metas(draw: st.DrawFn) -> pc.ObjectMeta:
    return pc.ObjectMeta(
        name=draw(names),
        namespace=draw(st.none() | names),
        labels=draw(st.dictionaries(st.sampled_from(["app", "tier", "a.b/c"]), label_values)),
        annotations=draw(st.dictionaries(st.text(min_size=1, max_size=5), st.text(max_size=5))),
        uid=draw(st.none() | names),
        resource_version=draw(st.none() | st.from_regex(r"\A[0-9]{1,6}\Z")),
        generation=draw(st.none() | st.integers(0, 10**6)),
        creation_timestamp=draw(st.none() | times),
        deletion_timestamp=draw(st.none() | times),
        generate_name=draw(st.none() | names),
        finalizers=draw(st.lists(names, max_size=2)),
        owner_references=draw(st.lists(refs, max_size=2)),
        extra=draw(st.dictionaries(st.sampled_from(["managedFields", "selfLink"]), json_values)),
    )


@st.composite
def statuses(draw: st.DrawFn) -> pc.PacketCaptureStatus:
    files = st.builds(
        pc.PacketCaptureFile,
        directory=st.none() | st.just("/var/log/calico/pcap/ns/cap"),
        file_names=st.lists(st.from_regex(r"\A[a-z0-9_.-]{1,12}\Z"), max_size=3),
        node=st.none() | names,
        state=st.none() | st.sampled_from(list(pc.CaptureState)),
    )
    return pc.PacketCaptureStatus(files=draw(st.lists(files, max_size=3)))


@st.composite
def captures_with_status(draw: st.DrawFn) -> pc.PacketCapture:
    cap = draw(captures())
    return attrs.evolve(cap, metadata=draw(metas()), status=draw(st.none() | statuses()))


@st.composite
def endpoints(draw: st.DrawFn) -> pc.WorkloadEndpoint:
    word = st.from_regex(r"\A[a-z0-9]{0,8}\Z")
    spec = pc.WorkloadEndpointSpec(
        node=draw(word),
        orchestrator=draw(st.sampled_from(["", "k8s"])),
        workload=draw(word),
        pod=draw(word),
        endpoint=draw(st.sampled_from(["", "eth0"])),
        interface_name=draw(st.sampled_from(["", "cali1234"])),
        ip_networks=draw(st.lists(st.sampled_from(["10.0.0.1/32", "fd00::1/128"]), max_size=2)),
        profiles=draw(st.lists(word, max_size=2)),
        service_account_name=draw(word),
        mac=draw(st.sampled_from(["", "ee:ee:ee:ee:ee:ee"])),
        container_id=draw(word),
        extra=draw(st.dictionaries(st.sampled_from(["allowSpoofedSourcePrefixes"]), json_values)),
    )
    return pc.WorkloadEndpoint(metadata=draw(metas()), spec=spec)


resources = st.one_of(captures_with_status(), endpoints())


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(resources)
def test_both_lanes_dump_and_load_every_resource_alike(obj: Any) -> None:
    _dumps_agree(obj)
    wire = serde._converter().unstructure(obj)
    back = _agree(wire, type(obj))
    if back is not FAILED:
        assert back == obj


def _paths(doc: Any, here: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [here]
    if isinstance(doc, dict):
        for key, value in doc.items():
            out += _paths(value, (*here, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            out += _paths(value, (*here, i))
    return out


def _mutated(doc: Any, path: tuple[Any, ...], how: str, value: Any) -> Any:
    """A deep copy of ``doc`` with the node at ``path`` replaced, dropped, or given a key."""
    if not path:
        return value if how == "replace" else doc
    head, rest = path[0], path[1:]
    if isinstance(doc, dict):
        out = dict(doc)
        if not rest and how == "drop":
            del out[head]
        elif not rest and how == "add" and isinstance(doc[head], dict):
            out[head] = {**doc[head], "surplusKey": value}
        else:
            out[head] = _mutated(doc[head], rest, how, value)
        return out
    out_list = list(doc)
    if not rest and how == "drop":
        del out_list[head]
    else:
        out_list[head] = _mutated(doc[head], rest, how, value)
    return out_list


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(resources, st.randoms(use_true_random=False), st.sampled_from(["replace", "drop", "add"]))
def test_the_fast_lane_never_accepts_a_broken_document(
    obj: Any, rnd: random.Random, how: str
) -> None:
    wire = serde._converter().unstructure(obj)
    path = rnd.choice(_paths(wire))
    value = rnd.choice([None, True, 0, -1, 70000, 1.5, "", "x", "TCP", "80:70", [], {}, ["a"]])
    _agree(_mutated(wire, path, how, value), type(obj))


@pytest.mark.parametrize(
    "path", sorted(EXAMPLES.glob("*.yaml")) + sorted((EXAMPLES / "traffic").glob("*.yaml"))
)
def test_every_example_loads_and_dumps_alike(path: Path) -> None:
    for doc in serde.parse_data(path.read_bytes()):
        items = doc.get("items", [doc]) if isinstance(doc, dict) else [doc]
        for item in items:
            body = {k: v for k, v in item.items() if k not in ("kind", "apiVersion")}
            cls = {"PacketCapture": pc.PacketCapture, "WorkloadEndpoint": pc.WorkloadEndpoint}
            obj = _agree(body, cls[item["kind"]])
            assert obj is not FAILED, path
            assert _structure(serde._lane(), body, type(obj)) == obj  # the lane took it
            _dumps_agree(obj)


def test_an_invalid_document_gets_the_converters_every_problem() -> None:
    doc = {
        "apiVersion": "projectcalico.org/v3",
        "kind": "PacketCapture",
        "metadata": {"name": "Bad_Name", "labels": {"k": 1}},
        "spec": {"selector": "a ==", "filters": [{"protocol": "TCP", "ports": [0, "x"]}]},
        "surplus": 1,
    }
    with pytest.raises(ValidationError) as info:
        serde.from_dict(doc)
    paths = [p for p, _ in info.value.problems]
    assert "surplus" in paths
    assert "metadata.name" in paths
    assert "spec.selector" in paths
    assert {"spec.filters[0].ports[0]", "spec.filters[0].ports[1]"} <= set(paths)


def test_a_value_the_lane_does_not_know_is_dumped_by_the_converter() -> None:
    # An owner reference holds whatever a caller put there; a tuple is not YAML data.
    cap = pc.PacketCapture(metadata=pc.ObjectMeta(name="a", owner_references=({"odd": (1, 2)},)))
    with pytest.raises(TypeError):
        serde._lane().unstructure(cap)
    assert serde.to_dict(cap)["metadata"] == serde._converter().unstructure(cap)["metadata"]


def test_dumped_dicts_share_nothing_with_the_resource() -> None:
    meta = pc.ObjectMeta(
        name="a",
        labels={"app": "web"},
        owner_references=({"kind": "Pod", "x": {"y": [1]}},),
    )
    cap = pc.PacketCapture(
        metadata=meta, spec=pc.PacketCaptureSpec(start_time=dt.datetime.now(dt.UTC))
    )
    out = serde.to_dict(cap)
    out["metadata"]["labels"]["app"] = "db"
    out["metadata"]["ownerReferences"][0]["x"]["y"].append(2)
    assert cap.metadata.labels == {"app": "web"}
    assert cap.metadata.owner_references[0]["x"]["y"] == [1]

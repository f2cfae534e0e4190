"""YAML limits (issue 16): aliases counted as expanded, linear loading, duplicate keys."""

from __future__ import annotations

import gc
import itertools
import json
from typing import Any

import pytest

from packetcapture import ValidationError, load_all, loads, serde


def _endpoints(n: int) -> str:
    """A WorkloadEndpointList of ``n`` endpoints, written out in full (no alias)."""
    lines = ["apiVersion: projectcalico.org/v3", "kind: WorkloadEndpointList", "items:"]
    for i in range(n):
        lines += [
            "- apiVersion: projectcalico.org/v3",
            "  kind: WorkloadEndpoint",
            "  metadata:",
            f"    name: node-1-k8s-pod{i}-eth0",
            "    namespace: ns",
            "    labels: {app: web, tier: a}",
            "  spec:",
            "    node: node-1",
            f"    pod: pod{i}",
            f"    interfaceName: cali{i:011d}",
            f"    ipNetworks: [10.0.{i // 256 % 256}.{i % 256}/32]",
            "    profiles: [kns.ns, ksa.ns.default]",
        ]
    return "\n".join(lines) + "\n"


def _bomb(levels: int, fan: int = 9) -> str:
    """The classic billion-laughs document: each level repeats the one before ``fan`` times."""
    names = [f"l{i}" for i in range(levels)]
    lines = [f"{names[0]}: &{names[0]} [" + ", ".join(["x"] * fan) + "]"]
    for prev, cur in itertools.pairwise(names):
        lines.append(f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * fan) + "]")
    return "\n".join(lines) + "\n"


# --- 10: a long list without aliases is not an alias bomb ------------------------------------


def test_a_long_list_without_aliases_loads_whatever_its_node_count(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Reproduces issue 16.10 at a small scale: 300 endpoints are ~10k YAML nodes.

    Before, every node counted against the alias limit (80k endpoints were refused as an
    "alias bomb?"); now only nodes that aliases add do.
    """
    monkeypatch.setattr(serde, "MAX_NODES", 1_000)
    loaded = load_all(_endpoints(300))
    assert [e.spec.pod for e in loaded] == [f"pod{i}" for i in range(300)]


def test_what_aliases_add_is_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(serde, "MAX_NODES", 1_000)
    # 3 levels expand to ~900 nodes from 16 distinct ones; 4 levels to ~8,000.
    assert serde.parse_data(_bomb(3))
    with pytest.raises(ValidationError, match="aliases expand the document by more than 1000"):
        serde.parse_data(_bomb(4))  # adds ~7,000


def test_an_alias_shared_by_many_small_entries_is_fine() -> None:
    """Aliases of a small block, as people write templates, stay far below the limit."""
    text = "base: &b {app: web}\nitems:\n" + "".join(f"- {{n: {i}, l: *b}}\n" for i in range(5000))
    (doc,) = serde.parse_data(text)
    assert len(doc["items"]) == 5000 and doc["items"][-1]["l"] == {"app": "web"}


def test_loading_does_not_run_full_collections_over_its_own_heap() -> None:
    """Reproduces the quadratic load: the cyclic collector ran over the growing parse heap.

    (bench/bench_serde.py measures the time; a test only checks the mechanism: no full
    collection while a 3,000-endpoint list loads, and the collector is on afterwards.)
    """
    text = _endpoints(3000)
    full: list[int] = []

    def callback(phase: str, info: dict[str, Any]) -> None:
        if phase == "start" and info["generation"] == 2:
            full.append(1)

    gc.collect()
    gc.callbacks.append(callback)
    try:
        loaded = load_all(text)
    finally:
        gc.callbacks.remove(callback)
    assert len(loaded) == 3000
    assert full == [] and gc.isenabled()


def test_the_collector_stays_off_when_the_caller_turned_it_off() -> None:
    gc.disable()
    try:
        load_all(_endpoints(2))
        assert not gc.isenabled()
    finally:
        gc.enable()
    with pytest.raises(ValidationError):
        load_all("a: [")
    assert gc.isenabled()


# --- 16: duplicate keys are refused, with the key and its line ---------------------------------


@pytest.mark.parametrize(
    ("text", "key", "line", "first"),
    [
        ("a: 1\nb: 2\na: 3\n", "'a'", 3, 1),
        ("kind: PacketCapture\nmetadata:\n  name: x\n  name: y\n", "'name'", 4, 3),
        ("a: {x: 1, y: 2, x: 3}\n", "'x'", 1, 1),
        ("- {p: 80}\n- p: 1\n  q: 2\n  p: 3\n", "'p'", 4, 2),
        ('{"kind": "PacketCapture",\n "metadata": {},\n "kind": "X"}', "'kind'", 3, 1),
        ("1: a\n0x1: b\n", "1", 2, 1),
    ],
)
def test_duplicate_keys_are_refused_naming_key_and_line(
    text: str, key: str, line: int, first: int
) -> None:
    for load in (load_all, loads, serde.parse_data):
        with pytest.raises(ValidationError) as info:
            load(text)
        (problem,) = info.value.problems
        assert problem[1].startswith(f"invalid YAML at line {line}, column ")
        assert problem[1].endswith(f"duplicate key {key} (first at line {first})")


def test_a_merged_key_may_be_overridden_and_different_types_are_different_keys() -> None:
    (doc,) = serde.parse_data("b: &b {x: 1, y: 2}\nd:\n  <<: *b\n  x: 3\n")
    assert doc["d"] == {"x": 3, "y": 2}
    (doc,) = serde.parse_data("'1': a\n1: b\n")
    assert doc == {"1": "a", 1: "b"}
    assert serde.parse_data(json.dumps({"a": 1, "b": {"a": 2}})) == [{"a": 1, "b": {"a": 2}}]


def test_a_duplicate_key_in_a_resource_is_reported_for_the_file() -> None:
    sample = "apiVersion: projectcalico.org/v3\nkind: PacketCapture\nmetadata: {name: a}\n"
    with pytest.raises(ValidationError, match=r"line 4, .*duplicate key 'kind'"):
        load_all(sample + "kind: WorkloadEndpoint\n")

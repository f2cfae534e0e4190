"""The attrs classes on the start-up path share one repr, eq and hash, each as attrs makes it."""

from __future__ import annotations

import importlib

import attrs
import pytest

from packetcapture._frozen import FieldsEq, FieldsRepr

# (packetcapture.bpf._program's BpfProgram is a written-out frozen class now, no attrs one:
# tests/bpf/test_bpf_program.py compares it with the attrs class it was.)
MODULES = [
    "packetcapture.model",
    "packetcapture.schedule",
    "packetcapture.agent",
    "packetcapture.backends.base",
    "packetcapture.pcap._settings",
    "packetcapture.pcap._merge",
]


def _classes() -> list[type]:
    found = []
    for name in MODULES:
        for value in vars(importlib.import_module(name)).values():
            if isinstance(value, type) and attrs.has(value) and value.__module__ == name:
                found.append(value)
    return found


CLASSES = _classes()


def test_every_attrs_class_on_the_start_up_path_shares_the_one_repr() -> None:
    assert len(CLASSES) >= 24
    assert [c.__name__ for c in CLASSES if not issubclass(c, FieldsRepr)] == []


def _filled(cls: type) -> object:
    """An instance with a distinct value per field (set directly: repr only reads them)."""
    obj = object.__new__(cls)
    for i, field in enumerate(attrs.fields(cls)):
        value = (i, f"v{i}\n", (i, None)) if i % 2 else {"k": [i]}
        object.__setattr__(obj, field.name, value)
    return obj


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_repr_is_what_attrs_generates(cls: type) -> None:
    # The reference: the same fields with attrs' own generated repr.
    ref_cls = attrs.frozen(repr=True, eq=False, init=False, slots=False)(
        type(cls.__name__, (cls,), {})
    )
    ours, ref = _filled(cls), object.__new__(ref_cls)
    for field in attrs.fields(cls):
        object.__setattr__(ref, field.name, getattr(ours, field.name))
    assert repr(ours) == repr(ref)


def test_a_real_value_prints_as_before() -> None:
    from packetcapture.model import PacketCaptureRule, PortRange

    rule = PacketCaptureRule(protocol="TCP", ports=[80, "8000:8080"])
    assert repr(rule) == (
        "PacketCaptureRule(protocol='TCP', ports=(PortRange(min=80, max=80), "
        "PortRange(min=8000, max=8080)))"
    )
    assert eval(repr(rule.ports[1]), {"PortRange": PortRange}) == rule.ports[1]


EQ_CLASSES = [c for c in CLASSES if issubclass(c, FieldsEq)]


def _pair(cls: type, make: type, differ: str | None) -> tuple[object, object]:
    """Two instances of ``make`` with ``cls``'s fields: equal, or differing in one field."""
    out = []
    for side in (0, 1):
        obj = object.__new__(make)
        for i, field in enumerate(attrs.fields(cls)):
            value: object = (i, f"v{i}")
            if field.name == differ and side:
                value = (i, "other")
            object.__setattr__(obj, field.name, value)
        out.append(obj)
    return out[0], out[1]


# The modules whose attrs classes `packetcapture run` makes at every start.
RUN_MODULES = (
    "packetcapture.model",
    "packetcapture.schedule",
    "packetcapture.agent",
    "packetcapture.backends.base",
    "packetcapture.pcap._settings",
)


def test_the_classes_run_makes_share_the_one_eq_and_hash() -> None:
    from packetcapture import model, schedule

    # PortRange orders; InterfaceStatus is compared on the schedule's hot paths, where
    # attrs' generated __eq__ is ~10% faster (bench_schedule's update_times).
    own = {model.PortRange, schedule.InterfaceStatus}
    made = {c for c in CLASSES if c.__module__ in RUN_MODULES and c not in own}
    assert len(made) >= 20
    assert made <= set(EQ_CLASSES)
    assert own.isdisjoint(EQ_CLASSES)


def test_the_agent_s_private_records_are_plain_slotted_classes() -> None:
    # Not attrs classes (nothing compares or evolves them): nothing generated at start-up.
    from packetcapture.agent import _Run, _Session

    for cls in (_Run, _Session):
        assert not attrs.has(cls)
        assert "__slots__" in vars(cls)
        assert "__dict__" not in vars(cls)


@pytest.mark.parametrize("cls", EQ_CLASSES, ids=lambda c: c.__name__)
def test_eq_and_hash_are_what_attrs_generates(cls: type) -> None:
    ref_cls = attrs.frozen(repr=False, eq=True, init=False, slots=False)(
        type(cls.__name__, (cls,), {})
    )
    for differ in [None, *(f.name for f in attrs.fields(cls))]:
        ours, ref = _pair(cls, cls, differ), _pair(cls, ref_cls, differ)
        assert (ours[0] == ours[1]) == (ref[0] == ref[1]) == (differ is None)
        assert (ours[0] != ours[1]) == (ref[0] != ref[1])
        if differ is None:
            assert hash(ours[0]) == hash(ours[1])
        assert (ours[0] == "x") is (ref[0] == "x") is False
    # Another class with the same fields is not equal, as with attrs.
    assert _pair(cls, cls, None)[0] != _pair(cls, ref_cls, None)[0]


def test_a_mapping_field_makes_the_value_unhashable_as_before() -> None:
    from packetcapture.model import ObjectMeta, PacketCaptureRule

    with pytest.raises(TypeError, match="unhashable"):
        hash(ObjectMeta(name="a", labels={"k": "v"}))
    rule = PacketCaptureRule(protocol="TCP", ports=[80])
    assert {rule: 1}[PacketCaptureRule(protocol="TCP", ports=["80"])] == 1

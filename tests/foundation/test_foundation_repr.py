"""Classes made with ``repr=False`` and :class:`FieldsRepr` print exactly as attrs would."""

from __future__ import annotations

import importlib

import attrs
import pytest

from packetcapture._frozen import FieldsRepr

MODULES = [
    "packetcapture.model",
    "packetcapture.schedule",
    "packetcapture.agent",
    "packetcapture.backends.base",
    "packetcapture.bpf._program",
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
    assert len(CLASSES) >= 27
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

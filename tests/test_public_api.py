"""The package's public surface: `__all__` is sorted, complete and importable."""

from __future__ import annotations

import packetcapture


def test_all_is_sorted_and_resolves() -> None:
    names = packetcapture.__all__
    assert names == sorted(names)
    for name in names:
        assert hasattr(packetcapture, name), name


def test_all_public_names_are_exported() -> None:
    public = {
        n
        for n in vars(packetcapture)
        if not n.startswith("_") and not isinstance(getattr(packetcapture, n), type(packetcapture))
    }
    assert public <= set(packetcapture.__all__)


def test_errors_hierarchy() -> None:
    from packetcapture import errors

    for name in errors.__all__:
        obj = getattr(errors, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, packetcapture.PacketCaptureError)
    assert issubclass(packetcapture.ValidationError, ValueError)
    assert issubclass(packetcapture.SelectorSyntaxError, ValueError)
    assert issubclass(packetcapture.BackendUnavailableError, packetcapture.BackendError)

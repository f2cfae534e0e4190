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


def test_bpf_lazy_names_cover_their_modules() -> None:
    # packetcapture.bpf lists the names of its lazily loaded modules itself (reading their
    # __all__ would load them): each of their exports must resolve to the module's own.
    import packetcapture.bpf as bpf
    from packetcapture.bpf import _attach, _disasm, _typed

    for module in (_typed, _attach):
        for name in module.__all__:
            assert name in bpf.__all__, name
            assert getattr(bpf, name) is getattr(module, name), name
    assert bpf.disassemble is _disasm.disassemble

"""The registry, the shared source behaviour and the OSError mapping."""

from __future__ import annotations

import errno
import subprocess
import sys

import pytest

from packetcapture.backends import (
    AfPacketBackend,
    CaptureBackend,
    MemoryBackend,
    PacketSource,
    available_backends,
    get_backend,
    register_backend,
    unregister_backend,
)
from packetcapture.backends._errors import interface_gone, map_os_error, map_os_errors
from packetcapture.backends.replay import ReplayBackend
from packetcapture.errors import (
    BackendBrokenError,
    BackendClosedError,
    BackendUnavailableError,
)


def test_builtin_backends_are_listed_with_usability() -> None:
    infos = {info.name: info for info in available_backends()}
    assert {"afpacket", "memory", "replay"} <= set(infos)
    assert infos["memory"].usable and infos["memory"].reason == ""
    assert infos["memory"].backend is MemoryBackend
    assert infos["replay"].backend is ReplayBackend
    assert infos["afpacket"].backend is AfPacketBackend
    assert [i.name for i in available_backends()] == sorted(infos)


def test_entry_points_name_the_builtin_backends() -> None:
    from importlib.metadata import entry_points

    eps = {ep.name: ep.value for ep in entry_points(group="packetcapture.backends")}
    assert eps == {
        "afpacket": "packetcapture.backends.afpacket:AfPacketBackend",
        "memory": "packetcapture.backends.memory:MemoryBackend",
        "replay": "packetcapture.backends.replay:ReplayBackend",
    }


def test_get_backend_passes_options() -> None:
    backend = get_backend("memory", linktype=101, queue_limit=3)
    assert isinstance(backend, MemoryBackend)
    assert backend.linktype == 101


def test_get_backend_unknown_name() -> None:
    with pytest.raises(BackendUnavailableError, match=r"no capture backend named 'nope'.*memory"):
        get_backend("nope")


class _Unusable(CaptureBackend):
    name = "unusable"

    @classmethod
    def unusable_reason(cls) -> str | None:
        return "needs a unicorn"

    def open(self, interface, program, *, snaplen=262144, packet_limit=None):  # type: ignore[no-untyped-def]
        raise AssertionError("never called")


def test_unusable_backend_says_why() -> None:
    register_backend("unusable", _Unusable)
    try:
        info = {i.name: i for i in available_backends()}["unusable"]
        assert (info.usable, info.reason) == (False, "needs a unicorn")
        with pytest.raises(BackendUnavailableError, match="needs a unicorn"):
            get_backend("unusable")
    finally:
        unregister_backend("unusable")
    assert "unusable" not in {i.name for i in available_backends()}


def test_register_backend_rejects_non_backends() -> None:
    with pytest.raises(TypeError):
        register_backend("x", int)  # type: ignore[arg-type]


def test_broken_plugin_does_not_break_the_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    import packetcapture.backends.base as base

    monkeypatch.setitem(base._BUILTIN, "ghost", "no_such_module_xyz:Backend")
    info = {i.name: i for i in available_backends()}["ghost"]
    assert not info.usable and info.backend is None
    assert "no_such_module_xyz" in info.reason
    with pytest.raises(BackendUnavailableError, match="not usable: cannot load"):
        get_backend("ghost")


def test_afpacket_unusable_without_cap_net_raw() -> None:
    """A process without CAP_NET_RAW gets a reason, and open() names the cause."""
    import os
    import shutil

    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to drop privileges")
    code = (
        "from packetcapture.backends import available_backends, AfPacketBackend\n"
        "from packetcapture.bpf import BpfProgram\n"
        "from packetcapture.errors import BackendUnavailableError\n"
        "info = {i.name: i for i in available_backends()}['afpacket']\n"
        "print(info.usable, info.reason)\n"
        "try:\n"
        "    AfPacketBackend().open('lo', BpfProgram.accept_all())\n"
        "except BackendUnavailableError as e:\n"
        "    print('E', e, type(e.__cause__).__name__)\n"
    )
    out = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
         "--bounding-set=-all", sys.executable, "-c", code],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    lines = out.stdout.splitlines()
    assert lines[0] == "False permission denied: needs root or CAP_NET_RAW"
    assert lines[1].startswith("E lo: create an AF_PACKET socket: permission denied")
    assert lines[1].endswith("PermissionError")


@pytest.mark.parametrize(
    ("code", "phase", "kind", "text"),
    [
        (errno.EPERM, "open", BackendUnavailableError, "needs root or CAP_NET_RAW"),
        (errno.EACCES, "open", BackendUnavailableError, "needs root or CAP_NET_RAW"),
        (errno.ENODEV, "open", BackendUnavailableError, "no such interface"),
        (errno.ENXIO, "open", BackendUnavailableError, "no such interface"),
        (errno.EAFNOSUPPORT, "open", BackendUnavailableError, "not supported"),
        (errno.ENOMEM, "open", BackendUnavailableError, "not enough memory"),
        (errno.ENOENT, "open", BackendUnavailableError, "no such file"),
        (errno.EIO, "open", BackendUnavailableError, "Input/output error"),
        (errno.EBADF, "open", BackendClosedError, "source is closed"),
        (errno.EBADF, "capture", BackendClosedError, "source is closed"),
        (errno.EIO, "capture", BackendBrokenError, "eth0: read: Input/output error"),
        (errno.ENOBUFS, "capture", BackendBrokenError, "No buffer space"),
    ],
)
def test_os_error_mapping(code: int, phase: str, kind: type[Exception], text: str) -> None:
    cause = OSError(code, __import__("os").strerror(code))
    error = map_os_error(cause, interface="eth0", action="read", phase=phase)  # type: ignore[arg-type]
    assert type(error) is kind
    assert text in str(error)
    assert error.__cause__ is cause
    with pytest.raises(kind) as info, map_os_errors("eth0", "read", phase):  # type: ignore[arg-type]
        raise cause
    assert info.value.__cause__ is cause


def test_interface_gone() -> None:
    assert interface_gone(OSError(errno.ENETDOWN, "x"))
    assert interface_gone(OSError(errno.ENXIO, "x"))
    assert not interface_gone(OSError(errno.EIO, "x"))


class _Minimal(PacketSource):
    """The smallest PacketSource: used to check the shared behaviour in base."""

    def __init__(self, packets: list[tuple[int, bytes, int]], limit: int | None) -> None:
        super().__init__("x0", linktype=1, snaplen=100, packet_limit=limit)
        self.packets = packets
        self.closed_count = 0

    def _read(self, max_packets):  # type: ignore[no-untyped-def]
        out, self.packets = self.packets[:max_packets], self.packets[max_packets:]
        return out

    def _fileno(self) -> int:
        return 0

    def _set_program(self, program):  # type: ignore[no-untyped-def]
        pass

    def _stats(self):  # type: ignore[no-untyped-def]
        from packetcapture.backends import SourceStats

        return SourceStats()

    def _close(self) -> None:
        self.closed_count += 1


def test_packet_limit_across_reads() -> None:
    source = _Minimal([(i, b"p", 1) for i in range(10)], limit=5)
    assert [p[0] for p in source.read(3)] == [0, 1, 2]
    assert not source.exhausted
    assert [p[0] for p in source.read()] == [3, 4]
    assert source.exhausted and source.end_reason == "packet limit reached"
    assert source.read() == []
    assert "ended" in repr(source)


def test_zero_packet_limit_ends_at_first_read() -> None:
    source = _Minimal([(1, b"p", 1)], limit=0)
    assert source.read() == [] and source.exhausted


def test_close_once_and_closed_errors() -> None:
    source = _Minimal([], limit=None)
    with source:
        assert source.read(0) == []
    source.close()
    assert source.closed_count == 1
    with pytest.raises(BackendClosedError, match="x0: packet source is closed"):
        source.read()
    with pytest.raises(BackendClosedError):
        source.fileno()
    assert "closed" in repr(source)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="snaplen"):
        PacketSource.__init__(_Minimal.__new__(_Minimal), "x", linktype=1, snaplen=0)
    with pytest.raises(ValueError, match="packet_limit"):
        _Minimal([], limit=-1)


def test_get_backend_bad_option_names_it_and_lists_the_accepted() -> None:
    with pytest.raises(BackendUnavailableError) as info:
        get_backend("replay", dir="x")
    message = str(info.value)
    assert "'replay'" in message and "'dir'" in message
    assert "did you mean 'directory'?" in message
    assert "accepts: files, directory, speed, clock" in message
    with pytest.raises(BackendUnavailableError, match=r"no options 'x', 'sped' \(did you mean"):
        get_backend("replay", x=1, sped=2)


def test_get_backend_missing_required_option_is_ours() -> None:
    class _Needs(CaptureBackend):
        def __init__(self, path: str) -> None:
            self.path = path

        def open(self, interface, program, *, snaplen=262144, packet_limit=None):  # type: ignore[no-untyped-def]
            raise AssertionError("never called")

    register_backend("needs", _Needs)
    try:
        with pytest.raises(BackendUnavailableError, match=r"'needs'.*path.*accepts: path"):
            get_backend("needs")
        assert get_backend("needs", path="p").path == "p"  # type: ignore[attr-defined]
    finally:
        unregister_backend("needs")

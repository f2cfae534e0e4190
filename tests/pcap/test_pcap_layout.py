"""Names, path safety, symlinks, listing, removal and the free-space guard."""

from __future__ import annotations

import os
from collections import namedtuple
from pathlib import Path

import pytest

from packetcapture.errors import PcapError
from packetcapture.model import PacketCaptureFile
from packetcapture.pcap import (
    CaptureSettings,
    RotatingWriter,
    _layout,
    base_name,
    capture_directory,
    check_free_space,
    find_capture_namespaces,
    list_capture_files,
    parse_file_name,
    remove_capture_files,
    rotated_name,
)

T0 = 1_700_000_000.0


def test_names_follow_calico() -> None:
    assert base_name("web-0", "cali12ab34cd56e") == "web-0_cali12ab34cd56e"
    assert rotated_name("web-0_cali1", 1_700_000_000_123_456) == "web-0_cali1-1700000000123456.pcap"
    assert capture_directory("/var/log/calico/pcap", "ns", "cap") == Path(
        "/var/log/calico/pcap/ns/cap"
    )
    assert parse_file_name("web-0_cali1-17.pcap") == ("web-0", "cali1", 17)
    assert parse_file_name("web-0_cali1.pcap") == ("web-0", "cali1", None)
    assert parse_file_name("web-0_veth_x.pcap") == ("web-0", "veth_x", None)
    for bad in ("notes.txt", "nounderscore.pcap", "_x.pcap", "x_.pcap"):
        assert parse_file_name(bad) is None


BAD_PARTS = ["", ".", "..", "a/b", "/etc", "../x", "a\x00b", "a\nb", "a\\b", "x" * 254, "\udcff"]


@pytest.mark.parametrize("bad", BAD_PARTS)
def test_unsafe_names_are_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(PcapError):
        base_name(bad, "eth0")
    with pytest.raises(PcapError):
        base_name("pod", bad)
    with pytest.raises(PcapError):
        capture_directory(tmp_path, bad, "cap")
    with pytest.raises(PcapError):
        capture_directory(tmp_path, "ns", bad)
    with pytest.raises(PcapError):
        RotatingWriter(tmp_path, "ns", "cap", bad, "eth0")
    with pytest.raises(PcapError):
        list_capture_files(tmp_path, bad, "cap", "node")
    assert sorted(p.name for p in tmp_path.rglob("*")) in ([], ["cap", "ns"])


def test_ambiguous_and_over_long_names() -> None:
    with pytest.raises(PcapError, match="must not contain '_'"):
        base_name("my_pod", "eth0")
    with pytest.raises(PcapError, match="rotated"):
        base_name("pod", "eth0-12")
    assert base_name("pod", "eth0-x")
    with pytest.raises(PcapError, match="too long"):
        base_name("p" * 200, "i" * 40)
    longest = base_name("p" * 200, "i" * (_layout.MAX_BASE_NAME_BYTES - 201))
    assert len(rotated_name(longest, 2**64 - 1)) <= 255
    with pytest.raises(PcapError):
        base_name(None, "eth0")  # type: ignore[arg-type]


def test_symlinked_namespace_or_capture_dir_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "pcap"
    root.mkdir()
    (root / "ns").symlink_to(outside)
    with pytest.raises(PcapError, match="symlink"):
        RotatingWriter(root, "ns", "cap", "pod", "eth0")
    (root / "ns").unlink()
    (root / "ns").mkdir()
    (root / "ns" / "cap").symlink_to(outside)
    with pytest.raises(PcapError, match="symlink"):
        RotatingWriter(root, "ns", "cap", "pod", "eth0")
    with pytest.raises(PcapError, match="symlink"):
        list_capture_files(root, "ns", "cap", "n")
    with pytest.raises(PcapError, match="symlink"):
        remove_capture_files(root, "ns", "cap")
    assert list(outside.iterdir()) == []


def test_symlinked_active_file_is_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    w = RotatingWriter(tmp_path / "pcap", "ns", "cap", "pod", "eth0")
    Path(w.active_path).symlink_to(victim)
    with pytest.raises(PcapError):
        w.write(0, b"x", 1, T0)
    w.close()
    assert victim.read_text() == "precious"


def test_capture_dir_itself_may_be_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    with RotatingWriter(tmp_path / "link", "ns", "cap", "pod", "eth0") as w:
        w.write(0, b"x", 1, T0)
    assert (real / "ns" / "cap" / "pod_eth0.pcap").exists()


def test_listing_is_sorted_in_byte_order(tmp_path: Path) -> None:
    d = tmp_path / "ns" / "cap"
    d.mkdir(parents=True)
    names = [
        "b_x.pcap",
        "B_x.pcap",
        "a_x-10.pcap",
        "a_x-9.pcap",
        "a_x.pcap",
        "é_x.pcap",
        "z_x.pcap",
    ]
    for n in names:
        (d / n).write_bytes(b"")
    (d / "notes.txt").write_text("")
    (d / ".hidden.pcap").write_text("")
    (d / "sub.pcap").mkdir()
    (d / "link_x.pcap").symlink_to(d / "a_x.pcap")
    got = list_capture_files(tmp_path, "ns", "cap", "node-1")
    assert got == PacketCaptureFile(
        directory=str(tmp_path),
        file_names=tuple(sorted(names, key=str.encode)),
        node="node-1",
        state=None,
    )
    assert got.file_names[:2] == ("B_x.pcap", "a_x-10.pcap")
    assert list_capture_files(tmp_path, "ns", "missing", "n").file_names == ()


def test_remove_capture_files(tmp_path: Path) -> None:
    d = tmp_path / "ns" / "cap"
    d.mkdir(parents=True)
    for n in ["a_x.pcap", "a_x-1.pcap", "a_y.pcap", "b_x.pcap"]:
        (d / n).write_bytes(b"")
    assert remove_capture_files(tmp_path, "ns", "cap", pod="a", interface="x") == [
        "a_x-1.pcap",
        "a_x.pcap",
    ]
    assert remove_capture_files(tmp_path, "ns", "cap", pod="a") == ["a_y.pcap"]
    outside = tmp_path / "keep"
    outside.mkdir()
    (outside / "f").write_text("keep")
    (d / "escape").symlink_to(outside)
    assert remove_capture_files(tmp_path, "ns", "cap") == ["b_x.pcap", "escape"]
    assert not d.exists() and (tmp_path / "ns").is_dir()
    assert (outside / "f").read_text() == "keep"
    assert remove_capture_files(tmp_path, "ns", "cap") == []
    with pytest.raises(ValueError):
        remove_capture_files(tmp_path, "ns", "cap", interface="x")
    with pytest.raises(PcapError):
        remove_capture_files(tmp_path, "ns", "cap", pod="../x")


def test_find_capture_namespaces(tmp_path: Path) -> None:
    for ns in ("b", "a", "c"):
        (tmp_path / ns / ("cap" if ns != "c" else "other")).mkdir(parents=True)
    (tmp_path / "d").symlink_to(tmp_path / "a")
    assert find_capture_namespaces(tmp_path, "cap") == ["a", "b"]
    assert find_capture_namespaces(tmp_path / "missing", "cap") == []


StatVfs = namedtuple("StatVfs", "f_bavail f_frsize")


def test_free_space_guard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = CaptureSettings(max_size_bytes=1000, max_files=2)  # needs more than 3000 bytes
    monkeypatch.setattr(os, "statvfs", lambda p: StatVfs(3001, 1))
    assert check_free_space(tmp_path / "not" / "yet", s) == 3001
    monkeypatch.setattr(os, "statvfs", lambda p: StatVfs(3, 1000))
    with pytest.raises(PcapError, match="no space left for capture"):
        check_free_space(tmp_path, s)


def test_free_space_real_disk(tmp_path: Path) -> None:
    assert check_free_space(tmp_path, CaptureSettings(max_size_bytes=1)) > 0
    with pytest.raises(PcapError, match="no space left for capture"):
        check_free_space(tmp_path, CaptureSettings(max_size_bytes=2**62))

"""Listing and removing a capture's files, for status reports and the CLI."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from packetcapture.errors import PcapError
from packetcapture.model import PacketCaptureFile
from packetcapture.pcap._layout import (
    SUFFIX,
    capture_directory,
    open_capture_dir,
    parse_file_name,
    validate_part,
)

__all__ = [
    "capture_file_names",
    "find_capture_namespaces",
    "list_capture_files",
    "remove_capture_files",
]


def _regular_pcaps(dir_fd: int) -> list[str]:
    out = []
    for name in os.listdir(dir_fd):
        if not name.endswith(SUFFIX) or name.startswith("."):
            continue
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            continue
        if stat.S_ISREG(st.st_mode):
            out.append(name)
    return out


def capture_file_names(capture_dir: str | os.PathLike[str], namespace: str, name: str) -> list[str]:
    """Return the ``.pcap`` files of a capture, sorted in byte order ([] if none).

    Only regular files count (no symlinks, directories or hidden files).
    """
    try:
        fd = open_capture_dir(capture_dir, namespace, name)
    except FileNotFoundError:
        return []
    try:
        names = _regular_pcaps(fd)
    except OSError as exc:
        raise PcapError(
            f"cannot list: {exc.strerror}",
            path=str(capture_directory(capture_dir, namespace, name)),
        ) from exc
    finally:
        os.close(fd)
    # Code-point order of str equals byte order of its UTF-8 encoding (Go's sort.Strings).
    return sorted(names)


def list_capture_files(
    capture_dir: str | os.PathLike[str], namespace: str, name: str, node: str
) -> PacketCaptureFile:
    """Return this node's status entry for a capture: its files, sorted in byte order.

    ``directory`` is ``capture_dir`` as Calico reports it (without ``{namespace}/{name}``);
    ``state`` is left None for the caller to set.
    """
    return PacketCaptureFile(
        directory=os.fspath(capture_dir),
        file_names=capture_file_names(capture_dir, namespace, name),
        node=node,
        state=None,
    )


def remove_capture_files(
    capture_dir: str | os.PathLike[str],
    namespace: str,
    name: str,
    *,
    pod: str | None = None,
    interface: str | None = None,
) -> list[str]:
    """Delete a capture's files and return the names deleted (sorted).

    Without ``pod`` the whole ``{capture_dir}/{namespace}/{name}`` directory goes (as
    ``rm -r``; symlinks inside are removed, never followed). With ``pod`` only that pod's
    files go, and with ``interface`` too only that endpoint interface's. A missing
    directory deletes nothing.
    """
    if interface is not None and pod is None:
        raise ValueError("interface needs pod")
    if pod is not None:
        validate_part(pod, "pod")
    if interface is not None:
        validate_part(interface, "interface")
    try:
        fd = open_capture_dir(capture_dir, namespace, name)
    except FileNotFoundError:
        return []
    target = capture_directory(capture_dir, namespace, name)
    try:
        if pod is None:
            removed = sorted(os.listdir(fd))
        else:
            removed = []
            for fname in _regular_pcaps(fd):
                parsed = parse_file_name(fname)
                if parsed is None or parsed.pod != pod:
                    continue
                if interface is not None and parsed.interface != interface:
                    continue
                os.unlink(fname, dir_fd=fd)
                removed.append(fname)
            return sorted(removed)
    except OSError as exc:
        raise PcapError(f"cannot delete: {exc.strerror}", path=str(target)) from exc
    finally:
        os.close(fd)
    # The whole directory: open_capture_dir checked it is a real directory, and rmtree
    # never follows symlinks inside it.
    try:
        shutil.rmtree(target)
    except OSError as exc:
        raise PcapError(f"cannot delete: {exc.strerror}", path=str(target)) from exc
    return removed


def find_capture_namespaces(capture_dir: str | os.PathLike[str], name: str) -> list[str]:
    """Return the namespaces under ``capture_dir`` holding a capture called ``name``.

    Like ``calicoctl captured-packets --all-namespaces``, which looks for
    ``{capture_dir}/*/{name}`` directories. Symlinked directories are skipped.
    """
    validate_part(name, "capture")
    root = Path(capture_dir)
    found = []
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise PcapError(f"cannot list: {exc.strerror}", path=str(root)) from exc
    for entry in entries:
        if not entry.is_dir(follow_symlinks=False):
            continue
        try:
            st = os.lstat(root / entry.name / name)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode):
            found.append(entry.name)
    return found

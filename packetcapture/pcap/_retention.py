"""Retention: which rotated files to delete after a rotation, and deleting them.

:func:`select_for_deletion` is pure. Files are ordered by the rotation time in their names
(then by name), not by mtime as Felix does, so copying or touching files cannot change
which ones go.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

from packetcapture._lazylog import get_logger
from packetcapture.errors import PcapError
from packetcapture.pcap._layout import parse_file_name
from packetcapture.pcap._reader import count_packets

__all__ = ["apply_retention", "rotated_files", "select_for_deletion"]

log = get_logger(__name__)


def rotated_files(names: Iterable[str], base: str | None = None) -> list[tuple[int, str]]:
    """Return ``(rotation_us, name)`` of rotated capture files, oldest first.

    With ``base`` only that endpoint interface's files count.
    """
    out: list[tuple[int, str]] = []
    for name in names:
        parsed = parse_file_name(name)
        if parsed is None or parsed.rotated_us is None:
            continue
        if base is not None and parsed.base != base:
            continue
        out.append((parsed.rotated_us, name))
    out.sort()
    return out


def select_for_deletion(names: Iterable[str], max_files: int, base: str | None = None) -> list[str]:
    """Return the oldest rotated files beyond the newest ``max_files`` (oldest first)."""
    rotated = rotated_files(names, base)
    excess = len(rotated) - max_files
    return [name for _, name in rotated[:excess]] if excess > 0 else []


def _count_at(dir_fd: int, name: str) -> int:
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError:
        return 0
    with os.fdopen(fd, "rb") as f:
        return count_packets(f)


def apply_retention(
    dir_fd: int,
    max_files: int,
    base: str | None,
    known_counts: Mapping[str, int],
    *,
    shown_dir: str = "",
) -> tuple[list[str], int]:
    """Delete excess rotated files in the directory open as ``dir_fd``.

    Returns the deleted names and how many packets they held (taken from
    ``known_counts`` when there, else counted by reading the file before deleting it).
    Raises :class:`PcapError` when listing or deleting fails.
    """
    try:
        names = os.listdir(dir_fd)
    except OSError as exc:
        raise PcapError(f"cannot list directory: {exc.strerror}", path=shown_dir) from exc
    doomed = select_for_deletion(names, max_files, base)
    deleted: list[str] = []
    packets = 0
    for name in doomed:
        count = known_counts.get(name)
        if count is None:
            count = _count_at(dir_fd, name)
        try:
            os.unlink(name, dir_fd=dir_fd)
        except FileNotFoundError:
            continue  # another writer of the same directory got there first
        except OSError as exc:
            raise PcapError(
                f"cannot delete old capture file: {exc.strerror}", path=f"{shown_dir}/{name}"
            ) from exc
        log.debug("retention deleted %s/%s (%d packets)", shown_dir, name, count)
        deleted.append(name)
        packets += count
    return deleted, packets

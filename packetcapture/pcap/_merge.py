"""Merge a capture's files from one or more directories into one time-ordered pcapng."""

from __future__ import annotations

import heapq
import logging
import os
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

import attrs

from packetcapture._frozen import FieldsRepr
from packetcapture.errors import PcapError
from packetcapture.pcap._format import (
    encode_pcapng_epb,
    encode_pcapng_idb,
    encode_pcapng_shb,
    format_description,
    parse_description,
)
from packetcapture.pcap._layout import (
    SUFFIX,
    capture_directory,
    open_regular_file,
    open_subdir,
    parse_file_name,
)
from packetcapture.pcap._reader import PcapReader, PcapTruncatedError

__all__ = ["MergeResult", "MergeSource", "find_merge_sources", "merge_captures"]

log = logging.getLogger(__name__)


@attrs.frozen(repr=False)
class MergeSource(FieldsRepr):
    """One endpoint interface's files in one directory, oldest first."""

    directory: Path
    label: str  # the directory's name, the node's name when nothing better is known
    index: int  # position of the directory in the list given
    pod: str | None
    interface: str | None
    files: tuple[Path, ...]


@attrs.frozen(repr=False)
class MergeResult(FieldsRepr):
    """What :func:`merge_captures` wrote."""

    packets: int
    interfaces: int
    files: int
    damaged_files: tuple[str, ...] = ()


def _open_merge_dir(root: Path, namespace: str, name: str) -> tuple[int, Path]:
    """Open where a directory given to merge holds the files; return its descriptor and path.

    ``{root}/{namespace}/{name}`` when ``{root}/{namespace}`` exists (a capture directory),
    else ``root`` itself (a copy). Below ``root`` (the user's choice, which may be a symlink)
    nothing is followed: a symlinked namespace or capture directory is refused.
    """
    try:
        root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        reason = "no such directory" if isinstance(exc, FileNotFoundError) else exc.strerror
        raise PcapError(str(reason or exc), path=str(root)) from exc
    try:
        ns_fd = open_subdir(root_fd, namespace, str(root / namespace))
    except FileNotFoundError:
        return root_fd, root  # a directory the files were copied into
    except BaseException:
        os.close(root_fd)
        raise
    os.close(root_fd)
    try:
        return open_subdir(ns_fd, name, str(root / namespace / name)), root / namespace / name
    except FileNotFoundError:
        raise PcapError("no such directory", path=str(root / namespace / name)) from None
    finally:
        os.close(ns_fd)


def _capture_files(dir_fd: int, shown: Path) -> list[str]:
    """Names of the regular ``.pcap`` files in the directory open as ``dir_fd``."""
    try:
        names = os.listdir(dir_fd)
    except OSError as exc:
        raise PcapError(f"cannot list: {exc.strerror}", path=str(shown)) from exc
    out = []
    for n in names:
        if not n.endswith(SUFFIX):
            continue
        try:
            st = os.stat(n, dir_fd=dir_fd, follow_symlinks=False)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            out.append(n)
    return out


def _find_sources(
    directories: Sequence[str | os.PathLike[str]], namespace: str, name: str
) -> tuple[list[MergeSource], list[int]]:
    """Return the sources and one open descriptor per directory (the caller closes them)."""
    capture_directory(".", namespace, name)  # validates the names
    sources: list[MergeSource] = []
    fds: list[int] = []
    try:
        for index, d in enumerate(directories):
            root = Path(d)
            fd, where = _open_merge_dir(root, namespace, name)
            fds.append(fd)
            label = root.resolve().name or str(root)
            groups: dict[str, list[tuple[int, str]]] = {}
            parts: dict[str, tuple[str | None, str | None]] = {}
            for fname in _capture_files(fd, where):
                parsed = parse_file_name(fname)
                if parsed is None:
                    key = fname
                    order = 0
                    parts[key] = (None, None)
                else:
                    key = parsed.base
                    # Rotated files by rotation time; the active file is the newest.
                    order = parsed.rotated_us if parsed.rotated_us is not None else 1 << 80
                    parts[key] = (parsed.pod, parsed.interface)
                groups.setdefault(key, []).append((order, fname))
            for key in sorted(groups):
                files = tuple(where / f for _, f in sorted(groups[key]))
                pod, iface = parts[key]
                sources.append(MergeSource(where, label, index, pod, iface, files))
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    return sources, fds


def find_merge_sources(
    directories: Sequence[str | os.PathLike[str]], namespace: str, name: str
) -> list[MergeSource]:
    """Find a capture's files in each directory, grouped per endpoint interface.

    A directory is either a capture directory (the files are in
    ``{dir}/{namespace}/{name}/``) or a directory the files were copied into directly
    (``packetcapture copy``). Rotated files come first, oldest first, then the active file.
    Below each directory nothing is followed: a symlinked namespace or capture directory
    is refused (:class:`PcapError`) and symlinked files are skipped.
    """
    sources, fds = _find_sources(directories, namespace, name)
    for fd in fds:
        os.close(fd)
    return sources


def merge_captures(
    directories: Sequence[str | os.PathLike[str]],
    namespace: str,
    name: str,
    output: IO[bytes],
    *,
    nodes: Sequence[str] | None = None,
) -> MergeResult:
    """Write every packet of a capture, from all directories, to ``output`` as pcapng.

    Packets are merged in timestamp order (ties keep input order). The output has one
    Interface Description Block per endpoint interface per directory (and link type), named
    after the interface, its description giving endpoint, interface, node and capture;
    timestamps are in nanoseconds. ``nodes`` names the node of each directory (default:
    the description in a pcapng input, else the directory's name).

    A file with a torn tail contributes its complete packets and is listed in
    ``damaged_files``; any other damage raises :class:`PcapError`.
    """
    if nodes is not None and len(nodes) != len(directories):
        raise ValueError("nodes must name one node per directory")
    sources, fds = _find_sources(directories, namespace, name)
    try:
        return _merge(sources, fds, (namespace, name), output, nodes)
    finally:
        for fd in fds:
            os.close(fd)


def _merge(
    sources: list[MergeSource],
    fds: list[int],
    capture: tuple[str, str],
    output: IO[bytes],
    nodes: Sequence[str] | None,
) -> MergeResult:
    namespace, name = capture
    output.write(encode_pcapng_shb(user_application="packetcapture merge"))
    iface_ids: dict[tuple[int, int], int] = {}
    damaged: list[str] = []
    count = 0

    def interface_for(src_idx: int, linktype: int, snaplen: int, desc: str | None) -> int:
        key = (src_idx, linktype)
        out = iface_ids.get(key)
        if out is None:
            src = sources[src_idx]
            fields = parse_description(desc or "")
            node = (nodes[src.index] if nodes else None) or fields.get("node") or src.label
            description = format_description(
                {
                    "endpoint": f"{namespace}/{src.pod}" if src.pod else fields.get("endpoint", ""),
                    "interface": src.interface or fields.get("interface", ""),
                    "node": node,
                    "capture": f"{namespace}/{name}",
                }
            )
            output.write(
                encode_pcapng_idb(
                    linktype,
                    snaplen,
                    name=src.interface or None,
                    description=description,
                    nanosecond=True,
                )
            )
            out = iface_ids[key] = len(iface_ids)
        return out

    def stream(src_idx: int) -> Iterator[tuple[int, int, bytes, int]]:
        src = sources[src_idx]
        for path in src.files:
            # Opened relative to the directory's descriptor, never through a symlink.
            with (
                open_regular_file(fds[src.index], path.name, str(path)) as f,
                PcapReader(f) as reader,
            ):
                try:
                    for rec in reader.records():
                        info = reader.interfaces[rec.interface_id]
                        out = interface_for(src_idx, rec.linktype, info.snaplen, info.description)
                        yield rec.timestamp_ns, out, rec.data, rec.wire_len
                except PcapTruncatedError as exc:
                    log.warning("%s", exc)
                    damaged.append(str(path))

    for ts, out, data, wire in heapq.merge(
        *(stream(i) for i in range(len(sources))), key=lambda r: r[0]
    ):
        output.write(encode_pcapng_epb(out, ts, data, wire, nanosecond=True))
        count += 1
    return MergeResult(
        packets=count,
        interfaces=len(iface_ids),
        files=sum(len(s.files) for s in sources),
        damaged_files=tuple(damaged),
    )

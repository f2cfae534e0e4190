"""Merge a capture's files from one or more directories into one time-ordered pcapng."""

from __future__ import annotations

import heapq
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

import attrs

from packetcapture.errors import PcapError
from packetcapture.pcap._format import (
    encode_pcapng_epb,
    encode_pcapng_idb,
    encode_pcapng_shb,
    format_description,
    parse_description,
)
from packetcapture.pcap._layout import SUFFIX, capture_directory, parse_file_name
from packetcapture.pcap._reader import PcapReader, PcapTruncatedError

__all__ = ["MergeResult", "MergeSource", "find_merge_sources", "merge_captures"]

log = logging.getLogger(__name__)


@attrs.frozen
class MergeSource:
    """One endpoint interface's files in one directory, oldest first."""

    directory: Path
    label: str  # the directory's name, the node's name when nothing better is known
    index: int  # position of the directory in the list given
    pod: str | None
    interface: str | None
    files: tuple[Path, ...]


@attrs.frozen
class MergeResult:
    """What :func:`merge_captures` wrote."""

    packets: int
    interfaces: int
    files: int
    damaged_files: tuple[str, ...] = ()


def _capture_files(directory: Path) -> list[str]:
    try:
        names = os.listdir(directory)
    except OSError as exc:
        raise PcapError(f"cannot list: {exc.strerror}", path=str(directory)) from exc
    return [n for n in names if n.endswith(SUFFIX) and (directory / n).is_file()]


def find_merge_sources(
    directories: Sequence[str | os.PathLike[str]], namespace: str, name: str
) -> list[MergeSource]:
    """Find a capture's files in each directory, grouped per endpoint interface.

    A directory is either a capture directory (the files are in
    ``{dir}/{namespace}/{name}/``) or a directory the files were copied into directly
    (``packetcapture copy``). Rotated files come first, oldest first, then the active file.
    """
    capture_directory(".", namespace, name)  # validates the names
    sources: list[MergeSource] = []
    for index, d in enumerate(directories):
        root = Path(d)
        nested = root / namespace / name
        where = nested if nested.is_dir() else root
        if not where.is_dir():
            raise PcapError("no such directory", path=str(root))
        label = root.resolve().name or str(root)
        groups: dict[str, list[tuple[int, str]]] = {}
        parts: dict[str, tuple[str | None, str | None]] = {}
        for fname in _capture_files(where):
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
    sources = find_merge_sources(directories, namespace, name)
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
        for path in sources[src_idx].files:
            with PcapReader(path) as reader:
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

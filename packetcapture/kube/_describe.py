"""``get`` and ``describe`` of PacketCaptures on a cluster: tables and text from the API objects.

The functions turning objects into rows and text are pure (objects in, strings out); only
:func:`list_captures` talks to the API.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from typing import Any

from packetcapture.cli._text import one_line
from packetcapture.kube._client import CaptureResource
from packetcapture.kube._files import _api_error, status_entries

__all__ = ["capture_table", "describe_capture", "list_captures", "node_rows"]

UNKNOWN = "unknown"


def list_captures(
    api_client: Any, namespace: str | None, resource: CaptureResource | None = None
) -> list[dict[str, Any]]:
    """List the PacketCaptures of ``namespace`` (every namespace when None), sorted by name."""
    from kubernetes import client as k8s_client
    from kubernetes.client.exceptions import ApiException

    from packetcapture.errors import PacketCaptureError

    res = resource or CaptureResource()
    api: Any = k8s_client.CustomObjectsApi(api_client)
    try:
        if namespace is None:
            found = api.list_cluster_custom_object(res.group, res.version, res.plural)
        else:
            found = api.list_namespaced_custom_object(res.group, res.version, namespace, res.plural)
    except ApiException as exc:
        where = f"namespace {namespace}" if namespace else "the cluster"
        raise PacketCaptureError(
            f"cannot list packetcaptures in {where}: {_api_error(exc)}"
        ) from exc
    items: list[dict[str, Any]] = found.get("items") or []
    return sorted(
        items,
        key=lambda o: (o.get("metadata", {}).get("namespace", ""), o["metadata"].get("name", "")),
    )


def _age(created: Any, now: _dt.datetime) -> str:
    """Return kubectl's short age: 45s, 12m, 3h, 5d."""
    if not isinstance(created, str):
        return "<unknown>"
    try:
        when = _dt.datetime.fromisoformat(created.replace("Z", "+00:00"))
    except ValueError:
        return "<unknown>"
    seconds = max(int((now - when).total_seconds()), 0)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 2 * 3600:
        return f"{seconds // 60}m"
    if seconds < 2 * 86400:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def _count(entry: dict[str, Any], key: str) -> str:
    value = entry.get(key)
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else UNKNOWN


def node_rows(obj: dict[str, Any]) -> list[list[str]]:
    """One row per node of ``status.files``: node, state, files, packets, drops, directory.

    Packets and drops come from the entry when it carries them (``packets``, ``drops``);
    Calico's status has no such fields, so they are usually ``unknown``.
    """
    rows = []
    for entry in status_entries(obj):
        files = [f for f in entry.get("fileNames") or [] if isinstance(f, str)]
        rows.append(
            [
                entry["node"],
                str(entry.get("state") or UNKNOWN),
                str(len(files)),
                _count(entry, "packets"),
                _count(entry, "drops"),
                str(entry.get("directory") or ""),
            ]
        )
    return rows


def _states(obj: dict[str, Any]) -> str:
    counts: dict[str, int] = {}
    for entry in status_entries(obj):
        state = str(entry.get("state") or UNKNOWN)
        counts[state] = counts.get(state, 0) + 1
    return ",".join(f"{s}({n})" if n > 1 else s for s, n in sorted(counts.items())) or "<none>"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    cells = [[one_line(c) for c in row] for row in [list(header), *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["   ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


def capture_table(
    objs: Sequence[dict[str, Any]], *, all_namespaces: bool, now: _dt.datetime
) -> str:
    """``kubectl get``-style table: name, selector, nodes, states, files, age."""
    header = ["NAME", "SELECTOR", "NODES", "STATE", "FILES", "AGE"]
    if all_namespaces:
        header.insert(0, "NAMESPACE")
    rows = []
    for obj in objs:
        meta = obj.get("metadata") or {}
        entries = status_entries(obj)
        files = sum(len(e.get("fileNames") or []) for e in entries)
        row = [
            str(meta.get("name", "")),
            str((obj.get("spec") or {}).get("selector", "all()")),
            str(len(entries)),
            _states(obj),
            str(files),
            _age(meta.get("creationTimestamp"), now),
        ]
        if all_namespaces:
            row.insert(0, str(meta.get("namespace", "")))
        rows.append(row)
    return _table(header, rows)


def _filters(spec: dict[str, Any]) -> list[str]:
    out = []
    for rule in spec.get("filters") or []:
        if not isinstance(rule, dict):
            continue
        parts = []
        if "protocol" in rule:
            parts.append(f"protocol {rule['protocol']}")
        if rule.get("ports"):
            parts.append("ports " + ", ".join(str(p) for p in rule["ports"]))
        out.append(" ".join(parts) or "(everything)")
    return out


def _v(value: Any) -> str:
    """Return a value from the API on one line, without control characters."""
    return one_line(str(value))


def describe_capture(obj: dict[str, Any], *, now: _dt.datetime) -> str:
    """``kubectl describe``-style text: metadata, spec, then per node state and files."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    labels = meta.get("labels") or {}
    indent = "\n              "
    created = meta.get("creationTimestamp", "<unknown>")
    lines = [
        f"Name:         {_v(meta.get('name', ''))}",
        f"Namespace:    {_v(meta.get('namespace', ''))}",
        "Labels:       "
        + (indent.join(_v(f"{k}={v}") for k, v in sorted(labels.items())) or "<none>"),
        f"API Version:  {_v(obj.get('apiVersion', ''))}",
        f"Created:      {_v(created)} ({_age(created, now)} ago)",
        "Spec:",
        f"  Selector:   {_v(spec.get('selector', 'all()'))}",
        "  Filters:    " + (indent.join(_v(f) for f in _filters(spec)) or "<none> (all traffic)"),
        f"  Start Time: {_v(spec.get('startTime', '<unset> (at once)'))}",
        f"  End Time:   {_v(spec.get('endTime', '<unset> (until deleted)'))}",
        "Status:",
    ]
    rows = node_rows(obj)
    if not rows:
        lines.append("  <no node has reported yet>")
        return "\n".join(lines)
    table = _table(["NODE", "STATE", "FILES", "PACKETS", "DROPS", "DIRECTORY"], rows)
    lines += ["  " + line for line in table.splitlines()]
    lines.append("Files:")
    ns, name = meta.get("namespace", ""), meta.get("name", "")
    for entry in status_entries(obj):
        directory = str(entry.get("directory") or "")
        names = [f for f in entry.get("fileNames") or [] if isinstance(f, str)]
        where = f"{directory}/{ns}/{name}" if directory else f"{ns}/{name}"
        lines.append(f"  {_v(entry['node'])}: {_v(where)}/" + ("" if names else " <none>"))
        lines += [f"    {_v(f)}" for f in names]
    return "\n".join(lines)

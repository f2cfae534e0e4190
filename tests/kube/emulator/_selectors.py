"""Kubernetes label and field selectors as the API server parses them (the common subset).

Label selectors: ``k=v``, ``k==v``, ``k!=v``, ``k in (a,b)``, ``k notin (a,b)``, ``k``, ``!k``,
comma-separated (all must hold). Field selectors: ``path=v``, ``path==v``, ``path!=v`` on the
fields a resource declares selectable; others are a 400 error like the real server's.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from typing import Any

Predicate = Callable[[Mapping[str, Any]], bool]


class SelectorError(ValueError):
    """A selector the API server would reject with 400 BadRequest."""


_SET_RE = re.compile(r"^\s*(!?)\s*([A-Za-z0-9_./-]+)\s*(?:(notin|in)\s*\(([^)]*)\))?\s*$")
_EQ_RE = re.compile(r"^\s*([A-Za-z0-9_./-]+)\s*(==|!=|=)\s*([A-Za-z0-9_.-]*)\s*$")


def _split_terms(text: str) -> list[str]:
    """Split on commas that are not inside a ``( … )`` value set."""
    terms, depth, current = [], 0, []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            terms.append("".join(current))
            current = []
        else:
            current.append(char)
    terms.append("".join(current))
    return [t for t in (t.strip() for t in terms) if t]


def parse_label_selector(text: str) -> Predicate:
    """Compile a label selector into a predicate over a labels mapping."""
    checks: list[Predicate] = []
    for term in _split_terms(text):
        eq = _EQ_RE.match(term)
        if eq:
            key, op, value = eq.groups()
            if op == "!=":
                checks.append(lambda labels, k=key, v=value: labels.get(k) != v)
            else:
                checks.append(lambda labels, k=key, v=value: labels.get(k) == v)
            continue
        st = _SET_RE.match(term)
        if not st:
            raise SelectorError(f"unable to parse requirement: {term!r}")
        negate, key, op, values = st.groups()
        if op is None:
            if negate:
                checks.append(lambda labels, k=key: k not in labels)
            else:
                checks.append(lambda labels, k=key: k in labels)
            continue
        if negate:
            raise SelectorError(f"unable to parse requirement: {term!r}")
        choices = frozenset(v.strip() for v in values.split(",") if v.strip())
        if op == "in":
            checks.append(lambda labels, k=key, c=choices: labels.get(k) in c)
        else:
            checks.append(lambda labels, k=key, c=choices: labels.get(k) not in c)
    return lambda labels: all(check(labels) for check in checks)


def field_value(obj: Mapping[str, Any], path: str) -> str:
    """The string form of a dotted field of ``obj`` as field selectors compare it."""
    node: Any = obj
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return ""
        node = node[part]
    if isinstance(node, bool):
        return "true" if node else "false"
    if node is None:
        return ""
    return str(node)


def parse_field_selector(text: str, allowed: Collection[str]) -> Predicate:
    """Compile a field selector into a predicate over a whole object."""
    checks: list[Predicate] = []
    for term in _split_terms(text):
        eq = _EQ_RE.match(term)
        if not eq:
            raise SelectorError(f"invalid selector: {term!r}; can't understand {term!r}")
        path, op, value = eq.groups()
        if path not in allowed:
            raise SelectorError(f"field label not supported: {path}")
        if op == "!=":
            checks.append(lambda obj, p=path, v=value: field_value(obj, p) != v)
        else:
            checks.append(lambda obj, p=path, v=value: field_value(obj, p) == v)
    return lambda obj: all(check(obj) for check in checks)

"""An incremental index of selectors against labelled items.

The idea is Calico's label index: every selector is filed under the one label restriction
(see :meth:`Selector.label_restrictions`) that narrows its candidates most, and items are
filed under their ``(label, value)`` pairs and label names. Then

* a new or changed selector is evaluated only against the items its restriction admits (all
  items only when it has no restriction at all, as ``!has(x)`` or ``a != "b"``);
* a label change on an item re-evaluates only the selectors filed under one of its new
  labels or values and the unrestricted ones; a selector that matched before and is not
  among them has lost its restriction, so it stops matching without being evaluated.

Restrictions are a sound lower bound (a selector can only match items that satisfy them), so
the match sets always equal those of brute-force evaluation; the tests check exactly that.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping, Set
from typing import Generic, Literal, NamedTuple, TypeVar

from packetcapture.selector._compile import Evaluator
from packetcapture.selector._selector import Selector, parse

__all__ = ["SelectorIndex"]

S = TypeVar("S", bound=Hashable)
I = TypeVar("I", bound=Hashable)  # noqa: E741 - the conventional pair of id type names
K = TypeVar("K")
V = TypeVar("V")


class _Plan(NamedTuple):
    """How a selector is filed.

    Under one label's allowed values, under one label's presence, in the always-evaluated
    list, or nowhere (it can never match).
    """

    kind: Literal["values", "present", "scan", "never"]
    label: str = ""
    values: frozenset[str] = frozenset()


_SCAN = _Plan("scan")
_NEVER = _Plan("never")


class SelectorIndex(Generic[S, I]):
    """Which items each selector matches, kept up to date incrementally.

    ``S`` is the type of selector ids and ``I`` of item ids (any hashable values). The
    callbacks, if given, are called synchronously as ``callback(selector_id, item_id)``
    whenever a match starts or stops, after the index has been updated; when one update both
    stops and starts matches, the stops come first. Deleting an unknown id does nothing.
    """

    def __init__(
        self,
        on_match_started: Callable[[S, I], object] | None = None,
        on_match_stopped: Callable[[S, I], object] | None = None,
    ) -> None:
        self._on_started = on_match_started
        self._on_stopped = on_match_stopped
        self._selectors: dict[S, Selector] = {}
        self._plans: dict[S, _Plan] = {}
        # Selectors filed by the restriction they were indexed on, each group mapping the
        # selector id to its compiled evaluator. A selector is filed under exactly one label,
        # so the groups an item's labels select are disjoint.
        self._sel_by_value: dict[str, dict[str, dict[S, Evaluator]]] = {}
        self._sel_by_label: dict[str, dict[S, Evaluator]] = {}
        self._sel_scan: dict[S, Evaluator] = {}
        # Items and their inverted indexes.
        self._items: dict[I, dict[str, str]] = {}
        self._items_by_value: dict[str, dict[str, set[I]]] = {}
        self._items_by_label: dict[str, set[I]] = {}
        # The match relation is stored once, per selector. The reverse direction is derived:
        # a selector matching an item is always filed under one of the item's labels (or is
        # unrestricted), so only those candidates need checking.
        self._matches: dict[S, set[I]] = {}

    # -- queries ---------------------------------------------------------------------------

    def matches(self, selector_id: S) -> Set[I]:
        """Return the ids of the items ``selector_id`` matches (empty if it is unknown)."""
        return frozenset(self._matches.get(selector_id, ()))

    def selectors_for(self, item_id: I) -> Set[S]:
        """Return the ids of the selectors that match ``item_id`` (empty if it is unknown)."""
        labels = self._items.get(item_id)
        if labels is None:
            return frozenset()
        return frozenset(self._matching(item_id, self._groups(labels)))

    def selector(self, selector_id: S) -> Selector:
        """Return the selector stored under ``selector_id`` (``KeyError`` if none)."""
        return self._selectors[selector_id]

    def labels(self, item_id: I) -> Mapping[str, str]:
        """Return a copy of the labels stored for ``item_id`` (``KeyError`` if none)."""
        return dict(self._items[item_id])

    def selector_ids(self) -> Set[S]:
        """Return the ids of all selectors in the index."""
        return frozenset(self._selectors)

    def item_ids(self) -> Set[I]:
        """Return the ids of all items in the index."""
        return frozenset(self._items)

    # -- selectors -------------------------------------------------------------------------

    def update_selector(self, selector_id: S, selector: Selector | str) -> None:
        """Add or replace a selector (a :class:`Selector` or selector text, parsed here).

        Raises :class:`~packetcapture.errors.SelectorSyntaxError` for invalid text, leaving
        the index unchanged.
        """
        sel = parse(selector) if isinstance(selector, str) else selector
        old = self._selectors.get(selector_id)
        if old is not None:
            if old == sel:
                return
            self._unfile_selector(selector_id)
        self._selectors[selector_id] = sel
        plan = self._plan(sel)
        self._file_selector(selector_id, plan, sel.evaluate)
        fn = sel.evaluate
        items = self._items
        if plan.kind == "scan":
            new = {i for i, labels in items.items() if fn(labels)}
        else:
            new = {i for i in self._candidate_items(plan) if fn(items[i])}
        self._set_matches(selector_id, new)

    def delete_selector(self, selector_id: S) -> None:
        """Remove a selector, stopping all its matches."""
        if selector_id not in self._selectors:
            return
        self._set_matches(selector_id, set())
        self._unfile_selector(selector_id)
        del self._selectors[selector_id]

    def _plan(self, sel: Selector) -> _Plan:
        # Any restriction beats scanning, whatever the current item counts.
        best: _Plan = _SCAN
        best_cost: int | None = None
        for label, r in sel.label_restrictions().items():
            if r.impossible:
                return _NEVER
            if r.must_have_one_of_values is not None:
                by_value = self._items_by_value.get(label, {})
                cost = sum(len(by_value.get(v, ())) for v in r.must_have_one_of_values)
                plan = _Plan("values", label, r.must_have_one_of_values)
            elif r.must_be_present:
                # Prefer a value restriction over presence when candidate counts tie.
                cost = len(self._items_by_label.get(label, ())) + 1
                plan = _Plan("present", label)
            else:
                continue
            if best_cost is None or cost < best_cost:
                best, best_cost = plan, cost
        return best

    def _file_selector(self, selector_id: S, plan: _Plan, fn: Evaluator) -> None:
        self._plans[selector_id] = plan
        if plan.kind == "values":
            by_value = self._sel_by_value.setdefault(plan.label, {})
            for value in plan.values:
                by_value.setdefault(value, {})[selector_id] = fn
        elif plan.kind == "present":
            self._sel_by_label.setdefault(plan.label, {})[selector_id] = fn
        elif plan.kind == "scan":
            self._sel_scan[selector_id] = fn

    def _unfile_selector(self, selector_id: S) -> None:
        plan = self._plans.pop(selector_id)
        if plan.kind == "values":
            by_value = self._sel_by_value[plan.label]
            for value in plan.values:
                _discard(by_value, value, selector_id)
            if not by_value:
                del self._sel_by_value[plan.label]
        elif plan.kind == "present":
            _discard(self._sel_by_label, plan.label, selector_id)
        elif plan.kind == "scan":
            del self._sel_scan[selector_id]

    def _candidate_items(self, plan: _Plan) -> Iterable[I]:
        if plan.kind == "values":
            by_value = self._items_by_value.get(plan.label, {})
            out: set[I] = set()
            for value in plan.values:
                out |= by_value.get(value, set())
            return out
        if plan.kind == "present":
            return self._items_by_label.get(plan.label, ())
        if plan.kind == "scan":
            return self._items
        return ()

    def _set_matches(self, selector_id: S, new: set[I]) -> None:
        old = self._matches.pop(selector_id, None)
        if new:
            self._matches[selector_id] = new
        if old is None and self._on_started is None:
            return  # the common case while building: nothing to diff or report
        old = old or set()
        if self._on_stopped is not None:
            for item_id in old - new:
                self._on_stopped(selector_id, item_id)
        if self._on_started is not None:
            for item_id in new - old:
                self._on_started(selector_id, item_id)

    # -- items -----------------------------------------------------------------------------

    def update_labels(self, item_id: I, labels: Mapping[str, str]) -> None:
        """Add an item or replace its labels, re-evaluating only the selectors that could care."""
        old = self._items.get(item_id)
        if old is not None:
            if old == labels:
                return
            previous = self._matching(item_id, self._groups(old))
            self._unfile_item(item_id, old)
        else:
            previous = set()
        new_labels = dict(labels)
        self._items[item_id] = new_labels
        self._file_item(item_id, new_labels)
        now = {s for group in self._groups(new_labels) for s, fn in group.items() if fn(new_labels)}
        self._set_item_matches(item_id, previous, now)

    def delete_labels(self, item_id: I) -> None:
        """Remove an item, stopping all its matches."""
        old = self._items.pop(item_id, None)
        if old is None:
            return
        previous = self._matching(item_id, self._groups(old))
        self._unfile_item(item_id, old)
        self._set_item_matches(item_id, previous, set())

    def _groups(self, labels: Mapping[str, str]) -> list[dict[S, Evaluator]]:
        """Return the (disjoint) groups of selectors that could match ``labels``."""
        groups = [self._sel_scan]
        sel_by_value, sel_by_label = self._sel_by_value, self._sel_by_label
        for label, value in labels.items():
            by_value = sel_by_value.get(label)
            if by_value is not None:
                group = by_value.get(value)
                if group:
                    groups.append(group)
            group = sel_by_label.get(label)
            if group:
                groups.append(group)
        return groups

    def _matching(self, item_id: I, groups: list[dict[S, Evaluator]]) -> set[S]:
        matches = self._matches
        return {s for group in groups for s in group if item_id in matches.get(s, ())}

    def _file_item(self, item_id: I, labels: Mapping[str, str]) -> None:
        for label, value in labels.items():
            self._items_by_value.setdefault(label, {}).setdefault(value, set()).add(item_id)
            self._items_by_label.setdefault(label, set()).add(item_id)

    def _unfile_item(self, item_id: I, labels: Mapping[str, str]) -> None:
        for label, value in labels.items():
            by_value = self._items_by_value[label]
            _discard(by_value, value, item_id)
            if not by_value:
                del self._items_by_value[label]
            _discard(self._items_by_label, label, item_id)

    def _set_item_matches(self, item_id: I, old: set[S], new: set[S]) -> None:
        if old:
            stopped, started = old - new, new - old
        else:
            stopped, started = old, new
        for sid in stopped:
            _discard(self._matches, sid, item_id)
        matches = self._matches
        for sid in started:
            members = matches.get(sid)
            if members is None:
                matches[sid] = {item_id}
            else:
                members.add(item_id)
        if self._on_stopped is not None:
            for sid in stopped:
                self._on_stopped(sid, item_id)
        if self._on_started is not None:
            for sid in started:
                self._on_started(sid, item_id)


def _discard(index: dict[K, set[V]] | dict[K, dict[V, Evaluator]], key: K, member: V) -> None:
    """Remove ``member`` from ``index[key]``, dropping the key when that empties."""
    members = index.get(key)
    if members is not None:
        if isinstance(members, set):
            members.discard(member)
        else:
            members.pop(member, None)
        if not members:
            del index[key]

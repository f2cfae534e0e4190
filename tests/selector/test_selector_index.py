"""SelectorIndex: random update sequences against brute-force evaluation."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from packetcapture.errors import SelectorSyntaxError
from packetcapture.selector import SelectorIndex, parse

LABELS = ["app", "tier", "env", "canary"]
VALUES = ["", "a", "b", "web"]

SELECTORS = [
    "all()",
    "",
    "!all()",
    "global()",
    "has(app)",
    "!has(canary)",
    "app == 'web'",
    "app != 'web'",
    "app == 'a' || app == 'b'",
    "app == 'a' && app == 'b'",
    "has(app) && !has(app)",
    "tier in {'a', 'b'}",
    "tier in {}",
    "tier not in {'a'}",
    "env contains 'e'",
    "env starts with 'w'",
    "app == 'web' && tier in {'a', 'b'} && !has(canary)",
    "app == 'web' || has(canary)",
    "(app == 'a' || app == 'b') && env == 'web'",
    "!(app == 'a' && tier == 'b')",
    "app == 'a' || (has(tier) && has(app))",
]

label_st = st.dictionaries(st.sampled_from(LABELS), st.sampled_from(VALUES), max_size=4)
op_st = st.one_of(
    st.tuples(st.just("sel"), st.integers(0, 5), st.sampled_from(SELECTORS)),
    st.tuples(st.just("delsel"), st.integers(0, 5)),
    st.tuples(st.just("labels"), st.integers(0, 7), label_st),
    st.tuples(st.just("dellabels"), st.integers(0, 7)),
)


class Recorder:
    """Rebuilds the match relation from callbacks alone, checking they are consistent."""

    def __init__(self) -> None:
        self.pairs: set[tuple[int, int]] = set()

    def started(self, sid: int, iid: int) -> None:
        assert (sid, iid) not in self.pairs
        self.pairs.add((sid, iid))

    def stopped(self, sid: int, iid: int) -> None:
        assert (sid, iid) in self.pairs
        self.pairs.remove((sid, iid))


def _check(
    index: SelectorIndex[int, int],
    recorder: Recorder,
    selectors: dict[int, str],
    items: dict[int, dict[str, str]],
) -> None:
    expected = {
        (sid, iid)
        for sid, text in selectors.items()
        for iid, labels in items.items()
        if parse(text).evaluate(labels)
    }
    assert recorder.pairs == expected
    for sid in range(6):
        assert index.matches(sid) == {i for s, i in expected if s == sid}
    for iid in range(8):
        assert index.selectors_for(iid) == {s for s, i in expected if i == iid}
    assert index.selector_ids() == set(selectors)
    assert index.item_ids() == set(items)


@settings(max_examples=250, deadline=None)
@given(st.lists(op_st, max_size=40))
def test_random_sequences_match_brute_force(ops: list[tuple[Any, ...]]) -> None:
    recorder = Recorder()
    index: SelectorIndex[int, int] = SelectorIndex(recorder.started, recorder.stopped)
    selectors: dict[int, str] = {}
    items: dict[int, dict[str, str]] = {}
    for op in ops:
        match op:
            case ("sel", sid, text):
                index.update_selector(sid, text)
                selectors[sid] = text
            case ("delsel", sid):
                index.delete_selector(sid)
                selectors.pop(sid, None)
            case ("labels", iid, labels):
                index.update_labels(iid, labels)
                items[iid] = dict(labels)
            case ("dellabels", iid):
                index.delete_labels(iid)
                items.pop(iid, None)
        _check(index, recorder, selectors, items)


def test_callbacks_and_queries() -> None:
    events: list[tuple[str, str, str]] = []
    index: SelectorIndex[str, str] = SelectorIndex(
        on_match_started=lambda s, i: events.append(("start", s, i)),
        on_match_stopped=lambda s, i: events.append(("stop", s, i)),
    )
    index.update_labels("pod1", {"app": "web"})
    index.update_selector("web", "app == 'web'")
    assert events == [("start", "web", "pod1")]
    index.update_labels("pod2", {"app": "db"})
    index.update_labels("pod1", {"app": "db"})
    assert events[-1] == ("stop", "web", "pod1")
    index.update_selector("web", parse("app == 'db'"))
    assert index.matches("web") == {"pod1", "pod2"}
    assert index.selectors_for("pod2") == {"web"}
    assert index.selector("web") == parse("app=='db'")
    assert index.labels("pod1") == {"app": "db"}
    events.clear()
    index.update_selector("web", 'app == "db"')  # same canonical form: nothing happens
    index.update_labels("pod1", {"app": "db"})  # same labels: nothing happens
    assert events == []
    index.delete_labels("pod1")
    index.delete_selector("web")
    assert sorted(events) == [("stop", "web", "pod1"), ("stop", "web", "pod2")]
    index.delete_labels("nope")
    index.delete_selector("nope")
    assert index.matches("web") == set() and index.selectors_for("pod2") == set()
    with pytest.raises(KeyError):
        index.selector("web")


def test_invalid_selector_leaves_index_unchanged() -> None:
    index: SelectorIndex[str, str] = SelectorIndex()
    index.update_selector("s", "has(a)")
    index.update_labels("i", {"a": ""})
    with pytest.raises(SelectorSyntaxError):
        index.update_selector("s", "has(a")
    assert index.matches("s") == {"i"}


def test_label_change_evaluates_only_candidate_selectors() -> None:
    index: SelectorIndex[str, int] = SelectorIndex()
    for n in range(50):
        index.update_selector(f"app{n}", f"app == 'app{n}'")
    index.update_selector("any", "!has(canary)")
    index.update_selector("tiered", "has(tier) && app != 'x'")
    index.update_labels(1, {"app": "app3"})
    # White-box: update_labels evaluates exactly the selectors in these groups.
    groups = index._groups({"app": "app7"})
    assert sorted(s for g in groups for s in g) == ["any", "app7"]
    index.update_labels(1, {"app": "app7"})
    # app3 stopped matching without being evaluated: its restriction no longer holds.
    assert index.selectors_for(1) == {"app7", "any"}
    assert sorted(s for g in index._groups({"app": "app7", "tier": "a"}) for s in g) == [
        "any",
        "app7",
        "tiered",
    ]

"""Calico's own selector test vectors (tests/data/calico_selector_vectors.json)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from packetcapture.errors import SelectorSyntaxError
from packetcapture.selector import LabelRestriction, parse
from packetcapture.selector._tokenizer import CALICO_KIND, tokenize

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parent.parent / "data" / "calico_selector_vectors.json").read_text("utf-8")
)


def _id(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) < 60 else text[:57] + "..."


@pytest.mark.parametrize("case", VECTORS["match_cases"], ids=_id)
def test_match_cases(case: dict[str, Any]) -> None:
    sel = parse(case["selector"])
    assert sel.evaluate(case["labels"]) is case["matches"]
    # The canonical form re-parses to an equal selector that gives the same answer.
    again = parse(str(sel))
    assert again == sel
    assert str(again) == str(sel)
    assert again.evaluate(case["labels"]) is case["matches"]


@pytest.mark.parametrize("text", VECTORS["invalid_selectors"], ids=_id)
def test_invalid_selectors(text: str) -> None:
    with pytest.raises(SelectorSyntaxError) as info:
        parse(text)
    err = info.value
    assert err.selector == text
    assert 1 <= err.column <= len(text) + 1
    assert err.reason in str(err)


@pytest.mark.parametrize("case", VECTORS["canonical_cases"], ids=_id)
def test_canonical_cases(case: dict[str, Any]) -> None:
    sel = parse(case["selector"])
    assert str(sel) == case["canonical"]
    assert sel.unique_id == case["uid_computed"]
    if "uid" in case:
        assert sel.unique_id == case["uid"]
    again = parse(case["canonical"])
    assert str(again) == case["canonical"]
    assert again.unique_id == sel.unique_id


@pytest.mark.parametrize("case", VECTORS["visitor_cases"], ids=lambda c: c["description"])
def test_prefix_visitor(case: dict[str, Any]) -> None:
    sel = parse(case["selector"]).with_prefix(case["prefix"])
    assert str(sel) == case["canonical_after_prefix"]


@pytest.mark.parametrize("case", VECTORS["tokenizer_cases"], ids=lambda c: _id(c["input"]))
def test_tokenizer_cases(case: dict[str, Any]) -> None:
    got = [(CALICO_KIND[t.type], str(t.value)) for t in tokenize(case["input"])]
    got.append(("TokEOF", ""))
    assert got == [(t["kind"], t["value"]) for t in case["tokens"]]


@pytest.mark.parametrize("text", VECTORS["tokenizer_invalid"], ids=_id)
def test_tokenizer_invalid(text: str) -> None:
    with pytest.raises(SelectorSyntaxError):
        tokenize(text)
    with pytest.raises(SelectorSyntaxError):
        parse(text)


def _restriction(raw: dict[str, Any]) -> LabelRestriction:
    values = raw["must_have_one_of_values"]
    return LabelRestriction(
        raw["must_be_present"],
        raw["must_be_absent"],
        None if values is None else frozenset(values),
    )


@pytest.mark.parametrize("case", VECTORS["label_restriction_cases"], ids=lambda c: c["selector"])
def test_label_restrictions(case: dict[str, Any]) -> None:
    expected = {k: _restriction(v) for k, v in (case["restrictions"] or {}).items()}
    assert dict(parse(case["selector"]).label_restrictions()) == expected


@pytest.mark.parametrize("case", VECTORS["validator_selector_cases"], ids=lambda c: c["selector"])
def test_validator_cases(case: dict[str, Any]) -> None:
    if case["valid"]:
        parse(case["selector"])
    else:
        with pytest.raises(SelectorSyntaxError):
            parse(case["selector"])


@pytest.mark.parametrize("case", VECTORS["print_tree_cases"], ids=lambda c: _id(c["selector"]))
def test_print_tree(case: dict[str, Any]) -> None:
    assert parse(case["selector"]).tree() == case["tree"]

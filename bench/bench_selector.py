"""Benchmarks for packetcapture.selector; prints a table of medians.

    python bench/bench_selector.py [--quick]

Figures: parse time of a typical 5-term selector (uncached), evaluate time per call for the
issue's reference selector (and a hand-written lambda / tree-walker for scale), index build
for 1,000 selectors x 100,000 endpoints, and one label update in that index.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import time
import timeit
from collections.abc import Callable, Mapping

from packetcapture.selector import (
    AndNode,
    EqNode,
    HasNode,
    InNode,
    Node,
    NotNode,
    OrNode,
    SelectorIndex,
    in_namespace,
    parse,
)
from packetcapture.selector._parser import parse_node
from packetcapture.selector._selector import Selector

TYPICAL = (
    "app == 'web' && tier in {'a', 'b'} && !has(canary) && "
    "version starts with 'v2' && env != 'test'"
)
REFERENCE = 'app == "web" && tier in {"a","b"} && !has(canary)'


def _per_call(fn: Callable[[], object], loops: int, repeats: int) -> float:
    """Median over ``repeats`` runs of the time per call, in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(loops):
            fn()
        times.append((time.perf_counter() - start) / loops)
    return statistics.median(times)


def _evaluate_figures(repeats: int) -> list[tuple[str, float, str]]:
    sel = parse(REFERENCE)
    labels = {"app": "web", "tier": "a", "version": "v2.1", "projectcalico.org/namespace": "x"}
    hand = eval(
        'lambda L: L.get("app") == "web" and L.get("tier") in {"a","b"} and "canary" not in L'
    )
    walker = _tree_walker(sel)
    names = {"sel": sel, "hand": hand, "walker": walker, "labels": labels}
    out = []
    for name, stmt in [
        ("evaluate: sel.evaluate(labels)", "sel.evaluate(labels)"),
        ("hand-written lambda (for scale)", "hand(labels)"),
        ("tree-walking interpreter (for scale)", "walker(labels)"),
    ]:
        runs = timeit.repeat(stmt, globals=names, number=200_000, repeat=repeats)
        out.append((name, statistics.median(runs) / 200_000 * 1e9, "ns"))
    return out


def _interpret(node: Node, labels: Mapping[str, str]) -> bool:
    """A plain tree-walking interpreter, for scale only."""
    match node:
        case AndNode(ops):
            return all(_interpret(op, labels) for op in ops)
        case OrNode(ops):
            return any(_interpret(op, labels) for op in ops)
        case NotNode(op):
            return not _interpret(op, labels)
        case EqNode(k, v):
            return labels.get(k) == v
        case InNode(k, vs):
            return labels.get(k) in vs
        case HasNode(k):
            return k in labels
    raise NotImplementedError(node)


def _tree_walker(sel: Selector) -> Callable[[Mapping[str, str]], bool]:
    return lambda labels: _interpret(sel.root, labels)


def _parse_figures(repeats: int) -> list[tuple[str, float, str]]:
    parse_node(TYPICAL)  # build the LALR tables once
    uncached = _per_call(lambda: Selector(parse_node(TYPICAL)), 500, repeats) * 1e6
    just_parse = _per_call(lambda: parse_node(TYPICAL), 500, repeats) * 1e6
    cached = _per_call(lambda: parse(TYPICAL), 200_000, repeats) * 1e9
    return [
        ("parse 5-term selector, uncached (parse+compile)", uncached, "us"),
        ("  of which tokenize+LALR+AST", just_parse, "us"),
        ("parse 5-term selector, cached", cached, "ns"),
    ]


def _workload(
    n_sel: int, n_items: int, seed: int = 1
) -> tuple[list[Selector], list[dict[str, str]]]:
    rng = random.Random(seed)
    apps = [f"app{i}" for i in range(200)]
    namespaces = [f"ns{i}" for i in range(50)]
    items = []
    for i in range(n_items):
        labels = {
            "app": rng.choice(apps),
            "tier": rng.choice("abcde"),
            "version": f"v{rng.randint(1, 3)}",
            "pod-template-hash": f"{i:08x}",
            "projectcalico.org/namespace": rng.choice(namespaces),
            "projectcalico.org/orchestrator": "k8s",
        }
        if rng.random() < 0.05:
            labels["canary"] = "true"
        items.append(labels)
    selectors = []
    for i in range(n_sel):
        app, ns, kind = rng.choice(apps), rng.choice(namespaces), i % 10
        if kind < 4:
            text = f"app == '{app}'"
        elif kind < 6:
            text = f"app == '{app}' && tier in {{'a', 'b'}} && !has(canary)"
        elif kind < 8:
            text = str(in_namespace(f"app == '{app}' || version == 'v3'", ns))
        elif kind == 8:
            text = f"tier in {{'{rng.choice('abcde')}'}} && version starts with 'v'"
        else:
            # Unrestricted: evaluated against every endpoint.
            text = f"!has(canary) && app != '{app}'"
        selectors.append(parse(text))
    return selectors, items


def _index_figures(n_sel: int, n_items: int, repeats: int) -> list[tuple[str, float, str]]:
    selectors, items = _workload(n_sel, n_items)
    out = []
    for order in ("endpoints first", "selectors first"):
        gc.collect()
        index: SelectorIndex[int, int] = SelectorIndex()
        start = time.perf_counter()
        if order == "endpoints first":
            for i, labels in enumerate(items):
                index.update_labels(i, labels)
            for s, sel in enumerate(selectors):
                index.update_selector(s, sel)
        else:
            for s, sel in enumerate(selectors):
                index.update_selector(s, sel)
            for i, labels in enumerate(items):
                index.update_labels(i, labels)
        elapsed = time.perf_counter() - start
        out.append((f"index build {n_sel} sel x {n_items} eps ({order})", elapsed, "s"))
    pairs = sum(len(index.matches(s)) for s in range(n_sel))
    out.append(("  matching (selector, endpoint) pairs", float(pairs), ""))
    # Single label updates: change one endpoint's app label back and forth.
    rng = random.Random(2)
    samples = []
    for _ in range(max(repeats, 1) * 200):
        i = rng.randrange(n_items)
        labels = dict(items[i])
        labels["app"] = f"app{rng.randrange(200)}"
        start = time.perf_counter()
        index.update_labels(i, labels)
        samples.append(time.perf_counter() - start)
        items[i] = labels
    out.append(("single label update (median)", statistics.median(samples) * 1e6, "us"))
    out.append(("single label update (p99)", sorted(samples)[len(samples) * 99 // 100] * 1e6, "us"))
    samples = []
    for s in range(50):
        start = time.perf_counter()
        index.update_selector(s, parse(f"app == 'app{s}' && tier == 'c'"))
        samples.append(time.perf_counter() - start)
    out.append(("single selector update (median)", statistics.median(samples) * 1e6, "us"))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="10x smaller index, fewer runs")
    args = parser.parse_args()
    repeats = 3 if args.quick else 7
    n_sel, n_items = (100, 10_000) if args.quick else (1_000, 100_000)
    rows = [*_parse_figures(repeats), *_evaluate_figures(repeats)]
    rows += _index_figures(n_sel, n_items, repeats)
    print(f"python {sys.version.split()[0]}")
    width = max(len(name) for name, _, _ in rows)
    for name, value, unit in rows:
        print(f"{name:<{width}}  {value:>12.3f} {unit}")


if __name__ == "__main__":
    main()

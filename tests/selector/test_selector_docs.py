"""docs/selector.md: every >>> example runs and gives the output shown."""

from __future__ import annotations

import doctest
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "selector.md"


def test_doc_examples_run() -> None:
    text = DOC.read_text(encoding="utf-8")
    parser = doctest.DocTestParser()
    test = parser.get_doctest(text, {}, "selector.md", str(DOC), 0)
    assert len(test.examples) > 20
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0


def test_package_docstring_examples_run() -> None:
    import packetcapture.selector

    failures, tried = doctest.testmod(packetcapture.selector, report=True)
    assert tried > 0 and failures == 0

"""The worked example in docs/summary.md is what the command prints."""

from __future__ import annotations

import re

import pytest

from packetcapture.cli import main
from tests.conftest import REPO

COMMAND = "$ packetcapture summary examples/traffic/cali1a2b3c4d5e6.pcap\n"


def test_worked_example_output(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    page = (REPO / "docs" / "summary.md").read_text()
    (shown,) = re.findall(re.escape(COMMAND) + r"(.*?)```", page, re.S)
    monkeypatch.chdir(REPO)
    assert main(["summary", "examples/traffic/cali1a2b3c4d5e6.pcap"]) == 0
    assert capsys.readouterr().out == shown


def test_json_excerpt_is_the_output(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    page = (REPO / "docs" / "summary.md").read_text()
    (shown,) = re.findall(r"jq '\.tcp_issues\[0\]'\n(.*?)```", page, re.S)
    monkeypatch.chdir(REPO)
    main(["summary", "examples/traffic/cali1a2b3c4d5e6.pcap", "--json", "--top", "1"])
    assert json.loads(capsys.readouterr().out)["tcp_issues"][0] == json.loads(shown)

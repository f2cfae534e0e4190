"""Fixtures for tests against the Kubernetes API emulator (tests/kube/emulator)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("kubernetes")

from tests.kube.emulator import ApiEmulator

#: Bookmark interval in tests: short, so bookmark tests take a fraction of a second.
BOOKMARK_INTERVAL = 0.2


@pytest.fixture
def emulator() -> Iterator[ApiEmulator]:
    """A started emulator (stopped, with every connection closed, after the test)."""
    emu = ApiEmulator(bookmark_interval=BOOKMARK_INTERVAL)
    emu.start()
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture
def api_client(emulator: ApiEmulator) -> Iterator[Any]:
    """A ``kubernetes.client.ApiClient`` pointed at the emulator, closed after the test."""
    client = emulator.api_client()
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(autouse=True)
def _collect_garbage() -> Iterator[None]:
    """Collect garbage after each test, so a leaked socket fails the test that leaked it.

    (Warnings are errors here; an unclosed socket found by a later collection would be blamed
    on whichever test happened to be running.) What survives is frozen, so the next
    collection only scans objects the next test makes (a full one costs ~0.3 s with the
    client's models loaded).
    """
    yield
    gc.collect()
    gc.freeze()

"""Helpers for testing code built on packetcapture.

Everything here is public and stable: use it in your own tests.

- :class:`FakeClock`: a clock that moves only when told to (``advance``, ``set``); its
  ``sleep_until`` jumps to the deadline at once.
- :class:`MemoryBackend`: a capture backend fed from Python (``inject``, ``end``, ``fail``).
- :func:`check_backend` with :class:`BackendHarness`: the conformance suite every capture
  backend passes; run it against your own backend.
"""

from __future__ import annotations

from packetcapture.backends.memory import MemoryBackend
from packetcapture.clock import FakeClock
from packetcapture.testing._conformance import (
    BackendFactory,
    BackendHarness,
    check_backend,
    conformance_frames,
)

__all__ = [
    "BackendFactory",
    "BackendHarness",
    "FakeClock",
    "MemoryBackend",
    "check_backend",
    "conformance_frames",
]

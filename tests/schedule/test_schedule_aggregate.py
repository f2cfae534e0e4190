"""aggregate_state against a direct transcription of the documented precedence."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from packetcapture.model import CaptureState
from packetcapture.schedule import InterfaceStatus, aggregate_state


def reference(statuses: list[InterfaceStatus], when_empty: CaptureState) -> CaptureState:
    seen = {s.state for s in statuses}
    if not seen:
        return when_empty
    if CaptureState.ERROR in seen:
        return CaptureState.ERROR
    if any(s.running and s.captured for s in statuses):
        return CaptureState.CAPTURING
    for state in (CaptureState.WAITING_FOR_TRAFFIC, CaptureState.SCHEDULED):
        if state in seen:
            return state
    return CaptureState.FINISHED


statuses = st.builds(
    InterfaceStatus,
    name=st.sampled_from(["a", "b", "c"]),
    state=st.sampled_from(list(CaptureState)),
    captured=st.booleans(),
)


@given(st.lists(statuses, max_size=6), st.sampled_from(list(CaptureState)))
def test_aggregate_state_matches_the_precedence(
    items: list[InterfaceStatus], when_empty: CaptureState
) -> None:
    assert aggregate_state(items, when_empty=when_empty) is reference(items, when_empty)

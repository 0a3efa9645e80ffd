"""The phone session's state table and its generated diagram (spec §3, STYLE.md)."""

from __future__ import annotations

from collections import deque

from provd.wpi import states
from provd.wpi.states import TRANSITIONS, Input, State

from .goldens import REPO_ROOT


def _reachable(start: State) -> set[State]:
    seen = {start}
    queue = deque([start])
    while queue:
        state = queue.popleft()
        for (source, _given), target in TRANSITIONS.items():
            if source is state and target not in seen:
                seen.add(target)
                queue.append(target)
    return seen


def test_docs_session_states_is_generated_from_the_table() -> None:
    page = (REPO_ROOT / "docs" / "session-states.md").read_text(encoding="utf-8")
    assert page == states.document()


def test_the_diagram_has_one_line_per_transition() -> None:
    diagram = states.mermaid()
    for (source, given), target in TRANSITIONS.items():
        assert f"    {source.name} --> {target.name}: {given.value}\n" in diagram
    assert diagram.count("-->") == len(TRANSITIONS) + 3  # [*] -> READY, DONE/FAILED -> [*]


def test_every_state_is_reachable_from_ready() -> None:
    assert _reachable(State.READY) == set(State)


def test_done_and_failed_are_final() -> None:
    assert not [key for key in TRANSITIONS if key[0] in (State.DONE, State.FAILED)]


def test_every_live_state_can_still_end_well_or_be_aborted() -> None:
    for state in set(State) - {State.DONE, State.FAILED}:
        assert State.DONE in _reachable(state)
        if state is not State.READY:
            assert (state, Input.ABORT) in TRANSITIONS


def test_every_input_is_used() -> None:
    assert {given for _state, given in TRANSITIONS} == set(Input)

"""docs/conversation.md draws exactly the states of bot/fsm/states.py."""

from __future__ import annotations

import re
from pathlib import Path

from bot.fsm.states import ALL_STATES
from bot.navigation import _BACK

DOC = Path(__file__).resolve().parent.parent / "docs" / "conversation.md"
EDGE = re.compile(r"^\s*(\[\*\]|\w+)\s*-->\s*(\[\*\]|\w+)", re.MULTILINE)


def _diagram() -> str:
    text = DOC.read_text(encoding="utf-8")
    return text.split("```mermaid", 1)[1].split("```", 1)[0]


def _edges() -> set[tuple[str, str]]:
    return {(a, b) for a, b in EDGE.findall(_diagram())}


def test_every_state_is_drawn_and_nothing_else() -> None:
    nodes = {n for edge in _edges() for n in edge} - {"[*]"}
    declared = {s.split(":", 1)[1] for s in ALL_STATES}
    assert nodes == declared


def _reachable(edges: set[tuple[str, str]], start: str, goal: str) -> bool:
    seen, todo = {start}, [start]
    while todo:
        node = todo.pop()
        for a, b in edges:
            if a == node and b not in seen:
                if b == goal:
                    return True
                seen.add(b)
                todo.append(b)
    return False


def test_back_leads_to_a_state_the_diagram_comes_from() -> None:
    # *Back* from a state must land on a state from which the diagram leads forward to it.
    edges = _edges()
    for current, previous in _BACK.items():
        src, dst = previous.state.split(":", 1)[1], current.split(":", 1)[1]
        assert _reachable(edges, src, dst), (src, dst)

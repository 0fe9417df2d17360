"""SIGKILL, then a restart on the same files: nothing lost, nothing done twice.

Each scenario runs the real bot (tests/crash/driver.py) as its own process against the
sandbox process, kills it — at a failpoint of the submission, or from here after a step of the
conversation — and starts it again on the same database and transcript. The transcript holds
every message the parent was shown, across both processes.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.crash.conftest import Bots, Parent, applications_of

STAGES = ("start", "phone", "parent", "child", "choice", "notifications")
SUBMIT = {"stage": "submit"}
SETTLE = {"wait": "settled"}
EXIT = {"exit": True}
SUBMITTED = "ApplicationForm:submitted"
CONFIRMED = "тіркеуге жіберілді"  # review-submitted, kk
RESUMED = "Тоқтаған жеріңізден жалғастырамыз."  # resume-draft, kk

# Where the parent stands after each stage (and must stand again after the restart).
AFTER = {
    "start": "ApplicationForm:phone",
    "phone": "ApplicationForm:parent_iin",
    "parent": "ApplicationForm:child_iin",
    "child": "ApplicationForm:queue_type",
    "choice": "ApplicationForm:notify_channel",
    "notifications": "ApplicationForm:review",
}


def stages(names: tuple[str, ...]) -> list[dict[str, Any]]:
    return [{"stage": name} for name in names]


def confirmations(parent: Parent) -> list[dict[str, Any]]:
    return [m for m in parent.said() if m["kind"] == "message" and CONFIRMED in m["text"]]


@pytest.mark.parametrize(
    ("point", "created_before_the_kill"),
    [
        ("submit.before_post", 0),  # saved, not yet sent
        ("submit.after_response", 1),  # the service said 201; nothing recorded here
        ("confirm.after_send", 1),  # Telegram has the confirmation; the row is not marked
    ],
)
def test_killed_while_submitting_one_application_one_confirmation(
    bots: Bots, parents: Any, sandbox_url: str, point: str, created_before_the_kill: int
) -> None:
    parent: Parent = parents()
    actions = [*stages(STAGES), SUBMIT, SETTLE, EXIT]
    first = bots.run(parent, actions, failpoint=point)
    assert first.returncode == -9, first.events
    assert first.done(len(STAGES) - 1), "the conversation reached the review"
    assert not first.reports, "it died before anything settled"
    assert len(applications_of(sandbox_url, parent.child)) == created_before_the_kill
    sent_before = len(confirmations(parent))
    assert sent_before == (1 if point == "confirm.after_send" else 0)

    second = bots.run(parent, [SETTLE, EXIT])
    assert second.returncode == 0, second.events
    assert second.reports[-1]["state"] == SUBMITTED
    assert "application" in second.reports[-1]["draft_keys"]
    [application] = applications_of(sandbox_url, parent.child)
    [confirmation] = confirmations(parent)
    assert f"№ {application['number']}" in confirmation["text"]
    assert application["body"]["parent"]["phone"] == parent.phone


@pytest.mark.parametrize("stage", STAGES)
def test_killed_after_a_step_the_parent_goes_on_from_it(
    bots: Bots, parents: Any, sandbox_url: str, stage: str
) -> None:
    parent: Parent = parents()
    done = STAGES.index(stage) + 1
    first = bots.run(
        parent, [*stages(STAGES[:done]), {"report": True}, {"hold": True}], kill_when_held=True
    )
    assert first.returncode == -9, first.events
    [before] = first.reports
    assert before["state"] == AFTER[stage]
    shown_before = len(parent.said())

    rest = [*stages(STAGES[done:]), SUBMIT, SETTLE, EXIT]
    second = bots.run(parent, [{"report": True}, {"text": "/start"}, *rest])
    assert second.returncode == 0, second.events
    # The same step, every earlier answer (the draft digest), the same language.
    assert second.reports[0] == before
    resumed = parent.said()[shown_before]
    assert resumed["text"].startswith(RESUMED)
    assert second.reports[-1]["state"] == SUBMITTED
    [application] = applications_of(sandbox_url, parent.child)
    assert application["body"]["parent"]["phone"] == parent.phone
    assert len(confirmations(parent)) == 1

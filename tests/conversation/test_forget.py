"""/forget: after a yes, nothing about the parent is left in the bot's database; a no keeps all."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from aiogram.fsm.storage.base import StorageKey

from bot.app import App
from bot.fsm.states import ApplicationForm as S
from bot.local_chat import LocalChat
from bot.local_session import Sent
from services.clock import FakeClock
from tests.conversation.journey import Journey
from tests.conversation.seed import PARENT_IIN, seed_identity

OTHER_USER = 7007


def _visible(sent: list[Sent]) -> list[Sent]:
    return [s for s in sent if s.visible]


def _rows(app: App, sql: str, *params: object) -> list[tuple[object, ...]]:
    path: Path = app.services.settings.database_path
    with sqlite3.connect(path) as conn:
        return conn.execute(sql, params).fetchall()


def _everything_about(app: App, user_id: int) -> dict[str, int]:
    """How many rows of each table still belong to the user (or their private chat)."""
    checks = {
        "users": "SELECT COUNT(*) FROM users WHERE user_id = ?",
        "drafts": "SELECT COUNT(*) FROM drafts WHERE user_id = ?",
        "applications": "SELECT COUNT(*) FROM applications WHERE user_id = ?",
        "fsm_records": "SELECT COUNT(*) FROM fsm_records WHERE user_id = ?",
        "outbox": "SELECT COUNT(*) FROM outbox WHERE chat_id = ?",
        "submissions": "SELECT COUNT(*) FROM submissions WHERE user_id = ?",
    }
    return {table: int(_rows(app, sql, user_id)[0][0]) for table, sql in checks.items()}


async def _with_an_application(app: App, chat: LocalChat, clock: FakeClock) -> str:
    """A parent with a draft, FSM data, a submitted application and a push waiting for them."""
    draft = await seed_identity(app, chat)
    store = app.services.store
    await store.add_application(
        application_id="app-forget-1",
        user_id=chat.user_id,
        chat_id=chat.chat_id,
        number="KZ-4242",
        status="submitted",
        submitted_at=clock.now(),
        summary={"child": "Смағұлов Санжар", "child_first_name": "Санжар", "queue_type": "general"},
    )
    # A submission row as Submit leaves it: its sealed body holds both IINs and the phone.
    await store.begin_submission(
        key="idem-forget-1",
        user_id=chat.user_id,
        chat_id=chat.chat_id,
        session=draft["session"],
        body={"parent": {"iin": draft["parent"]["iin"], "phone": draft["phone"]}},
        summary={"child": "Смағұлов Санжар"},
    )
    await store.set_meta("status-seen:app-forget-1", '{"changed_at": "x", "cursor": null}')
    key = StorageKey(bot_id=app.bot.id, chat_id=chat.chat_id, user_id=chat.user_id)
    await app.storage.update_data(key, {"phone": draft["phone"]})
    outbox = app.services.outbox
    assert outbox is not None
    await outbox.enqueue(
        chat_id=chat.chat_id, text="Санжар: KZ-4242", kind="registered", dedup_key="push-1"
    )
    return "KZ-4242"


async def test_yes_deletes_every_row_of_the_parent_and_says_what_the_service_keeps(
    app: App, chat: LocalChat, clock: FakeClock
) -> None:
    number = await _with_an_application(app, chat, clock)
    other = LocalChat(app.dp, app.bot, user_id=OTHER_USER, language_code="ru")
    await other.send("/start")
    await other.press("Русский")
    before = _everything_about(app, chat.user_id)
    assert all(before.values()), before  # every table held something of the parent

    asked = _visible(await chat.send("/forget"))
    tr = app.services.i18n.translator("kk")
    assert (asked[-1].plain or "").startswith(tr("forget-confirm"))  # then the sandbox banner
    assert asked[-1].button_texts == [tr("btn-forget-yes"), tr("btn-forget-no")]
    done = _visible(await chat.press(tr("btn-forget-yes")))

    assert _everything_about(app, chat.user_id) == dict.fromkeys(before, 0)
    assert _rows(app, "SELECT COUNT(*) FROM meta WHERE key LIKE 'status-seen:app-forget-%'") == [
        (0,)
    ]
    assert (
        await app.storage.get_state(
            StorageKey(bot_id=app.bot.id, chat_id=chat.chat_id, user_id=chat.user_id)
        )
        is None
    )
    assert await app.services.store.get_draft(chat.user_id) == {}
    # The answer: done, what stays with the voucher service and how to withdraw, the number.
    answer = done[-1].plain or ""
    assert tr("forget-done").split("\n")[0] in answer
    assert "ed24.kz" in answer and number in answer
    # The question's buttons are gone, so an old "yes" cannot be pressed by mistake.
    edits = [s for s in done if s.kind == "edit"]
    assert edits and edits[0].buttons == []
    # The other parent keeps everything.
    kept = _everything_about(app, OTHER_USER)
    assert (kept["users"], kept["drafts"], kept["fsm_records"]) == (1, 1, 1)

    # The voucher service was not asked to delete anything, and a new /start is a new parent.
    restart = _visible(await chat.send("/start"))
    assert (
        await app.storage.get_state(
            StorageKey(bot_id=app.bot.id, chat_id=chat.chat_id, user_id=chat.user_id)
        )
        == S.language.state
    )
    assert restart[-1].button_texts  # the language picker


async def test_no_keeps_everything_and_asks_the_step_again_in_russian(
    app: App, chat_ru: LocalChat
) -> None:
    await seed_identity(app, chat_ru, locale="ru")
    before = _everything_about(app, chat_ru.user_id)
    tr = app.services.i18n.translator("ru")
    asked = _visible(await chat_ru.send("/forget"))
    assert (asked[-1].plain or "").startswith(tr("forget-confirm"))  # then the sandbox banner
    kept = _visible(await chat_ru.press(tr("btn-forget-no")))
    texts = [s.plain or "" for s in kept if s.kind != "edit"]
    assert texts[0].startswith(tr("forget-kept"))
    assert texts[-1].startswith("Шаг 3/5")  # the queue-type question again, in Russian
    assert _everything_about(app, chat_ru.user_id) == before
    draft = await app.services.store.get_draft(chat_ru.user_id)
    assert draft["parent"]["iin"] == PARENT_IIN


async def test_forget_while_a_consent_is_awaited_stops_the_background_check(
    app: App, chat: LocalChat
) -> None:
    journey = Journey(app, chat, "kk")
    await journey.start()
    await journey.phone()
    await chat.send(PARENT_IIN)  # the 1414 SMS goes out; the bot watches for the answer
    watcher = app.services.background
    assert watcher.is_watching(chat.user_id)
    await chat.send("/forget")
    await chat.press(app.services.i18n.t("kk", "btn-forget-yes"))
    assert not watcher.is_watching(chat.user_id)
    assert _everything_about(app, chat.user_id) == {
        "users": 0,
        "drafts": 0,
        "applications": 0,
        "fsm_records": 0,
        "outbox": 0,
        "submissions": 0,
    }


async def test_a_forged_forget_button_changes_nothing(app: App, chat: LocalChat) -> None:
    await seed_identity(app, chat)
    before = _everything_about(app, chat.user_id)
    asked = _visible(await chat.send("/forget"))
    message_id = asked[-1].message_id
    assert message_id is not None
    forged = _visible(await chat.press_data("forget:maybe", message_id=message_id))
    assert (forged[0].plain or "").startswith(app.services.i18n.t("kk", "button-outdated"))
    assert _everything_about(app, chat.user_id) == before

"""Steps 4/5 and 5/5 through the real Dispatcher and the sandbox: notifications, review, submit."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from typing import Any

import pytest
from aiogram.fsm.storage.base import StorageKey

from bot.app import App
from bot.fsm.states import ApplicationForm
from bot.keyboards.review import ReviewAction
from bot.local_chat import LocalChat
from bot.local_session import Sent
from services.application import build_request
from services.validation import age_on
from services.voucher.models import Group, PreviewRequest, Provider
from tests.conversation.seed import PARENT_IIN, PHONE, child_iin, seed_identity, set_state
from tests.conversation.submitting import settle_chat

S = ApplicationForm
CHILD_IIN = child_iin()  # 15.03.2016: 10 years old on 1 September 2026

KK_SUBMIT = "📨 Өтінішті жіберу"
RU_SUBMIT = "📨 Отправить заявление"
KK_CONSENTS = ("Дербес деректер", "Хабарламаға арналған байланыс", "Жария оферта")
RU_CONSENTS = ("Персональные данные", "Контакты для уведомлений", "Публичная оферта")


# --- seeding ------------------------------------------------------------------------------------


async def find_groups(app: App, age: int) -> tuple[Provider, Group, Group | None]:
    """A provider with a group for this age, and another of its groups for other ages if any."""
    voucher = app.services.voucher
    fallback: tuple[Provider, Group, Group | None] | None = None
    page = 1
    while True:
        listing = await voucher.list_providers(page=page, per_page=100)
        if not listing.items:
            break
        for provider in listing.items:
            groups = await voucher.list_groups(provider.id)
            fits = [g for g in groups if g.age_min <= age <= g.age_max and g.seats_free > 0]
            other = [g for g in groups if not g.age_min <= age <= g.age_max]
            if fits and other:
                return provider, fits[0], other[0]
            if fits and fallback is None:
                fallback = (provider, fits[0], None)
        page += 1
    assert fallback is not None, "no provider in the catalogue has a group for this child"
    return fallback


async def seed_choice(
    app: App, chat: LocalChat, *, locale: str = "kk", child: str = CHILD_IIN
) -> dict[str, Any]:
    """A draft filled up to step 3 from the real catalogue, at `notify_channel`."""
    identity = await seed_identity(app, chat, child=child, locale=locale)
    voucher = app.services.voucher
    session = identity["session"]
    orders = await voucher.list_state_order_types()
    today = app.services.clock.now().date()
    start = today.year if (today.month, today.day) >= (6, 1) else today.year - 1
    age = age_on(date.fromisoformat(identity["child"]["birth_date"]), date(start, 9, 1))
    provider, group, other = await find_groups(app, age)
    preview = await voucher.preview_queue(
        session,
        PreviewRequest(
            child_iin=child,
            queue_type="general",
            state_order_type=orders[0].code,
            group_id=group.id,
            documents=[],
        ),
    )
    draft = await app.services.store.update_draft(
        chat.user_id,
        step=S.notify_channel.state,
        # seed_identity granted both consents in this very session.
        parent_consent_session=session,
        child_consent_session=session,
        queue_type="general",
        state_order_type=orders[0].code,
        has_benefit=False,
        documents={},
        provider=provider.model_dump(mode="json"),
        group=group.model_dump(mode="json"),
        preview=preview.model_dump(mode="json"),
    )
    await set_state(app, chat, S.notify_channel.state)
    # Not in the draft: a group of the same provider for other ages, for refusal tests.
    return {**draft, "other_group": other.model_dump(mode="json") if other else None}


async def state_of(app: App, chat: LocalChat) -> str | None:
    key = StorageKey(bot_id=app.bot.id, chat_id=chat.chat_id, user_id=chat.user_id)
    return await app.storage.get_state(key)


async def draft_of(app: App, chat: LocalChat) -> dict[str, Any]:
    return await app.services.store.get_draft(chat.user_id)


def shown(sent: list[Sent]) -> list[Sent]:
    return [s for s in sent if s.visible]


def text_of(sent: list[Sent]) -> str:
    return "\n".join(s.plain or "" for s in shown(sent))


async def to_review(chat: LocalChat, channel: str, language: str) -> Sent:
    """From `notify_channel`: /start resumes, pick the channel and language; the review."""
    await chat.send("/start")
    await chat.press(channel)
    reply = shown(await chat.press(language))
    return reply[-1]


async def tick_all(chat: LocalChat, labels: tuple[str, ...]) -> Sent:
    edited: list[Sent] = []
    for label in labels:
        edited = shown(await chat.press(label))
    return edited[-1]


async def fresh_draft(app: App, chat: LocalChat, **kwargs: Any) -> dict[str, Any]:
    """A second application from the same parent: an empty draft, seeded again."""
    # The sandbox allows a new code for the same phone only after a minute.
    app.services.clock.advance(minutes=2)  # type: ignore[attr-defined]
    await app.services.store.delete_draft(chat.user_id)
    key = StorageKey(bot_id=app.bot.id, chat_id=chat.chat_id, user_id=chat.user_id)
    await app.storage.set_data(key, {})
    return await seed_choice(app, chat, **kwargs)


@pytest.fixture
def no_backoff(retry_delays: list[float]) -> list[float]:
    """The client's retry backoff, recorded by the app fixture instead of waited for."""
    return retry_delays


# --- step 4 -------------------------------------------------------------------------------------


async def test_channel_then_language_saved_and_review_shown(app: App, chat: LocalChat) -> None:
    await seed_choice(app, chat)
    prompt = shown(await chat.send("/start"))[-1]
    assert prompt.plain.startswith("Қадам 4/5 — Хабарламалар")
    assert "+7 701 *** ** 78" in prompt.plain
    assert "ed24.kz қосымшасы" in prompt.plain
    assert prompt.button_texts == [
        "✉️ SMS",
        "📲 ed24.kz қосымшасы",
        "💬 Телеграм",
        "◀️ Артқа",
    ]

    typed = shown(await chat.send("телеграм"))
    assert "батырмалардың бірімен" in typed[0].plain
    assert typed[-1].button_texts[0] == "✉️ SMS"

    language = shown(await chat.press("Телеграм"))[-1]
    assert language.plain.startswith("Қадам 4/5 — Хабарламалар")
    assert "Хабарламалар қай тілде келсін?" in language.plain
    # Pre-selected from the parent's own language.
    assert language.button_texts[:2] == ["✅ 🇰🇿 Қазақ тілінде", "🇷🇺 Орыс тілінде"]
    assert await state_of(app, chat) == S.notify_language.state

    review = shown(await chat.press("Орыс тілінде"))[-1]
    assert review.plain.startswith("Қадам 5/5 — Өтінішті тексеру")
    assert "Хабарламалар: Телеграм, орыс тілінде" in review.plain
    assert (await draft_of(app, chat))["notification"] == {"channel": "telegram", "language": "ru"}
    assert await state_of(app, chat) == S.review.state


async def test_language_preselected_russian_for_a_russian_parent(
    app: App, chat_ru: LocalChat
) -> None:
    await seed_choice(app, chat_ru, locale="ru")
    await chat_ru.send("/start")
    language = shown(await chat_ru.press("SMS"))[-1]
    assert language.plain.startswith("Шаг 4/5 — Уведомления")
    assert language.button_texts[:2] == ["🇰🇿 На казахском", "✅ 🇷🇺 На русском"]


# --- step 5: review and submit -----------------------------------------------------------------


async def test_review_consents_and_submit(app: App, chat: LocalChat) -> None:
    seeded = await seed_choice(app, chat)
    review = await to_review(chat, "Телеграм", "Қазақ тілінде")
    child, parent = seeded["child"], seeded["parent"]
    child_name = f"{child['last_name']} {child['first_name']}"
    cert = child["birth_certificate"]["number"].split("-")
    for expected in (
        "Қадам 5/5 — Өтінішті тексеру",
        "Білім бөлімінің басшысына",
        f"кімнен: {parent['last_name']} {parent['first_name']}",
        "ЖСН: ••••••••1427",
        f"Мекенжайы: {parent['addresses']['permanent']}",
        "ӨТІНІШ",
        child_name,
        "15.03.2016 жылы туған",
        "мүгедектік туралы: жоқ",
        "жеңілдік туралы: жоқ",
        f"Қызмет беруші: {seeded['provider']['name']['kk']}, {seeded['provider']['address']}",
        f"Топ: {seeded['group']['name']['kk']}, "
        f"{seeded['group']['age_min']}–{seeded['group']['age_max']} жас",
        f"Кезек: {seeded['preview']['queue']['title']['kk']}",
        "Оқу жылы: 2026–2027",
        f"Баланың тұрақты мекенжайы: {child['addresses']['permanent']}",
        f"Туу туралы куәлік: {cert[0]}-{cert[1]}-***{cert[-1]}",
        "Хабарламалар: Телеграм, қазақ тілінде",
        "Телефон: +7 701 *** ** 78",
        "⬜ Менің және баламның дербес деректерін",
    ):
        assert expected in review.plain, expected
    assert PARENT_IIN not in review.plain and CHILD_IIN not in review.plain
    assert PHONE not in review.plain
    assert review.button_texts == [
        *(f"⬜ {label}" for label in KK_CONSENTS),
        "✏️ Өзгерту",
        "🔒 " + KK_SUBMIT,
        "◀️ Артқа",
    ]

    # Submit is refused until all three are ticked; the message stays and says which.
    refused = shown(await chat.press(KK_SUBMIT))
    assert [s.kind for s in refused] == ["edit"] and refused[0].message_id == review.message_id
    assert "белгілеңіз: «Дербес деректер», «Хабарламаға арналған байланыс», «Жария оферта»" in (
        refused[0].plain
    )
    await chat.press(KK_CONSENTS[0])
    await chat.press(KK_CONSENTS[2])
    refused = shown(await chat.press(KK_SUBMIT))
    assert "белгілеңіз: «Хабарламаға арналған байланыс»." in refused[0].plain
    # Toggling twice unticks.
    await chat.press(KK_CONSENTS[0])
    assert (await draft_of(app, chat))["consents"]["personal_data"] is False
    edited = await tick_all(chat, (KK_CONSENTS[0], KK_CONSENTS[1]))
    assert edited.kind == "edit" and edited.message_id == review.message_id
    assert edited.button_texts[:4] == [*(f"✅ {label}" for label in KK_CONSENTS), "✏️ Өзгерту"]
    assert await app.services.voucher.sandbox_list_applications() == []

    # A double tap: two Submit presses arrive together. Both are answered at once; the
    # application itself is sent by the submitter, once.
    submit = ReviewAction(action="submit").pack()
    first, second = await asyncio.gather(
        chat.press_data(submit, message_id=review.message_id),
        chat.press_data(submit, message_id=review.message_id),
    )
    said = text_of(first + second)
    assert said.startswith("Қадам 5/5 — Өтінішті тексеру")
    assert "Өтініш сақталды және ваучер қызметіне жіберіліп жатыр" in said
    assert "Өтініш жіберіліп жатыр — қайта басудың қажеті жоқ" in said
    assert await state_of(app, chat) == S.submitting.state
    key = (await draft_of(app, chat))["idempotency_key"]
    pending = await app.services.store.submission(key)
    assert pending is not None and pending.status == "pending"
    assert await app.services.voucher.sandbox_list_applications() == []

    confirmed = await settle_chat(app, chat)
    apps = await app.services.voucher.sandbox_list_applications()
    assert len(apps) == 1
    number = apps[0].number
    assert len(confirmed) == 1
    said = confirmed[0].plain
    assert said.startswith("Қадам 5/5 — Өтінішті тексеру")
    assert f"№ {number} өтінішіңіз тіркеуге жіберілді" in said
    assert "Жіберілген уақыты: 10.09.2026 10:00" in said
    assert "/start" in said
    assert confirmed[0].button_texts == ["➕ Тағы бір балаға өтініш беру"]
    assert await state_of(app, chat) == S.submitted.state
    done = await app.services.store.submission(key)
    assert done is not None and (done.status, done.synced, done.body) == ("done", True, None)

    body = apps[0].body
    assert body == {
        "parent": {"iin": PARENT_IIN, "phone": PHONE},
        "child": {"iin": CHILD_IIN},
        "queue_type": "general",
        "state_order_type": seeded["state_order_type"],
        "provider_id": seeded["provider"]["id"],
        "group_id": seeded["group"]["id"],
        "documents": [],
        "notification": {"channel": "telegram", "language": "kk"},
        "consents": {"personal_data": True, "contact_use": True, "offer": True},
        "telegram_chat_id": chat.chat_id,
    }
    draft = await draft_of(app, chat)
    assert draft["application"]["number"] == number
    assert draft["application"]["id"] == apps[0].id
    stored = await app.services.store.list_applications(chat.user_id)
    assert [(a.id, a.number, a.status, a.chat_id) for a in stored] == [
        (apps[0].id, number, "submitted", chat.chat_id)
    ]
    assert stored[0].summary == {
        "child": " ".join(
            p for p in (child["last_name"], child["first_name"], child["middle_name"]) if p
        ),
        "child_first_name": child["first_name"],
        "child_birth_year": int(child["birth_date"][:4]),
        "child_iin_masked": "••••••••" + child["iin"][-4:],
        "queue_type": "general",
        "queue": seeded["preview"]["queue"]["title"],
        "provider_id": seeded["provider"]["id"],
        "provider": seeded["provider"]["name"],
        "group_id": seeded["group"]["id"],
        "group": seeded["group"]["name"],
        "group_language": seeded["group"]["language"],
        "status": "submitted",
    }

    # Later: another tap on the old review, and typing, still send nothing new.
    again = text_of(await chat.press(KK_SUBMIT, message_id=review.message_id))
    assert f"№ {number}" in again and "жіберіліп қойған" in again
    typed = shown(await chat.send("сәлем"))[-1]
    assert f"№ {number}" in typed.plain and "/start" in typed.plain
    assert len(await app.services.voucher.sandbox_list_applications()) == 1


async def test_review_in_russian_and_after_language_change(app: App, chat_ru: LocalChat) -> None:
    seeded = await seed_choice(app, chat_ru, locale="ru")
    review = await to_review(chat_ru, "ed24.kz", "На казахском")
    for expected in (
        "Шаг 5/5 — Проверка заявления",
        "Руководителю отдела образования",
        "ИИН: ••••••••1427",
        "ЗАЯВЛЕНИЕ",
        "Прошу поставить моего ребёнка",
        "15.03.2016 г. р.",
        "об инвалидности: нет",
        f"Поставщик услуг: {seeded['provider']['name']['ru']}",
        f"Группа: {seeded['group']['name']['ru']}",
        f"Очередь: {seeded['preview']['queue']['title']['ru']}",
        "Учебный год: 2026–2027",
        "Свидетельство о рождении: ",
        "Уведомления: приложение ed24.kz, на казахском языке",
        "Телефон: +7 701 *** ** 78",
    ):
        assert expected in review.plain, expected
    await chat_ru.press(RU_CONSENTS[1])

    # /language re-renders the review in the new language, ticks kept.
    await chat_ru.send("/language")
    rerun = shown(await chat_ru.press("Қазақша"))[-1]
    assert rerun.plain.startswith("Қадам 5/5 — Өтінішті тексеру")
    assert "Кезек: " + seeded["preview"]["queue"]["title"]["kk"] in rerun.plain
    assert rerun.button_texts[:3] == [
        "⬜ Дербес деректер",
        "✅ Хабарламаға арналған байланыс",
        "⬜ Жария оферта",
    ]
    # /help explains the step, then shows it again.
    helped = shown(await chat_ru.send("/help"))
    assert "«✏️ Өзгерту»" in helped[0].plain
    assert "ӨТІНІШ" in helped[-1].plain


async def test_service_unavailable_keeps_trying_with_the_same_key(
    app: App, chat: LocalChat, no_backoff: list[float]
) -> None:
    await seed_choice(app, chat)
    await to_review(chat, "SMS", "Қазақ тілінде")
    await tick_all(chat, KK_CONSENTS)
    voucher = app.services.voucher
    await voucher.sandbox_set_faults(failure_rate=1.0, retry_after=30)

    saved = shown(await chat.press(KK_SUBMIT))[-1]
    assert saved.plain.startswith("Қадам 5/5")
    assert "Өтініш сақталды" in saved.plain
    key = (await draft_of(app, chat))["idempotency_key"]

    # The service is down: nothing to tell the parent, the submitter tries again later.
    assert await settle_chat(app, chat) == []
    assert no_backoff, "the client retried the idempotent POST before giving up"
    assert await state_of(app, chat) == S.submitting.state
    waiting = await app.services.store.submission(key)
    assert waiting is not None and (waiting.status, waiting.attempts) == ("pending", 1)
    # Retry-After (30 s) is honoured.
    assert waiting.next_attempt_at >= app.services.clock.now() + timedelta(seconds=29)
    draft = await draft_of(app, chat)
    assert draft["consents"] == {"personal_data": True, "contact_use": True, "offer": True}
    assert "application" not in draft

    # Not due yet: no POST at all.
    requests_before = len(no_backoff)
    assert await settle_chat(app, chat) == []
    assert len(no_backoff) == requests_before
    # A tap meanwhile: already on its way.
    again = text_of(await chat.press(KK_SUBMIT))
    assert "қайта басудың қажеті жоқ" in again

    await voucher.sandbox_set_faults(failure_rate=0.0)
    app.services.clock.advance(seconds=31)  # type: ignore[attr-defined]
    done = text_of(await settle_chat(app, chat))
    apps = await voucher.sandbox_list_applications()
    assert len(apps) == 1
    assert f"№ {apps[0].number} өтінішіңіз тіркеуге жіберілді" in done
    draft = await draft_of(app, chat)
    assert draft["idempotency_key"] == key
    assert await state_of(app, chat) == S.submitted.state
    # The application was created under that key: replaying it returns the same one.
    replay = await voucher.submit_application(
        draft["session"], key, build_request(draft, chat.chat_id)
    )
    assert replay.id == apps[0].id
    assert len(await voucher.sandbox_list_applications()) == 1
    assert apps[0].body["telegram_chat_id"] is None  # SMS: the chat id is not shared


async def test_duplicate_application_shows_the_first_number(app: App, chat: LocalChat) -> None:
    await seed_choice(app, chat)
    await to_review(chat, "Телеграм", "Қазақ тілінде")
    await tick_all(chat, KK_CONSENTS)
    await chat.press(KK_SUBMIT)
    await settle_chat(app, chat)
    first = (await app.services.voucher.sandbox_list_applications())[0]

    await fresh_draft(app, chat)
    await to_review(chat, "SMS", "Орыс тілінде")
    await tick_all(chat, KK_CONSENTS)
    await chat.press(KK_SUBMIT)
    [answer] = await settle_chat(app, chat)
    assert f"өтініш № {first.number}" in answer.plain
    assert "Жаңа өтініш жасалған жоқ" in answer.plain
    assert "✏️ Өзгерту" in answer.button_texts
    assert len(await app.services.voucher.sandbox_list_applications()) == 1
    assert await state_of(app, chat) == S.review.state
    draft = await draft_of(app, chat)
    assert "application" not in draft and draft["provider"] and draft["notification"]


async def test_intake_closed_keeps_the_draft(app: App, chat: LocalChat) -> None:
    seeded = await seed_choice(app, chat)
    await to_review(chat, "Телеграм", "Қазақ тілінде")
    await tick_all(chat, KK_CONSENTS)
    voucher = app.services.voucher
    await voucher.sandbox_set_faults(intake_closed=["general"])

    await chat.press(KK_SUBMIT)
    [closed] = await settle_chat(app, chat)
    queue = seeded["preview"]["queue"]["title"]["kk"]
    assert f"«{queue}» кезегіне өтініш қабылдау қазір жабық" in closed.plain
    assert "жобасы сақталды" in closed.plain
    assert await voucher.sandbox_list_applications() == []
    assert await state_of(app, chat) == S.review.state
    key = (await draft_of(app, chat))["idempotency_key"]

    assert closed.button_texts == ["🔄 Қайталау", "◀️ Өтінішке оралу"]
    assert await app.services.outbox_counts() == {"waiting": 0, "failed": 1}  # type: ignore[misc]

    # When intake opens, Retry sends the kept draft with the same key.
    await voucher.sandbox_set_faults(intake_closed=[])
    saved = text_of(await chat.press("🔄 Қайталау"))
    assert "Өтініш сақталды" in saved
    assert await app.services.outbox_counts() == {"waiting": 1, "failed": 0}  # type: ignore[misc]
    await settle_chat(app, chat)
    assert len(await voucher.sandbox_list_applications()) == 1
    assert (await draft_of(app, chat))["idempotency_key"] == key
    assert await state_of(app, chat) == S.submitted.state


async def test_edit_notifications_returns_to_review(app: App, chat: LocalChat) -> None:
    await seed_choice(app, chat)
    review = await to_review(chat, "Телеграм", "Қазақ тілінде")
    await chat.press(KK_CONSENTS[0])

    menu = shown(await chat.press("✏️ Өзгерту"))[-1]
    assert menu.kind == "edit" and menu.message_id == review.message_id
    assert "Нені өзгертесіз?" in menu.plain
    assert menu.button_texts == [
        "📱 Телефон",
        "👤 Ата-ана",
        "🧒 Бала",
        "📋 Кезек және құжаттар",
        "🏫 Ұйым және топ",
        "🔔 Хабарламалар",
        "◀️ Өтінішке оралу",
    ]
    # Back to the review from the menu, then the menu again.
    restored = shown(await chat.press("◀️ Өтінішке оралу"))[-1]
    assert restored.button_texts[0] == "✅ Дербес деректер"
    await chat.press("✏️ Өзгерту")

    channel = shown(await chat.press("🔔 Хабарламалар"))[-1]
    assert channel.plain.startswith("Қадам 4/5 — Хабарламалар")
    assert "✅ 💬 Телеграм" in channel.button_texts
    assert (await draft_of(app, chat))["editing"] is True
    await chat.press("SMS")
    back = shown(await chat.press("Орыс тілінде"))[-1]
    assert back.plain.startswith("Қадам 5/5 — Өтінішті тексеру")
    assert "Хабарламалар: SMS, орыс тілінде" in back.plain
    assert back.button_texts[0] == "✅ Дербес деректер"  # ticks kept
    draft = await draft_of(app, chat)
    assert "editing" not in draft
    assert draft["notification"] == {"channel": "sms", "language": "ru"}


async def test_edit_parent_same_iin_sends_no_new_sms(app: App, chat: LocalChat) -> None:
    await seed_choice(app, chat)
    await to_review(chat, "Телеграм", "Қазақ тілінде")
    voucher = app.services.voucher
    before = await voucher.sandbox_inbox(PHONE)

    await chat.press("✏️ Өзгерту")
    ask = shown(await chat.press("👤 Ата-ана"))[-1]
    assert ask.plain.startswith("Қадам 2/5")
    assert await state_of(app, chat) == S.parent_iin.state
    card = shown(await chat.send(PARENT_IIN))[-1]
    assert await state_of(app, chat) == S.parent_confirm.state
    assert card.button_texts, "the parent's card has buttons"
    confirm = next(b for b in card.button_texts if b.startswith("✅"))
    back = shown(await chat.press(confirm))[-1]
    assert back.plain.startswith("Қадам 5/5 — Өтінішті тексеру")
    assert await state_of(app, chat) == S.review.state
    assert await voucher.sandbox_inbox(PHONE) == before  # no new 1414 SMS


async def test_unexpected_input_and_forged_buttons(app: App, chat: LocalChat) -> None:
    await seed_choice(app, chat)
    review = await to_review(chat, "Телеграм", "Қазақ тілінде")
    typed = shown(await chat.send("жіберіңіз"))
    assert "«📨 Өтінішті жіберу»" in typed[0].plain
    assert "ӨТІНІШ" in typed[-1].plain
    forged = shown(await chat.press_data("rvc:everything", message_id=review.message_id))
    assert "Бұл батырма ескірген" in forged[0].plain
    assert "everything" not in str(await draft_of(app, chat))
    forged = shown(await chat.press_data("rve:nowhere", message_id=review.message_id))
    assert "Бұл батырма ескірген" in forged[0].plain
    assert await state_of(app, chat) == S.review.state


async def test_expired_session_asks_for_the_phone_again(app: App, chat: LocalChat) -> None:
    await seed_choice(app, chat)
    await to_review(chat, "Телеграм", "Қазақ тілінде")
    await tick_all(chat, KK_CONSENTS)
    app.services.clock.advance(seconds=3601)  # type: ignore[attr-defined]
    await chat.press(KK_SUBMIT)
    [said] = await settle_chat(app, chat)
    assert "ed24.kz сессиясының мерзімі бітті" in said.plain
    assert said.button_texts == ["▶️ Жалғастыру"]
    assert await state_of(app, chat) == S.phone.state
    draft = await draft_of(app, chat)
    assert draft["editing"] is True and "session" not in draft
    assert draft["consents"]["offer"] is True  # nothing the parent ticked is lost
    assert await app.services.voucher.sandbox_list_applications() == []
    # *Continue* asks for the phone.
    asked = shown(await chat.press("▶️ Жалғастыру"))[-1]
    assert asked.plain.startswith("Қадам 1/5")


async def test_a_paper_the_service_refuses_offers_edit(app: App, chat: LocalChat) -> None:
    await seed_choice(app, chat)
    # A benefit paper that is not this session's: the service answers validation_error.
    await app.services.store.update_draft(
        chat.user_id,
        has_benefit=True,
        documents={
            "benefit": {
                "document_id": "doc-of-someone-else",
                "file_name": "<b>анықтама</b>.pdf",
                "size": 10,
                "content_type": "application/pdf",
            }
        },
    )
    review = await to_review(chat, "Телеграм", "Қазақ тілінде")
    assert "жеңілдік туралы: <b>анықтама</b>.pdf" in review.plain  # shown as typed, escaped
    assert "&lt;b&gt;анықтама&lt;/b&gt;.pdf" in review.text
    await tick_all(chat, KK_CONSENTS)
    await chat.press(KK_SUBMIT)
    [refused] = await settle_chat(app, chat)
    assert "«Кезек және құжаттар» бөлімін қабылдамады" in refused.plain
    assert refused.button_texts == ["✏️ Өзгерту", "◀️ Өтінішке оралу"]
    assert await state_of(app, chat) == S.review.state
    menu = shown(await chat.press("✏️ Өзгерту"))[-1]
    assert "📋 Кезек және құжаттар" in menu.button_texts
    assert await app.services.voucher.sandbox_list_applications() == []


async def test_age_out_of_range_goes_back_to_the_group(app: App, chat: LocalChat) -> None:
    seeded = await seed_choice(app, chat)
    assert seeded["other_group"], "the catalogue has a provider with groups for other ages"
    # The group changed upstream after the preview (or the draft is old).
    await app.services.store.update_draft(chat.user_id, group=seeded["other_group"])
    await to_review(chat, "Телеграм", "Қазақ тілінде")
    await tick_all(chat, KK_CONSENTS)
    await chat.press(KK_SUBMIT)
    said = text_of(await settle_chat(app, chat))
    assert "1 қыркүйектегі жасына сәйкес келмейді" in said
    assert await state_of(app, chat) == S.group.state
    assert (await draft_of(app, chat))["editing"] is True
    assert await app.services.voucher.sandbox_list_applications() == []
    # *Continue* shows the groups again, at step 3.
    groups = shown(await chat.press("▶️ Жалғастыру"))[-1]
    assert groups.plain.startswith("Қадам 3/5")
    assert groups.button_texts

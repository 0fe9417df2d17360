"""Step 3/5, benefits and choice, through the real Dispatcher, the sandbox and SQLite.

Every test starts from `seed_identity` (a parent at `queue_type` with a real session and
consents upstream) and talks to the bot as a parent would. The FakeClock stands at
10.09.2026, so the academic year is 2026–2027 and the default child (born 15.03.2016) is 10
on 1 September 2026.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiogram.fsm.storage.base import StorageKey
from aiogram.methods import GetFile

from bot.app import App
from bot.fsm.states import ApplicationForm as S
from bot.keyboards.choice import GroupPick, ProviderPick
from bot.local_chat import LocalChat
from bot.local_session import Sent, bad_request
from services.voucher.models import DocumentUploaded, Group, Provider
from tests.conversation.seed import child_iin, seed_identity, set_state

HEADER = {"kk": "Қадам 3/5 — Жеңілдіктер мен таңдау", "ru": "Шаг 3/5 — Льготы и выбор"}
NEXT_HEADER = {"kk": "Қадам 4/5", "ru": "Шаг 4/5"}
GENERAL = {"kk": "Жалпы кезек", "ru": "Общая очередь"}
SPECIAL = {"kk": "Арнайы кезек", "ru": "Специальная очередь"}
NO = {"kk": "Жоқ", "ru": "Нет"}
YES = {"kk": "Иә, жеңілдік бар", "ru": "Да, есть льгота"}
BACK = {"kk": "◀️ Артқа", "ru": "◀️ Назад"}
CONTINUE = {"kk": "✅ Жалғастыру", "ru": "✅ Продолжить"}
KEEP = {"kk": "➡️ Жалғастыру", "ru": "➡️ Продолжить"}

PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n" + b"0" * 3000
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x11" * 5000
TEN_MIB = 10 * 1024 * 1024


# --- helpers ---------------------------------------------------------------------------------


@dataclass
class Upload:
    kind: str
    content: bytes
    file_name: str
    result: DocumentUploaded


@pytest.fixture
def uploads(app: App, monkeypatch: pytest.MonkeyPatch) -> list[Upload]:
    """Every document the bot uploads, with what the sandbox answered (a pass-through spy)."""
    seen: list[Upload] = []
    client = app.services.voucher
    real = client.upload_document

    async def spy(
        session: str, kind: str, content: bytes, filename: str = "document"
    ) -> DocumentUploaded:
        result = await real(session, kind, content, filename)
        seen.append(Upload(kind, content, filename, result))
        return result

    monkeypatch.setattr(client, "upload_document", spy)
    return seen


@pytest.fixture
def no_backoff(retry_delays: list[float]) -> list[float]:
    """The client's retry delays, recorded by the app fixture instead of waited for."""
    return retry_delays


async def state_of(app: App, chat: LocalChat) -> str | None:
    key = StorageKey(bot_id=app.bot.id, chat_id=chat.chat_id, user_id=chat.user_id)
    return await app.storage.get_state(key)


async def fsm_data(app: App, chat: LocalChat) -> dict[str, Any]:
    key = StorageKey(bot_id=app.bot.id, chat_id=chat.chat_id, user_id=chat.user_id)
    return await app.storage.get_data(key)


async def draft_of(app: App, chat: LocalChat) -> dict[str, Any]:
    return await app.services.store.get_draft(chat.user_id)


def body(sent: Sent) -> str:
    """What the parent reads, without the sandbox banner every message ends with."""
    return (sent.plain or "").split("\n\n🧪", 1)[0]


def shown(sent: list[Sent]) -> list[Sent]:
    return [s for s in sent if s.visible]


def prompt(sent: list[Sent], locale: str) -> Sent:
    """The step's question: the last visible message, with the step 3 header."""
    last = shown(sent)[-1]
    assert last.plain is not None
    assert last.plain.startswith(HEADER[locale]), last.plain
    return last


def buttons_with(sent: Sent, prefix: str) -> list[tuple[str, str]]:
    """(label, callback data) of the buttons whose data starts with `prefix`."""
    return [
        (b.text, b.callback_data)
        for row in sent.buttons
        for b in row
        if b.callback_data and b.callback_data.startswith(prefix)
    ]


def provider_ids(sent: Sent) -> list[str]:
    return [ProviderPick.unpack(data).id for _, data in buttons_with(sent, "ch-p:")]


def group_ids(sent: Sent) -> list[str]:
    return [GroupPick.unpack(data).id for _, data in buttons_with(sent, "ch-g:")]


async def start(app: App, chat: LocalChat, locale: str = "kk", child: str | None = None) -> Sent:
    """Seed a parent at `queue_type` and show the step (here via /help)."""
    await seed_identity(app, chat, locale=locale, child=child)
    sent = await chat.send("/help")
    return prompt(sent, locale)


async def to_benefit(chat: LocalChat, locale: str) -> Sent:
    """General queue, first state order type: at the benefit question."""
    await chat.press(GENERAL[locale])
    return prompt(await chat.press(0), locale)


async def to_provider(chat: LocalChat, locale: str) -> Sent:
    await to_benefit(chat, locale)
    return prompt(await chat.press(NO[locale]), locale)


async def all_providers(app: App) -> list[Provider]:
    voucher, found, page = app.services.voucher, [], 1
    while True:
        items = (await voucher.list_providers(None, page, 50)).items
        if not items:
            return found
        found += items
        page += 1


async def find_provider(
    app: App, wanted: Callable[[list[Group]], bool]
) -> tuple[Provider, list[Group]]:
    """The first provider in the sandbox catalogue whose groups satisfy `wanted`."""
    for provider in await all_providers(app):
        groups = await app.services.voucher.list_groups(provider.id)
        if wanted(groups):
            return provider, groups
    raise AssertionError("the sandbox catalogue has no such provider")


def fits(group: Group, age: int) -> bool:
    return group.age_min <= age <= group.age_max


async def open_provider(chat: LocalChat, provider: Provider, locale: str) -> Sent:
    """Search by the provider's full name and press its button: the group list."""
    found = prompt(await chat.send(provider.name.get(locale)), locale)
    label = next(text for text, data in buttons_with(found, "ch-p:") if provider.id in data)
    return prompt(await chat.press(label), locale)


# --- the general queue, start to end ----------------------------------------------------------


async def test_general_queue_path_to_notifications_kk(app: App, chat: LocalChat) -> None:
    ask = await start(app, chat)
    # Each queue type with the service's explanation, in Kazakh.
    types = await app.services.voucher.list_queue_types()
    for queue in types:
        assert queue.title.kk in ask.plain and queue.description.kk in ask.plain
        assert queue.title.kk in ask.button_texts
    assert "Общая" not in ask.plain
    assert ask.button_texts[-1] == BACK["kk"]

    order = prompt(await chat.press(GENERAL["kk"]), "kk")
    assert await state_of(app, chat) == S.state_order.state
    order_types = await app.services.voucher.list_state_order_types()
    for kind in order_types:
        assert kind.title.kk in order.plain
    benefit = prompt(await chat.press(0), "kk")
    assert await state_of(app, chat) == S.benefit.state
    assert benefit.button_texts == [YES["kk"], NO["kk"], BACK["kk"]]

    providers = prompt(await chat.press(NO["kk"]), "kk")
    assert await state_of(app, chat) == S.provider.state
    first_page = await app.services.voucher.list_providers(None, 1, 10)
    assert provider_ids(providers) == [p.id for p in first_page.items]
    pages = -(-first_page.total // 10)
    assert f"{pages} беттің 1-беті" in providers.plain
    assert "▶" in providers.button_texts and "◀" not in providers.button_texts

    chosen = first_page.items[0]
    groups_msg = prompt(await chat.press(provider_ids(providers).index(chosen.id)), "kk")
    assert await state_of(app, chat) == S.group.state
    assert chosen.name.kk in groups_msg.plain
    assert "2026 жылғы 1 қыркүйектегі жасы: 10" in groups_msg.plain
    offered = group_ids(groups_msg)
    assert offered

    preview = prompt(await chat.press(0), "kk")
    assert await state_of(app, chat) == S.preview.state
    draft = await draft_of(app, chat)
    assert draft["group"]["id"] == offered[0]
    assert draft["preview"]["queue"]["code"].startswith("general-")
    assert f"«{draft['preview']['queue']['title']['kk']}» кезегіне түседі" in preview.plain
    assert "Жалпы кезек" in preview.plain
    assert "2026 жылғы 1 қыркүйектегі жасы: 10" in preview.plain
    assert "Оқу жылы: 2026–2027" in preview.plain
    assert preview.button_texts == [CONTINUE["kk"], BACK["kk"]]

    after = await chat.press(CONTINUE["kk"])
    assert await state_of(app, chat) == S.notify_channel.state
    assert shown(after)[-1].plain.startswith(NEXT_HEADER["kk"])
    draft = await draft_of(app, chat)
    assert draft["queue_type"] == "general"
    assert draft["state_order_type"] == order_types[0].code
    assert draft["has_benefit"] is False
    assert "documents" not in draft
    assert draft["provider"] == chosen.model_dump(mode="json")
    group = next(g for g in await app.services.voucher.list_groups(chosen.id) if g.id == offered[0])
    assert draft["group"] == group.model_dump(mode="json")
    assert draft["preview"]["age_on_sept_1"] == 10
    assert draft["preview"]["academic_year"] == "2026-2027"
    # What only this step needed is gone from FSM data.
    assert not {"provider_seen", "groups", "order_codes"} & set(await fsm_data(app, chat))


async def test_preview_in_russian_names_the_queue_and_the_age(app: App, chat_ru: LocalChat) -> None:
    ask = await start(app, chat_ru, "ru")
    assert "Общая очередь" in ask.plain and "Специальная очередь" in ask.plain
    providers = await to_provider(chat_ru, "ru")
    assert "Страница 1 из" in providers.plain
    page = await app.services.voucher.list_providers(None, 1, 10)
    assert page.items[0].name.ru[:20] in providers.plain
    groups_msg = prompt(await chat_ru.press(0), "ru")
    assert "Возраст ребёнка на 1 сентября 2026 года: 10 лет" in groups_msg.plain
    preview = prompt(await chat_ru.press(0), "ru")
    title = (await draft_of(app, chat_ru))["preview"]["queue"]["title"]["ru"]
    assert title.startswith("Общая очередь")
    assert f"Заявление попадёт в очередь «{title}»." in preview.plain
    assert "Возраст ребёнка на 1 сентября 2026 года: 10 лет" in preview.plain
    assert "Учебный год: 2026–2027" in preview.plain
    after = await chat_ru.press(CONTINUE["ru"])
    assert shown(after)[-1].plain.startswith(NEXT_HEADER["ru"])
    assert await state_of(app, chat_ru) == S.notify_channel.state


# --- the special queue and documents -------------------------------------------------------


async def test_special_queue_requires_a_disability_document(
    app: App, chat: LocalChat, uploads: list[Upload]
) -> None:
    await start(app, chat)
    await chat.press(SPECIAL["kk"])
    ask = prompt(await chat.press(0), "kk")
    assert await state_of(app, chat) == S.disability_doc.state
    assert "мүгедектігі туралы анықтаманы" in ask.plain
    assert "PDF, JPEG немесе PNG" in ask.plain and "10 МБ" in ask.plain

    for wrong in (lambda: chat.send("қазір жіберемін"), chat.send_sticker):
        replies = shown(await wrong())
        assert body(replies[0]) == "Құжатты файл немесе фото ретінде жіберіңіз."
        assert replies[-1].plain.startswith(HEADER["kk"])
        assert await state_of(app, chat) == S.disability_doc.state

    replies = shown(await chat.send_document(PDF, "анықтама.pdf", "application/pdf"))
    assert body(replies[0]) == "✅ Құжат қабылданды: анықтама.pdf, 3 КБ."
    assert "жеңілдік бар ма" in prompt(replies, "kk").plain
    assert await state_of(app, chat) == S.benefit.state

    # What the sandbox got: the bytes exactly, hashed and sized by the service itself.
    assert len(uploads) == 1
    upload = uploads[0]
    assert (upload.kind, upload.content, upload.file_name) == ("disability", PDF, "анықтама.pdf")
    assert upload.result.sha256 == hashlib.sha256(PDF).hexdigest()
    assert upload.result.size == len(PDF)
    assert upload.result.content_type == "application/pdf"
    assert (await draft_of(app, chat))["documents"] == {
        "disability": {
            "document_id": upload.result.document_id,
            "file_name": "анықтама.pdf",
            "size": len(PDF),
            "content_type": "application/pdf",
        }
    }

    # Benefit: yes, proved by a photo.
    doc_ask = prompt(await chat.press(YES["kk"]), "kk")
    assert await state_of(app, chat) == S.benefit_doc.state
    assert "Жеңілдікті растайтын құжатты" in doc_ask.plain
    replies = shown(await chat.send_photo(JPEG))
    assert body(replies[0]) == "✅ Құжат қабылданды: photo.jpg, 5 КБ."
    assert await state_of(app, chat) == S.provider.state
    assert uploads[1].kind == "benefit" and uploads[1].content == JPEG
    assert uploads[1].result.content_type == "image/jpeg"
    assert uploads[1].result.sha256 == hashlib.sha256(JPEG).hexdigest()
    draft = await draft_of(app, chat)
    assert draft["has_benefit"] is True
    assert draft["documents"]["benefit"]["document_id"] == uploads[1].result.document_id

    # The sandbox counts the disability document as this phone's: the preview goes through.
    await chat.press(0)
    preview = prompt(await chat.press(0), "kk")
    assert "Арнайы кезек" in preview.plain
    assert (await draft_of(app, chat))["preview"]["queue"]["code"].startswith("special-")


async def test_back_to_a_document_step_offers_to_keep_the_document(
    app: App, chat: LocalChat, uploads: list[Upload]
) -> None:
    await start(app, chat)
    await chat.press(SPECIAL["kk"])
    await chat.press(0)
    await chat.send_document(PDF, "spravka.pdf", "application/pdf")
    again = prompt(await chat.press(BACK["kk"]), "kk")
    assert await state_of(app, chat) == S.disability_doc.state
    assert "Бұрын жіберілген құжат: spravka.pdf, 3 КБ" in again.plain
    assert KEEP["kk"] in again.button_texts
    prompt(await chat.press(KEEP["kk"]), "kk")
    assert await state_of(app, chat) == S.benefit.state
    assert len(uploads) == 1  # nothing uploaded twice


async def test_too_large_document_is_refused_without_downloading(
    app: App, chat: LocalChat, uploads: list[Upload]
) -> None:
    await start(app, chat)
    await chat.press(SPECIAL["kk"])
    await chat.press(0)
    before = len(app.bot.session.requests)
    replies = shown(await chat.send_document(PDF, "big.pdf", "application/pdf", size=TEN_MIB + 1))
    assert replies[0].plain.startswith("Файл тым үлкен: ең көбі 10 МБ")
    assert replies[-1].plain.startswith(HEADER["kk"])
    assert not any(isinstance(m, GetFile) for m in app.bot.session.requests[before:])
    assert uploads == []
    assert await state_of(app, chat) == S.disability_doc.state


async def test_wrong_type_is_refused_by_its_bytes(
    app: App, chat: LocalChat, uploads: list[Upload]
) -> None:
    await start(app, chat)
    await chat.press(SPECIAL["kk"])
    await chat.press(0)
    before = len(app.bot.session.requests)
    replies = shown(await chat.send_document(b"hello, I am text", "spravka.pdf", "application/pdf"))
    assert body(replies[0]) == (
        "Бұл файлды қабылдай алмаймын: тек PDF, JPEG немесе PNG түріндегі құжаттар қабылданады."
    )
    # It was downloaded (the bytes decide), but never uploaded.
    assert any(isinstance(m, GetFile) for m in app.bot.session.requests[before:])
    assert uploads == []
    assert await state_of(app, chat) == S.disability_doc.state
    assert "documents" not in await draft_of(app, chat)


async def test_a_file_telegram_will_not_hand_over(
    app: App, chat: LocalChat, uploads: list[Upload]
) -> None:
    await start(app, chat)
    await chat.press(SPECIAL["kk"])
    await chat.press(0)
    # Telegram refuses files over 20 MB to bots even when the message claimed no size.
    app.bot.session.fail_next(GetFile, bad_request("Bad Request: file is too big"))
    replies = shown(await chat.send_document(PDF, "a.pdf", "application/pdf"))
    assert body(replies[0]).startswith("Файл тым үлкен")
    app.bot.session.fail_next(GetFile, bad_request("Bad Request: invalid file_id"))
    replies = shown(await chat.send_document(PDF, "a.pdf", "application/pdf"))
    assert body(replies[0]) == "Файлды Телеграмнан алу мүмкін болмады. Құжатты қайта жіберіңіз."
    assert replies[-1].plain.startswith(HEADER["kk"])
    assert uploads == []
    assert await state_of(app, chat) == S.disability_doc.state


async def test_an_album_gets_one_answer(
    app: App, chat_ru: LocalChat, uploads: list[Upload]
) -> None:
    await start(app, chat_ru, "ru")
    await chat_ru.press(SPECIAL["ru"])
    await chat_ru.press(0)
    first = shown(await chat_ru.send_document(PDF, "a.pdf", "application/pdf", media_group_id="77"))
    second = shown(await chat_ru.send_photo(JPEG, media_group_id="77"))
    third = shown(await chat_ru.send_document(PDF, "c.pdf", "application/pdf", media_group_id="77"))
    assert first[0].plain.startswith("Отправляйте файлы по одному")
    assert first[-1].plain.startswith(HEADER["ru"])
    assert second == [] and third == []
    assert uploads == []
    assert not any(isinstance(m, GetFile) for m in app.bot.session.requests)
    # A single file afterwards is accepted as usual.
    replies = shown(await chat_ru.send_document(PDF, "справка.pdf", "application/pdf"))
    assert body(replies[0]) == "✅ Документ принят: справка.pdf, 3 КБ."
    assert await state_of(app, chat_ru) == S.benefit.state


async def test_leaving_the_special_queue_drops_the_disability_document(
    app: App, chat: LocalChat
) -> None:
    await start(app, chat)
    await chat.press(SPECIAL["kk"])
    await chat.press(0)
    await chat.send_document(PDF, "spravka.pdf", "application/pdf")
    assert "disability" in (await draft_of(app, chat))["documents"]
    await chat.press(BACK["kk"])  # benefit → disability_doc
    await chat.press(BACK["kk"])  # → state_order
    ask = prompt(await chat.press(BACK["kk"]), "kk")  # → queue_type
    assert await state_of(app, chat) == S.queue_type.state
    assert f"✅ {SPECIAL['kk']}" in ask.button_texts
    await chat.press(GENERAL["kk"])
    draft = await draft_of(app, chat)
    assert draft["queue_type"] == "general"
    assert "documents" not in draft


async def test_benefit_no_drops_a_benefit_document(app: App, chat: LocalChat) -> None:
    await start(app, chat)
    await to_benefit(chat, "kk")
    await chat.press(YES["kk"])
    await chat.send_photo(JPEG)
    assert "benefit" in (await draft_of(app, chat))["documents"]
    await chat.press(BACK["kk"])  # provider → benefit
    await chat.press(NO["kk"])
    draft = await draft_of(app, chat)
    assert draft["has_benefit"] is False and "documents" not in draft
    assert await state_of(app, chat) == S.provider.state


# --- providers ------------------------------------------------------------------------------


async def test_provider_pages_turn_in_place(app: App, chat: LocalChat) -> None:
    await start(app, chat)
    first = await to_provider(chat, "kk")
    voucher = app.services.voucher
    page1 = await voucher.list_providers(None, 1, 10)
    page2 = await voucher.list_providers(None, 2, 10)
    pages = -(-page1.total // 10)
    assert pages >= 3

    edited = await chat.press("▶")
    edits = [s for s in edited if s.kind == "edit"]
    assert len(edits) == 1 and edits[0].message_id == first.message_id
    assert not [s for s in edited if s.kind == "message"]
    assert f"{pages} беттің 2-беті" in edits[0].plain
    assert provider_ids(edits[0]) == [p.id for p in page2.items]
    assert {"◀", "▶"} <= set(edits[0].button_texts)
    assert (await fsm_data(app, chat))["provider_page"] == 2

    back = await chat.press("◀")
    assert [s.message_id for s in back if s.kind == "edit"] == [first.message_id]
    assert provider_ids(chat.last()) == [p.id for p in page1.items]

    # The last page has no ▶; a retry or /help shows the page the parent was on.
    for _ in range(pages - 1):
        await chat.press("▶")
    assert "▶" not in chat.last().button_texts
    again = prompt(await chat.send("/help"), "kk")
    assert f"{pages} беттің {pages}-беті" in again.plain


async def test_search_by_kazakh_and_russian_substrings(app: App, chat_ru: LocalChat) -> None:
    await start(app, chat_ru, "ru")
    await to_provider(chat_ru, "ru")
    voucher = app.services.voucher
    for query in ("оқушылар", "ДЕТСКАЯ МУЗЫК"):
        found = prompt(await chat_ru.send(query), "ru")
        expected = (await voucher.list_providers(query, 1, 10)).items
        assert expected, query
        assert provider_ids(found) == [p.id for p in expected]
        assert f"По запросу «{query}»" in found.plain
        for provider in expected:
            assert provider.name.ru in found.plain  # names in the parent's language
        assert "📋 Все организации" in found.button_texts
    # The search is kept: /help shows the same results.
    again = prompt(await chat_ru.send("/help"), "ru")
    assert "По запросу «ДЕТСКАЯ МУЗЫК»" in again.plain


async def test_nothing_found_is_escaped_and_offers_all(app: App, chat: LocalChat) -> None:
    await start(app, chat)
    await to_provider(chat, "kk")
    nothing = prompt(await chat.send("<b>жоқ</b> & т.б."), "kk")
    assert "«<b>жоқ</b> & т.б.» бойынша ештеңе табылмады" in nothing.plain
    assert "&lt;b&gt;жоқ&lt;/b&gt; &amp; т.б." in (nothing.text or "")
    assert provider_ids(nothing) == []
    everything = await chat.press("📋 Барлық ұйымдар")
    edit = [s for s in everything if s.kind == "edit"]
    assert [s.message_id for s in edit] == [nothing.message_id]
    first_page = await app.services.voucher.list_providers(None, 1, 10)
    assert provider_ids(edit[0]) == [p.id for p in first_page.items]
    assert (await fsm_data(app, chat))["provider_q"] is None


async def test_service_unavailable_at_the_provider_list_keeps_the_step(
    app: App, chat: LocalChat, no_backoff: list[float]
) -> None:
    await start(app, chat)
    await to_benefit(chat, "kk")
    await app.services.voucher.sandbox_set_faults(failure_rate=1.0)
    failed = shown(await chat.press(NO["kk"]))[-1]
    assert failed.plain.startswith(HEADER["kk"])
    assert "Ваучер қызметі қазір жауап бермей тұр" in failed.plain
    assert "🔄 Қайталау" in failed.button_texts
    assert await state_of(app, chat) == S.provider.state
    assert len(no_backoff) == 3  # the list is a GET: retried before the parent hears of it
    await app.services.voucher.sandbox_set_faults(failure_rate=0.0)
    retried = prompt(await chat.press("🔄 Қайталау"), "kk")
    assert await state_of(app, chat) == S.provider.state
    assert len(provider_ids(retried)) == 10


# --- groups and the preview -------------------------------------------------------------------


async def test_groups_are_filtered_by_the_age_on_first_of_september(
    app: App, chat: LocalChat
) -> None:
    age = 10
    provider, groups = await find_provider(
        app,
        lambda gs: any(fits(g, age) for g in gs) and any(not fits(g, age) for g in gs),
    )
    await start(app, chat)
    await to_provider(chat, "kk")
    listing = await open_provider(chat, provider, "kk")
    offered = group_ids(listing)
    by_id = {g.id: g for g in groups}
    assert offered and all(fits(by_id[i], age) for i in offered)
    hidden = [g for g in groups if not fits(g, age)]
    assert set(offered) == {g.id for g in groups if fits(g, age)}
    assert not set(offered) & {g.id for g in hidden}
    assert f"тағы {len(hidden)} топ көрсетілмеді" in listing.plain
    for group_id in offered:
        g = by_id[group_id]
        assert f"{g.age_min}–{g.age_max} жас" in listing.plain
    # A group without seats is offered, marked, and may be chosen.
    for group_id in offered:
        label = next(t for t, d in buttons_with(listing, "ch-g:") if group_id in d)
        assert label.startswith("⚠️") == (by_id[group_id].seats_free == 0)


async def test_a_full_group_is_shown_marked_and_can_be_chosen(app: App, chat: LocalChat) -> None:
    provider, groups = await find_provider(
        app, lambda gs: any(fits(g, 10) and g.seats_free == 0 for g in gs)
    )
    full = next(g for g in groups if fits(g, 10) and g.seats_free == 0)
    await start(app, chat)
    await to_provider(chat, "kk")
    listing = await open_provider(chat, provider, "kk")
    assert "бос орын жоқ (кезекке бәрібір тұруға болады)" in listing.plain
    label = next(t for t, d in buttons_with(listing, "ch-g:") if full.id in d)
    assert label.startswith("⚠️")
    prompt(await chat.press(label), "kk")
    assert await state_of(app, chat) == S.preview.state
    assert (await draft_of(app, chat))["group"]["id"] == full.id


async def test_no_fitting_group_offers_another_provider(app: App, chat_ru: LocalChat) -> None:
    age = 3  # born 15.03.2023: no group in the catalogue takes a three-year-old
    provider, _ = await find_provider(app, lambda gs: not any(fits(g, age) for g in gs))
    await start(app, chat_ru, "ru", child=child_iin(23, 3, 15))
    await to_provider(chat_ru, "ru")
    listing = await open_provider(chat_ru, provider, "ru")
    assert group_ids(listing) == []
    assert "1 сентября 2026 года будет 3 года" in listing.plain
    again = prompt(await chat_ru.press("🔁 Выбрать другую организацию"), "ru")
    assert await state_of(app, chat_ru) == S.provider.state
    assert provider_ids(again)


async def test_age_out_of_range_returns_to_the_group_list(app: App, chat: LocalChat) -> None:
    provider, groups = await find_provider(app, lambda gs: any(not fits(g, 10) for g in gs))
    outside = next(g for g in groups if not fits(g, 10))
    await start(app, chat)
    await to_provider(chat, "kk")
    await open_provider(chat, provider, "kk")
    # Forge what the buttons would never offer: a group the child is too young or old for.
    await app.services.store.update_draft(chat.user_id, group=outside.model_dump(mode="json"))
    await set_state(app, chat, S.preview.state)
    replies = shown(await chat.send("/help"))
    assert any(
        body(s) == "Таңдалған топ баланың жасына сай келмейді. Басқа топ таңдаңыз." for s in replies
    )
    assert await state_of(app, chat) == S.group.state
    assert "group" not in await draft_of(app, chat)
    assert outside.id not in group_ids(prompt(replies, "kk"))


async def test_document_required_goes_to_the_disability_document(app: App, chat: LocalChat) -> None:
    await start(app, chat)
    await to_provider(chat, "kk")
    await chat.press(0)
    await chat.press(0)
    assert await state_of(app, chat) == S.preview.state
    # Forge a special queue without its document.
    await app.services.store.update_draft(chat.user_id, queue_type="special")
    replies = shown(await chat.send("/help"))
    assert any("мүгедектік туралы құжат қажет" in (s.plain or "") for s in replies)
    assert await state_of(app, chat) == S.disability_doc.state
    assert "мүгедектігі туралы анықтаманы" in prompt(replies, "kk").plain


async def test_back_through_the_step(app: App, chat: LocalChat) -> None:
    await start(app, chat)
    await to_provider(chat, "kk")
    await chat.press(0)
    await chat.press(0)
    expected = [S.group, S.provider, S.benefit, S.state_order, S.queue_type]
    for state in expected:
        replies = await chat.press(BACK["kk"])
        prompt(replies, "kk")
        assert await state_of(app, chat) == state.state
    # Answers were kept on the way back.
    draft = await draft_of(app, chat)
    assert draft["queue_type"] == "general" and draft["provider"] and draft["group"]
    replies = shown(await chat.press(BACK["kk"]))
    assert await state_of(app, chat) == S.child_confirm.state
    assert replies[-1].plain.startswith("Қадам 2/5")


async def test_editing_goes_from_the_benefit_to_the_preview_and_then_review(
    app: App, chat: LocalChat
) -> None:
    await start(app, chat)
    await to_provider(chat, "kk")
    await chat.press(0)
    await chat.press(0)
    await chat.press(CONTINUE["kk"])
    # Step 4 answered, then the review's *Edit queue and documents*: queue_type, editing set.
    await app.services.store.update_draft(
        chat.user_id, editing=True, notification={"channel": "telegram", "language": "kk"}
    )
    await set_state(app, chat, S.queue_type.state)
    await chat.send("/help")
    await to_benefit(chat, "kk")
    preview = prompt(await chat.press(NO["kk"]), "kk")
    assert await state_of(app, chat) == S.preview.state
    assert "Жалпы кезек" in preview.plain
    replies = shown(await chat.press(CONTINUE["kk"]))
    assert await state_of(app, chat) == S.review.state
    assert replies[-1].plain.startswith("Қадам 5/5")


async def test_language_switch_reasks_in_the_new_language(app: App, chat: LocalChat) -> None:
    await start(app, chat)
    await to_provider(chat, "kk")
    await chat.send("/language")
    replies = await chat.press("🇷🇺 Русский")
    listing = prompt(replies, "ru")
    assert "Страница 1 из" in listing.plain
    assert await state_of(app, chat) == S.provider.state


async def test_typed_text_where_a_button_is_expected(app: App, chat: LocalChat) -> None:
    await start(app, chat)
    replies = shown(await chat.send("жалпы"))
    assert body(replies[0]) == "Төмендегі батырмалардың бірін басыңыз."
    assert await state_of(app, chat) == S.queue_type.state
    assert GENERAL["kk"] in prompt(replies, "kk").button_texts

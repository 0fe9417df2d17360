"""LocalBotSession and LocalChat: a tiny real Dispatcher driven the way Telegram would drive it."""

from __future__ import annotations

import asyncio
import hashlib
import html
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from aiogram import Bot, Dispatcher, F, Router
from aiogram.client.default import DefaultBotProperties
from aiogram.exceptions import TelegramBadRequest, TelegramForbiddenError, TelegramRetryAfter
from aiogram.filters import Command
from aiogram.methods import AnswerCallbackQuery, EditMessageText, SendMessage
from aiogram.types import (
    BotCommand,
    BufferedInputFile,
    CallbackQuery,
    InaccessibleMessage,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    User,
)

from bot.local_chat import LocalChat
from bot.local_session import (
    Button,
    LocalBotSession,
    Sent,
    UnsupportedMethodError,
    bad_request,
    forbidden,
    html_to_plain,
    parse_html,
    retry_after,
)
from services.clock import FakeClock

TOKEN = "4242:LOCAL-TEST-TOKEN"
CHAT = 1001
START_KB = InlineKeyboardMarkup(
    inline_keyboard=[
        [
            InlineKeyboardButton(text="Да", callback_data="yes"),
            InlineKeyboardButton(text="Нет", callback_data="no"),
        ],
        [InlineKeyboardButton(text="Сайт ed24", url="https://ed24.kz")],
    ]
)
PHONE_KB = ReplyKeyboardMarkup(
    keyboard=[
        [KeyboardButton(text="📱 Поделиться номером", request_contact=True)],
        [KeyboardButton(text="Отмена")],
    ],
    resize_keyboard=True,
)


@dataclass
class Env:
    dp: Dispatcher
    bot: Bot
    session: LocalBotSession
    chat: LocalChat
    clock: FakeClock
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    update_ids: list[int] = field(default_factory=list)


def build_router(env: Env) -> Router:
    """The little bot under test: each handler exercises one Bot API path."""
    router = Router()

    @router.message(Command("start"))
    async def start(message: Message) -> None:
        await message.answer("<b>Привет</b>, выберите:", reply_markup=START_KB)

    @router.message(Command("phone"))
    async def ask_phone(message: Message) -> None:
        await message.answer("Поделитесь номером", reply_markup=PHONE_KB)

    @router.message(Command("later"))
    async def later(message: Message, bot: Bot) -> None:
        async def send_later() -> None:
            await env.gate.wait()
            await bot.send_message(message.chat.id, "Ответ пришёл позже")

        env.tasks.append(asyncio.create_task(send_later()))
        await message.answer("Жду")

    @router.message(Command("returned"))
    async def returned(message: Message) -> Any:
        return message.answer("Возвращённый метод")  # executed like polling does

    @router.message(F.contact)
    async def contact(message: Message) -> None:
        assert message.contact is not None and message.from_user is not None
        whose = "own" if message.contact.user_id == message.from_user.id else "foreign"
        await message.answer(
            f"{whose} {message.contact.phone_number}", reply_markup=ReplyKeyboardRemove()
        )

    @router.message(F.document)
    async def document(message: Message, bot: Bot) -> None:
        assert message.document is not None
        try:
            buffer = await bot.download(message.document)
        except TelegramBadRequest as exc:
            await message.answer(f"failed: {html.escape(exc.message)}")
            return
        assert buffer is not None
        data = buffer.read()
        digest = hashlib.sha256(data).hexdigest()[:12]
        await message.answer(f"size={len(data)} sha={digest} name={message.document.file_name}")

    @router.message(F.photo)
    async def photo(message: Message, bot: Bot) -> None:
        assert message.photo is not None
        buffer = await bot.download(message.photo[-1])
        assert buffer is not None
        await message.answer(f"photo={len(buffer.read())} sizes={len(message.photo)}")

    @router.message(F.sticker | F.voice)
    async def unexpected(message: Message) -> None:
        await message.answer("Я понимаю только текст")

    @router.message(F.text)
    async def echo(message: Message) -> None:
        assert message.text is not None
        await message.answer(html.escape(message.text))

    @router.callback_query(F.data == "yes")
    async def yes(callback: CallbackQuery) -> None:
        await callback.answer("Принято")
        assert isinstance(callback.message, Message)
        await callback.message.edit_text("Вы выбрали: <i>да</i>")

    @router.callback_query(F.data == "no")
    async def no(callback: CallbackQuery) -> None:
        await callback.answer()
        assert isinstance(callback.message, Message)
        again = InlineKeyboardButton(text="Снова", callback_data="again")
        await callback.message.edit_reply_markup(
            reply_markup=InlineKeyboardMarkup(inline_keyboard=[[again]])
        )

    @router.callback_query()
    async def other(callback: CallbackQuery) -> None:
        stale = isinstance(callback.message, InaccessibleMessage)
        await callback.answer(f"Устарело: {callback.data} stale={stale}", show_alert=True)

    return router


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    clock = FakeClock(datetime(2026, 9, 10, 5, 0, tzinfo=UTC))
    session = LocalBotSession(clock=clock)
    bot = Bot(TOKEN, session=session, default=DefaultBotProperties(parse_mode="HTML"))
    dp = Dispatcher()
    chat = LocalChat(dp, bot, user_id=CHAT, first_name="Айгүл", language_code="kk")
    state = Env(dp=dp, bot=bot, session=session, chat=chat, clock=clock)
    dp.include_router(build_router(state))

    @dp.update.outer_middleware()
    async def remember_update_id(handler: Any, event: Any, data: dict[str, Any]) -> Any:
        state.update_ids.append(event.update_id)
        return await handler(event, data)

    yield state
    state.gate.set()
    await asyncio.gather(*state.tasks)
    await bot.session.close()


# --- typed results and recording ---------------------------------------------------------


async def test_send_message_returns_a_bound_message_like_telegram(env: Env) -> None:
    first = await env.bot.send_message(CHAT, "  <b>Привет</b> &amp; 😀 <i>мир</i>\n\n")
    second = await env.bot.send_message(CHAT, "второе", reply_markup=START_KB)

    assert isinstance(first, Message)
    assert (first.message_id, second.message_id) == (1, 2)
    assert first.chat.id == CHAT and first.chat.type == "private"
    assert first.from_user is not None and first.from_user.is_bot
    assert first.from_user.id == env.bot.id
    assert first.date == env.clock.now()
    # Telegram returns plain text with entities (UTF-16 offsets) and trims whitespace
    assert first.text == "Привет & 😀 мир"
    assert [(e.type, e.offset, e.length) for e in first.entities or []] == [
        ("bold", 0, 6),
        ("italic", 12, 3),
    ]
    assert first.html_text == "<b>Привет</b> &amp; 😀 <i>мир</i>"
    assert second.reply_markup is not None
    assert second.reply_markup.model_dump() == START_KB.model_dump()
    # the result is bound to the bot, so shortcuts work
    edited = await second.edit_text("второе, исправлено")
    assert isinstance(edited, Message) and edited.edit_date is not None


async def test_get_me_is_the_bot(env: Env) -> None:
    me = await env.bot.me()
    assert isinstance(me, User)
    assert me.is_bot and me.id == env.bot.id and me.username == "kezek_bot"


async def test_every_request_is_recorded_in_order_with_views(env: Env) -> None:
    await env.bot.set_my_commands([BotCommand(command="start", description="Начать")])
    await env.bot.send_chat_action(CHAT, "typing")
    await env.bot.send_message(CHAT, "<b>один</b>")
    await env.bot.send_message(2002, "другому")

    assert [type(m).__name__ for m in env.session.requests] == [
        "SetMyCommands",
        "SendChatAction",
        "SendMessage",
        "SendMessage",
    ]
    assert [s.kind for s in env.session.sent()] == ["setMyCommands", "action", "message", "message"]
    mine = env.session.sent(CHAT)
    assert [s.kind for s in mine] == ["action", "message"]
    assert mine[1].text == "<b>один</b>" and mine[1].plain == "один"
    assert mine[1].parse_mode == "HTML" and mine[1].chat_id == CHAT
    assert [s.text for s in env.session.sent(2002)] == ["другому"]


async def test_listener_sees_every_record_until_unsubscribed(env: Env) -> None:
    seen: list[Sent] = []
    unsubscribe = env.session.on_send(seen.append)
    await env.bot.send_message(CHAT, "раз")
    unsubscribe()
    await env.bot.send_message(CHAT, "два")
    assert [s.text for s in seen] == ["раз"]


async def test_a_failing_listener_does_not_break_sending(env: Env) -> None:
    def broken(sent: Sent) -> None:
        raise RuntimeError("printer is broken")

    env.session.on_send(broken)
    message = await env.bot.send_message(CHAT, "всё равно отправлено")
    assert message.text == "всё равно отправлено"


# --- the chat: text, buttons, edits -------------------------------------------------------


async def test_send_returns_what_the_bot_answered_with_buttons(env: Env) -> None:
    sent = await env.chat.send("/start")

    assert [s.kind for s in sent] == ["message"]
    reply = sent[0]
    assert reply.plain == "Привет, выберите:" and reply.text == "<b>Привет</b>, выберите:"
    assert reply.buttons == [
        [Button("Да", "yes"), Button("Нет", "no")],
        [Button("Сайт ed24", url="https://ed24.kz")],
    ]
    assert not reply.reply_keyboard and not reply.remove_keyboard
    assert env.chat.last() == reply
    # the user's message and the bot's share one id sequence, as in Telegram
    assert reply.message_id == 2


async def test_press_by_text_answers_and_edit_is_visible(env: Env) -> None:
    await env.chat.send("/start")
    sent = await env.chat.press("Да")

    assert [s.kind for s in sent] == ["callback_answer", "edit"]
    assert sent[0].text == "Принято" and sent[0].chat_id == CHAT
    edit = env.chat.last()
    assert edit.kind == "edit" and edit.message_id == 2
    assert edit.plain == "Вы выбрали: да"
    assert edit.buttons == []  # an edit that does not repeat the keyboard removes it
    current = env.session.current(CHAT, 2)
    assert current is not None and current.plain == "Вы выбрали: да"


async def test_press_by_index_and_markup_only_edit_keeps_the_text(env: Env) -> None:
    await env.chat.send("/start")
    await env.chat.press(1)  # "Нет"

    edit = env.chat.last()
    assert edit.kind == "edit"
    assert edit.text == "<b>Привет</b>, выберите:"
    assert edit.buttons == [[Button("Снова", "again")]]
    sent = await env.chat.press("Снова")
    assert sent[-1].kind == "callback_answer" and sent[-1].show_alert
    assert sent[-1].text == "Устарело: again stale=False"


async def test_press_by_unique_substring_and_clear_errors(env: Env) -> None:
    await env.chat.send("/start")
    with pytest.raises(AssertionError, match=r"no button .Может быть.*.Да., .Нет."):
        await env.chat.press("Может быть")
    with pytest.raises(AssertionError, match="not a callback button"):
        await env.chat.press("ed24")
    with pytest.raises(AssertionError, match="no button #7"):
        await env.chat.press(7)
    sent = await env.chat.press("Не")
    assert sent[-1].buttons == [[Button("Снова", "again")]]


async def test_ambiguous_substring_is_refused(env: Env) -> None:
    await env.bot.send_message(
        CHAT,
        "Выберите",
        reply_markup=InlineKeyboardMarkup(
            inline_keyboard=[
                [
                    InlineKeyboardButton(text="Кружок 1", callback_data="c1"),
                    InlineKeyboardButton(text="Кружок 2", callback_data="c2"),
                ]
            ]
        ),
    )
    with pytest.raises(AssertionError, match="matches several buttons"):
        await env.chat.press("Кружок")


async def test_pressing_with_nothing_to_press_fails_with_history(env: Env) -> None:
    await env.chat.send("привет")
    with pytest.raises(AssertionError, match=r"(?s)no buttons to press.*привет"):
        await env.chat.press("Да")


async def test_press_an_older_message_by_id(env: Env) -> None:
    await env.chat.send("/start")  # bot message 2
    await env.chat.send("/start")  # bot message 4
    sent = await env.chat.press("Да", message_id=2)
    assert sent[-1].kind == "edit" and sent[-1].message_id == 2
    latest = env.session.current(CHAT, 4)
    assert latest is not None and latest.buttons  # the newer one is untouched


async def test_forged_data_on_a_deleted_message_arrives_as_inaccessible(env: Env) -> None:
    await env.chat.send("/start")
    assert await env.bot.delete_message(CHAT, 2)
    sent = await env.chat.press_data("yes:forged", message_id=2)
    assert sent == [
        Sent(
            kind="callback_answer",
            chat_id=CHAT,
            text="Устарело: yes:forged stale=True",
            plain="Устарело: yes:forged stale=True",
            show_alert=True,
        )
    ]


async def test_reply_keyboard_contact_button_shares_own_contact(env: Env) -> None:
    sent = await env.chat.send("/phone")
    assert sent[0].reply_keyboard
    assert sent[0].buttons == [
        [Button("📱 Поделиться номером", request_contact=True)],
        [Button("Отмена")],
    ]

    answer = await env.chat.press("Поделиться")
    assert answer[-1].text == "own +77012345678"
    assert answer[-1].remove_keyboard
    with pytest.raises(AssertionError, match="no buttons to press"):
        await env.chat.press("Отмена")  # the keyboard was removed


async def test_reply_keyboard_text_button_sends_its_text(env: Env) -> None:
    await env.chat.send("/phone")
    sent = await env.chat.press("Отмена")
    assert [s.text for s in sent] == ["Отмена"]  # the echo handler got the button's text


async def test_newest_keyboard_wins_between_inline_and_reply(env: Env) -> None:
    await env.chat.send("/start")
    await env.chat.send("/phone")
    sent = await env.chat.press(1)  # index 1 of the newest: the reply keyboard's "Отмена"
    assert [s.text for s in sent] == ["Отмена"]
    sent = await env.chat.press("Да")  # exact text still finds the older inline message
    assert sent[-1].kind == "edit"


async def test_contact_own_versus_forwarded(env: Env) -> None:
    own = await env.chat.share_contact("+77015550011")
    other = await env.chat.share_contact("+77015550022", own=False)
    assert own[-1].text == "own +77015550011"
    assert other[-1].text == "foreign +77015550022"


# --- files --------------------------------------------------------------------------------


async def test_document_bytes_round_trip_through_download(env: Env) -> None:
    content = b"%PDF-1.4\n" + bytes(range(256)) * 300  # more than one 64 KB chunk
    sent = await env.chat.send_document(content, "справка.pdf", "application/pdf")
    digest = hashlib.sha256(content).hexdigest()[:12]
    assert sent[-1].text == f"size={len(content)} sha={digest} name=справка.pdf"


async def test_too_big_document_cannot_be_downloaded(env: Env) -> None:
    sent = await env.chat.send_document(b"x", "big.pdf", "application/pdf", size=25 * 2**20)
    assert sent[-1].plain == "failed: Bad Request: file is too big"


async def test_photo_comes_in_sizes_and_downloads(env: Env) -> None:
    sent = await env.chat.send_photo(b"\xff\xd8\xff" + b"j" * 500, media_group_id="album-1")
    assert sent[-1].text == "photo=503 sizes=2"


async def test_sticker_and_voice_are_real_updates(env: Env) -> None:
    assert (await env.chat.send_sticker())[-1].text == "Я понимаю только текст"
    assert (await env.chat.send_voice())[-1].text == "Я понимаю только текст"


async def test_bot_sent_document_is_recorded_and_downloadable(env: Env) -> None:
    message = await env.bot.send_document(
        CHAT, BufferedInputFile(b"col1;col2\n", filename="digest.csv"), caption="<b>Сводка</b>"
    )
    record = env.chat.last()
    assert record.kind == "document" and record.file_name == "digest.csv"
    assert record.content == b"col1;col2\n" and record.plain == "Сводка"
    assert message.document is not None and message.document.mime_type == "text/csv"
    buffer = await env.bot.download(message.document)
    assert buffer is not None and buffer.read() == b"col1;col2\n"
    with pytest.raises(TelegramBadRequest, match="no text in the message"):
        await env.bot.edit_message_text("текст", chat_id=CHAT, message_id=message.message_id)
    edited = await env.bot.edit_message_caption(
        chat_id=CHAT, message_id=message.message_id, caption="Новая"
    )
    assert isinstance(edited, Message) and edited.caption == "Новая"
    assert env.chat.last().kind == "edit" and env.chat.last().plain == "Новая"


async def test_unknown_file_id_is_refused(env: Env) -> None:
    with pytest.raises(TelegramBadRequest, match="invalid file_id"):
        await env.bot.download("no-such-file")


# --- validation like Telegram ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", "message text is empty"),
        ("  \n ", "message text is empty"),
        ("<b></b>", "message text is empty"),
        ("я" * 4097, "message is too long"),
        ("line<br>break", 'Unsupported start tag "br"'),
        ("5 < 6", "Unsupported start tag at byte offset 2"),
        ("<b>жирный", 'find end tag corresponding to start tag "b"'),
        ("<b><i>x</b></i>", 'expected "</i>", found "</b>"'),
        ("x</b>", 'Unexpected end tag "b"'),
        ('<span class="x">s</span>', "tg-spoiler"),
    ],
)
async def test_telegram_refuses_bad_text(env: Env, text: str, error: str) -> None:
    with pytest.raises(TelegramBadRequest, match=error):
        await env.bot.send_message(CHAT, text)
    assert env.session.sent() == []  # nothing was delivered


async def test_text_at_the_limits_and_lenient_ampersand_pass(env: Env) -> None:
    longest = await env.bot.send_message(CHAT, "<b>" + "я" * 4096 + "</b>")
    assert longest.text is not None and len(longest.text) == 4096
    loose = await env.bot.send_message(CHAT, "A & B > C, 1 &lt; 2, &nbsp;")
    assert loose.text == "A & B > C, 1 < 2, &nbsp;"
    raw = await env.bot.send_message(CHAT, "<b>не HTML</b>", parse_mode=None)
    assert raw.text == "<b>не HTML</b>" and not raw.entities


async def test_long_callback_data_and_plain_inline_button_are_refused(env: Env) -> None:
    too_long = InlineKeyboardButton(text="x", callback_data="д" * 33)  # 66 bytes
    with pytest.raises(TelegramBadRequest, match="BUTTON_DATA_INVALID"):
        await env.bot.send_message(
            CHAT, "t", reply_markup=InlineKeyboardMarkup(inline_keyboard=[[too_long]])
        )
    fits = InlineKeyboardButton(text="x", callback_data="д" * 32)  # 64 bytes
    await env.bot.send_message(
        CHAT, "t", reply_markup=InlineKeyboardMarkup(inline_keyboard=[[fits]])
    )
    with pytest.raises(TelegramBadRequest, match="Text buttons are unallowed"):
        await env.bot.send_message(
            CHAT,
            "t",
            reply_markup=InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text="x")]]),
        )


async def test_caption_limit(env: Env) -> None:
    with pytest.raises(TelegramBadRequest, match="caption is too long"):
        await env.bot.send_document(
            CHAT, BufferedInputFile(b"1", filename="a.txt"), caption="я" * 1025
        )


async def test_edits_fail_where_telegram_fails(env: Env) -> None:
    message = await env.bot.send_message(CHAT, "<b>Шаг 1</b>", reply_markup=START_KB)
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await message.edit_text("<b>Шаг 1</b>", reply_markup=START_KB)
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await env.bot.edit_message_text("x", chat_id=CHAT, message_id=999)
    await env.chat.send("моё сообщение")  # message 2, the user's
    with pytest.raises(TelegramBadRequest, match="message can't be edited"):
        await env.bot.edit_message_text("x", chat_id=CHAT, message_id=2)
    assert await env.bot.delete_message(CHAT, message.message_id)
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await message.edit_text("поздно")
    with pytest.raises(TelegramBadRequest, match="message to delete not found"):
        await env.bot.delete_message(CHAT, message.message_id)
    assert env.chat.history()[-1].kind == "delete"


async def test_inline_message_edit_returns_true(env: Env) -> None:
    assert await env.bot.edit_message_text("x", inline_message_id="inline-1") is True


async def test_callback_answered_twice_is_refused(env: Env) -> None:
    query_id = env.session.new_callback_id(CHAT)
    assert await env.bot.answer_callback_query(query_id)
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await env.bot.answer_callback_query(query_id)


async def test_wrong_chat_action_is_refused(env: Env) -> None:
    with pytest.raises(TelegramBadRequest, match="wrong type of the chat action"):
        await env.bot.send_chat_action(CHAT, "dancing")


async def test_unknown_method_names_itself(env: Env) -> None:
    with pytest.raises(UnsupportedMethodError, match="getChat"):
        await env.bot.get_chat(CHAT)


# --- faults ---------------------------------------------------------------------------------


async def test_fail_next_raises_once_and_the_retry_succeeds(env: Env) -> None:
    env.session.fail_next(SendMessage, retry_after(3))
    with pytest.raises(TelegramRetryAfter) as caught:
        await env.bot.send_message(CHAT, "первая попытка")
    assert caught.value.retry_after == 3
    await env.bot.send_message(CHAT, "вторая попытка")
    assert len(env.session.requests) == 2  # both attempts reached "Telegram"
    assert [s.text for s in env.session.sent(CHAT)] == ["вторая попытка"]


async def test_fail_next_matches_the_method_type_and_takes_instances(env: Env) -> None:
    env.session.fail_next(EditMessageText, bad_request("Bad Request: message is not modified"))
    env.session.fail_next(AnswerCallbackQuery, RuntimeError("boom"))
    env.session.fail_next(SendMessage, forbidden())
    with pytest.raises(TelegramForbiddenError, match="blocked"):
        await env.bot.send_message(CHAT, "a")
    sent = await env.bot.send_message(CHAT, "b")
    with pytest.raises(TelegramBadRequest, match="not modified"):
        await sent.edit_text("c")
    with pytest.raises(RuntimeError, match="boom"):
        await env.bot.answer_callback_query("q")
    assert (await sent.edit_text("c")).text == "c"  # type: ignore[union-attr]


async def test_blocked_user_gets_403_until_unblocked(env: Env) -> None:
    env.session.block(CHAT)
    with pytest.raises(TelegramForbiddenError, match="bot was blocked by the user"):
        await env.bot.send_message(CHAT, "привет")
    env.session.unblock(CHAT)
    assert (await env.bot.send_message(CHAT, "привет")).text == "привет"


# --- updates and background messages ---------------------------------------------------------


async def test_updates_get_increasing_ids_and_returned_methods_run(env: Env) -> None:
    sent = await env.chat.send("/returned")
    await env.chat.send("эхо <тег>")
    assert [s.text for s in sent] == ["Возвращённый метод"]
    assert env.chat.last().plain == "эхо <тег>"
    assert env.update_ids == [1, 2]


async def test_raw_update_can_be_fed_twice(env: Env) -> None:
    from aiogram.types import Update

    update = Update.model_validate(
        {
            "update_id": 77,
            "message": {
                "message_id": 50,
                "date": 0,
                "chat": env.chat.chat,
                "from": env.chat.user,
                "text": "дубль",
            },
        }
    )
    first = await env.chat.feed(update)
    second = await env.chat.feed(update)
    assert [s.text for s in first] == [s.text for s in second] == ["дубль"]
    assert env.update_ids == [77, 77]


async def test_wait_for_a_message_sent_later_by_a_background_task(env: Env) -> None:
    sent = await env.chat.send("/later")
    assert [s.text for s in sent] == ["Жду"]
    env.gate.set()
    later = await env.chat.wait_for("позже", timeout=5.0)
    assert later.text == "Ответ пришёл позже"


async def test_wait_for_sees_what_arrived_before_it_was_called(env: Env) -> None:
    await env.chat.send("/later")
    env.gate.set()
    await env.tasks[0]  # the background message is already there
    later = await env.chat.wait_for(lambda s: s.kind == "message" and "позже" in (s.text or ""))
    assert later.plain == "Ответ пришёл позже"


async def test_wait_for_ignores_what_a_call_already_returned_and_times_out(env: Env) -> None:
    await env.chat.send("/later")
    with pytest.raises(AssertionError, match=r"within 0.05 s(.|\n)*'Жду'"):
        await env.chat.wait_for("Жду", timeout=0.05)


async def test_local_chat_needs_the_local_session() -> None:
    bot = Bot(TOKEN)
    with pytest.raises(TypeError, match="LocalBotSession"):
        LocalChat(Dispatcher(), bot)
    await bot.session.close()


# --- HTML helpers -----------------------------------------------------------------------------


def test_parse_html_entities_use_utf16_offsets_and_pre_language() -> None:
    plain, entities = parse_html(
        '😀 <a href="https://ed24.kz">сайт</a> <pre><code class="language-py">x</code></pre>'
    )
    assert plain == "😀 сайт x"
    assert entities == [
        {"type": "text_link", "offset": 3, "length": 4, "url": "https://ed24.kz"},
        {"type": "pre", "offset": 8, "length": 1, "language": "py"},
    ]


def test_html_to_plain_shows_links_and_survives_bad_html() -> None:
    assert html_to_plain('<b>Итог</b>: <a href="https://ed24.kz">портал</a>') == (
        "Итог: портал (https://ed24.kz)"
    )
    assert html_to_plain("<a href='https://x.kz'>https://x.kz</a>") == "https://x.kz"
    assert html_to_plain("5 < 6") == "5 < 6"

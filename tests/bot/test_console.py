"""The demo's terminal transport, driven by scripted stdin against a tiny real Dispatcher."""

from __future__ import annotations

import asyncio
import html
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiogram import Bot, Dispatcher, F, Router
from aiogram.client.default import DefaultBotProperties
from aiogram.filters import Command
from aiogram.types import (
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
)

from bot.console import run_console
from bot.local_chat import LocalChat
from bot.local_session import LocalBotSession
from services.voucher.models import ConsentAnswered, InboxMessage, Localized

PHONE = "+77015550011"
AT = datetime(2026, 9, 10, 5, 0, tzinfo=UTC)


class FakePhone:
    """Plays the sandbox's inbox and consent answers; the real sandbox is tested elsewhere."""

    def __init__(self) -> None:
        self.messages: list[InboxMessage] = []
        self.answers: list[tuple[str, str]] = []
        self.answered = asyncio.Event()
        self.down = False
        self.polls = 0
        self.polled = asyncio.Event()

    def deliver(self, channel: str, kk: str, ru: str, **extra: str) -> None:
        self.messages.append(
            InboxMessage(at=AT, channel=channel, text=Localized(kk=kk, ru=ru), **extra)  # type: ignore[arg-type]
        )

    async def sandbox_inbox(self, phone: str) -> list[InboxMessage]:
        assert phone == PHONE
        self.polls += 1
        self.polled.set()
        if self.down:
            raise ConnectionError("sandbox down")
        return list(self.messages)

    async def sandbox_answer_consent(self, consent_id: str, answer: str) -> ConsentAnswered:
        self.answers.append((consent_id, answer))
        self.answered.set()
        return ConsentAnswered(consent_id=consent_id, status="granted")


@dataclass
class Demo:
    session: LocalBotSession
    chat: LocalChat
    phone: FakePhone
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    async def run(
        self, script: str, *, is_tty: bool = False, voucher: bool = True, **kwargs: Any
    ) -> list[str]:
        out = io.StringIO()
        await run_console(
            self.chat,
            self.session,
            voucher=self.phone if voucher else None,
            demo_phone=PHONE,
            stdin=io.StringIO(script),
            stdout=out,
            is_tty=is_tty,
            **{"inbox_interval": 3600.0, **kwargs},
        )
        return out.getvalue().splitlines()


def build_router(demo: Demo) -> Router:
    router = Router()

    @router.message(Command("start"))
    async def start(message: Message) -> None:
        keyboard = InlineKeyboardMarkup(
            inline_keyboard=[
                [
                    InlineKeyboardButton(text="Қазақша", callback_data="lang:kk"),
                    InlineKeyboardButton(text="Русский", callback_data="lang:ru"),
                ],
                [InlineKeyboardButton(text="ed24.kz", url="https://ed24.kz")],
            ]
        )
        await message.answer("Тілді таңдаңыз\nВыберите язык", reply_markup=keyboard)

    @router.callback_query(F.data == "lang:kk")
    async def kazakh(callback: CallbackQuery, bot: Bot) -> None:
        await callback.answer()
        assert isinstance(callback.message, Message)
        await callback.message.edit_text("<b>Қазақ тілі</b> таңдалды")
        share = KeyboardButton(text="📱 Нөмірді жіберу", request_contact=True)
        await bot.send_message(
            callback.message.chat.id,
            "Телефон нөміріңізді жіберіңіз",
            reply_markup=ReplyKeyboardMarkup(keyboard=[[share]], resize_keyboard=True),
        )

    @router.message(Command("deliver"))
    async def deliver(message: Message, bot: Bot) -> None:
        polls = demo.phone.polls
        demo.phone.deliver("ed24_app", kk="Код: 1111", ru="Код: 1111", otp_code="1111")

        async def after_two_polls() -> None:
            while demo.phone.polls < polls + 2:
                await demo.phone.polled.wait()
                demo.phone.polled.clear()
            await bot.send_message(message.chat.id, "Телефон екі рет тексерілді")

        demo.tasks.append(asyncio.create_task(after_two_polls()))

    @router.message(Command("broadcast"))
    async def broadcast(message: Message, bot: Bot) -> None:
        await bot.send_message(2002, "чужое")
        await message.answer("Жіберілді")

    @router.message(F.contact)
    async def contact(message: Message, bot: Bot) -> None:
        assert message.contact is not None
        demo.phone.deliver(
            "sms_1414",
            kk="Келісім бересіз бе? Иә/Жоқ",
            ru="Даёте согласие? Да/Нет",
            consent_id="consent-1",
        )

        async def confirm_later() -> None:
            await demo.phone.answered.wait()
            await bot.send_message(message.chat.id, "Келісім алынды ✅")

        demo.tasks.append(asyncio.create_task(confirm_later()))
        await message.answer(
            f"Нөмір: {message.contact.phone_number}. 1414 нөмірінен келген SMS-ке жауап беріңіз",
            reply_markup=ReplyKeyboardRemove(),
        )

    @router.message(F.document)
    async def document(message: Message, bot: Bot) -> None:
        assert message.document is not None
        buffer = await bot.download(message.document)
        assert buffer is not None
        size = len(buffer.read())
        await message.answer(f"Құжат: {message.document.file_name}, {size} байт")

    @router.message(F.photo)
    async def photo(message: Message) -> None:
        await message.answer("Фото алынды")

    @router.message(F.text)
    async def echo(message: Message) -> None:
        assert message.text is not None
        await message.answer(f"Эхо: <i>{html.escape(message.text)}</i>")

    return router


@pytest.fixture
async def demo() -> AsyncIterator[Demo]:
    session = LocalBotSession()
    bot = Bot("4242:CONSOLE-TEST", session=session, default=DefaultBotProperties(parse_mode="HTML"))
    dp = Dispatcher()
    state = Demo(session=session, chat=LocalChat(dp, bot, user_id=1001), phone=FakePhone())
    dp.include_router(build_router(state))
    yield state
    state.phone.answered.set()
    await asyncio.gather(*state.tasks)


def assert_in_order(lines: list[str], expected: list[str]) -> None:
    """Every expected line appears, in this order (other lines may come between)."""
    position = 0
    for wanted in expected:
        try:
            position = lines.index(wanted, position) + 1
        except ValueError:
            transcript = "\n".join(lines)
            raise AssertionError(f"{wanted!r} missing or out of order in:\n{transcript}") from None


async def test_scripted_conversation_transcript(demo: Demo, tmp_path: Path) -> None:
    pdf = tmp_path / "анықтама.pdf"
    pdf.write_bytes(b"%PDF-1.4 " + b"x" * 991)
    script = (
        "# тілді таңдау\n"
        "/start\n"
        "1\n"
        "1\n"
        "/sms yes\n"
        "/wait Келісім\n"
        f"/file {pdf}\n"
        "сәлем <b>\n"
        "/quit\n"
        "после выхода\n"
    )
    lines = await demo.run(script)

    assert lines[0].startswith("Kezek demo — /contact")
    assert_in_order(
        lines,
        [
            "# тілді таңдау",
            "> /start",
            "🤖 Тілді таңдаңыз",
            "   Выберите язык",
            "   [1] Қазақша  [2] Русский",
            "   [3] ed24.kz",
            "> 1",
            "🤖 ✏️ Қазақ тілі таңдалды",
            "🤖 Телефон нөміріңізді жіберіңіз",
            "   ⌨ [1] 📱 Нөмірді жіберу",
            "> 1",
            f"🤖 Нөмір: {PHONE}. 1414 нөмірінен келген SMS-ке жауап беріңіз",
            "> /sms yes",
            "📱 1414: Келісім бересіз бе? Иә/Жоқ",  # Kazakh: the bot speaks Kazakh
            "📱 → 1414: yes",
            "> /wait Келісім",
            f"> /file {pdf}",
            "🤖 Құжат: анықтама.pdf, 1000 байт",
            "> сәлем <b>",
            "🤖 Эхо: сәлем <b>",
            "> /quit",
        ],
    )
    # the background confirmation may print before or after "> /wait", but always before /file
    assert_in_order(lines, ["📱 → 1414: yes", "🤖 Келісім алынды ✅", f"> /file {pdf}"])
    assert demo.phone.answers == [("consent-1", "yes")]
    assert "после выхода" not in "\n".join(lines)  # /quit ends the demo
    assert not any(line.startswith("⚠️") for line in lines)


async def test_end_of_input_ends_cleanly_and_flushes_the_phone(demo: Demo) -> None:
    lines = await demo.run("/start\n1\n1\n")  # no /quit; the SMS arrives during the last line
    assert lines[-1] == "📱 1414: Келісім бересіз бе? Иә/Жоқ"


async def test_tty_input_is_not_echoed(demo: Demo) -> None:
    lines = await demo.run("/start\n# комментарий\n", is_tty=True)
    assert "> /start" not in lines and "# комментарий" not in lines
    assert "🤖 Тілді таңдаңыз" in lines


async def test_out_of_range_number_is_plain_text_and_url_button_shows_link(demo: Demo) -> None:
    lines = await demo.run("/start\n7\n3\n")
    assert_in_order(lines, ["> 7", "🤖 Эхо: 7", "> 3", "🔗 https://ed24.kz"])


async def test_wait_passes_for_a_message_already_shown_and_times_out_otherwise(
    demo: Demo,
) -> None:
    lines = await demo.run("/start\n/wait языК\n/wait никогда\n/wait\n", wait_timeout=0.05)
    assert_in_order(lines, ["> /wait языК", "> /wait никогда"])
    warnings = [line for line in lines if line.startswith("⚠️")]
    assert warnings == [
        "⚠️ /wait никогда: не дождались / күтпедік (0.05 s)",
        "⚠️ /wait ТЕКСТ / МӘТІН",
    ]


async def test_wait_does_not_match_what_came_before_the_previous_command(demo: Demo) -> None:
    lines = await demo.run("/start\nпривет\n/wait Тілді\n", wait_timeout=0.05)
    assert lines[-1].startswith("⚠️ /wait Тілді")


async def test_contact_command_and_phone_messages_in_both_languages(demo: Demo) -> None:
    demo.phone.deliver("ed24_app", kk="Сіздің кодыңыз: 4821", ru="Ваш код: 4821", otp_code="4821")
    lines = await demo.run("/code\n/contact\n")
    # no bot message yet, so both languages; shown before the code is typed
    assert_in_order(lines, ["📱 ed24.kz: Ваш код: 4821 / Сіздің кодыңыз: 4821", "↳ 4821"])
    assert_in_order(
        lines,
        [
            "> /code",
            "↳ 4821",
            "🤖 Эхо: 4821",
            "> /contact",
            f"🤖 Нөмір: {PHONE}. 1414 нөмірінен келген SMS-ке жауап беріңіз",
        ],
    )


async def test_sms_without_a_pending_sms_and_without_sandbox(demo: Demo) -> None:
    lines = await demo.run("/sms yes\n/sms maybe\n")
    assert "⚠️ нет SMS от 1414 / 1414-тен SMS жоқ" in lines
    assert "⚠️ /sms yes | /sms no" in lines
    lines = await demo.run("/sms no\n", voucher=False)
    assert "⚠️ песочница не подключена / құмсалғыш қосылмаған" in lines
    assert demo.phone.answers == []


async def test_unreachable_sandbox_is_reported_once(demo: Demo) -> None:
    demo.phone.down = True
    lines = await demo.run("/code\n/code\n")
    assert demo.phone.polls >= 3
    assert [line for line in lines if line.startswith("📱")] == [
        "📱 ⚠️ ConnectionError: sandbox down"
    ]


async def test_background_poller_prints_the_phone_while_waiting(demo: Demo) -> None:
    lines = await demo.run("/deliver\n/wait екі рет\n", inbox_interval=0.01)
    # printed by the poller before the bot's later message, so not by the final look
    assert_in_order(lines, ["📱 ed24.kz: Код: 1111", "🤖 Телефон екі рет тексерілді"])
    assert not any(line.startswith("⚠️") for line in lines)


async def test_wait_is_for_bot_messages_not_the_phone(demo: Demo) -> None:
    demo.phone.deliver("sms_1414", kk="Келісім бересіз бе?", ru="Даёте согласие?", consent_id="c")
    lines = await demo.run("/sms yes\n/wait Келісім\n", wait_timeout=0.05)
    assert lines[-1].startswith("⚠️ /wait Келісім: не дождались")


async def test_photo_and_a_missing_file(demo: Demo, tmp_path: Path) -> None:
    picture = tmp_path / "сурет.jpg"
    picture.write_bytes(b"\xff\xd8\xff" + b"p" * 10)
    lines = await demo.run(f"/photo {picture}\n/file {tmp_path / 'жоқ.pdf'}\n")
    assert "🤖 Фото алынды" in lines
    assert any(line.startswith("⚠️ FileNotFoundError") for line in lines)


async def test_messages_to_other_chats_are_not_printed(demo: Demo) -> None:
    lines = await demo.run("/broadcast\n")
    assert "🤖 Жіберілді" in lines
    assert not any("чужое" in line for line in lines)
    assert [s.text for s in demo.session.sent(2002)] == ["чужое"]

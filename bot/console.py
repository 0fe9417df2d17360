"""The terminal transport of `voucher-bot demo`: a person types, the LocalChat delivers.

Bot messages are printed as the session records them (also those sent later by background
tasks), with their buttons numbered; typing a number presses one. A background task shows what
the parent's phone receives from the sandbox (ed24 app codes, 1414 SMS). Input may come from a
pipe, line by line, so a demo can be scripted and its transcript read like a conversation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import mimetypes
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, TextIO

from bot.local_chat import LocalChat
from bot.local_session import Button, LocalBotSession, Sent, html_to_plain
from services.voucher.errors import VoucherError
from services.voucher.models import InboxMessage

log = logging.getLogger("kezek.console")

WAIT_TIMEOUT = 10.0
INBOX_INTERVAL = 0.5
HELP = (
    "Kezek demo — /contact отправить свой номер / нөміріңізді жіберу · /file ПУТЬ|ЖОЛ документ "
    "/ құжат · /photo ПУТЬ|ЖОЛ фото · /sms yes|no ответ на SMS 1414 / SMS-ке жауап · /code ввести "
    "код из ed24 / ed24 кодын енгізу · /wait ТЕКСТ ждать / күту · /quit выход / шығу",
    "/status_set 21792 registered 15 · voucher_issued · rejected kk мәтін | ru текст — статус "
    "заявки в песочнице / өтініш мәртебесі",
    "Цифра — нажать кнопку, остальное — сообщение боту / Сан — батырманы басу, қалғаны — ботқа "
    "хабар",
)
_KK_LETTERS = frozenset("әғқңөұүһіӘҒҚҢӨҰҮҺІ")


class SandboxPhone(Protocol):
    """The part of VoucherClient that plays the parent's phone."""

    async def sandbox_inbox(self, phone: str) -> Sequence[InboxMessage]: ...

    async def sandbox_answer_consent(self, consent_id: str, answer: str) -> Any: ...


async def run_console(
    chat: LocalChat,
    session: LocalBotSession,
    *,
    voucher: SandboxPhone | None,
    demo_phone: str,
    stdin: TextIO,
    stdout: TextIO,
    is_tty: bool,
    wait_timeout: float = WAIT_TIMEOUT,
    inbox_interval: float = INBOX_INTERVAL,
    commands: Mapping[str, Callable[[str], Awaitable[str]]] | None = None,
) -> None:
    """Run the demo conversation until /quit or the end of input.

    `commands` adds console commands (e.g. `/status_set`) that take the rest of the line
    and print what they answer.
    """
    console = _Console(chat, voucher, demo_phone, stdout, is_tty, wait_timeout)
    console.commands = dict(commands or {})
    unsubscribe = session.on_send(console.show)
    poller = None
    if voucher is not None:
        poller = asyncio.create_task(console.poll_inbox_forever(inbox_interval))
    try:
        await console.loop(_LineReader(stdin))
    finally:
        unsubscribe()
        if poller is not None:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
            # one last look, so a transcript always ends with everything the phone got
            await console.poll_inbox(quiet=True)


class _LineReader:
    """Lines of a text stream, read by a daemon thread.

    Not `asyncio.to_thread`: a thread blocked in `readline` on a terminal would keep
    `asyncio.run` from finishing after Ctrl-C until the next Enter (Python 3.11 waits for the
    default executor without a timeout); a daemon thread is simply left behind.
    """

    def __init__(self, stream: TextIO) -> None:
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        loop = asyncio.get_running_loop()
        thread = threading.Thread(
            target=self._read, args=(stream, loop), name="console-stdin", daemon=True
        )
        thread.start()

    def _read(self, stream: TextIO, loop: asyncio.AbstractEventLoop) -> None:
        while True:
            line = stream.readline()
            try:
                loop.call_soon_threadsafe(self._queue.put_nowait, line)
            except RuntimeError:  # the loop is closed: the demo is over
                return
            if not line:
                return

    async def next(self) -> str | None:
        """The next line without its newline; None at the end of input."""
        line = await self._queue.get()
        return line.rstrip("\r\n") if line else None


class _Console:
    def __init__(
        self,
        chat: LocalChat,
        voucher: SandboxPhone | None,
        demo_phone: str,
        out: TextIO,
        is_tty: bool,
        wait_timeout: float,
    ) -> None:
        self.chat = chat
        self.voucher = voucher
        self.phone = demo_phone
        self.out = out
        self.is_tty = is_tty
        self.wait_timeout = wait_timeout
        self.commands: dict[str, Callable[[str], Awaitable[str]]] = {}
        self.shown: list[str] = []  # the bot's messages as printed, for /wait
        self.wait_from = 0
        self.printed = asyncio.Event()
        self.buttons: list[Button] = []  # of the latest message with buttons, as numbered
        self.buttons_message: int | None = None
        self.buttons_inline = False
        self.inbox: list[InboxMessage] = []
        self.answered: set[str] = set()
        self.lang: str | None = None
        self.inbox_lock = asyncio.Lock()
        self.inbox_failing = False

    # --- output ---------------------------------------------------------------------------

    def write(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def remember(self, text: str) -> None:
        self.shown.append(text)
        self.printed.set()

    def show(self, sent: Sent) -> None:
        """Print what the bot sent to this chat (a session listener)."""
        if sent.chat_id != self.chat.chat_id:
            return
        if sent.kind == "callback_answer":
            if sent.text:
                self.write(f"🤖 💬 {sent.text}")
                self.remember(sent.text)
            return
        if sent.kind == "delete" and sent.message_id == self.buttons_message:
            self.buttons = []
        if not sent.visible:
            return
        body = html_to_plain(sent.text or "") if sent.parse_mode == "HTML" else sent.text or ""
        mark = {"edit": "✏️ ", "document": f"📎 {sent.file_name} ", "photo": "🖼 "}.get(sent.kind, "")
        lines = (mark + body).splitlines() or [""]
        rest = [f"   {line}" if line.strip() else "" for line in lines[1:]]
        self.write("\n".join(["🤖 " + lines[0], *rest]))
        self.remember(body)
        self.lang = _guess_lang(body) or self.lang
        self.update_buttons(sent)

    def update_buttons(self, sent: Sent) -> None:
        """Number the buttons of the latest message that has some, and print them."""
        if sent.remove_keyboard and not self.buttons_inline:
            self.buttons = []
        elif sent.kind == "edit" and not sent.buttons and sent.message_id == self.buttons_message:
            self.buttons = []
        if not sent.buttons:
            return
        self.buttons = [b for row in sent.buttons for b in row]
        self.buttons_message = sent.message_id
        self.buttons_inline = not sent.reply_keyboard
        number = 0
        for row in sent.buttons:
            cells = []
            for button in row:
                number += 1
                cells.append(f"[{number}] {button.text}")
            self.write(("   ⌨ " if sent.reply_keyboard else "   ") + "  ".join(cells))

    # --- input ----------------------------------------------------------------------------

    async def loop(self, reader: _LineReader) -> None:
        for line in HELP:
            self.write(line)
        while (line := await reader.next()) is not None:
            text = line.strip()
            if not text:
                continue
            if text.startswith("#"):
                if not self.is_tty:
                    self.write(text)
                continue
            if not self.is_tty:
                self.write(f"> {text}")
            if text == "/quit":
                return
            try:
                await self.handle(text)
            except Exception as exc:  # the demo goes on
                self.write(f"⚠️ {type(exc).__name__}: {exc}")
                # a mistyped path or the sandbox's answer is no bug; anything else may be one
                if not isinstance(exc, OSError | VoucherError):
                    log.error("demo command %r failed", text, exc_info=True)

    async def handle(self, text: str) -> None:
        command, _, arg = text.partition(" ")
        arg = arg.strip()
        if command == "/wait":
            await self.wait(arg)
            return
        self.wait_from = len(self.shown)
        if command == "/contact":
            await self.chat.share_contact(self.phone)
        elif command in {"/file", "/photo"}:
            await self.upload(arg, photo=command == "/photo")
        elif command == "/sms":
            await self.answer_sms(arg)
        elif command == "/code":
            await self.type_code()
        elif command == "/help":
            for line in HELP:
                self.write(line)
        elif command in self.commands:
            self.write(await self.commands[command](arg))
        elif text.isdigit() and 1 <= int(text) <= len(self.buttons):
            await self.press(self.buttons[int(text) - 1], int(text) - 1)
        else:
            await self.chat.send(text)

    async def press(self, button: Button, index: int) -> None:
        if button.url:  # a link opens in the browser; Telegram tells the bot nothing
            self.write(f"🔗 {button.url}")
        elif self.buttons_inline and self.buttons_message is not None:
            await self.chat.press(index, message_id=self.buttons_message)
        elif button.request_contact:
            await self.chat.share_contact(self.phone)
        else:
            await self.chat.send(button.text)

    async def upload(self, arg: str, *, photo: bool) -> None:
        name = Path(arg).name
        if not name:
            self.write("⚠️ /file ПУТЬ — укажите файл / файлды көрсетіңіз")
            return
        content = await asyncio.to_thread(_read_file, arg)
        if photo:
            await self.chat.send_photo(content)
            return
        mime = mimetypes.guess_type(name)[0] or "application/octet-stream"
        await self.chat.send_document(content, name, mime)

    async def wait(self, needle: str) -> None:
        """Block until a bot message containing `needle` shows (bounded).

        Looks from the start of the previous command on, so an answer that came while that
        command ran, or since, counts; consecutive waits move forward.
        """
        if not needle:
            self.write("⚠️ /wait ТЕКСТ / МӘТІН")
            return
        wanted = needle.casefold()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait_timeout
        while True:
            for index in range(self.wait_from, len(self.shown)):
                if wanted in self.shown[index].casefold():
                    self.wait_from = index + 1
                    return
            remaining = deadline - loop.time()
            if remaining <= 0:
                self.write(f"⚠️ /wait {needle}: не дождались / күтпедік ({self.wait_timeout:g} s)")
                return
            self.printed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.printed.wait(), remaining)

    # --- the parent's phone ---------------------------------------------------------------

    async def poll_inbox_forever(self, interval: float) -> None:
        while True:
            await self.poll_inbox()
            await asyncio.sleep(interval)  # a polling period, not synchronisation

    async def poll_inbox(self, *, quiet: bool = False) -> None:
        """Print what reached the phone since the last look."""
        if self.voucher is None:
            return
        async with self.inbox_lock:
            try:
                messages = list(await self.voucher.sandbox_inbox(self.phone))
            except Exception as exc:
                if not self.inbox_failing and not quiet:
                    self.write(f"📱 ⚠️ {type(exc).__name__}: {exc}")
                self.inbox_failing = True
                return
            self.inbox_failing = False
            for message in messages[len(self.inbox) :]:
                sender = "1414" if message.channel == "sms_1414" else "ed24.kz"
                text = message.text.get(self.lang) if self.lang else _both(message)
                # The service's texts often start with their sender already ("ed24.kz: …").
                text = text.removeprefix(f"{sender}: ")
                self.write(f"📱 {sender}: {text}")
            self.inbox = messages

    async def answer_sms(self, answer: str) -> None:
        if answer not in {"yes", "no"}:
            self.write("⚠️ /sms yes | /sms no")
            return
        if self.voucher is None:
            self.write("⚠️ песочница не подключена / құмсалғыш қосылмаған")
            return
        await self.poll_inbox()
        pending = [
            m.consent_id
            for m in self.inbox
            if m.channel == "sms_1414" and m.consent_id and m.consent_id not in self.answered
        ]
        if not pending:
            self.write("⚠️ нет SMS от 1414 / 1414-тен SMS жоқ")
            return
        consent_id = pending[-1]
        await self.voucher.sandbox_answer_consent(consent_id, answer)
        self.answered.add(consent_id)
        self.write(f"📱 → 1414: {answer}")

    async def type_code(self) -> None:
        await self.poll_inbox()
        codes = [m.otp_code for m in self.inbox if m.otp_code]
        if not codes:
            self.write("⚠️ кода нет / код жоқ")
            return
        self.write(f"↳ {codes[-1]}")
        await self.chat.send(codes[-1])


def _read_file(arg: str) -> bytes:
    return Path(arg).expanduser().read_bytes()


def _both(message: InboxMessage) -> str:
    if message.text.ru == message.text.kk:
        return message.text.ru
    return f"{message.text.ru} / {message.text.kk}"


def _guess_lang(text: str) -> str | None:
    """Kazakh if Kazakh-only letters are frequent (a name alone is not enough), else Russian."""
    cyrillic = [c for c in text if "\u0400" <= c <= "\u04ff"]
    if not cyrillic:
        return None
    kazakh = sum(c in _KK_LETTERS for c in cyrillic)
    return "kk" if kazakh >= 3 and kazakh / len(cyrillic) >= 0.03 else "ru"

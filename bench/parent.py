"""One simulated parent: the whole conversation, /start to the application number, as chat actions.

The steps are those of tests/conversation/journey.py (buttons pressed by their label in the
parent's language, the ed24.kz code and the 1414 consents read from the sandbox's inbox of the
parent's phone, a small PDF as the benefit document). What differs is made for thousands of
parents at once:

- `BenchSession` is the recording Telegram stand-in with one listener for all chats (a
  `LocalChat` subscribes one listener per chat, so every message would call N listeners), that
  forgets a finished parent's chat (so its records do not pass for the bot's memory), and that
  counts its own CPU (the Telegram side of the run, not the bot's);
- `BenchChat` times each `Dispatcher.feed_update` (the handling time of one update);
- the application number is awaited in whatever message brings it, within a bounded wait: in
  the reply to *Submit*, or later through the outbox when submission is asynchronous.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import aiohttp
from aiogram import Bot, Dispatcher
from aiogram.methods import TelegramMethod
from aiogram.types import Update

from bench.metrics import Latencies, LoopIdleMeter
from bot.i18n import I18n
from bot.local_chat import LocalChat
from bot.local_session import LocalBotSession, Sent, html_to_plain
from services.validation import iin_check_digit

BENEFIT_PDF = b"%PDF-1.4\n% Kezek benchmark benefit certificate\n" + b"1" * 2048
NUMBER = re.compile(r"№\s*(\d+)")
_HEADER = re.compile(r"^(Қадам|Шаг) \d/5 — [^\n]*\n+")  # "Step N/5 — title", on every step
STAGES = ("start", "phone", "parent", "child", "choice", "notifications", "submit")


def iins(count: int, first_day: date, days: int, century_sex: int) -> Iterator[str]:
    """`count` distinct valid IINs born within `days` days from `first_day`."""
    made = 0
    serial = 0
    while made < count:
        serial += 1
        if serial > 9999:
            raise ValueError("too many IINs asked for this date range")
        for offset in range(days):
            born = first_day + timedelta(days=offset)
            first11 = f"{born:%y%m%d}{century_sex}{serial:04d}"
            check = iin_check_digit(first11)
            if check is None:
                continue
            yield first11 + str(check)
            made += 1
            if made == count:
                return


def parent_iins(count: int) -> list[str]:
    """Mothers born in 1980-1990 (century digit 4: a woman born in the 1900s)."""
    return list(iins(count, date(1980, 1, 1), 3650, 4))


def child_iins(count: int) -> list[str]:
    """Boys born January to August 2016: ten years old on 1 September 2026."""
    return list(iins(count, date(2016, 1, 1), 240, 5))


def phone_of(index: int) -> str:
    """A distinct Kazakh mobile number per parent."""
    return f"+7701{index:06d}1"  # never ending in 0000: the sandbox says "not registered"


class Phones:
    """The parents' phones: read the ed24.kz app and 1414 SMS inbox, answer a 1414 SMS.

    A plain aiohttp session of its own, so the harness does not queue in the bot's client; its
    100 connections are as many as the bot's client may open, so that thousands of parents do
    not storm the sandbox's accept queue. Its CPU is calibrated after the run and reported
    apart. Generous timeouts: a slow phone is not what is measured.
    """

    def __init__(self, base_url: str, token: str) -> None:
        self._base = base_url.rstrip("/")
        self._http = aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {token}"},
            connector=aiohttp.TCPConnector(limit=100),
            timeout=aiohttp.ClientTimeout(total=600),
        )
        self.calls = 0

    async def close(self) -> None:
        await self._http.close()

    async def inbox(self, phone: str) -> list[dict[str, Any]]:
        """What reached this phone, oldest first."""
        self.calls += 1
        url = f"{self._base}/sandbox/inbox"
        async with self._http.get(url, params={"phone": phone}) as response:
            response.raise_for_status()
            return list(await response.json())

    async def answer_consent(self, consent_id: str, answer: str = "yes") -> None:
        """Reply to the 1414 SMS."""
        self.calls += 1
        url = f"{self._base}/sandbox/consents/{consent_id}"
        async with self._http.post(url, json={"answer": answer}) as response:
            response.raise_for_status()


class BenchSession(LocalBotSession):
    """The recording Telegram stand-in, shaped for thousands of chats (see the module doc)."""

    def __init__(self) -> None:
        super().__init__()
        self.cpu_seconds = 0.0  # thread CPU inside make_request: the Telegram side
        self.calls = 0
        self._chat_events: dict[int, asyncio.Event] = {}
        self._callbacks_of: dict[int, list[str]] = {}
        self._files_of: dict[int, list[str]] = {}
        self.on_send(self._wake_chat)

    async def make_request(
        self,
        bot: Bot,
        method: TelegramMethod[Any],
        timeout: int | None = None,  # noqa: ASYNC109 - BaseSession's signature
    ) -> Any:
        # The stand-in never waits on I/O, so the thread CPU between these two reads is its own.
        started = time.thread_time()
        try:
            return await super().make_request(bot, method, timeout)
        finally:
            self.cpu_seconds += time.thread_time() - started
            self.calls += 1
            self.requests.clear()  # nobody reads them here; they would pass for bot memory

    def watch(self, chat_id: int, event: asyncio.Event) -> None:
        """Set `event` whenever something is recorded for `chat_id`."""
        self._chat_events[chat_id] = event

    def new_callback_id(self, chat_id: int) -> str:
        query_id = super().new_callback_id(chat_id)
        self._callbacks_of.setdefault(chat_id, []).append(query_id)
        return query_id

    def register_chat_file(self, chat_id: int, content: bytes, ext: str) -> dict[str, Any]:
        """`register_file`, remembered as this chat's so `forget_chat` drops it."""
        ref = self.register_file(content, ext=ext)
        self._files_of.setdefault(chat_id, []).append(ref["file_id"])
        return ref

    def forget_chat(self, chat_id: int) -> None:
        """Drop everything Telegram's stand-in keeps about a finished chat."""
        self._chat_events.pop(chat_id, None)
        self._by_chat.pop(chat_id, None)
        for message_id in range(1, self._last_id.pop(chat_id, 0) + 1):
            self._messages.pop((chat_id, message_id), None)
        self._reply_keyboard.pop(chat_id, None)
        self._chats.pop(chat_id, None)
        for query_id in self._callbacks_of.pop(chat_id, ()):
            self._callbacks.pop(query_id, None)
            self._answered.discard(query_id)
        for file_id in self._files_of.pop(chat_id, ()):
            stored = self._files.pop(file_id, None)
            if stored is not None:
                self._paths.pop(stored.path, None)

    def _record(self, sent: Sent) -> None:
        super()._record(sent)
        self._sent.clear()  # the per-chat history is kept; the global list only grows

    def _wake_chat(self, sent: Sent) -> None:
        event = self._chat_events.get(sent.chat_id) if sent.chat_id is not None else None
        if event is not None:
            event.set()


@dataclass
class UpdateStats:
    """What all chats of a run measured."""

    latencies: Latencies = field(default_factory=Latencies)
    # The same times by step of the journey ("ed24.kz code", "provider"…), in journey order.
    by_step: defaultdict[str, Latencies] = field(default_factory=lambda: defaultdict(Latencies))
    first_at: float | None = None
    last_at: float = 0.0
    meter: LoopIdleMeter = field(default_factory=LoopIdleMeter)  # read at the first, last update
    idle_at_first: float = 0.0
    idle_at_last: float = 0.0

    @property
    def loop_busy(self) -> float | None:
        """The share of first update in → last update handled that the loop had work."""
        if not self.meter.measuring or self.first_at is None or self.last_at <= self.first_at:
            return None
        return 1.0 - (self.idle_at_last - self.idle_at_first) / (self.last_at - self.first_at)

    @property
    def count(self) -> int:
        return len(self.latencies.values)


class BenchChat(LocalChat):
    """A `LocalChat` that times each update and is woken by `BenchSession`'s single listener."""

    def __init__(
        self, dp: Dispatcher, bot: Bot, session: BenchSession, stats: UpdateStats, **kwargs: Any
    ) -> None:
        super().__init__(dp, bot, **kwargs)
        self.close()  # drop LocalChat's own listener: the session wakes us instead
        self.step = "?"  # the journey's step the next update belongs to (set by `Parent`)
        session.watch(self.chat_id, self._arrived)
        self.bench_session = session
        self.stats = stats

    async def feed(self, update: Update) -> list[Sent]:
        before = len(self.session.sent(self.chat_id))
        started = time.perf_counter()
        stats = self.stats
        if stats.first_at is None:
            stats.first_at = started
            stats.idle_at_first = stats.meter.idle
        result = await self.dp.feed_update(self.bot, update)
        if isinstance(result, TelegramMethod):
            await self.bot(result)
        ended = time.perf_counter()
        took = ended - started  # one float in both lists: it counts in the blocks kept
        stats.latencies.add(took)
        stats.by_step[self.step].add(took)
        if ended > stats.last_at:
            stats.last_at = ended
            stats.idle_at_last = stats.meter.idle
        history = self.session.sent(self.chat_id)
        self._seen = len(history)
        return history[before:]

    async def send_pdf(self, content: bytes, file_name: str) -> list[Sent]:
        """Upload a PDF the way `send_document` does, its file remembered for `forget_chat`."""
        ref = self.bench_session.register_chat_file(self.chat_id, content, ".pdf")
        document = {**ref, "file_name": file_name, "mime_type": "application/pdf"}
        return await self._feed_message(self._message(document=document))


class MessageNamer:
    """Names a bot message by its Fluent id, for failure reports without personal data."""

    def __init__(self, i18n: I18n, locale: str = "kk") -> None:
        self._prefixes: list[tuple[str, str]] = []
        for msg_id in sorted(i18n.message_ids(locale)):
            if i18n.placeholders(locale, msg_id):
                continue
            try:
                text = html_to_plain(i18n.t(locale, msg_id)).strip()
            except Exception:  # a message that needs arguments we do not know: not nameable
                continue
            if len(text) >= 16:
                self._prefixes.append((text[:40], msg_id))
        self._prefixes.sort(key=lambda pair: -len(pair[0]))

    def name(self, sent: Sent | None) -> str:
        """The id of the first known message the text holds, or "?"."""
        if sent is None:
            return "nothing"
        text = _HEADER.sub("", sent.plain or "", count=1)
        for prefix, msg_id in self._prefixes:
            if prefix in text:
                return msg_id
        return "?"


class JourneyError(AssertionError):
    """A parent could not go on; `stage` says where."""

    def __init__(self, stage: str, reason: str) -> None:
        super().__init__(f"{stage}: {reason}")
        self.stage = stage
        self.reason = reason


@dataclass
class Parent:
    """One parent going through the whole conversation."""

    chat: BenchChat
    phones: Phones  # the parent's phone: reads the ed24 code and answers 1414
    tr_table: dict[str, str]
    phone: str
    parent_iin: str
    child_iin: str
    number_timeout: float
    namer: MessageNamer | None = None
    think: float = 0.0  # seconds between two actions (a person reading and typing)
    stage: str = "new"
    number: str | None = None
    submitted_at: float | None = None
    number_at: float | None = None
    consents_seen: set[str] = field(default_factory=set)

    def tr(self, msg_id: str) -> str:
        return self.tr_table[msg_id]

    def expect(self, shown: list[Sent], msg_id: str) -> None:
        """Fail unless one of `shown` is the message `msg_id` (by its opening words)."""
        opening = html_to_plain(self.tr(msg_id)).strip()[:24]
        if not any(opening in (s.plain or "") for s in shown if s.visible):
            raise self.fail(f"expected {msg_id}")

    def fail(self, reason: str) -> JourneyError:
        """A JourneyError at this stage, naming what the bot said last."""
        said = "?"
        if self.namer is not None:
            last = next((s for s in reversed(self.chat.history()) if s.visible), None)
            said = self.namer.name(last)
        return JourneyError(self.stage, f"{reason} (the bot said last: {said})")

    async def run(self) -> None:
        """The whole journey; raises JourneyError (or what the bot raised) at the failing step."""
        for stage in STAGES:
            self.stage = stage
            try:
                await getattr(self, "_" + stage)()
            except JourneyError:
                raise
            except AssertionError as exc:  # LocalChat's: no such button, and the like
                first = str(exc).splitlines()[0] if str(exc) else "assertion failed"
                raise self.fail(first.split("; buttons:")[0]) from None
        self.stage = "done"

    # --- actions --------------------------------------------------------------------------

    async def _pause(self) -> None:
        if self.think > 0:
            await asyncio.sleep(self.think)  # the simulated person thinking, not a sync

    async def _begin(self, step: str) -> None:
        """Think, then put the next update down to `step` of the journey."""
        await self._pause()
        self.chat.step = step

    async def send(self, text: str, step: str) -> list[Sent]:
        await self._begin(step)
        return await self.chat.send(text)

    async def press(self, button: str | int, step: str) -> list[Sent]:
        await self._begin(step)
        return await self.chat.press(button)

    # --- the stages -----------------------------------------------------------------------

    async def _start(self) -> None:
        await self.send("/start", "/start")
        await self.press("Қазақша", "language")
        for item in (1, 2, 3):
            await self.press(self.tr(f"rules-item-{item}-short"), "rule ticked")
        await self.press(self.tr("btn-join-queue"), "join the queue")

    async def _phone(self) -> None:
        await self._begin("own contact shared")
        await self.chat.share_contact(self.phone, own=True)
        inbox = await self.phones.inbox(self.phone)
        code = next((m["otp_code"] for m in reversed(inbox) if m.get("otp_code")), None)
        if code is None:
            raise self.fail("no ed24.kz code in the phone's inbox")
        shown = await self.send(code, "ed24.kz code")
        self.expect(shown, "otp-verified")

    async def _consent(self, iin: str, who: str) -> None:
        await self.send(iin, f"{who}: IIN")
        inbox = await self.phones.inbox(self.phone)
        consent_id = next((m["consent_id"] for m in reversed(inbox) if m.get("consent_id")), None)
        if consent_id is None or consent_id in self.consents_seen:
            raise self.fail("no new 1414 SMS in the phone's inbox")
        self.consents_seen.add(consent_id)
        await self.phones.answer_consent(consent_id, "yes")
        correct = self.tr("btn-person-correct")
        await self._pause()
        # The bot checks the consent by itself every few seconds: a parent who took a while
        # finds the data card already there; otherwise they ask for it.
        if not self._card_shown(correct):
            self.chat.step = f"{who}: request data"
            shown = await self.chat.press(self.tr("btn-consent-check"))
            # Either this button or the background check got there first: the card shows.
            if not any(correct in s.button_texts for s in shown) and not self._card_shown(correct):
                raise self.fail("the data card did not come after 'Request data'")
        await self.press(correct, f"{who}: data correct")

    def _card_shown(self, button: str) -> bool:
        current = self.chat.session.last_inline(self.chat.chat_id)
        return current is not None and button in current.button_texts

    async def _parent(self) -> None:
        await self._consent(self.parent_iin, "parent")

    async def _child(self) -> None:
        await self._consent(self.child_iin, "child")

    async def _choice(self) -> None:
        await self.press(0, "queue type")  # the general queue comes first in the catalogue
        await self.press(0, "state order")  # the first state order type
        await self.press(self.tr("btn-benefit-yes"), "benefit: yes")
        await self._begin("benefit document")
        await self.chat.send_pdf(BENEFIT_PDF, "benefit.pdf")
        await self.press(0, "provider")  # the first provider of the first page
        await self.press(0, "group")  # its first group that fits the child's age
        await self.press(self.tr("btn-preview-continue"), "queue preview seen")

    async def _notifications(self) -> None:
        await self.press(self.tr("btn-notify-telegram"), "notification channel")
        await self.press(self.tr("btn-notify-lang-kk"), "notification language")

    async def _submit(self) -> None:
        for name in ("personal_data", "contact_use", "offer"):
            await self.press(self.tr(f"btn-consent-{name}"), "consent ticked")
        shown = await self.press(self.tr("btn-review-submit"), "submit")
        self.submitted_at = time.perf_counter()
        number = _number_in(shown)
        if number is None:
            # Asynchronous submission: the number comes later, through the outbox.
            try:
                sent = await self.chat.wait_for(
                    lambda s: _number_in([s]) is not None, timeout=self.number_timeout
                )
            except AssertionError:
                waited = f"{self.number_timeout:.0f} s"
                raise self.fail(f"no application number within {waited}") from None
            number = _number_in([sent])
        self.number_at = time.perf_counter()
        self.number = number


def _number_in(sent: list[Sent]) -> str | None:
    for item in sent:
        if item.visible:
            found = NUMBER.search(item.plain or "")
            if found:
                return found.group(1)
    return None


TR_KEYS = (
    "otp-verified",
    "rules-item-1-short",
    "rules-item-2-short",
    "rules-item-3-short",
    "btn-join-queue",
    "btn-consent-check",
    "btn-person-correct",
    "btn-benefit-yes",
    "btn-preview-continue",
    "btn-notify-telegram",
    "btn-notify-lang-kk",
    "btn-consent-personal_data",
    "btn-consent-contact_use",
    "btn-consent-offer",
    "btn-review-submit",
)

"""Random updates at every declared state, through the real bot (hypothesis).

Each example puts one parent in a state (with a plausible draft and step data, as
`tests/conversation/seed.py` builds them through the real sandbox), then feeds one random
update: any text (long ones, digits of every script, invisible and RTL characters, HTML),
commands, stickers, voice, photos and documents of random bytes and claimed sizes, contacts of
one's own and of others, and button presses with random data or with the real data of every
state's buttons. After each one:
- no exception reached the errors handler, and none escaped the Dispatcher;
- a message always got an answer, a button press always got its callback answered;
- the state is one of the declared states, or none.

One app per test function (opened once, on a tmp directory), reset per example; the clock moves
one second per example, the pace of a fast person, so the flood limit stays on and quiet.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from pathlib import Path
from typing import Any

from aiogram.fsm.storage.base import StorageKey
from aiogram.types import Update
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.app import App, open_app
from bot.config import Settings
from bot.fsm.states import ALL_STATES, ApplicationForm
from bot.local_chat import LocalChat
from bot.local_session import LocalBotSession, Sent
from services.clock import FakeClock
from services.crypto import generate_key
from services.voucher.models import PreviewRequest
from services.voucher.sandbox import SandboxConfig
from tests.conversation.seed import PARENT_IIN, PHONE, child_iin, seed_identity

S = ApplicationForm
USER = 1001
EXAMPLES = 300
TEXT = st.characters(blacklist_categories=("Cs",))  # anything but lone surrogates
COMMANDS = (
    "/start",
    "/help",
    "/cancel",
    "/language",
    "/status",
    "/forget",
    "/digest",
    "/stats",
    "/nonsense",
    "/start@kezek_bot",
    "/START",
)
PLAUSIBLE = (
    PARENT_IIN,
    child_iin(16, 3, 15),
    child_iin(19, 1, 1),
    "8710 0840 1427",
    "８７１００８４０１４２７",
    "٨٧١٠٠٨٤٠١٤٢٧",
    "+7 701 234 56 78",
    "87012345678",
    "+7 701 000 00 00",
    "0427",
    "٠٤٢٧",
    "04\u200b27",
    "\u202e1427",
    "<b>Балапан</b>",
    "<a href='x'>",
    "&amp;",
    "Балапан",
    "Ромашка",
    "иә",
    "жоқ",
)


# --- the harness ------------------------------------------------------------------------------


class ErrorLog(logging.Handler):
    """Everything logged at ERROR or above while an update is handled."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class Harness:
    """One app, one parent; `reset(state)` puts the parent there with a plausible draft."""

    def __init__(self, stack: AsyncExitStack, app: App, clock: FakeClock) -> None:
        self.stack, self.app, self.clock = stack, app, clock
        self.chat = LocalChat(app.dp, app.bot, user_id=USER, language_code="kk", phone=PHONE)
        self.key = StorageKey(bot_id=app.bot.id, chat_id=USER, user_id=USER)
        self.full_draft: dict[str, Any] = {}
        self.step_data: dict[str, dict[str, Any]] = {}
        self.buttons: set[str] = set()

    @classmethod
    async def open(cls, tmp: Path) -> Harness:
        stack = AsyncExitStack()
        clock = FakeClock()
        config = Settings(
            _env_file=None,
            voucher_api_url="sandbox",
            database_path=tmp / "kezek.sqlite3",
            consent_poll_seconds=60,  # no background polls between examples
            data_key=generate_key(),
        )

        async def no_wait(delay: float) -> None:
            return None

        app = await stack.enter_async_context(
            open_app(
                config,
                clock=clock,
                session=LocalBotSession(clock=clock),
                sandbox_config=SandboxConfig(token="sandbox-token", db_path=tmp / "sb.sqlite3"),
                voucher_options={"sleep": no_wait},
            )
        )
        harness = cls(stack, app, clock)
        try:
            await harness._seed()
        except BaseException:
            await stack.aclose()
            raise
        return harness

    async def close(self) -> None:
        await self.stack.aclose()

    async def _seed(self) -> None:
        """A complete draft through the real sandbox, and the buttons every state shows."""
        voucher = self.app.services.voucher
        draft = await seed_identity(self.app, self.chat)
        order = (await voucher.list_state_order_types())[0].code
        providers = (await voucher.list_providers(None, 1, 10)).items
        fitting = [
            (p, g)
            for p in providers
            for g in await voucher.list_groups(p.id)
            if g.age_min <= 10 <= g.age_max
        ]
        provider, group = fitting[0]
        request = PreviewRequest(
            child_iin=draft["child"]["iin"],
            queue_type="general",
            state_order_type=order,
            group_id=group.id,
            documents=[],
        )
        preview = await voucher.preview_queue(draft["session"], request)
        self.full_draft = {
            **draft,
            "queue_type": "general",
            "state_order_type": order,
            "has_benefit": False,
            "provider": provider.model_dump(mode="json"),
            "group": group.model_dump(mode="json"),
            "preview": preview.model_dump(mode="json"),
            "notification": {"channel": "telegram", "language": "kk"},
            "consents": {"personal_data": True, "contact_use": True, "offer": False},
        }
        consent = await voucher.create_consent(draft["session"], child_iin(17, 6, 1))
        consent_data = {
            "consent_id": consent.consent_id,
            "consent_iin": child_iin(17, 6, 1),
            "consent_created_at": self.clock.now().isoformat(),
            "consent_expires_at": self.clock.now().isoformat(),
        }
        self.step_data = {
            S.otp.state: {"phone": PHONE, "otp_id": "otp_unknown_to_the_sandbox"},
            S.parent_consent.state: consent_data,
            S.child_consent.state: consent_data,
            S.provider.state: {
                "provider_seen": {p.id: p.model_dump(mode="json") for p in providers}
            },
            S.group.state: {"groups": {group.id: group.model_dump(mode="json")}},
        }
        for state in ALL_STATES:  # each state's question, to learn its buttons
            self.clock.advance(seconds=1)
            await self.reset(state)
            sent = await self.feed(self.message(text="/help", entities=_command("/help")))
            for record in sent:
                for row in record.buttons:
                    self.buttons.update(b.callback_data for b in row if b.callback_data)

    def draft_for(self, state: str) -> dict[str, Any]:
        if state in (S.language.state, S.rules.state):
            return {}
        if state in (S.phone.state, S.otp.state):
            return {"rules_accepted": True}
        if state == S.submitted.state:
            application = {"id": "app_fuzz", "number": "21792", "submitted_at": "2026-09-10T10:00"}
            return {**self.full_draft, "application": application}
        return dict(self.full_draft)

    async def reset(self, state: str | None) -> None:
        background = self.app.services.background
        if background is not None:
            background.cancel(USER)
        await self.app.services.store.set_locale(USER, "kk")
        if state is None:
            await self.app.storage.set_state(self.key, None)
            await self.app.storage.set_data(self.key, {})
            await self.app.services.store.delete_draft(USER)
            return
        await self.app.services.store.replace_draft(USER, self.draft_for(state), step=state)
        await self.app.storage.set_state(self.key, state)
        await self.app.storage.set_data(self.key, dict(self.step_data.get(state, {})))

    async def feed(self, update: Update) -> list[Sent]:
        return await self.chat.feed(update)

    # --- updates ------------------------------------------------------------------------------

    def message(self, **content: Any) -> Update:
        session = self.chat.session
        message = {
            "message_id": session.next_message_id(USER),
            "date": session.now(),
            "chat": self.chat.chat,
            "from": self.chat.user,
            **content,
        }
        session.store_incoming(message)
        return self._update({"message": message})

    def press(self, data: str, message_id: int) -> Update:
        session = self.chat.session
        message = session.message(USER, message_id) or {
            "chat": self.chat.chat,
            "message_id": message_id,
            "date": 0,
        }
        query = {
            "id": session.new_callback_id(USER),
            "from": self.chat.user,
            "chat_instance": "fuzz",
            "message": message,
            "data": data,
        }
        return self._update({"callback_query": query})

    def file(self, content: bytes, size: int | None, ext: str) -> dict[str, Any]:
        return self.chat.session.register_file(content, size=size, ext=ext)

    def _update(self, payload: dict[str, Any]) -> Update:
        raw = {"update_id": self.chat.session.next_update_id(), **payload}
        return Update.model_validate(raw, context={"bot": self.app.bot})


def _command(text: str) -> list[dict[str, Any]]:
    command = text.split(maxsplit=1)[0]
    return [{"type": "bot_command", "offset": 0, "length": len(command)}]


@contextmanager
def running(tmp: Path) -> Iterator[tuple[asyncio.Runner, Harness, ErrorLog]]:
    errors = ErrorLog()
    root = logging.getLogger()
    root.addHandler(errors)
    with asyncio.Runner() as runner:
        harness = runner.run(Harness.open(tmp))
        try:
            errors.records.clear()  # seeding is not under test
            yield runner, harness, errors
        finally:
            runner.run(harness.close())
            root.removeHandler(errors)


# --- strategies -------------------------------------------------------------------------------

STATES = st.sampled_from((None, *ALL_STATES))
DIGITS = "0123456789٠١٢٣٤٥٦٧٨٩０１２３４５６７８９ +-()\u200b\u202e\u2066"
texts = st.one_of(
    st.text(TEXT, min_size=1, max_size=200),
    st.sampled_from(PLAUSIBLE),
    st.text(
        st.sampled_from(DIGITS),
        max_size=16,
    ),
    st.builds(lambda ch, n: ch * n, TEXT, st.integers(4000, 5000)),  # around Telegram's limit
)
commands = st.builds(
    lambda c, rest: c + (" " + rest if rest else ""),
    st.sampled_from(COMMANDS),
    st.text(TEXT, max_size=30),
)
file_bytes = st.one_of(
    st.binary(max_size=2048),
    st.sampled_from([b"%PDF-1.4\n" + b"1" * 1024, b"\xff\xd8\xff\xe0" + b"0" * 512, b""]),
)
claimed_sizes = st.one_of(st.none(), st.integers(0, 60 * 1024 * 1024))


@st.composite
def message_contents(draw: st.DrawFn, harness: Harness) -> dict[str, Any]:
    kind = draw(st.sampled_from(["text", "command", "sticker", "voice", "photo", "document",
                                 "contact"]))  # fmt: skip
    if kind == "text":
        return {"text": draw(texts)}
    if kind == "command":
        text = draw(commands)
        return {"text": text, "entities": _command(text)}
    if kind == "sticker":
        ref = harness.file(b"RIFF", None, ".webp")
        sticker = {**ref, "type": "regular", "width": 512, "height": 512}
        return {"sticker": {**sticker, "is_animated": False, "is_video": False}}
    if kind == "voice":
        return {"voice": {**harness.file(b"OggS", None, ".ogg"), "duration": 2}}
    if kind == "photo":
        ref = harness.file(draw(file_bytes), draw(claimed_sizes), ".jpg")
        photo = {**ref, "width": 1280, "height": 960}
        caption = draw(st.one_of(st.none(), texts))
        return {"photo": [photo], **({"caption": caption} if caption else {})}
    if kind == "document":
        name = draw(st.text(TEXT, min_size=1, max_size=80))
        mime = draw(st.sampled_from(["application/pdf", "image/png", "text/plain", "x/y"]))
        ref = harness.file(draw(file_bytes), draw(claimed_sizes), ".pdf")
        return {"document": {**ref, "file_name": name, "mime_type": mime}}
    own = draw(st.booleans())
    phone = draw(st.one_of(st.sampled_from([PHONE, "+77010000000", "79161234567"]), texts))
    contact = {"phone_number": phone, "first_name": "Айгүл", "user_id": USER if own else 7}
    return {"contact": contact}


def callback_data(harness: Harness) -> st.SearchStrategy[str]:
    random_data = st.text(TEXT, max_size=64).filter(lambda d: len(d.encode()) <= 64)
    real = st.sampled_from(sorted(harness.buttons))
    return st.one_of(real, real, random_data)


# --- the checks -------------------------------------------------------------------------------


async def check(harness: Harness, state: str | None, update: Update, errors: ErrorLog) -> None:
    errors.records.clear()
    sent = await harness.feed(update)  # an exception escaping the Dispatcher fails the test
    assert not errors.records, [r.getMessage() for r in errors.records]
    if update.message is not None:
        assert any(s.visible for s in sent), f"no answer at {state}"
    else:
        assert any(s.kind == "callback_answer" for s in sent), f"button not answered at {state}"
    after = await harness.app.storage.get_state(harness.key)
    assert after is None or after in ALL_STATES, after


FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def test_random_messages_at_every_state(tmp_path: Path) -> None:
    with running(tmp_path) as (runner, harness, errors):

        @FUZZ
        @given(state=STATES, data=st.data())
        def one(state: str | None, data: st.DataObject) -> None:
            harness.clock.advance(seconds=1)
            runner.run(harness.reset(state))
            content = data.draw(message_contents(harness), label="message")
            runner.run(check(harness, state, harness.message(**content), errors))

        one()


def test_random_buttons_at_every_state(tmp_path: Path) -> None:
    with running(tmp_path) as (runner, harness, errors):
        assert len(harness.buttons) > 40  # every state's own buttons were collected

        @FUZZ
        @given(state=STATES, data=st.data())
        def one(state: str | None, data: st.DataObject) -> None:
            harness.clock.advance(seconds=1)
            runner.run(harness.reset(state))
            shown = harness.chat.session.last_inline(USER)
            message_id = data.draw(
                st.one_of(
                    st.just(shown.message_id if shown and shown.message_id else 1),
                    st.integers(1, 10_000),  # an old message, or one that never existed
                ),
                label="message_id",
            )
            pressed = data.draw(callback_data(harness), label="data")
            runner.run(check(harness, state, harness.press(pressed, message_id), errors))

        one()

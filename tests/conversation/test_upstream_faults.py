"""The voucher service failing at every step that calls it: 503 with Retry-After, an answer
slower than the client waits, a refused connection.

At each step the parent must get a clear message in their language and a Retry button, stay
at the same step with nothing half-done (the draft holds exactly the answers confirmed before
the call), and Retry — once the service is back — must complete the step. The submission is
left to its own tests: it goes through the outbox worker, which retries by itself.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiogram.fsm.storage.base import StorageKey

import services.voucher.sandbox.app as sandbox_app
from bot.app import App, open_app
from bot.config import Settings
from bot.fsm.states import ApplicationForm
from bot.keyboards.choice import BenefitAnswer, GroupPick, ProviderPick, QueuePick
from bot.keyboards.identity import PersonAction
from bot.local_chat import LocalChat
from bot.local_session import LocalBotSession, Sent
from services.clock import FakeClock
from services.crypto import generate_key
from services.voucher.client import VoucherClient
from services.voucher.sandbox import SandboxConfig
from tests.conversation.seed import PARENT_IIN, child_iin, seed_identity, set_state
from tests.conversation.seed import PHONE as SEEDED_PHONE

S = ApplicationForm
PHONE = "+77012223344"
PRETTY = "+7 701 222 33 44"
NEW_CHILD = child_iin(18, 5, 20)
PDF = b"%PDF-1.4\n% Kezek test benefit certificate\n" + b"1" * 2048
READ_TIMEOUT = 0.15
FAULTS = ("unavailable", "slow", "refused")

# A full collection's stop (up to 1.4 s here) is longer than READ_TIMEOUT: see the fixture.
pytestmark = pytest.mark.usefixtures("without_gc_pauses")


# --- the app: short read timeout, two attempts, no background consent polling ------------------


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,
        voucher_api_url="sandbox",
        database_path=tmp_path / "kezek.sqlite3",
        # The consent watcher would race the *Request data* button: it waits a minute here.
        consent_poll_seconds=60,
        voucher_read_timeout=READ_TIMEOUT,
        data_key=generate_key(),
        flood_burst=0,
    )


@pytest.fixture
async def app(
    settings: Settings, clock: FakeClock, sandbox_config: SandboxConfig, retry_delays: list[float]
) -> AsyncIterator[App]:
    async def record(delay: float) -> None:
        retry_delays.append(delay)

    async with open_app(
        settings,
        clock=clock,
        session=LocalBotSession(),
        sandbox_config=sandbox_config,
        voucher_options={"sleep": record, "max_attempts": 2},
    ) as opened:
        yield opened


# --- the faults -------------------------------------------------------------------------------


class HeldLatency:
    """The sandbox's latency switch, held until the test lets go.

    The late answers of requests the client gave up on then arrive after the parent's Retry,
    always (a real slow service answers whenever it likes; a test must not depend on that),
    and the test does not wait for them at the end.
    """

    def __init__(self) -> None:
        self.released = asyncio.Event()
        self.held = 0

    async def sleep(self, seconds: float) -> None:
        self.held += 1
        await self.released.wait()


@dataclass
class Fault:
    kind: str
    app: App
    retry_delays: list[float]
    monkeypatch: pytest.MonkeyPatch
    latency: HeldLatency = field(default_factory=HeldLatency)
    dead: VoucherClient | None = None

    async def on(self) -> None:
        voucher = self.app.services.voucher
        voucher.clear_cache()  # the setup read the catalogue: the step must ask the service
        if self.kind == "unavailable":
            await voucher.sandbox_set_faults(failure_rate=1.0, retry_after=3)
        elif self.kind == "slow":
            held = SimpleNamespace(sleep=self.latency.sleep)
            self.monkeypatch.setattr(sandbox_app, "asyncio", held)
            await voucher.sandbox_set_faults(latency_ms=500)
        else:
            self.dead = VoucherClient(
                f"http://127.0.0.1:{closed_port()}/api/v1",
                "sandbox-token",
                read_timeout=READ_TIMEOUT,
                max_attempts=2,
                sleep=self.record,
            )
            self.real = voucher
            self.monkeypatch.setattr(self.app.services, "voucher", self.dead)
        self.retry_delays.clear()

    async def off(self) -> None:
        if self.kind == "refused":
            self.monkeypatch.setattr(self.app.services, "voucher", self.real)
            assert self.dead is not None
            await self.dead.aclose()
        else:
            await self.app.services.voucher.sandbox_set_faults(failure_rate=0.0, latency_ms=0)

    def let_late_answers_through(self) -> None:
        self.latency.released.set()

    async def record(self, delay: float) -> None:
        self.retry_delays.append(delay)


def closed_port() -> int:
    """A loopback port nobody listens on: the connection is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- the steps --------------------------------------------------------------------------------

Context = dict[str, Any]  # what a step's setup learned (a code, a provider), for its action
Setup = Callable[[App, LocalChat], Awaitable[Context]]
Act = Callable[[App, LocalChat, Context], Awaitable[list[Sent]]]


@dataclass(frozen=True)
class Step:
    name: str
    setup: Setup
    act: Act
    at: Any  # the state the parent stays at when the call fails
    done: Any  # the state after Retry (and the same answer again, if the step needs input)
    get: bool  # a GET (retried by the client) or a POST (never repeated by the client)
    redo: bool  # Retry asks the question again, and the parent answers it again
    saved: tuple[str, ...] = ()  # draft keys the action itself confirms before the call


def t(app: App, msg_id: str, **args: object) -> str:
    return app.services.i18n.t("kk", msg_id, **args)


def visible(sent: list[Sent]) -> list[Sent]:
    return [s for s in sent if s.visible]


def key(app: App, chat: LocalChat) -> StorageKey:
    return StorageKey(bot_id=app.bot.id, chat_id=chat.chat_id, user_id=chat.user_id)


async def at_phone(app: App, chat: LocalChat) -> Context:
    await chat.send("/start")
    await chat.press("Қазақша")
    for item in (1, 2, 3):
        await chat.press(t(app, f"rules-item-{item}-short"))
    await chat.press(t(app, "btn-join-queue"))
    return {}


async def at_code(app: App, chat: LocalChat) -> Context:
    await at_phone(app, chat)
    await chat.send(PRETTY)
    inbox = await app.services.voucher.sandbox_inbox(PHONE)
    return {"code": next(m.otp_code for m in reversed(inbox) if m.otp_code)}


async def seeded_at(app: App, chat: LocalChat, state: Any, **draft: Any) -> Context:
    await seed_identity(app, chat)
    if draft:
        await app.services.store.update_draft(chat.user_id, **draft)
    await set_state(app, chat, state.state)
    await chat.send("/help")  # shows the step's question (and buttons) as the parent sees it
    return {}


async def order_code(app: App) -> str:
    return (await app.services.voucher.list_state_order_types())[0].code


async def at_parent_iin(app: App, chat: LocalChat) -> Context:
    return await seeded_at(
        app, chat, S.parent_iin, parent=None, parent_consent_id=None, parent_consent_session=None
    )


async def at_child_iin(app: App, chat: LocalChat) -> Context:
    return await seeded_at(app, chat, S.child_iin)


async def at_child_consent(app: App, chat: LocalChat) -> Context:
    await seeded_at(app, chat, S.child_iin)
    await chat.send(NEW_CHILD)
    inbox = await app.services.voucher.sandbox_inbox(SEEDED_PHONE)
    consent = next(m.consent_id for m in reversed(inbox) if m.consent_id)
    await app.services.voucher.sandbox_answer_consent(consent, "yes")
    return {}


async def at_child_confirm(app: App, chat: LocalChat) -> Context:
    return await seeded_at(app, chat, S.child_confirm)


async def at_queue_type(app: App, chat: LocalChat) -> Context:
    return await seeded_at(app, chat, S.queue_type)


async def at_benefit_doc(app: App, chat: LocalChat) -> Context:
    code = await order_code(app)
    return await seeded_at(
        app, chat, S.benefit_doc, queue_type="general", state_order_type=code, has_benefit=True
    )


async def at_benefit(app: App, chat: LocalChat) -> Context:
    code = await order_code(app)
    return await seeded_at(app, chat, S.benefit, queue_type="general", state_order_type=code)


async def fitting_group(app: App) -> tuple[dict[str, Any], dict[str, Any]]:
    """A provider and one of its groups for the seeded child (10 on 1 September)."""
    voucher = app.services.voucher
    for provider in (await voucher.list_providers(None, 1, 10)).items:
        for group in await voucher.list_groups(provider.id):
            if group.age_min <= 10 <= group.age_max:
                return provider.model_dump(mode="json"), group.model_dump(mode="json")
    raise AssertionError("the first page of the sandbox catalogue has no group for age 10")


async def at_provider(app: App, chat: LocalChat) -> Context:
    code = await order_code(app)
    provider, _ = await fitting_group(app)
    await seeded_at(
        app, chat, S.provider, queue_type="general", state_order_type=code, has_benefit=False
    )
    return {"provider": provider}


async def at_group(app: App, chat: LocalChat) -> Context:
    code = await order_code(app)
    provider, group = await fitting_group(app)
    await seeded_at(
        app,
        chat,
        S.group,
        queue_type="general",
        state_order_type=code,
        has_benefit=False,
        provider=provider,
    )
    return {"group": group}


async def press(chat: LocalChat, data: str) -> list[Sent]:
    return await chat.press_data(data, message_id=chat.last().message_id or 0)


STEPS = [
    Step(
        "phone: POST /otp",
        at_phone,
        lambda app, chat, ctx: chat.send(PRETTY),
        S.phone,
        S.otp,
        get=False,
        redo=True,
    ),
    Step(
        "code: verify",
        at_code,
        lambda app, chat, ctx: chat.send(ctx["code"]),
        S.otp,
        S.parent_iin,
        get=False,
        redo=True,
    ),
    Step(
        "parent IIN: consent",
        at_parent_iin,
        lambda app, chat, ctx: chat.send(PARENT_IIN),
        S.parent_iin,
        S.parent_consent,
        get=False,
        redo=True,
    ),
    Step(
        "child IIN: consent",
        at_child_iin,
        lambda app, chat, ctx: chat.send(NEW_CHILD),
        S.child_iin,
        S.child_consent,
        get=False,
        redo=True,
    ),
    Step(
        "request data: consent and person",
        at_child_consent,
        lambda app, chat, ctx: chat.press(t(app, "btn-consent-check")),
        S.child_consent,
        S.child_confirm,
        get=True,
        redo=True,
    ),
    Step(
        "queue types",
        at_child_confirm,
        lambda app, chat, ctx: press(chat, PersonAction(action="ok").pack()),
        S.queue_type,
        S.queue_type,
        get=True,
        redo=False,
    ),
    Step(
        "state order types",
        at_queue_type,
        lambda app, chat, ctx: press(chat, QueuePick(code="general").pack()),
        S.state_order,
        S.state_order,
        get=True,
        redo=False,
        saved=("queue_type",),
    ),
    Step(
        "document upload",
        at_benefit_doc,
        lambda app, chat, ctx: chat.send_document(PDF, "benefit.pdf", "application/pdf"),
        S.benefit_doc,
        S.provider,
        get=False,
        redo=True,
    ),
    Step(
        "providers",
        at_benefit,
        lambda app, chat, ctx: press(chat, BenefitAnswer(has=False).pack()),
        S.provider,
        S.provider,
        get=True,
        redo=False,
        saved=("has_benefit",),
    ),
    Step(
        "groups",
        at_provider,
        lambda app, chat, ctx: press(chat, ProviderPick(id=ctx["provider"]["id"]).pack()),
        S.group,
        S.group,
        get=True,
        redo=False,
        saved=("provider",),
    ),
    Step(
        "preview",
        at_group,
        lambda app, chat, ctx: press(chat, GroupPick(id=ctx["group"]["id"]).pack()),
        S.preview,
        S.preview,
        get=False,
        redo=False,
        saved=("group",),
    ),
]


@pytest.mark.parametrize("kind", FAULTS)
@pytest.mark.parametrize("step", STEPS, ids=[s.name for s in STEPS])
async def test_a_fault_keeps_the_step_and_retry_completes_it(
    app: App,
    chat: LocalChat,
    retry_delays: list[float],
    monkeypatch: pytest.MonkeyPatch,
    step: Step,
    kind: str,
) -> None:
    ctx = await step.setup(app, chat)
    draft_before = await app.services.store.get_draft(chat.user_id)
    data_before = await app.storage.get_data(key(app, chat))
    fault = Fault(kind, app, retry_delays, monkeypatch)
    await fault.on()
    try:
        failed = visible(await step.act(app, chat, ctx))
    finally:
        await fault.off()

    # A clear message in the parent's language, a Retry button, the same step.
    last = failed[-1]
    assert t(app, "error-service-unavailable") in (last.plain or ""), last.plain
    assert t(app, "btn-retry") in last.button_texts
    assert await app.storage.get_state(key(app, chat)) == step.at.state
    # Nothing half-done: only what the action confirms before the call changed in the draft.
    draft = await app.services.store.get_draft(chat.user_id)
    changed = {k for k in {*draft, *draft_before} if draft.get(k) != draft_before.get(k)}
    assert changed == set(step.saved)
    data = await app.storage.get_data(key(app, chat))
    for half_done in ("otp_id", "consent_id", "consent_status"):
        assert data.get(half_done) == data_before.get(half_done)
    # The client repeats only what is safe to repeat, and honours Retry-After when it does.
    if not step.get:
        assert retry_delays == []
    elif kind == "unavailable":
        assert retry_delays == [3.0]
    else:
        assert len(retry_delays) == 1

    again = visible(await chat.press(t(app, "btn-retry")))
    assert again and t(app, "error-service-unavailable") not in again[-1].plain
    if step.redo:
        await step.act(app, chat, ctx)
    assert await app.storage.get_state(key(app, chat)) == step.done.state
    assert t(app, "error-service-unavailable") not in (chat.last().plain or "")
    if kind == "slow":
        assert fault.latency.held >= 1  # the late answers: let them come, now that it is over
        fault.let_late_answers_through()

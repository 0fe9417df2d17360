"""A parent's whole journey, step by step, as a person would do it in the chat.

Used by the end-to-end tests (in kk and ru) and by the restart tests, which swap in a new app
between any two stages with `rebind`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from fluent.syntax import FluentParser, ast

from bot.app import App
from bot.local_chat import LocalChat
from bot.local_session import Sent
from tests.conversation.seed import PARENT_IIN, child_iin
from tests.conversation.submitting import settle

LOCALES = Path(__file__).resolve().parents[2] / "locales"
PHONE = "+77017771122"
CHILD_IIN = child_iin(16, 3, 15)  # 10 years old on 1 September 2026
BENEFIT_PDF = b"%PDF-1.4\n% Kezek test benefit certificate\n" + b"1" * 2048
HEADER = re.compile(r"^(Қадам|Шаг) (\d)/5 — ")
STAGES = ("start", "phone", "parent", "child", "choice", "notifications", "submit")


@dataclass
class Journey:
    app: App
    chat: LocalChat
    locale: str
    seen: list[Sent] = field(default_factory=list)
    phone_number: str = PHONE
    child_iin: str = CHILD_IIN

    def tr(self, msg_id: str, **args: object) -> str:
        return self.app.services.i18n.t(self.locale, msg_id, **args)

    def rebind(self, app: App, chat: LocalChat) -> None:
        """Continue the same journey through a new app (after a restart)."""
        self.app, self.chat = app, chat

    def _keep(self, sent: list[Sent]) -> list[Sent]:
        visible = [s for s in sent if s.visible]
        self.seen.extend(visible)
        return visible

    async def send(self, text: str) -> list[Sent]:
        return self._keep(await self.chat.send(text))

    async def press(self, button: str | int) -> list[Sent]:
        return self._keep(await self.chat.press(button))

    async def run(self, stages: tuple[str, ...] = STAGES) -> None:
        for stage in stages:
            await getattr(self, stage)()

    # --- the stages -----------------------------------------------------------------------

    async def start(self) -> None:
        await self.send("/start")
        await self.press("Қазақша" if self.locale == "kk" else "Русский")
        for item in (1, 2, 3):
            await self.press(self.tr(f"rules-item-{item}-short"))
        await self.press(self.tr("btn-join-queue"))

    async def phone(self) -> None:
        self._keep(await self.chat.share_contact(self.phone_number, own=True))
        voucher = self.app.services.voucher
        inbox = await voucher.sandbox_inbox(self.phone_number)
        code = next(m.otp_code for m in reversed(inbox) if m.otp_code)
        await self.send(code)

    async def _consent(self, iin: str) -> None:
        await self.send(iin)
        voucher = self.app.services.voucher
        inbox = await voucher.sandbox_inbox(self.phone_number)
        consent_id = next(m.consent_id for m in reversed(inbox) if m.consent_id)
        await voucher.sandbox_answer_consent(consent_id, "yes")
        # Whether the background check or this button gets there first, the data card shows.
        shown = await self.press(self.tr("btn-consent-check"))
        assert any(self.tr("btn-person-correct") in s.button_texts for s in shown), shown
        await self.press(self.tr("btn-person-correct"))

    async def parent(self) -> None:
        await self._consent(PARENT_IIN)

    async def child(self) -> None:
        await self._consent(self.child_iin)

    async def choice(self) -> None:
        await self.press(0)  # the general queue comes first in the catalogue
        await self.press(0)  # the first state order type
        await self.press(self.tr("btn-benefit-yes"))
        self._keep(await self.chat.send_document(BENEFIT_PDF, "benefit.pdf", "application/pdf"))
        await self.press(0)  # the first provider of the first page
        await self.press(0)  # its first group that fits the child's age
        await self.press(self.tr("btn-preview-continue"))

    async def notifications(self) -> None:
        await self.press(self.tr("btn-notify-telegram"))
        await self.press(self.tr(f"btn-notify-lang-{self.locale}"))

    async def submit(self) -> None:
        for name in ("personal_data", "contact_use", "offer"):
            await self.press(self.tr(f"btn-consent-{name}"))
        await self.press(self.tr("btn-review-submit"))
        await self.settle()

    async def settle(self) -> None:
        """The submitter and the outbox sender, run once: the number comes back to the chat."""
        before = len(self.chat.history())
        await settle(self.app)
        self._keep(self.chat.history()[before:])


def locale_fragments() -> dict[str, set[str]]:
    """Literal pieces (≥ 12 characters) of every message, per locale, minus shared ones."""
    parser = FluentParser()
    pieces: dict[str, set[str]] = {}
    for locale_dir in sorted(LOCALES.iterdir()):
        found: set[str] = set()
        for path in locale_dir.glob("*.ftl"):
            resource = parser.parse(path.read_text(encoding="utf-8"))
            for entry in resource.body:
                if isinstance(entry, ast.Message) and entry.value is not None:
                    for element in entry.value.elements:
                        if isinstance(element, ast.TextElement):
                            for line in element.value.splitlines():
                                if len(line.strip()) >= 12:
                                    found.add(line.strip())
        pieces[locale_dir.name] = found
    shared = pieces["kk"] & pieces["ru"]
    return {locale: found - shared for locale, found in pieces.items()}

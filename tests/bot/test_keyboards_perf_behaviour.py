"""Keyboards built once per locale: the same buttons as a fresh build, and never changed."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest
from aiogram import Bot
from aiogram.types import InlineKeyboardMarkup, KeyboardButton, ReplyKeyboardMarkup
from pydantic import ValidationError

from bot.i18n import I18n, Translator
from bot.keyboards import choice, common, identity, notifications, phone, review, start
from bot.local_session import LocalBotSession
from services.application import CHANNELS, CONSENTS, LANGUAGES
from services.voucher.models import Localized, QueueType, StateOrderType
from tests.bot.test_i18n import PROJECT_LOCALES

Markup = InlineKeyboardMarkup | ReplyKeyboardMarkup
CHAT = 5151

# (name, shared builder, a fresh build of the same keyboard) for every value that matters.
Case = tuple[str, Callable[[Translator], Markup], Callable[[Translator], Markup]]


def _fresh_contact(tr: Translator) -> ReplyKeyboardMarkup:
    """The contact keyboard as it was built for every message before it was shared."""
    return ReplyKeyboardMarkup(
        keyboard=[[KeyboardButton(text=tr("btn-share-contact"), request_contact=True)]],
        resize_keyboard=True,
        one_time_keyboard=True,
        input_field_placeholder="+7 7__ ___ __ __",
    )


def _cases() -> list[Case]:
    cases: list[Case] = [
        ("back", common.back_keyboard, lambda tr: common.with_back(tr)),
        ("iin", identity.iin_keyboard, lambda tr: common.with_back(tr)),
        (
            "retry",
            common.retry_keyboard,
            lambda tr: common.inline([common.retry_button(tr)], [common.back_button(tr)]),
        ),
        ("contact", phone.contact_keyboard, _fresh_contact),
        ("otp", phone.otp_keyboard, phone._otp_keyboard),
        ("preview", choice.preview_keyboard, choice._preview_keyboard),
        ("review-edit", review.edit_keyboard, review._edit_keyboard),
    ]
    for ticked in itertools.chain.from_iterable(
        itertools.combinations(start.RULES, n) for n in range(len(start.RULES) + 1)
    ):
        marks = tuple(item in ticked for item in start.RULES)
        cases.append(
            (
                f"rules{ticked}",
                lambda tr, t=set(ticked): start.rules_keyboard(tr, t),
                lambda tr, m=marks: start._rules_keyboard(tr, m),
            )
        )
    for marks in itertools.product((False, True), repeat=len(CONSENTS)):
        consents = {name: True for name, given in zip(CONSENTS, marks, strict=True) if given}
        cases.append(
            (
                f"review{marks}",
                lambda tr, c=consents: review.review_keyboard(tr, c),
                lambda tr, m=marks: review._review_keyboard(tr, m),
            )
        )
    for current in (True, False, None):
        cases.append(
            (
                f"benefit-{current}",
                lambda tr, c=current: choice.benefit_keyboard(tr, c),
                lambda tr, c=current: choice._benefit_keyboard(tr, c),
            )
        )
    for code in (*CHANNELS, None):
        cases.append(
            (
                f"channel-{code}",
                lambda tr, c=code: notifications.channel_keyboard(tr, c),
                lambda tr, c=code: notifications._channel_keyboard(tr, c),
            )
        )
    for code in (*LANGUAGES, None):
        cases.append(
            (
                f"notify-language-{code}",
                lambda tr, c=code: notifications.notify_language_keyboard(tr, c),
                lambda tr, c=code: notifications._language_keyboard(tr, c),
            )
        )
    for who in ("parent", "child"):
        reenter = "btn-parent-not-me" if who == "parent" else "btn-child-reenter"
        cases.append(
            (
                f"person-{who}",
                lambda tr, w=who: identity.person_keyboard(tr, w),
                lambda tr, r=reenter: identity._person_keyboard(tr, r),
            )
        )
    for kind in ("disability", "benefit"):
        cases.append(
            (
                f"document-{kind}",
                lambda tr, k=kind: choice.document_keyboard(tr, k, True),
                lambda tr, k=kind: choice._document_keyboard(tr, k),
            )
        )
    return cases


CASES = _cases()


@pytest.fixture(scope="module")
def i18n() -> I18n:
    return I18n.load(PROJECT_LOCALES)


def _fresh(case: Case, tr: Translator) -> Markup:
    return case[2](tr)


@pytest.mark.parametrize("locale", ["kk", "ru"])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_a_shared_keyboard_has_the_buttons_of_a_fresh_build(
    i18n: I18n, locale: str, case: Case
) -> None:
    tr = i18n.translator(locale)
    shared = case[1](tr)
    assert shared.model_dump() == _fresh(case, tr).model_dump()
    assert case[1](tr) is shared  # built once


def test_locales_and_values_get_their_own_keyboards(i18n: I18n) -> None:
    kk, ru = i18n.translator("kk"), i18n.translator("ru")
    assert start.rules_keyboard(kk, set()) is not start.rules_keyboard(ru, set())
    assert start.rules_keyboard(kk, {1}) is not start.rules_keyboard(kk, {2})
    # Only which rules are ticked matters: a stray number is the same keyboard.
    assert start.rules_keyboard(kk, {1, 99}) is start.rules_keyboard(kk, {1})
    assert review.review_keyboard(kk, {"offer": "yes"}) is review.review_keyboard(kk, {})


def test_a_shared_keyboard_refuses_changes(i18n: I18n) -> None:
    tr = i18n.translator("kk")
    markup = start.rules_keyboard(tr, {1})
    before = markup.model_dump()
    with pytest.raises(ValidationError):
        markup.inline_keyboard = []
    with pytest.raises(ValidationError):
        markup.inline_keyboard[0][0].text = "changed"
    with pytest.raises(ValidationError):
        common.back_button(tr).callback_data = "nav:retry"
    contact = phone.contact_keyboard(tr)
    with pytest.raises(ValidationError):
        contact.keyboard[0][0].request_contact = False
    assert markup.model_dump() == before


def test_a_keyboard_built_per_message_shares_only_frozen_buttons(i18n: I18n) -> None:
    tr = i18n.translator("kk")
    first, second = choice.group_keyboard(tr, []), choice.group_keyboard(tr, [])
    assert first is not second  # groups come from the service: built for each message
    assert first.inline_keyboard[-1][0] is second.inline_keyboard[-1][0]  # the same Back
    with pytest.raises(ValidationError):
        first.inline_keyboard[-1][0].text = "changed"
    first.inline_keyboard.pop()  # a keyboard of one message may change; the next is whole
    assert choice.group_keyboard(tr, []).model_dump() == second.model_dump()


async def test_sending_shared_keyboards_keeps_them_as_built(i18n: I18n, bot: Bot) -> None:
    session = bot.session
    assert isinstance(session, LocalBotSession)
    for locale in ("kk", "ru"):
        tr = i18n.translator(locale)
        for case in CASES:
            shared = case[1](tr)
            sent: Any = await bot.send_message(CHAT, case[0], reply_markup=shared)
            again: Any = await bot.send_message(CHAT, case[0], reply_markup=case[1](tr))
            fresh = _fresh(case, tr)
            # What Telegram received is what a fresh build gives, the second time too.
            assert session.sent(CHAT)[-1].buttons == session.sent(CHAT)[-2].buttons
            if isinstance(fresh, InlineKeyboardMarkup):
                assert again.reply_markup.model_dump() == fresh.model_dump()
                assert sent.reply_markup.model_dump() == fresh.model_dump()
            assert shared.model_dump() == fresh.model_dump()


def _order_type(code: str, kk: str) -> StateOrderType:
    return StateOrderType(code=code, title=Localized(kk=kk, ru=kk + " (ru)"))


def test_catalogue_keyboards_are_shared_while_the_catalogue_is_the_same(i18n: I18n) -> None:
    tr = i18n.translator("kk")
    long_title = "Өте ұзын атау " * 6
    types = [_order_type("orphan", "Жетім"), _order_type("large", long_title)]
    markup = choice.state_order_keyboard(tr, types, "large")
    assert [[(b.text, b.callback_data) for b in row] for row in markup.inline_keyboard] == [
        [("Жетім", "ch-o:orphan")],
        [("✅ " + choice.shorten(long_title), "ch-o:large")],
        [(tr("btn-back"), "nav:back")],
    ]
    same = [_order_type("orphan", "Жетім"), _order_type("large", long_title)]
    assert choice.state_order_keyboard(tr, same, "large") is markup  # equal catalogue: shared
    # A stale current code ticks nothing, like a code the catalogue no longer has.
    assert choice.state_order_keyboard(tr, types, "gone") is choice.state_order_keyboard(
        tr, types, None
    )
    renamed = [_order_type("orphan", "Жетім балалар"), _order_type("large", long_title)]
    fresh = choice.state_order_keyboard(tr, renamed, "large")
    assert fresh.inline_keyboard[0][0].text == "Жетім балалар"  # a changed catalogue: rebuilt
    queue_types = [
        QueueType(code=code, title=Localized(kk=code, ru=code), description=Localized(kk="", ru=""))
        for code in ("general", "special")
    ]
    queues = choice.queue_type_keyboard(tr, queue_types, "special")
    assert [b.text for row in queues.inline_keyboard for b in row] == [
        "general",
        "✅ special",
        tr("btn-back"),
    ]
    # Codes too long for callback data never make a button (as before sharing).
    too_long = [_order_type("x" * 80, "Ұзын код")]
    assert choice.state_order_keyboard(tr, too_long, None).inline_keyboard == [
        [common.back_button(tr)]
    ]

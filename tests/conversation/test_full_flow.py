"""The whole conversation, /start to the application number, in Kazakh and in Russian."""

from __future__ import annotations

import pytest

from bot.app import App
from bot.local_chat import LocalChat
from tests.conversation.journey import (
    BENEFIT_PDF,
    CHILD_IIN,
    HEADER,
    PHONE,
    Journey,
    locale_fragments,
)
from tests.conversation.seed import PARENT_IIN


@pytest.mark.parametrize("locale", ["kk", "ru"])
async def test_a_parent_gets_an_application_number(app: App, locale: str) -> None:
    other = {"kk": "ru", "ru": "kk"}[locale]
    chat = LocalChat(app.dp, app.bot, user_id=3003, language_code=locale)
    journey = Journey(app, chat, locale)
    await journey.run()

    # Exactly one application upstream, with every field the parent gave.
    applications = await app.services.voucher.sandbox_list_applications()
    assert len(applications) == 1
    body = applications[0].body
    draft = await app.services.store.get_draft(chat.user_id)
    assert body["parent"] == {"iin": PARENT_IIN, "phone": PHONE}
    assert body["child"] == {"iin": CHILD_IIN}
    assert body["queue_type"] == "general"
    orders = await app.services.voucher.list_state_order_types()
    assert body["state_order_type"] == orders[0].code
    assert body["provider_id"] == draft["provider"]["id"]
    assert body["group_id"] == draft["group"]["id"]
    assert body["documents"] == [draft["documents"]["benefit"]["document_id"]]
    assert draft["documents"]["benefit"]["size"] == len(BENEFIT_PDF)
    assert body["notification"] == {"channel": "telegram", "language": locale}
    assert body["consents"] == {"personal_data": True, "contact_use": True, "offer": True}
    assert body["telegram_chat_id"] == chat.chat_id

    # The parent was told the number, in their language.
    number = applications[0].number
    assert number in journey.seen[-1].plain
    assert journey.tr("review-submitted", number=number, sent="").split(number)[0][:12] in (
        journey.seen[-1].plain
    )

    # Every message is in the parent's language, and every step header is too, in order.
    fragments = locale_fragments()
    steps: list[int] = []
    for sent in journey.seen:
        text = sent.plain or ""
        assert not [f for f in fragments[other] if f in text], text
        match = HEADER.match(text)
        if match:
            assert match.group(1) == ("Қадам" if locale == "kk" else "Шаг"), text
            steps.append(int(match.group(2)))
    assert steps == sorted(steps)
    assert set(steps) == {1, 2, 3, 4, 5}
    # The portal-style application at the review names the child and the provider.
    review = next(s for s in journey.seen if journey.tr("btn-review-submit") in s.button_texts)
    assert draft["child"]["first_name"] in review.plain
    assert draft["provider"]["name"][locale] in review.plain

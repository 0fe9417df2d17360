"""The application built from a draft: the request body, missing parts, and the portal text."""

from __future__ import annotations

import copy
import uuid
from pathlib import Path
from typing import Any

import pytest

from bot.i18n import I18n
from bot.render.application import (
    mask_certificate,
    mask_phone,
    render_application,
    render_consents,
)
from services.application import (
    IncompleteDraft,
    Section,
    application_summary,
    build_request,
    missing_consents,
    missing_sections,
    new_idempotency_key,
    section_for_fields,
)

LOCALES = Path(__file__).resolve().parent.parent / "locales"
CHAT_ID = 555_000_111


@pytest.fixture(scope="module")
def i18n() -> I18n:
    return I18n.load(LOCALES)


def make_draft() -> dict[str, Any]:
    """A complete draft the way steps 1–4 leave it (special queue, benefit claimed)."""
    return {
        "phone": "+77012345678",
        "session": "sess-1",
        "parent": {
            "iin": "871008401427",
            "last_name": "Сейітова",
            "first_name": "Айгүл",
            "middle_name": "Болатқызы",
            "birth_date": "1987-10-08",
            "gender": "female",
            "birth_certificate": None,
            "addresses": {
                "permanent": "Алматы, Бостандық ауданы, Абай д-лы, 10",
                "temporary": None,
            },
        },
        "parent_consent_id": "c-parent",
        "parent_consent_session": "sess-1",
        "child": {
            "iin": "160315500015",
            "last_name": "Сейітов",
            "first_name": "Нұрлан",
            "middle_name": None,
            "birth_date": "2016-03-15",
            "gender": "male",
            "birth_certificate": {"number": "10-732-0005933", "issued_on": "2016-03-25"},
            "addresses": {
                "permanent": "Алматы, Әуезов ауданы, Саина к-сі, 5, 12 пәт.",
                "temporary": "Қонаев, Наурыз к-сі, 3",
            },
        },
        "child_consent_id": "c-child",
        "child_consent_session": "sess-1",
        "queue_type": "special",
        "state_order_type": "full",
        "documents": {
            "disability": {
                "document_id": "doc-dis",
                "file_name": "anyqtama.pdf",
                "size": 1000,
                "content_type": "application/pdf",
            },
            "benefit": {
                "document_id": "doc-ben",
                "file_name": "köp_balaly.jpg",
                "size": 2000,
                "content_type": "image/jpeg",
            },
        },
        "has_benefit": True,
        "provider": {
            "id": "prov-7",
            "name": {"kk": "«Өнер» орталығы", "ru": "Центр «Өнер»"},
            "address": "Алматы, Жандосов к-сі, 58",
        },
        "group": {
            "id": "grp-3",
            "name": {"kk": "Домбыра", "ru": "Домбра"},
            "language": "kk",
            "age_min": 7,
            "age_max": 11,
            "seats_free": 4,
        },
        "preview": {
            "queue": {
                "code": "special-7-11",
                "title": {"kk": "Арнайы кезек, 7–11 жас", "ru": "Специальная очередь, 7–11 лет"},
            },
            "age_on_sept_1": 10,
            "academic_year": "2026-2027",
        },
        "notification": {"channel": "telegram", "language": "ru"},
        "consents": {"personal_data": True, "contact_use": True, "offer": True},
    }


# --- the request ------------------------------------------------------------------------------


def test_request_has_every_field_from_the_draft() -> None:
    request = build_request(make_draft(), CHAT_ID)
    assert request.model_dump(mode="json") == {
        "parent": {"iin": "871008401427", "phone": "+77012345678"},
        "child": {"iin": "160315500015"},
        "queue_type": "special",
        "state_order_type": "full",
        "provider_id": "prov-7",
        "group_id": "grp-3",
        "documents": ["doc-dis", "doc-ben"],
        "notification": {"channel": "telegram", "language": "ru"},
        "consents": {"personal_data": True, "contact_use": True, "offer": True},
        "telegram_chat_id": CHAT_ID,
    }


def test_chat_id_goes_only_with_the_telegram_channel() -> None:
    draft = make_draft()
    draft["notification"] = {"channel": "sms", "language": "kk"}
    request = build_request(draft, CHAT_ID)
    assert request.telegram_chat_id is None
    assert request.notification.channel == "sms"
    assert request.notification.language == "kk"


def test_papers_for_answers_changed_later_stay_out() -> None:
    draft = make_draft()
    draft["queue_type"] = "general"
    draft["has_benefit"] = False
    assert build_request(draft, CHAT_ID).documents == []
    draft["has_benefit"] = True
    assert build_request(draft, CHAT_ID).documents == ["doc-ben"]


def test_unticked_consents_travel_as_false() -> None:
    draft = make_draft()
    draft["consents"] = {"personal_data": True}
    consents = build_request(draft, CHAT_ID).consents
    assert (consents.personal_data, consents.contact_use, consents.offer) == (True, False, False)
    assert missing_consents(draft) == ["contact_use", "offer"]
    assert missing_consents(make_draft()) == []
    assert missing_consents({}) == ["personal_data", "contact_use", "offer"]


# --- missing parts ----------------------------------------------------------------------------


def test_a_complete_draft_misses_nothing() -> None:
    assert missing_sections(make_draft()) == []


@pytest.mark.parametrize(
    ("change", "section"),
    [
        (lambda d: d.pop("phone"), Section.PHONE),
        (lambda d: d.pop("parent"), Section.PARENT),
        (lambda d: d.pop("parent_consent_id"), Section.PARENT),
        # A consent from an earlier session does not count after the phone was re-verified.
        (lambda d: d.update(parent_consent_session="sess-0"), Section.PARENT),
        (lambda d: d["child"].pop("iin"), Section.CHILD),
        (lambda d: d.update(child_consent_session="sess-0"), Section.CHILD),
        (lambda d: d.pop("state_order_type"), Section.QUEUE),
        (lambda d: d.update(queue_type="vip"), Section.QUEUE),
        (lambda d: d["documents"].pop("disability"), Section.QUEUE),
        (lambda d: d["documents"].pop("benefit"), Section.QUEUE),
        (lambda d: d.pop("provider"), Section.PROVIDER),
        (lambda d: d.pop("group"), Section.PROVIDER),
        (lambda d: d.pop("preview"), Section.PROVIDER),
        (lambda d: d.pop("notification"), Section.NOTIFICATION),
        (
            lambda d: d.update(notification={"channel": "fax", "language": "ru"}),
            Section.NOTIFICATION,
        ),
        (
            lambda d: d.update(notification={"channel": "sms", "language": "en"}),
            Section.NOTIFICATION,
        ),
    ],
)
def test_missing_part_is_named(change: Any, section: Section) -> None:
    draft = make_draft()
    change(draft)
    assert missing_sections(draft) == [section]
    with pytest.raises(IncompleteDraft) as info:
        build_request(draft, CHAT_ID)
    assert info.value.missing == [section]


def test_without_a_session_the_consents_lapse_too() -> None:
    draft = make_draft()
    del draft["session"]
    assert missing_sections(draft) == [Section.PHONE, Section.PARENT, Section.CHILD]


def test_general_queue_without_benefit_needs_no_papers() -> None:
    draft = make_draft()
    draft.update(queue_type="general", has_benefit=False, documents={})
    assert missing_sections(draft) == []


def test_empty_draft_misses_every_section_in_form_order() -> None:
    assert missing_sections({}) == list(Section)


def test_drafts_without_consent_sessions_are_trusted() -> None:
    draft = make_draft()
    del draft["parent_consent_session"], draft["child_consent_session"]
    assert missing_sections(draft) == []


def test_validation_error_fields_point_at_a_section() -> None:
    assert section_for_fields(["parent.phone"]) is Section.PHONE
    assert section_for_fields(["parent.iin"]) is Section.PARENT
    assert section_for_fields(["child.iin"]) is Section.CHILD
    assert section_for_fields(["documents[0]"]) is Section.QUEUE
    assert section_for_fields(["body", "group_id"]) is Section.PROVIDER
    assert section_for_fields(["parenthood"]) is None
    assert section_for_fields([]) is None


# --- key and summary --------------------------------------------------------------------------


def test_idempotency_keys_are_fresh_uuid4s() -> None:
    first, second = new_idempotency_key(), new_idempotency_key()
    assert first != second
    assert uuid.UUID(first).version == 4
    assert len(first) <= 255


def test_summary_names_child_queue_provider_group_in_both_languages() -> None:
    summary = application_summary(make_draft(), "submitted")
    assert summary == {
        "child": "Сейітов Нұрлан",
        "child_first_name": "Нұрлан",
        "child_birth_year": 2016,
        "child_iin_masked": "••••••••0015",
        "queue_type": "special",
        "queue": {"kk": "Арнайы кезек, 7–11 жас", "ru": "Специальная очередь, 7–11 лет"},
        "provider_id": "prov-7",
        "provider": {"kk": "«Өнер» орталығы", "ru": "Центр «Өнер»"},
        "group_id": "grp-3",
        "group": {"kk": "Домбыра", "ru": "Домбра"},
        "group_language": "kk",
        "status": "submitted",
    }


# --- rendering --------------------------------------------------------------------------------


def test_masks() -> None:
    assert mask_phone("+77012345678") == "+7 701 *** ** 78"
    assert mask_certificate("10-732-0005933") == "10-732-***0005933"
    assert mask_certificate("I-АЛ 0012345") == "********2345"


def test_russian_application_has_every_field(i18n: I18n) -> None:
    text = render_application(make_draft(), i18n.translator("ru"))
    for expected in (
        "<b>Руководителю отдела образования</b>",
        "от: Сейітова Айгүл Болатқызы",
        "ИИН: ••••••••1427",
        "Адрес: Алматы, Бостандық ауданы, Абай д-лы, 10",
        "<b>ЗАЯВЛЕНИЕ</b>",
        "Прошу поставить моего ребёнка Сейітов Нұрлан, 15.03.2016 г. р., в очередь",
        "об инвалидности: anyqtama.pdf",
        "о льготе: köp_balaly.jpg",
        "Поставщик услуг: Центр «Өнер», Алматы, Жандосов к-сі, 58",
        "Группа: Домбра, 7–11 лет, язык обучения: казахский",
        "Очередь: Специальная очередь, 7–11 лет",
        "Учебный год: 2026–2027",
        "Постоянный адрес ребёнка: Алматы, Әуезов ауданы, Саина к-сі, 5, 12 пәт.",
        "Временный адрес ребёнка: Қонаев, Наурыз к-сі, 3",
        "Свидетельство о рождении: 10-732-***0005933",
        "Уведомления: Телеграм, на русском языке",
        "Телефон: +7 701 *** ** 78",
    ):
        assert expected in text, expected
    # Nothing personal in clear beyond what the portal shows.
    for secret in ("871008401427", "160315500015", "+77012345678", "2345678"):
        assert secret not in text


def test_kazakh_application_has_every_field(i18n: I18n) -> None:
    draft = make_draft()
    draft.update(queue_type="general", has_benefit=False, documents={})
    draft["notification"] = {"channel": "push", "language": "kk"}
    draft["child"]["addresses"]["temporary"] = None
    text = render_application(draft, i18n.translator("kk"))
    for expected in (
        "<b>Білім бөлімінің басшысына</b>",
        "кімнен: Сейітова Айгүл Болатқызы",
        "ЖСН: ••••••••1427",
        "<b>ӨТІНІШ</b>",
        "Менің балам Сейітов Нұрлан, 15.03.2016 жылы туған",
        "мүгедектік туралы: жоқ",
        "жеңілдік туралы: жоқ",
        "Қызмет беруші: «Өнер» орталығы, Алматы, Жандосов к-сі, 58",
        "Топ: Домбыра, 7–11 жас, оқыту тілі: қазақ тілі",
        "Кезек: Арнайы кезек, 7–11 жас",
        "Оқу жылы: 2026–2027",
        "Баланың уақытша мекенжайы: жоқ",
        "Туу туралы куәлік: 10-732-***0005933",
        "Хабарламалар: ed24.kz қосымшасы, қазақ тілінде",
        "Телефон: +7 701 *** ** 78",
    ):
        assert expected in text, expected
    assert "871008401427" not in text


def test_names_and_addresses_are_escaped(i18n: I18n) -> None:
    draft = make_draft()
    draft["child"]["first_name"] = "<b>Арман</b>"
    draft["provider"]["name"]["ru"] = "Клуб <i>&</i>"
    draft["child"]["addresses"]["temporary"] = "<a href='x'>дом</a>"
    text = render_application(draft, i18n.translator("ru"))
    assert "&lt;b&gt;Арман&lt;/b&gt;" in text
    assert "Клуб &lt;i&gt;&amp;&lt;/i&gt;" in text
    assert "&lt;a href='x'&gt;дом&lt;/a&gt;" in text
    assert "<b>Арман" not in text and "<i>" not in text and "<a " not in text


def test_consents_show_their_ticks(i18n: I18n) -> None:
    draft = copy.deepcopy(make_draft())
    draft["consents"] = {"personal_data": True, "contact_use": False}
    lines = render_consents(draft, i18n.translator("kk")).splitlines()
    assert lines[1].startswith("✅ Менің және баламның дербес деректерін")
    assert lines[2].startswith("⬜ Өтініш бойынша хабарламалар")
    assert lines[3].startswith("⬜ Жария оферта")

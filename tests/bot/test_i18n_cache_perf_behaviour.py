"""Messages without arguments are formatted once per locale; the texts stay exactly the same."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from bot import i18n as i18n_module
from bot.fsm.states import STEP_OF
from bot.i18n import I18n, TranslationError
from bot.view import StepView
from tests.bot.test_i18n import PROJECT_LOCALES, write_locales
from tests.test_locales import COUNT_WORDS


def _every_plain_id(i18n: I18n, locale: str) -> list[str]:
    """Every message and attribute of the project that formats without arguments."""
    ids = []
    for msg_id in sorted(i18n.message_ids(locale)):
        if i18n.placeholders(locale, msg_id):
            continue
        ids.append(msg_id)
        ids.extend(f"{msg_id}.{a}" for a in sorted(i18n.attribute_names(locale, msg_id)))
    return ids


def _break_formatting(i18n: I18n, monkeypatch: pytest.MonkeyPatch) -> None:
    """From now on Fluent itself fails: only what was kept can still come out."""

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("formatted again")

    for locale in i18n.locales:
        monkeypatch.setattr(i18n._bundles[locale], "format_pattern", broken)


@pytest.mark.parametrize("locale", ["kk", "ru"])
def test_kept_texts_are_the_texts_fluent_formats(
    locale: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh = I18n.load(PROJECT_LOCALES)
    ids = _every_plain_id(fresh, locale)
    assert len(ids) > 100  # the project's messages, not an empty list
    expected = {msg_id: fresh.t(locale, msg_id) for msg_id in ids}  # first use: formatted
    _break_formatting(fresh, monkeypatch)
    assert {msg_id: fresh.t(locale, msg_id) for msg_id in ids} == expected  # kept
    translator = fresh.translator(locale)
    assert {msg_id: translator(msg_id) for msg_id in ids} == expected


@pytest.mark.parametrize("locale", ["kk", "ru"])
def test_text_and_string_arguments_come_out_as_fluent_formats_them(locale: str) -> None:
    i18n = I18n.load(PROJECT_LOCALES)
    bundle = i18n._bundles[locale]
    checked = 0
    for msg_id in sorted(i18n.message_ids(locale)):
        names = i18n.placeholders(locale, msg_id)
        if not names:
            continue
        # Counts are numbers (as tests/test_locales.py asks); the rest strings with what HTML
        # and Fluent might treat specially, distinct per variable.
        args: dict[str, Any] = {
            name: 5 if name in COUNT_WORDS else f"<{name}> {{x}} 1 234 «{i}»"
            for i, name in enumerate(sorted(names))
        }
        message = bundle.get_message(msg_id)
        expected, errors = bundle.format_pattern(message.value, args)
        assert not errors
        assert i18n.t(locale, msg_id, **args) == expected, msg_id
        checked += 1
    assert checked > 50


def test_numbers_and_missing_arguments_still_go_through_fluent(tmp_path: Path) -> None:
    i18n = I18n.load(
        write_locales(tmp_path, {"ru/a.ftl": "n = Всего: { $n }\nhi = Привет, { $name }!\n"}),
        default="ru",
    )
    assert i18n.t("ru", "n", n=1234) == "Всего: 1\xa0234"  # Fluent groups the digits
    assert i18n.t("ru", "n", n="1234") == "Всего: 1234"  # a ready-made string is kept
    assert i18n.t("ru", "hi", name="Ольга") == "Привет, Ольга!"
    with pytest.raises(TranslationError):
        i18n.t("ru", "hi", other="Ольга")


def test_numbers_are_formatted_by_fluent_every_time_and_strings_joined_without_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    i18n = I18n.load(PROJECT_LOCALES)
    assert i18n.t("ru", "common-days", n=2) == "2 дня"
    assert i18n.t("ru", "common-days", n=5) == "5 дней"
    expected = i18n.t("kk", "review-app-from", name="Айгүл")
    _break_formatting(i18n, monkeypatch)
    with pytest.raises(AssertionError, match="formatted again"):
        i18n.t("ru", "common-days", n=2)  # not kept: the next count may differ
    # Text and a string argument only: joined without Fluent, and never kept (personal data).
    assert i18n.t("kk", "review-app-from", name="Айгүл") == expected
    assert i18n.t("kk", "review-app-from", name="Ерлан") == expected.replace("Айгүл", "Ерлан")


def test_each_locale_keeps_its_own_text(tmp_path: Path) -> None:
    i18n = I18n.load(
        write_locales(tmp_path, {"kk/a.ftl": "both = kk-both\n", "ru/a.ftl": "both = ru-both\n"})
    )
    assert [i18n.t(loc, "both") for loc in ("kk", "ru", "kk", "ru")] == [
        "kk-both",
        "ru-both",
        "kk-both",
        "ru-both",
    ]


def test_a_fallback_is_not_kept_and_is_logged_on_every_use(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    i18n = I18n.load(
        write_locales(tmp_path, {"kk/a.ftl": "x = kk\n", "ru/a.ftl": "x = ru\nonly-ru = ru\n"})
    )
    with caplog.at_level(logging.WARNING, logger="bot.i18n"):
        assert i18n.t("kk", "only-ru") == "ru"
        assert i18n.t("kk", "only-ru") == "ru"
    assert [r.getMessage() for r in caplog.records].count(
        "message 'only-ru' missing in 'kk', used 'ru'"
    ) == 2


def test_a_formatting_problem_is_not_kept_and_is_logged_on_every_use(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    i18n = I18n.load(
        write_locales(tmp_path, {"kk/a.ftl": "hi = Сәлем, { $name }!\n"}), strict=False
    )
    with caplog.at_level(logging.ERROR, logger="bot.i18n"):
        first, second = i18n.t("kk", "hi"), i18n.t("kk", "hi")
    assert first == second
    assert len([r for r in caplog.records if "translation problem" in r.getMessage()]) == 2


def test_memo_builds_once_per_locale_and_key() -> None:
    i18n = I18n.load(PROJECT_LOCALES)
    calls: list[tuple[str, int]] = []

    def build(locale: str, key: int) -> list[str]:
        calls.append((locale, key))
        return [locale, str(key)]

    kk, ru = i18n.translator("kk"), i18n.translator("ru")
    first = kk.memo(1, lambda: build("kk", 1))
    assert kk.memo(1, lambda: build("kk", 1)) is first
    assert ru.memo(1, lambda: build("ru", 1)) == ["ru", "1"]
    assert kk.memo(2, lambda: build("kk", 2)) == ["kk", "2"]
    assert calls == [("kk", 1), ("ru", 1), ("kk", 2)]


def test_memo_stops_keeping_at_its_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(i18n_module, "MEMO_LIMIT", 2)
    tr = I18n.load(PROJECT_LOCALES).translator("kk")
    built: list[int] = []
    for key in (1, 2, 3, 3, 1):
        tr.memo(key, lambda key=key: built.append(key))
    assert built == [1, 2, 3, 3]  # 3 came after the bound: built each time, never kept


@pytest.mark.parametrize("locale", ["kk", "ru"])
def test_step_headers_are_the_formatted_ones(locale: str) -> None:
    i18n = I18n.load(PROJECT_LOCALES)
    tr = i18n.translator(locale)
    view = StepView.__new__(StepView)  # header() needs only the translator
    view.tr = tr
    for state, step in STEP_OF.items():
        if not step:
            assert view.header(state) == ""
            continue
        expected = "<b>" + tr("step-header", n=step, title=tr(f"step-title-{step}")) + "</b>\n\n"
        assert view.header(state) == expected
        assert view.header(state) is view.header(state)  # kept, not formatted again
    assert view.header(None) == ""

"""I18n, Translator and LocaleMiddleware."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from aiogram import Bot, Dispatcher
from aiogram.types import CallbackQuery, Chat, Message, TelegramObject, Update, User

from bot.i18n import I18n, LocaleMiddleware, TranslationError, Translator

PROJECT_LOCALES = Path(__file__).resolve().parents[2] / "locales"


def write_locales(root: Path, files: dict[str, str]) -> Path:
    """Create `root/<locale>/<name>.ftl` from {"kk/x.ftl": source}."""
    for relative, source in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source, encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def project() -> I18n:
    return I18n.load(PROJECT_LOCALES)


@pytest.fixture
def sample(tmp_path: Path) -> I18n:
    return I18n.load(
        write_locales(
            tmp_path,
            {
                "kk/a.ftl": "hello = Сәлем, { $name }!\nboth = kk-both\n",
                "kk/b.ftl": "button = Түйме\n    .hint = Кеңес { $n }\n",
                "ru/a.ftl": "hello = Привет, { $name }!\nboth = ru-both\nonly-ru = Только ru\n",
                "ru/b.ftl": "button = Кнопка\n    .hint = Подсказка { $n }\n",
            },
        )
    )


# --- the project's own files ------------------------------------------------------------------


def test_project_locales_load(project: I18n) -> None:
    assert project.locales == ("kk", "ru")
    assert project.language_name("kk") == "Қазақша"
    assert project.language_name("ru") == "Русский"


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (1, "1 день"),
        (2, "2 дня"),
        (5, "5 дней"),
        (11, "11 дней"),
        (21, "21 день"),
        (22, "22 дня"),
        (25, "25 дней"),
        (0, "0 дней"),
        (1.5, "1,5 дня"),
    ],
)
def test_russian_day_plurals(project: I18n, n: float, expected: str) -> None:
    assert project.t("ru", "common-days", n=n) == expected


@pytest.mark.parametrize("n", [1, 2, 5, 21])
def test_kazakh_days_do_not_inflect(project: I18n, n: int) -> None:
    assert project.t("kk", "common-days", n=n) == f"{n} күн"


# --- plural categories, fallback, errors ------------------------------------------------------

PLURAL_PROBE = """probe = { NUMBER($n) ->
    [zero] zero
    [one] one
    [two] two
    [few] few
    [many] many
   *[other] other
}
"""


@pytest.mark.parametrize(
    ("locale", "n", "category"),
    [
        ("ru", 1, "one"),
        ("ru", 2, "few"),
        ("ru", 4, "few"),
        ("ru", 5, "many"),
        ("ru", 11, "many"),
        ("ru", 20, "many"),
        ("ru", 21, "one"),
        ("ru", 22, "few"),
        ("ru", 25, "many"),
        ("ru", 111, "many"),
        ("kk", 1, "one"),
        ("kk", 2, "other"),
        ("kk", 5, "other"),
        ("kk", 21, "other"),
    ],
)
def test_fluent_uses_cldr_plural_categories(
    tmp_path: Path, locale: str, n: int, category: str
) -> None:
    i18n = I18n.load(write_locales(tmp_path, {f"{locale}/p.ftl": PLURAL_PROBE}), default=locale)
    assert i18n.t(locale, "probe", n=n) == category


def test_no_unicode_isolation_marks(sample: I18n) -> None:
    text = sample.t("kk", "hello", name="Әлия")
    assert text == "Сәлем, Әлия!"
    assert "\u2068" not in text and "\u2069" not in text


def test_attributes_format(sample: I18n) -> None:
    assert sample.t("ru", "button.hint", n=3) == "Подсказка 3"
    assert sample.attribute_names("ru", "button") == {"hint"}


def test_falls_back_to_the_other_locale(sample: I18n) -> None:
    assert sample.t("kk", "only-ru") == "Только ru"
    assert sample.t("kk", "both") == "kk-both"  # no fallback when the locale has it


def test_unknown_locale_uses_the_default(sample: I18n) -> None:
    assert sample.t("en", "both") == "kk-both"


def test_missing_everywhere_raises_key_error(sample: I18n) -> None:
    with pytest.raises(KeyError, match="no-such-key"):
        sample.t("ru", "no-such-key")
    with pytest.raises(KeyError, match=r"button\.nope"):
        sample.t("ru", "button.nope")


def test_missing_argument_raises_when_strict(sample: I18n) -> None:
    with pytest.raises(TranslationError, match="name"):
        sample.t("ru", "hello")


def test_missing_argument_is_logged_when_lenient(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    files = {"kk/a.ftl": "hello = Сәлем, { $name }!\n", "ru/a.ftl": "hello = Привет, { $name }!\n"}
    lenient = I18n.load(write_locales(tmp_path, files), strict=False)
    assert lenient.t("ru", "hello") == "Привет, name!"  # Fluent's best effort
    assert "name" in caplog.text


def test_message_ids_and_placeholders(tmp_path: Path) -> None:
    source = """-brand = { $case ->
   *[nom] Кезек
    [gen] Кезектің
}
greeting = Сәлем
full = { greeting }, { $name }! { -brand(case: "gen") } { NUMBER($amount) }
    .hint = { NUMBER($count) ->
        [one] бір
       *[other] { $count }
    }
select = { $sex ->
    [f] қыз
   *[m] ұл
}
"""
    i18n = I18n.load(write_locales(tmp_path, {"kk/a.ftl": source}))
    assert i18n.message_ids("kk") == {"greeting", "full", "select"}
    # $case is the term's own parameter, not something the caller passes.
    assert i18n.placeholders("kk", "full") == {"name", "amount", "count"}
    assert i18n.placeholders("kk", "select") == {"sex"}
    assert i18n.placeholders("kk", "greeting") == set()


def test_placeholders_follow_message_references(tmp_path: Path) -> None:
    source = (
        "inner = { $n } күн\nouter = Қалды: { inner }\nloop-a = { loop-b }\nloop-b = { loop-a }\n"
    )
    i18n = I18n.load(write_locales(tmp_path, {"kk/a.ftl": source}))
    assert i18n.placeholders("kk", "outer") == {"n"}
    assert i18n.placeholders("kk", "loop-a") == set()  # cycles end


def test_syntax_errors_fail_the_load(tmp_path: Path) -> None:
    write_locales(tmp_path, {"kk/broken.ftl": "ok = Жақсы\nbad = { $n \n"})
    with pytest.raises(ValueError, match=r"broken\.ftl"):
        I18n.load(tmp_path)


def test_duplicate_ids_fail_the_load(tmp_path: Path) -> None:
    write_locales(tmp_path, {"kk/a.ftl": "same = Бір\n", "kk/b.ftl": "same = Екі\n"})
    with pytest.raises(ValueError, match=r"'same' is already defined in .*a\.ftl"):
        I18n.load(tmp_path)


def test_default_must_be_loaded(tmp_path: Path) -> None:
    write_locales(tmp_path, {"ru/a.ftl": "x = y\n"})
    with pytest.raises(ValueError, match="default locale 'kk'"):
        I18n.load(tmp_path)


# --- pick and Translator ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "locale"),
    [
        ("kk", "kk"),
        ("kz", "kk"),
        ("KK-kz", "kk"),
        ("ru", "ru"),
        ("ru-RU", "ru"),
        ("uk", "ru"),
        ("be", "ru"),
        ("en", "kk"),
        ("de_DE", "kk"),
        ("", "kk"),
        (None, "kk"),
    ],
)
def test_pick_maps_telegram_codes(sample: I18n, code: str | None, locale: str) -> None:
    assert sample.pick(code) == locale


def test_pick_falls_back_to_the_configured_default(tmp_path: Path) -> None:
    files = {"kk/a.ftl": "x = Иә\n", "ru/a.ftl": "x = Да\n"}
    assert I18n.load(write_locales(tmp_path, files), default="ru").pick("en") == "ru"


def test_translator_is_bound_to_its_locale(sample: I18n) -> None:
    tr = sample.translator("ru")
    assert isinstance(tr, Translator)
    assert tr.locale == "ru"
    assert tr("hello", name="Аня") == "Привет, Аня!"
    assert tr("button.hint", n=2) == "Подсказка 2"
    assert sample.translator("ru") is tr  # one shared instance per locale
    with pytest.raises(ValueError, match="unknown locale"):
        sample.translator("en")


def test_formatting_args_may_be_named_like_parameters(tmp_path: Path) -> None:
    files = {"kk/a.ftl": "m = { $locale } { $msg_id }\n"}
    i18n = I18n.load(write_locales(tmp_path, files))
    # msg_id and locale are positional-only, so messages are free to use these names.
    assert i18n.translator("kk")("m", locale="L", msg_id="M") == "L M"
    assert i18n.t("kk", "m", locale="L", msg_id="M") == "L M"


# --- LocaleMiddleware -------------------------------------------------------------------------


class FakeResolver:
    """Stands in for the users table: returns `answer` or the Telegram code, records calls."""

    def __init__(self, answer: str | None = None) -> None:
        self.answer = answer
        self.calls: list[tuple[int, str | None]] = []

    async def __call__(self, user_id: int, telegram_code: str | None) -> str:
        self.calls.append((user_id, telegram_code))
        return self.answer if self.answer is not None else (telegram_code or "")


async def run_middleware(
    i18n: I18n, resolver: FakeResolver, user: User | None
) -> tuple[object, dict[str, Any]]:
    seen: dict[str, Any] = {}

    async def handler(event: TelegramObject, data: dict[str, Any]) -> str:
        seen.update(data)
        return "handled"

    data: dict[str, Any] = {} if user is None else {"event_from_user": user}
    result = await LocaleMiddleware(i18n, resolver)(handler, Chat(id=1, type="private"), data)
    return result, seen


def _user(language_code: str | None) -> User:
    return User(id=77, is_bot=False, first_name="Әлия", language_code=language_code)


@pytest.mark.parametrize(
    ("telegram_code", "locale"), [("kz", "kk"), ("uk", "ru"), ("en", "kk"), (None, "kk")]
)
async def test_middleware_uses_the_telegram_language_for_new_users(
    sample: I18n, telegram_code: str | None, locale: str
) -> None:
    resolver = FakeResolver()
    result, data = await run_middleware(sample, resolver, _user(telegram_code))
    assert result == "handled"
    assert resolver.calls == [(77, telegram_code)]
    assert data["locale"] == locale
    assert data["tr"].locale == locale
    assert data["tr"]("both") == f"{locale}-both"


async def test_middleware_prefers_the_stored_choice(sample: I18n) -> None:
    _, data = await run_middleware(sample, FakeResolver("kk"), _user("ru"))
    assert data["locale"] == "kk"


async def test_middleware_ignores_unknown_stored_values(sample: I18n) -> None:
    _, data = await run_middleware(sample, FakeResolver("xx"), _user("ru"))
    assert data["locale"] == "kk"


async def test_middleware_without_user_uses_the_default(sample: I18n) -> None:
    resolver = FakeResolver("ru")
    _, data = await run_middleware(sample, resolver, None)
    assert data["locale"] == "kk"
    assert resolver.calls == []


async def test_middleware_in_a_dispatcher(project: I18n) -> None:
    seen: list[tuple[str, str]] = []
    dp = Dispatcher()
    middleware = LocaleMiddleware(project, FakeResolver())
    dp.message.outer_middleware(middleware)
    dp.callback_query.outer_middleware(middleware)

    @dp.message()
    async def on_message(message: Message, locale: str, tr: Translator) -> None:
        seen.append((locale, tr("lang-name")))

    @dp.callback_query()
    async def on_callback(query: CallbackQuery, locale: str, tr: Translator) -> None:
        seen.append((locale, tr("lang-name")))

    chat = Chat(id=77, type="private")
    message = Message(
        message_id=1, date=datetime(2026, 9, 1), chat=chat, from_user=_user("ru"), text="hi"
    )
    query = CallbackQuery(id="q", from_user=_user("kk"), chat_instance="c", data="x")
    bot = Bot("42:TEST")
    try:
        await dp.feed_update(bot, Update(update_id=1, message=message))
        await dp.feed_update(bot, Update(update_id=2, callback_query=query))
    finally:
        await bot.session.close()
    assert seen == [("ru", "Русский"), ("kk", "Қазақша")]

"""Fluent translations per locale, with fallback, and the middleware that picks the locale.

Every `*.ftl` file under `locales/<locale>/` is parsed once at start into one FluentBundle per
locale. Syntax errors and duplicate ids fail loudly at load: Fluent would otherwise drop the
broken message silently and the parent would see a fallback or nothing.

Conventions for callers: pass counts as `int` (plural selectors need numbers), and IINs, phone
numbers and dates as ready-made strings (Fluent would group the digits of an int: "1 234").

Speed (every update formats several messages): a message without arguments is formatted once
per locale and kept; a message made only of text and `{ $variables }` given strings is joined
without Fluent (the same text); everything else (numbers, selectors, functions) goes through
Fluent each time. Nothing formatted with arguments is kept: arguments carry personal data.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Hashable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, User
from fluent.runtime import FluentBundle
from fluent.syntax import FluentParser
from fluent.syntax import ast as ftl
from fluent.syntax.visitor import Visitor

logger = logging.getLogger(__name__)

# async (user_id, telegram_language_code) -> locale; the users table decides (LocaleMiddleware).
LocaleResolver = Callable[[int, str | None], Awaitable[str]]

# Telegram's language_code is an IETF tag chosen by the user's app; these are the ones we map to
# a locale other than their own: "kz" is a common mistake for Kazakh, Ukrainian and Belarusian
# speakers in Kazakhstan are far better served by Russian than by the default.
_LANGUAGE_ALIASES = {"kz": "kk", "uk": "ru", "be": "ru"}
# A translator's memo holds what code builds from the locale files and a few fixed values (step
# headers, keyboards); keys come from our code, so this bound is never reached unless a caller
# wrongly keys by user input: it then builds every time instead of growing without end.
MEMO_LIMIT = 4096

T = TypeVar("T")


class TranslationError(ValueError):
    """A message exists but could not be formatted (missing argument, bad reference, …)."""


class _VariableCollector(Visitor):
    """Collects `$variables` of a message, following references to other messages."""

    def __init__(self, messages: dict[str, ftl.Message]) -> None:
        self._messages = messages
        self._seen: set[str] = set()
        self.names: set[str] = set()

    def visit_VariableReference(self, node: ftl.VariableReference) -> None:
        self.names.add(node.id.name)

    def visit_MessageReference(self, node: ftl.MessageReference) -> None:
        # The referenced message's variables come from the same caller-supplied args.
        target = self._messages.get(node.id.name)
        if target is not None and node.id.name not in self._seen:
            self._seen.add(node.id.name)
            self.visit(target)

    def visit_TermReference(self, node: ftl.TermReference) -> None:
        # Variables inside a term are its own parameters; only the call's arguments are ours.
        self.visit(node.arguments)


# A message made only of text and `{ $variable }`s, as (text, variable name) pairs: with string
# arguments Fluent's result is their plain concatenation, which is what `_fill` builds.
Parts = tuple[tuple[str, str | None], ...]


def _simple_parts(pattern: ftl.Pattern | None) -> Parts | None:
    """The pattern's parts when it has only text and variables (no selectors, functions,
    references or literals), else None: Fluent itself formats those."""
    if pattern is None:
        return None
    parts: list[tuple[str, str | None]] = []
    for element in pattern.elements:
        if isinstance(element, ftl.TextElement):
            parts.append((element.value, None))
        elif isinstance(element, ftl.Placeable) and isinstance(
            element.expression, ftl.VariableReference
        ):
            parts.append(("", element.expression.id.name))
        else:
            return None
    return tuple(parts)


def _fill(parts: Parts, args: dict[str, Any]) -> str | None:
    """The text of simple parts with string arguments; None when an argument is missing or not
    a string (Fluent formats numbers and dates per locale, and reports what is missing)."""
    out: list[str] = []
    for text, name in parts:
        if name is None:
            out.append(text)
            continue
        value = args.get(name)
        if type(value) is not str:
            return None
        out.append(value)
    return "".join(out)


def _parse_locale_dir(directory: Path) -> dict[str, ftl.Message | ftl.Term]:
    """Parse every .ftl file of one locale, failing on syntax errors and duplicate ids."""
    parser = FluentParser()
    entries: dict[str, ftl.Message | ftl.Term] = {}
    origin: dict[str, Path] = {}
    for path in sorted(directory.glob("*.ftl")):
        resource = parser.parse(path.read_text(encoding="utf-8"))
        for entry in resource.body:
            if isinstance(entry, ftl.Junk):
                notes = "; ".join(a.message for a in entry.annotations)
                raise ValueError(f"{path}: Fluent syntax error: {notes}\n{entry.content.strip()}")
            if not isinstance(entry, ftl.Message | ftl.Term):
                continue
            name = ("-" if isinstance(entry, ftl.Term) else "") + entry.id.name
            if name in entries:
                raise ValueError(f"{path}: {name!r} is already defined in {origin[name]}")
            entries[name] = entry
            origin[name] = path
    return entries


class Translator:
    """The translation function bound to one locale: `tr("key", n=3)`."""

    __slots__ = ("_i18n", "_memo", "locale")

    def __init__(self, i18n: I18n, locale: str) -> None:
        """Bind `i18n` to `locale`; get instances from `I18n.translator`."""
        self._i18n = i18n
        self.locale = locale
        self._memo: dict[Hashable, Any] = {}

    def __call__(self, msg_id: str, /, **args: Any) -> str:
        """Format `msg_id` in this translator's locale."""
        return self._i18n.t(self.locale, msg_id, **args)

    def memo(self, key: Hashable, build: Callable[[], T]) -> T:
        """`build()` once per key for this locale: only for values made of the locale's texts
        and of `key`, which must take few values (a step number, a set of ticked boxes), never
        user input. The value is shared: callers must not change it."""
        try:
            return self._memo[key]  # type: ignore[no-any-return]
        except KeyError:
            value = build()
            if len(self._memo) < MEMO_LIMIT:
                self._memo[key] = value
            return value

    def __repr__(self) -> str:
        return f"Translator({self.locale!r})"


class I18n:
    """All locales' compiled Fluent bundles; formats messages with fallback between locales."""

    def __init__(
        self,
        entries: dict[str, dict[str, ftl.Message | ftl.Term]],
        default: str,
        *,
        strict: bool = True,
    ) -> None:
        """Build bundles from parsed entries per locale; prefer `I18n.load`."""
        if default not in entries:
            raise ValueError(f"default locale {default!r} is not among {sorted(entries)}")
        self.default = default
        self.strict = strict
        self._messages: dict[str, dict[str, ftl.Message]] = {}
        self._bundles: dict[str, FluentBundle] = {}
        # locale -> "id" or "id.attribute" -> compiled pattern: one dict lookup per message.
        self._patterns: dict[str, dict[str, Any]] = {}
        # locale -> id -> text of the messages formatted without arguments. The texts never
        # change while the bot runs, and most messages have no arguments.
        self._plain: dict[str, dict[str, str]] = {}
        # locale -> id -> parts of the messages that are only text and variables.
        self._simple: dict[str, dict[str, Parts]] = {}
        for locale, locale_entries in entries.items():
            bundle = FluentBundle([locale], use_isolating=False)  # no U+2068/2069 in Telegram
            bundle.add_resource(ftl.Resource(body=list(locale_entries.values())))
            messages = {k: v for k, v in locale_entries.items() if isinstance(v, ftl.Message)}
            patterns: dict[str, Any] = {}
            for msg_id in messages:
                # compile now: errors at start, no first-use latency
                compiled = bundle.get_message(msg_id)
                if compiled.value is not None:
                    patterns[msg_id] = compiled.value
                for attribute, pattern in compiled.attributes.items():
                    patterns[f"{msg_id}.{attribute}"] = pattern
            self._bundles[locale] = bundle
            self._messages[locale] = messages
            self._patterns[locale] = patterns
            self._plain[locale] = {}
            self._simple[locale] = _simple_messages(messages)
        self._translators = {locale: Translator(self, locale) for locale in self._bundles}

    @classmethod
    def load(cls, locales_dir: Path, default: str = "kk", *, strict: bool = True) -> I18n:
        """Load every `<locales_dir>/<locale>/*.ftl`; each sub-directory is one locale.

        strict=True raises TranslationError when a message cannot be formatted (tests, demo);
        strict=False logs it and returns Fluent's best effort text instead.
        """
        entries = {
            directory.name: _parse_locale_dir(directory)
            for directory in sorted(locales_dir.iterdir())
            if directory.is_dir()
        }
        return cls(entries, default, strict=strict)

    @property
    def locales(self) -> tuple[str, ...]:
        """The loaded locales, default first."""
        return (self.default, *(loc for loc in sorted(self._bundles) if loc != self.default))

    def translator(self, locale: str) -> Translator:
        """The (shared) Translator bound to `locale`."""
        try:
            return self._translators[locale]
        except KeyError:
            raise ValueError(f"unknown locale {locale!r}; loaded: {self.locales}") from None

    def pick(self, code: str | None) -> str:
        """The locale for a Telegram language code or stored choice ("ru-RU", "kz", "uk", None)."""
        if not code:
            return self.default
        primary = code.replace("_", "-").split("-", 1)[0].lower()
        primary = _LANGUAGE_ALIASES.get(primary, primary)
        return primary if primary in self._bundles else self.default

    def language_name(self, locale: str) -> str:
        """The locale's own name for itself, for the language picker."""
        return self.t(locale, "lang-name")

    def t(self, locale: str, msg_id: str, /, **args: Any) -> str:
        """Format `msg_id` (or `msg_id.attribute`) in `locale`, falling back to other locales."""
        if not args:
            plain = self._plain.get(locale)
            if plain is not None and msg_id in plain:
                return plain[msg_id]
        else:
            parts = self._simple.get(locale, {}).get(msg_id)
            if parts is not None and (text := _fill(parts, args)) is not None:
                return text
        for candidate in self._fallback_chain(locale):
            pattern = self._patterns[candidate].get(msg_id)
            if pattern is None:
                continue
            if candidate != locale:
                logger.warning("message %r missing in %r, used %r", msg_id, locale, candidate)
            bundle = self._bundles[candidate]
            text, errors = bundle.format_pattern(pattern, args)
            if errors:
                problem = f"{candidate}/{msg_id}: " + "; ".join(map(str, errors))
                if self.strict:
                    raise TranslationError(problem)
                logger.error("translation problem: %s", problem)
            elif not args and candidate == locale:
                # Kept only when complete and in its own locale: a fallback or a problem is
                # logged again on every use, as before.
                self._plain[locale][msg_id] = str(text)
            return str(text)
        raise KeyError(f"message {msg_id!r} is missing in every locale {self.locales}")

    def message_ids(self, locale: str) -> set[str]:
        """Ids of all messages (not terms) defined for `locale`."""
        return set(self._messages[locale])

    def attribute_names(self, locale: str, msg_id: str) -> set[str]:
        """Names of the attributes of a message (`msg.attr` ids)."""
        return {attr.id.name for attr in self._messages[locale][msg_id].attributes}

    def placeholders(self, locale: str, msg_id: str) -> set[str]:
        """Variables a message uses, in its value, attributes, selectors and referenced messages."""
        messages = self._messages[locale]
        collector = _VariableCollector(messages)
        collector.visit(messages[msg_id])
        return collector.names

    def _fallback_chain(self, locale: str) -> Iterable[str]:
        if locale in self._bundles:
            yield locale
        yield from (loc for loc in self.locales if loc != locale)


def _simple_messages(messages: dict[str, ftl.Message]) -> dict[str, Parts]:
    """Parts of every message and attribute (`id.attr`) that is only text and variables."""
    simple: dict[str, Parts] = {}
    for msg_id, message in messages.items():
        if (parts := _simple_parts(message.value)) is not None:
            simple[msg_id] = parts
        for attribute in message.attributes:
            if (parts := _simple_parts(attribute.value)) is not None:
                simple[f"{msg_id}.{attribute.id.name}"] = parts
    return simple


class LocaleMiddleware(BaseMiddleware):
    """Outer middleware (message, callback_query): puts `locale` and `tr` into handler data.

    `resolve_locale(user_id, telegram_language_code)` gets Telegram's raw code; it returns the
    user's stored choice, or for a new user whatever it likes (e.g. the raw code). The result
    is normalised here: "kk"/"kz" → kk, "ru"/"uk"/"be" → ru, anything else → the default.
    """

    def __init__(self, i18n: I18n, resolve_locale: LocaleResolver) -> None:
        """Create the middleware; `resolve_locale` usually reads the users table."""
        self._i18n = i18n
        self._resolve_locale = resolve_locale

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        """Resolve the locale of the event's user and call the handler with it."""
        user: User | None = data.get("event_from_user")
        if user is None:  # e.g. channel posts: nobody to ask
            locale = self._i18n.default
        else:
            choice = await self._resolve_locale(user.id, user.language_code)
            locale = self._i18n.pick(choice)
        data["locale"] = locale
        data["tr"] = self._i18n.translator(locale)
        return await handler(event, data)

"""Consistency of locales/ with itself and with the code, for every .ftl file in the project.

Written to keep working as steps add files: it discovers locales, messages and code usages.
Conventions it enforces (tell every step author):
- the same files, message ids, attributes and $variables in every locale;
- every id the code passes to `tr(...)`, `.tr(...)`, `t(...)`, `.t(...)` exists, and every
  message is used by code (a string constant, an f-string prefix such as f"rules-item-{i}",
  or a reference from another message);
- Kazakh text has no Latin words but the allow-listed ones, Russian text no Kazakh letters;
- variables named like counts (n, count, attempts, seconds, minutes, …) receive numbers,
  all others strings: every message must format with such arguments.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fluent.syntax import FluentParser
from fluent.syntax import ast as ftl
from fluent.syntax.visitor import Visitor

from bot.i18n import I18n

ROOT = Path(__file__).resolve().parents[1]
LOCALES_DIR = ROOT / "locales"
CODE_DIRS = (ROOT / "bot", ROOT / "services")

# Shared vocabulary kept for steps to use even while no code does; the test below fails as soon
# as an entry becomes used, so this list only ever holds genuinely unused ids.
SHARED_UNUSED_IDS = {"common-days"}

# Latin text allowed inside Kazakh messages: names that have no Kazakh spelling, bot commands and
# the HTML markup of parse_mode=HTML. ($iin and other placeholders are not text: no entry needed.)
KK_LATIN_ALLOWED = re.compile(
    r"</?[a-z]+(?:\s[^>]*)?>|&[a-z]+;"  # <b>, </i>, <a href="…">, &lt;
    r"|(?:https?://)?(?:www\.)?ed24\.kz(?:/\S*)?"
    r"|\beGov\b|\bTelegram\b|\bSMS\b|\bPDF\b|\bJPEG\b|\bPNG\b"
    r"|(?<![\w/])/[a-z][a-z0-9_]*\b"  # bot commands such as /start are Latin in every language
)
LATIN = re.compile(r"[A-Za-z]")
KAZAKH_LETTERS = "әғқңөұүһіӘҒҚҢӨҰҮҺІ"
KAZAKH_LETTER = re.compile(f"[{KAZAKH_LETTERS}]")
# Proper names that a Russian message may spell the Kazakh way.
RU_KAZAKH_ALLOWED = re.compile(r"ed24\.kz|Қазақша")

COUNT_WORDS = {"n", "count", "attempts", "seconds", "minutes", "hours", "days", "total", "left"}
SAMPLE_NUMBERS = (0, 1, 2, 5, 11, 21, 22)


def _listing(items: Iterable[str], where: str = "") -> str:
    """One problem per line, so a failure names every offender at once."""
    heading = f"{where}:\n" if where else ""
    return heading + "\n".join(f"  {item}" for item in sorted(items))


# --- reading the .ftl files (independently of bot.i18n) -------------------------------------


@dataclass
class LocaleFiles:
    """Parsed entries of one locale, with the file each came from."""

    entries: dict[str, ftl.Message | ftl.Term] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # entry id -> file name


def _read_locale(directory: Path) -> LocaleFiles:
    parsed = LocaleFiles()
    for path in sorted(directory.glob("*.ftl")):
        for entry in FluentParser().parse(path.read_text(encoding="utf-8")).body:
            if isinstance(entry, ftl.Message | ftl.Term):
                name = ("-" if isinstance(entry, ftl.Term) else "") + entry.id.name
                parsed.entries[name] = entry
                parsed.files[name] = path.name
    return parsed


class _TextCollector(Visitor):
    """Collects what the user reads: text elements and string literals, not ids or keys."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def visit_TextElement(self, node: ftl.TextElement) -> None:
        self.parts.append(node.value)

    def visit_StringLiteral(self, node: ftl.StringLiteral) -> None:
        self.parts.append(node.value)


class _ReferenceCollector(Visitor):
    def __init__(self) -> None:
        self.ids: set[str] = set()

    def visit_MessageReference(self, node: ftl.MessageReference) -> None:
        self.ids.add(node.id.name)


def _text_of(entry: ftl.Message | ftl.Term) -> str:
    collector = _TextCollector()
    collector.visit(entry)
    return " ".join(collector.parts)


# --- reading the code ------------------------------------------------------------------------


@dataclass
class CodeUsage:
    """Message ids the code asks for, f-string prefixes, and every string constant."""

    ids: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    prefixes: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    constants: set[str] = field(default_factory=set)


def _id_argument(call: ast.Call) -> ast.expr | None:
    """The message-id argument of a tr/t call: `tr(id)`, `t(id)`, `i18n.t(locale, id)`."""
    func = call.func
    name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
    if name == "tr":
        index = 0
    elif name == "t":
        index = 1 if len(call.args) >= 2 else 0
    else:
        return None
    return call.args[index] if len(call.args) > index else None


def _fstring_prefix(node: ast.JoinedStr) -> str:
    prefix = ""
    for part in node.values:
        if not (isinstance(part, ast.Constant) and isinstance(part.value, str)):
            break
        prefix += part.value
    return prefix


def _scan_code() -> CodeUsage:
    usage = CodeUsage()
    for directory in CODE_DIRS:
        for path in sorted(directory.rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    usage.constants.add(node.value)
                if not isinstance(node, ast.Call):
                    continue
                arg = _id_argument(node)
                where = f"{path.relative_to(ROOT)}:{node.lineno}"
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    usage.ids[arg.value].append(where)
                elif isinstance(arg, ast.JoinedStr) and _fstring_prefix(arg):
                    usage.prefixes[_fstring_prefix(arg)].append(where)
    return usage


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def i18n() -> I18n:
    return I18n.load(LOCALES_DIR)  # strict: any formatting problem raises


@pytest.fixture(scope="module")
def files() -> dict[str, LocaleFiles]:
    return {d.name: _read_locale(d) for d in sorted(LOCALES_DIR.iterdir()) if d.is_dir()}


@pytest.fixture(scope="module")
def code() -> CodeUsage:
    return _scan_code()


# --- (a) (b) the locales agree with each other ------------------------------------------------


def test_the_expected_locales_exist(i18n: I18n) -> None:
    assert set(i18n.locales) == {"kk", "ru"}
    assert i18n.default == "kk"


def test_every_locale_has_the_same_files() -> None:
    names = {
        d.name: sorted(p.name for p in d.glob("*.ftl")) for d in LOCALES_DIR.iterdir() if d.is_dir()
    }
    assert len({tuple(v) for v in names.values()}) == 1, names


def test_same_message_ids_and_attributes_everywhere(i18n: I18n) -> None:
    def shape(locale: str) -> set[str]:
        ids = i18n.message_ids(locale)
        return ids | {f"{m}.{a}" for m in ids for a in i18n.attribute_names(locale, m)}

    base = i18n.default
    for locale in i18n.locales[1:]:
        assert not shape(base) - shape(locale), _listing(
            shape(base) - shape(locale), f"missing in {locale}"
        )
        assert not shape(locale) - shape(base), _listing(
            shape(locale) - shape(base), f"missing in {base}"
        )


def test_same_placeholders_everywhere(i18n: I18n) -> None:
    base = i18n.default
    differences = {
        f"{locale}/{msg_id}": (i18n.placeholders(base, msg_id), i18n.placeholders(locale, msg_id))
        for locale in i18n.locales[1:]
        for msg_id in i18n.message_ids(base) & i18n.message_ids(locale)
        if i18n.placeholders(base, msg_id) != i18n.placeholders(locale, msg_id)
    }
    assert not differences, _listing(f"{k}: {base} {a} vs {b}" for k, (a, b) in differences.items())


# --- (c) (d) the code and the files agree -----------------------------------------------------


def test_every_id_used_in_code_exists(i18n: I18n, code: CodeUsage) -> None:
    problems: list[str] = []
    for locale in i18n.locales:
        ids = i18n.message_ids(locale)
        for used, places in code.ids.items():
            name, _, attribute = used.partition(".")
            if name not in ids or (
                attribute and attribute not in i18n.attribute_names(locale, name)
            ):
                problems.append(f"{locale}: {used!r} used at {places[0]}")
        for prefix, places in code.prefixes.items():
            if not any(msg_id.startswith(prefix) for msg_id in ids):
                problems.append(f"{locale}: no id starts with {prefix!r} (f-string at {places[0]})")
    assert not problems, _listing(problems)


def test_every_message_is_used(i18n: I18n, files: dict[str, LocaleFiles], code: CodeUsage) -> None:
    referenced = _ReferenceCollector()
    for parsed in files.values():
        referenced.visit(list(parsed.entries.values()))

    def is_used(msg_id: str, locale: str) -> bool:
        attributes = i18n.attribute_names(locale, msg_id)
        return (
            msg_id in code.constants
            or any(f"{msg_id}.{a}" in code.constants for a in attributes)
            or any(msg_id.startswith(prefix) for prefix in code.prefixes)
            or msg_id in referenced.ids
        )

    unused = {
        msg_id
        for locale in i18n.locales
        for msg_id in i18n.message_ids(locale)
        if not is_used(msg_id, locale)
    }
    assert not unused - SHARED_UNUSED_IDS, _listing(unused - SHARED_UNUSED_IDS, "used by no code")
    # Keep the allow-list honest: drop an entry once code uses it (or the id is gone).
    assert not SHARED_UNUSED_IDS - unused, _listing(
        SHARED_UNUSED_IDS - unused, "used now: drop from SHARED_UNUSED_IDS"
    )


def test_the_code_scanner_finds_each_call_form() -> None:
    tree = ast.parse(
        "tr('a-1'); view.tr('a-2'); t('a-3'); i18n.t(locale, 'a-4'); tr(f'a-5-{x}'); other('no')"
    )
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    found = []
    for call in calls:
        arg = _id_argument(call)
        if isinstance(arg, ast.Constant):
            found.append(arg.value)
        elif isinstance(arg, ast.JoinedStr):
            found.append(_fstring_prefix(arg) + "*")
    assert sorted(found) == ["a-1", "a-2", "a-3", "a-4", "a-5-*"]


# --- (e) the right alphabet -------------------------------------------------------------------


def test_kazakh_messages_have_no_latin_words(files: dict[str, LocaleFiles]) -> None:
    offenders = {}
    for name, entry in files["kk"].entries.items():
        leftover = KK_LATIN_ALLOWED.sub("", _text_of(entry))
        if LATIN.search(leftover):
            offenders[f"{files['kk'].files[name]}:{name}"] = _text_of(entry)
    assert not offenders, _listing(f"{k}: {v!r}" for k, v in offenders.items())


def test_every_kazakh_file_is_written_in_kazakh(files: dict[str, LocaleFiles]) -> None:
    text_per_file: dict[str, str] = defaultdict(str)
    for name, entry in files["kk"].entries.items():
        text_per_file[files["kk"].files[name]] += _text_of(entry)
    assert text_per_file, "no Kazakh messages at all"
    # A file without a single Kazakh-specific letter is almost surely a copy of the Russian one.
    not_kazakh = [f for f, text in text_per_file.items() if not KAZAKH_LETTER.search(text)]
    assert not not_kazakh, _listing(not_kazakh)


def test_russian_messages_have_no_kazakh_letters(files: dict[str, LocaleFiles]) -> None:
    offenders = {}
    for name, entry in files["ru"].entries.items():
        leftover = RU_KAZAKH_ALLOWED.sub("", _text_of(entry))
        if KAZAKH_LETTER.search(leftover):
            offenders[f"{files['ru'].files[name]}:{name}"] = _text_of(entry)
    assert not offenders, _listing(f"{k}: {v!r}" for k, v in offenders.items())


def test_the_alphabet_checks_catch_mistakes() -> None:
    def text(source: str) -> str:
        entry = FluentParser().parse(source).body[0]
        assert isinstance(entry, ftl.Message)
        return _text_of(entry)

    kk_ok = text("m = <b>ed24.kz</b> сайтында /start басыңыз, { $iin } PDF, Telegram &lt;\n")
    kk_bad = text("m = Сіздің application қабылданды\n")
    assert not LATIN.search(KK_LATIN_ALLOWED.sub("", kk_ok))
    assert LATIN.search(KK_LATIN_ALLOWED.sub("", kk_bad))
    assert KAZAKH_LETTER.search(RU_KAZAKH_ALLOWED.sub("", text("m = Заявка қабылданды\n")))
    assert not KAZAKH_LETTER.search(RU_KAZAKH_ALLOWED.sub("", text("m = Язык: Қазақша\n")))


# --- (f) everything formats -------------------------------------------------------------------


def _is_count(variable: str) -> bool:
    return any(part in COUNT_WORDS for part in re.split(r"[_-]", variable.lower()))


def test_every_message_formats_in_every_locale(i18n: I18n, files: dict[str, LocaleFiles]) -> None:
    failures: list[str] = []
    for locale in i18n.locales:
        for msg_id in sorted(i18n.message_ids(locale)):
            entry = files[locale].entries[msg_id]
            targets = [f"{msg_id}.{a}" for a in sorted(i18n.attribute_names(locale, msg_id))]
            if entry.value is not None:
                targets.insert(0, msg_id)
            variables = sorted(i18n.placeholders(locale, msg_id))
            counts = [v for v in variables if _is_count(v)]
            for number in SAMPLE_NUMBERS if counts else (None,):
                args: dict[str, object] = {v: "Тест" for v in variables}
                args.update({v: number for v in counts})
                for target in targets:
                    try:
                        text = i18n.t(locale, target, **args)
                    except Exception as error:  # collect them all, report at once
                        failures.append(f"{locale}/{target} {args}: {error}")
                    else:
                        if not text.strip():
                            failures.append(f"{locale}/{target}: formats to nothing")
    assert not failures, _listing(failures)

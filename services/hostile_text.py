"""What to do with characters a parent cannot see or did not mean: pure functions, no aiogram.

- Invisible format characters (zero-width space and joiners, left-to-right and right-to-left
  marks, the bidi overrides U+202A–U+202E and isolates U+2066–U+2069, the BOM, the soft hyphen)
  arrive when numbers are copied from PDFs, banking apps or web pages. In a number they are
  dropped; in text shown back they are dropped too, because an RTL override would reverse the
  rest of the bot's own line.
- Digits of other scripts (full-width ０-９, Arabic-Indic ٠-٩, Persian ۰-۹, …) look like digits
  and Python's `int()` even accepts them, but the voucher service does not: the parent is told
  to type 0–9 instead of getting a puzzling "not a number".
"""

from __future__ import annotations

import unicodedata

from services.validation import ASCII_DIGITS

# Telegram's own limit for a message's text; anything longer did not come from a Telegram app.
MAX_MESSAGE = 4096


def is_invisible(ch: str) -> bool:
    """A format character (Unicode category Cf): zero-width, bidi controls, BOM, soft hyphen."""
    return unicodedata.category(ch) == "Cf"


def strip_invisible(text: str) -> str:
    """`text` without format characters; ASCII text comes back as is, at once."""
    if text.isascii():
        return text
    return "".join(ch for ch in text if not is_invisible(ch))


def has_foreign_digits(text: str) -> bool:
    """True when `text` holds a decimal digit that is not one of 0–9 (full-width, Arabic…)."""
    if text.isascii():
        return False
    return any(ch.isdecimal() and ch not in ASCII_DIGITS for ch in text)


def for_display(text: str, limit: int) -> str:
    """User text fit to quote back: no invisible or control characters, at most `limit` long.

    The caller still HTML-escapes it (`bot.view.esc`): this only keeps the line readable.
    """
    kept = "".join(
        ch
        for ch in strip_invisible(text)
        if ch == " " or unicodedata.category(ch) not in {"Cc", "Zl", "Zp"}
    )
    return " ".join(kept.split())[:limit]

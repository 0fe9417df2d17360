"""Defence in depth for logs: anything shaped like an IIN or a Kazakhstan phone is masked.

The code never logs personal data in clear (it logs ids, codes and `mask_tail` values); this
filter catches what slips through anyway — a library's debug line, an exception message that
quotes its input — before a handler writes it. Installed on the root logger's handlers by
`bot/__main__.py`; tests install it on theirs.

    871008401427       → ••••••••1427      (12 digits: an IIN)
    +7 701 777-11-22   → ••••••••1122      (+7 / 7 / 8 and ten digits, with the usual separators)
"""

from __future__ import annotations

import logging
import re

MASK = "•" * 8

# Twelve digits standing alone: longer runs (chat ids of groups, hashes) are left as they are.
_IIN = re.compile(r"(?<![0-9])[0-9]{12}(?![0-9])")
# +7, 7 or 8, then ten digits in the groups people write: 3-3-2-2, with at most two separator
# characters (space, dash, dot, brackets) between groups.
_SEP = r"[\s\-.()]{0,2}"
_PHONE = re.compile(
    r"(?<![0-9+])(?:\+\s?7|7|8)"
    + _SEP
    + r"[0-9]{3}"
    + _SEP
    + r"[0-9]{3}"
    + _SEP
    + r"[0-9]{2}"
    + _SEP
    + r"[0-9]{2}(?![0-9])"
)


def _tail(match: re.Match[str]) -> str:
    digits = [c for c in match.group(0) if c.isdigit()]
    return MASK + "".join(digits[-4:])


def mask_personal(text: str) -> str:
    """`text` with every IIN-shaped and phone-shaped number masked but for its last 4 digits."""
    if not any(c.isdigit() for c in text):
        return text  # the common case, cheaply
    return _IIN.sub(_tail, _PHONE.sub(_tail, text))


class PersonalDataFilter(logging.Filter):
    """A handler filter that rewrites each record's message, traceback and stack masked."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        """Mask the record in place; never drops it."""
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: the handler reports it as it would
            return True
        masked = mask_personal(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info:
            # Computed here, masked, and cached where every formatter looks for it first.
            record.exc_text = mask_personal(self._formatter.formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = mask_personal(record.exc_text)
        if record.stack_info:
            record.stack_info = mask_personal(record.stack_info)
        return True


def install_log_masking(logger: logging.Logger | None = None) -> PersonalDataFilter:
    """Put one `PersonalDataFilter` on every handler of `logger` (the root logger by default).

    Handler filters see every record a handler writes, whichever logger it came from (a
    logger's own filters would see only records made on that very logger). Idempotent.
    """
    target = logger or logging.getLogger()
    found = next(
        (
            f
            for handler in target.handlers
            for f in handler.filters
            if isinstance(f, PersonalDataFilter)
        ),
        None,
    )
    mask = found or PersonalDataFilter()
    for handler in target.handlers:
        if not any(isinstance(f, PersonalDataFilter) for f in handler.filters):
            handler.addFilter(mask)
    return mask

"""services/logmask.py: IIN- and phone-shaped numbers masked in every record a handler writes."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from services.logmask import MASK, PersonalDataFilter, install_log_masking, mask_personal


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("iin 871008401427 refused", f"iin {MASK}1427 refused"),
        ("871008401427,160315500017", f"{MASK}1427,{MASK}0017"),
        ("phone +77017771122", f"phone {MASK}1122"),
        ("phone 77017771122.", f"phone {MASK}1122."),
        ("phone 87017771122", f"phone {MASK}1122"),
        ("phone +7 701 777 11 22 ok", f"phone {MASK}1122 ok"),
        ("phone 8 (701) 777-11-22", f"phone {MASK}1122"),
        ("phone +7(701)777-11-22", f"phone {MASK}1122"),
        ("{'phone': '+77017771122'}", f"{{'phone': '{MASK}1122'}}"),
    ],
)
def test_iins_and_phones_are_masked_but_for_the_last_four_digits(text: str, masked: str) -> None:
    assert mask_personal(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "update 123456789 handled in 12 ms",
        "chat -1001234567890 and group 1234567890123",  # longer digit runs are ids, not IINs
        "application KZ-0042 at 2026-09-10T10:00:00.123456+00:00",
        "user 7017771122",  # ten digits alone: a Telegram id, not a phone
        "no digits at all",
        f"already masked {MASK}1427",
    ],
)
def test_other_numbers_are_left_alone(text: str) -> None:
    assert mask_personal(text) == text


@pytest.fixture
def logger() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A private logger tree with one stream handler, as basicConfig would set up."""
    parent = logging.getLogger("kezek-test-logmask")
    parent.propagate = False
    parent.setLevel(logging.DEBUG)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
    parent.addHandler(handler)
    try:
        yield parent, stream
    finally:
        parent.removeHandler(handler)


def test_installed_on_the_handlers_it_masks_records_of_child_loggers_args_and_tracebacks(
    logger: tuple[logging.Logger, io.StringIO],
) -> None:
    parent, stream = logger
    mask = install_log_masking(parent)
    assert install_log_masking(parent) is mask  # once per handler, however often installed
    assert sum(isinstance(f, PersonalDataFilter) for f in parent.handlers[0].filters) == 1

    child = parent.getChild("library.deep")
    child.debug("executing %s", ("INSERT", "+77017771122", 871008401427))
    try:
        raise ValueError("bad iin 160315500017")
    except ValueError:
        child.exception("failed for %s", "87017771122")
    child.warning("stack", stack_info=True)  # a stack holds no numbers here, but is kept

    written = stream.getvalue()
    for clear in ("77017771122", "871008401427", "160315500017", "87017771122"):
        assert clear not in written
    assert f"{MASK}1122" in written and f"{MASK}1427" in written
    assert f"bad iin {MASK}0017" in written  # the exception's message in the traceback
    assert "Traceback (most recent call last)" in written and "Stack (most recent" in written


def test_a_record_with_a_broken_format_is_passed_on_unchanged() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "%d items", ("many",), None)
    assert PersonalDataFilter().filter(record) is True
    assert (record.msg, record.args) == ("%d items", ("many",))

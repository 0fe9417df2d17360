"""services/documents.py: the type comes from the bytes, the size limit is 10 MiB exactly."""

from __future__ import annotations

import pytest

from services.documents import (
    MAX_DOCUMENT_BYTES,
    DocumentProblem,
    check_document,
    extension_for,
    size_problem,
    sniff_type,
)

PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"


@pytest.mark.parametrize(
    ("content", "expected"),
    [(PDF, "application/pdf"), (JPEG, "image/jpeg"), (PNG, "image/png")],
)
def test_accepted_types_are_told_by_their_bytes(content: bytes, expected: str) -> None:
    check = check_document(content)
    assert check.ok
    assert check.content_type == expected
    assert sniff_type(content) == expected


def test_a_name_does_not_decide_the_type() -> None:
    # The bytes of a PNG sent as "spravka.pdf" are a PNG; the name is not even looked at.
    assert check_document(PNG).content_type == "image/png"
    assert sniff_type(PNG) != "application/pdf"


@pytest.mark.parametrize(
    "content",
    [
        b"just some text, named .pdf by the phone",
        b"PDF-1.7 without the percent sign",
        b"\x89PNG\r\n",  # a cut signature
        b"\xff\xd8",  # two of the three JPEG bytes
        b" %PDF-1.7",  # the signature must come first
    ],
)
def test_anything_else_is_unsupported(content: bytes) -> None:
    check = check_document(content)
    assert not check.ok
    assert check.content_type is None
    assert check.problem is DocumentProblem.UNSUPPORTED


def test_an_empty_file_has_its_own_reason() -> None:
    assert check_document(b"").problem is DocumentProblem.EMPTY


def test_exactly_ten_mebibytes_is_accepted_one_byte_more_is_not() -> None:
    assert MAX_DOCUMENT_BYTES == 10_485_760
    at_limit = PDF + b"\0" * (MAX_DOCUMENT_BYTES - len(PDF))
    assert len(at_limit) == 10_485_760
    assert check_document(at_limit).content_type == "application/pdf"
    over = at_limit + b"\0"
    assert check_document(over).problem is DocumentProblem.TOO_LARGE


def test_size_wins_over_type_as_at_the_service() -> None:
    text = b"x" * (MAX_DOCUMENT_BYTES + 1)
    assert check_document(text).problem is DocumentProblem.TOO_LARGE


def test_declared_size_before_download() -> None:
    assert size_problem(MAX_DOCUMENT_BYTES) is None
    assert size_problem(MAX_DOCUMENT_BYTES + 1) is DocumentProblem.TOO_LARGE
    assert size_problem(None) is None  # unknown: decided after the download
    assert size_problem(0) is None


def test_extension_for_each_type() -> None:
    assert extension_for("application/pdf") == ".pdf"
    assert extension_for("image/jpeg") == ".jpg"
    assert extension_for("image/png") == ".png"
    assert extension_for("text/plain") == ""

"""What a parent's document may be: PDF, JPEG or PNG by its bytes, at most 10 MiB.

Pure functions, no I/O and no aiogram: the bot refuses a file by its declared size before
downloading it and by its bytes after, with the same rules the voucher service applies (the
type comes from the bytes alone, the name and the MIME type a phone claims are not trusted).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

MAX_DOCUMENT_BYTES = 10 * 1024 * 1024  # 10 MiB = 10,485,760 bytes, the service's limit

# Leading bytes ("magic numbers") of the accepted formats, as the contract lists them.
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", "application/pdf"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
)
_EXTENSIONS = {"application/pdf": ".pdf", "image/jpeg": ".jpg", "image/png": ".png"}


class DocumentProblem(StrEnum):
    """Why a file is refused; each reason gets its own message in the bot."""

    EMPTY = "empty"
    TOO_LARGE = "too_large"
    UNSUPPORTED = "unsupported_type"


@dataclass(frozen=True, slots=True)
class DocumentCheck:
    """Either the file's content type or the reason it is refused."""

    content_type: str | None = None
    problem: DocumentProblem | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


def sniff_type(content: bytes) -> str | None:
    """The content type the leading bytes reveal, or None for anything but PDF/JPEG/PNG."""
    return next((kind for magic, kind in _SIGNATURES if content.startswith(magic)), None)


def size_problem(size: int | None) -> DocumentProblem | None:
    """TOO_LARGE when a declared size is over the limit; None when fine or unknown."""
    if size is not None and size > MAX_DOCUMENT_BYTES:
        return DocumentProblem.TOO_LARGE
    return None


def check_document(content: bytes) -> DocumentCheck:
    """Judge downloaded bytes; the size wins over the type, as at the voucher service."""
    if not content:
        return DocumentCheck(problem=DocumentProblem.EMPTY)
    too_large = size_problem(len(content))
    if too_large is not None:
        return DocumentCheck(problem=too_large)
    kind = sniff_type(content)
    if kind is None:
        return DocumentCheck(problem=DocumentProblem.UNSUPPORTED)
    return DocumentCheck(content_type=kind)


def extension_for(content_type: str) -> str:
    """`.pdf`, `.jpg` or `.png` for an accepted type (a name for photos, which have none)."""
    return _EXTENSIONS.get(content_type, "")

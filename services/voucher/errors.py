"""Typed exceptions for every problem `code` of the voucher-service contract.

The client raises these; the bot catches them by type and turns each into a localized
message. `ServiceUnavailable` covers everything that is not an answer from the service:
network errors, timeouts, 5xx and the sandbox's injected 503s.
"""

from __future__ import annotations

from typing import Any


class VoucherError(Exception):
    """An answer from the voucher service that is not a success."""

    code: str = "error"

    def __init__(self, status: int = 0, detail: str = "", **extra: Any) -> None:
        super().__init__(f"{self.code} ({status}): {detail}")
        self.status = status
        self.detail = detail
        self.extra = extra


class ServiceUnavailable(VoucherError):
    """The service could not be reached or did not give a final answer; safe to try later."""

    code = "unavailable"

    def __init__(
        self, status: int = 0, detail: str = "", retry_after: float | None = None, **extra: Any
    ) -> None:
        super().__init__(status, detail, **extra)
        self.retry_after = retry_after


class Unauthorized(VoucherError):
    code = "unauthorized"


class SessionInvalid(VoucherError):
    code = "session_invalid"


class NotFound(VoucherError):
    code = "not_found"


class ValidationFailed(VoucherError):
    code = "validation_error"

    @property
    def errors(self) -> list[dict[str, str]]:
        return list(self.extra.get("errors") or [])


class PhoneInvalid(VoucherError):
    code = "phone_invalid"


class PhoneNotRegistered(VoucherError):
    code = "phone_not_registered"


class TooManyRequests(VoucherError):
    code = "too_many_requests"

    def __init__(
        self, status: int = 429, detail: str = "", retry_after: float | None = None, **extra: Any
    ) -> None:
        super().__init__(status, detail, **extra)
        self.retry_after = retry_after


class OtpInvalid(VoucherError):
    code = "otp_invalid"

    @property
    def attempts_left(self) -> int:
        return int(self.extra.get("attempts_left") or 0)


class OtpLocked(VoucherError):
    code = "otp_locked"


class OtpExpired(VoucherError):
    code = "otp_expired"


class IinInvalid(VoucherError):
    code = "iin_invalid"


class PersonNotFound(VoucherError):
    code = "person_not_found"


class ConsentRequired(VoucherError):
    code = "consent_required"


class ConsentNotPending(VoucherError):
    code = "consent_not_pending"


class UnsupportedType(VoucherError):
    code = "unsupported_type"


class FileTooLarge(VoucherError):
    code = "file_too_large"


class AgeOutOfRange(VoucherError):
    code = "age_out_of_range"


class DocumentRequired(VoucherError):
    code = "document_required"


class ConsentMissing(VoucherError):
    code = "consent_missing"


class IdempotencyKeyReused(VoucherError):
    code = "idempotency_key_reused"


class IntakeClosed(VoucherError):
    code = "intake_closed"


class DuplicateApplication(VoucherError):
    code = "duplicate_application"

    @property
    def number(self) -> str:
        return str(self.extra.get("number") or "")


ERRORS_BY_CODE: dict[str, type[VoucherError]] = {
    cls.code: cls
    for cls in (
        ServiceUnavailable,
        Unauthorized,
        SessionInvalid,
        NotFound,
        ValidationFailed,
        PhoneInvalid,
        PhoneNotRegistered,
        TooManyRequests,
        OtpInvalid,
        OtpLocked,
        OtpExpired,
        IinInvalid,
        PersonNotFound,
        ConsentRequired,
        ConsentNotPending,
        UnsupportedType,
        FileTooLarge,
        AgeOutOfRange,
        DocumentRequired,
        ConsentMissing,
        IdempotencyKeyReused,
        IntakeClosed,
        DuplicateApplication,
    )
}

"""The voucher-service contract (`docs/voucher-api.yaml`) as pydantic models.

One model per request and response body. The sandbox validates requests and builds responses
with these, the client parses responses with them, and `tests/test_contract.py` keeps them in
step with the OpenAPI file.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Phone = Annotated[str, StringConstraints(pattern=r"^\+7\d{10}$")]
Iin = Annotated[str, StringConstraints(pattern=r"^[0-9]{12}$")]
Lang = Literal["kk", "ru"]
QueueTypeCode = Literal["general", "special"]
DocumentKind = Literal["disability", "benefit"]
ConsentStatus = Literal["pending", "granted", "denied", "expired"]
ApplicationStatus = Literal[
    "submitted",
    "registered",
    "voucher_issued",
    "voucher_used",
    "voucher_expired",
    "rejected",
    "cancelled",
]
APPLICATION_STATUSES: tuple[str, ...] = ApplicationStatus.__args__  # type: ignore[attr-defined]


class Model(BaseModel):
    """Responses tolerate fields added by a newer service; requests are built by us."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class StrictModel(BaseModel):
    """Request bodies: an unknown field is a client bug, so the sandbox rejects it."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Localized(Model):
    kk: str
    ru: str

    def get(self, lang: str) -> str:
        return self.kk if lang == "kk" else self.ru


# --- errors -------------------------------------------------------------------------------


class FieldError(Model):
    field: str
    message: str


class Problem(Model):
    """`application/problem+json`, with the extra fields some codes carry."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    code: str
    errors: list[FieldError] | None = None
    attempts_left: int | None = None
    number: str | None = None


# --- step 1: phone and one-time code ------------------------------------------------------


class OtpRequest(StrictModel):
    phone: str


class OtpCreated(Model):
    otp_id: str
    expires_in: int
    resend_after: int


class OtpVerifyRequest(StrictModel):
    code: str


class OtpVerified(Model):
    session: str
    expires_in: int


# --- step 2: IIN, consent through 1414, state data ---------------------------------------


class ConsentRequest(StrictModel):
    iin: str


class ConsentCreated(Model):
    consent_id: str
    status: ConsentStatus
    expires_in: int


class Consent(Model):
    consent_id: str
    iin: str
    status: ConsentStatus


class BirthCertificate(Model):
    number: str
    issued_on: date


class Addresses(Model):
    permanent: str | None
    temporary: str | None


class Person(Model):
    iin: str
    last_name: str
    first_name: str
    middle_name: str | None
    birth_date: date
    gender: Literal["male", "female"]
    birth_certificate: BirthCertificate | None
    addresses: Addresses


# --- step 3: catalogue, documents, preview ------------------------------------------------


class QueueType(Model):
    code: QueueTypeCode
    title: Localized
    description: Localized


class StateOrderType(Model):
    code: str
    title: Localized


class Provider(Model):
    id: str
    name: Localized
    address: str


class ProviderPage(Model):
    items: list[Provider]
    total: int


class Group(Model):
    id: str
    name: Localized
    language: Lang
    age_min: int
    age_max: int
    seats_free: int


class DocumentUploaded(Model):
    document_id: str
    size: int
    content_type: Literal["application/pdf", "image/jpeg", "image/png"]
    sha256: str


class PreviewRequest(StrictModel):
    child_iin: str
    queue_type: str
    state_order_type: str
    group_id: str
    documents: list[str] = Field(default_factory=list)


class QueueRef(Model):
    code: str
    title: Localized


class Preview(Model):
    queue: QueueRef
    age_on_sept_1: int
    academic_year: str


# --- step 5: the application --------------------------------------------------------------


class ParentRef(StrictModel):
    iin: str
    phone: str


class ChildRef(StrictModel):
    iin: str


class NotificationChoice(StrictModel):
    channel: Literal["sms", "push", "telegram"]
    language: Lang


class Consents(StrictModel):
    personal_data: bool
    contact_use: bool
    offer: bool


class ApplicationRequest(StrictModel):
    parent: ParentRef
    child: ChildRef
    queue_type: str
    state_order_type: str
    provider_id: str
    group_id: str
    documents: list[str] = Field(default_factory=list)
    notification: NotificationChoice
    consents: Consents
    telegram_chat_id: int | None = None


class ApplicationCreated(Model):
    id: str
    number: str
    status: ApplicationStatus
    submitted_at: datetime


class Application(Model):
    id: str
    number: str
    status: ApplicationStatus
    queue_position: int | None
    status_reason: Localized | None
    deadline: datetime | None
    updated_at: datetime


class ChangeItem(Model):
    id: str
    number: str
    status: ApplicationStatus
    queue_position: int | None
    status_reason: Localized | None
    deadline: datetime | None
    changed_at: datetime
    cursor: str


class ChangesPage(Model):
    items: list[ChangeItem]
    next: str


# --- sandbox only -------------------------------------------------------------------------


class InboxMessage(Model):
    at: datetime
    channel: Literal["ed24_app", "sms_1414"]
    text: Localized
    otp_code: str | None = None
    consent_id: str | None = None


class ConsentAnswer(StrictModel):
    answer: Literal["yes", "no"]


class ConsentAnswered(Model):
    consent_id: str
    status: ConsentStatus


class SandboxApplication(Application):
    submitted_at: datetime
    body: dict[str, object]


class StatusChange(StrictModel):
    status: ApplicationStatus
    queue_position: int | None = None
    reason: Localized | None = None
    deadline: datetime | None = None


class Faults(Model):
    latency_ms: int = 0
    failure_rate: float = 0.0
    retry_after: int = 1
    intake_closed: list[QueueTypeCode] = Field(default_factory=list)
    consent_auto_answer_s: int | None = None


class FaultsPatch(StrictModel):
    latency_ms: Annotated[int, Field(ge=0, le=600_000)] | None = None
    failure_rate: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    retry_after: Annotated[int, Field(ge=0, le=3600)] | None = None
    intake_closed: list[QueueTypeCode] | None = None
    consent_auto_answer_s: Annotated[int, Field(ge=0, le=3600)] | None = None

"""The voucher client under faults injected on purpose by a scripted aiohttp server on loopback.

These need no sandbox: each test scripts the answers (503 with Retry-After, a hang longer than
the read timeout, a refused connection, plain HTML 500s, every problem code) and asserts on what
the client raised, what the server received, and the backoff delays the client asked to sleep.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from services.voucher.client import VoucherClient
from services.voucher.errors import (
    ERRORS_BY_CODE,
    DuplicateApplication,
    NotFound,
    OtpInvalid,
    ServiceUnavailable,
    TooManyRequests,
    ValidationFailed,
    VoucherError,
)
from services.voucher.models import (
    ApplicationCreated,
    ApplicationRequest,
    ChildRef,
    Consents,
    NotificationChoice,
    ParentRef,
    PreviewRequest,
    StatusChange,
)
from tests.voucher.conftest import MakeClient, RecordedSleep
from tests.voucher.scripted_server import HTML_500, FaultServer, Reply, problem, unavailable

PHONE = "+77001234567"
IIN = "900101300128"
CHILD_IIN = "180515600124"
SESSION = "sess-Secret-7f3a"
OTP_CODE = "otp-code-q9z"  # not 4 digits, so it cannot match a port or a duration by chance
HANG_TIMEOUT = 0.2  # the read timeout of tests whose server hangs on purpose
# A full collection's stop (up to 1.4 s here) is longer than HANG_TIMEOUT: see the fixture.
pytestmark = pytest.mark.usefixtures("without_gc_pauses")
CREATED = {
    "id": "app-1",
    "number": "KZ-2026-000001",
    "status": "submitted",
    "submitted_at": "2026-09-10T10:00:00+05:00",
}
QUEUE_TYPES = [
    {
        "code": "general",
        "title": {"kk": "Жалпы", "ru": "Общая"},
        "description": {"kk": "Барлығына", "ru": "Для всех"},
    }
]


class TopRng(random.Random):
    """Always draws the top of the jitter range, so the backoff ceiling itself is visible."""

    def random(self) -> float:
        return 1.0


def application_request() -> ApplicationRequest:
    return ApplicationRequest(
        parent=ParentRef(iin=IIN, phone=PHONE),
        child=ChildRef(iin=CHILD_IIN),
        queue_type="general",
        state_order_type="sport",
        provider_id="p-1",
        group_id="g-1",
        documents=["d-1"],
        notification=NotificationChoice(channel="telegram", language="kk"),
        consents=Consents(personal_data=True, contact_use=True, offer=True),
        telegram_chat_id=42,
    )


def preview_request() -> PreviewRequest:
    return PreviewRequest(
        child_iin=CHILD_IIN, queue_type="general", state_order_type="sport", group_id="g-1"
    )


# --- retried: GETs and POST /applications -------------------------------------------------


async def test_submit_is_retried_after_503_with_the_same_key_and_body(
    server: FaultServer, make_client: MakeClient, recorded_sleep: RecordedSleep
) -> None:
    server.script(unavailable("2"), Reply(201, CREATED))
    request = application_request()

    created = await make_client().submit_application(SESSION, "key-123", request)

    assert created == ApplicationCreated.model_validate(CREATED)
    assert [s.method for s in server.seen] == ["POST", "POST"]
    assert {s.raw_path for s in server.seen} == {"/api/v1/applications"}
    assert [s.headers["idempotency-key"] for s in server.seen] == ["key-123", "key-123"]
    assert [s.headers["x-session"] for s in server.seen] == [SESSION, SESSION]
    assert server.seen[0].body == server.seen[1].body
    assert json.loads(server.seen[0].body) == request.model_dump(mode="json")
    assert recorded_sleep.delays == [2.0]


async def test_submit_after_a_read_timeout_takes_the_200_replay(
    server: FaultServer, make_client: MakeClient, recorded_sleep: RecordedSleep
) -> None:
    # The first attempt may have been stored upstream: the replay answers 200 with the 201 body.
    server.script(Reply(hang=True), Reply(200, CREATED))

    voucher = make_client(read_timeout=HANG_TIMEOUT)
    created = await voucher.submit_application(SESSION, "key-9", application_request())

    assert created.number == CREATED["number"]
    assert len(server.seen) == 2
    assert server.seen[0].body == server.seen[1].body
    assert server.seen[0].headers["idempotency-key"] == server.seen[1].headers["idempotency-key"]
    assert len(recorded_sleep.delays) == 1
    assert 0.0 <= recorded_sleep.delays[0] <= 0.5


async def test_get_is_retried_through_timeout_and_gateway_errors(
    server: FaultServer, make_client: MakeClient, recorded_sleep: RecordedSleep
) -> None:
    bad_gateway = Reply(502, text="<html>Bad Gateway</html>", content_type="text/html")
    server.script(Reply(hang=True), bad_gateway, problem(504, "gateway"), Reply(200, QUEUE_TYPES))

    types = await make_client(read_timeout=HANG_TIMEOUT).list_queue_types()

    assert [t.code for t in types] == ["general"]
    assert len(server.seen) == 4
    ceilings = [0.5, 1.0, 2.0]
    assert len(recorded_sleep.delays) == 3
    for delay, ceiling in zip(recorded_sleep.delays, ceilings, strict=True):
        assert 0.0 <= delay <= ceiling


async def test_backoff_grows_exponentially_up_to_the_cap(
    server: FaultServer, make_client: MakeClient, recorded_sleep: RecordedSleep
) -> None:
    server.script(unavailable())
    voucher = make_client(rng=TopRng(), max_attempts=6, backoff_base=0.5, backoff_max=3.0)

    with pytest.raises(ServiceUnavailable):
        await voucher.get_application("app-1")

    assert len(server.seen) == 6
    assert recorded_sleep.delays == [0.5, 1.0, 2.0, 3.0, 3.0]


async def test_backoff_is_jittered_within_its_bounds(
    server: FaultServer, make_client: MakeClient, recorded_sleep: RecordedSleep
) -> None:
    server.script(unavailable())
    voucher = make_client(rng=random.Random(3), max_attempts=8, backoff_base=0.5, backoff_max=10)

    with pytest.raises(ServiceUnavailable):
        await voucher.list_changes()

    ceilings = [min(10.0, 0.5 * 2**n) for n in range(7)]
    delays = recorded_sleep.delays
    assert len(delays) == 7
    assert all(0.0 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    # Full jitter: the delays are spread below their ceilings, not pinned to them.
    assert sum(delays) < 0.9 * sum(ceilings)
    assert len(set(delays)) == 7


async def test_retry_after_is_a_floor_and_the_max_delay_a_ceiling(
    server: FaultServer, make_client: MakeClient, recorded_sleep: RecordedSleep
) -> None:
    server.script(unavailable("0"), unavailable("1.5"), unavailable("60"), Reply(200, QUEUE_TYPES))
    voucher = make_client(rng=TopRng(), backoff_base=0.5, backoff_max=10.0)

    await voucher.list_queue_types()

    # 0 → the backoff (0.5) wins; 1.5 beats the backoff of 1.0; 60 is capped at 10.
    assert recorded_sleep.delays == [0.5, 1.5, 10.0]


async def test_retry_after_as_an_http_date(
    server: FaultServer, make_client: MakeClient, recorded_sleep: RecordedSleep
) -> None:
    server.script(unavailable("Wed, 21 Oct 2099 07:28:00 GMT"))

    with pytest.raises(ServiceUnavailable) as caught:
        await make_client(max_attempts=2).list_queue_types()

    assert caught.value.retry_after is not None and caught.value.retry_after > 10**9
    assert recorded_sleep.delays == [10.0]


async def test_gives_up_after_max_attempts_with_the_last_retry_after(
    server: FaultServer, make_client: MakeClient, recorded_sleep: RecordedSleep
) -> None:
    server.script(unavailable("1"), unavailable("2"), unavailable("3"), unavailable("4"))

    with pytest.raises(ServiceUnavailable) as caught:
        await make_client(max_attempts=4).submit_application(SESSION, "k", application_request())

    assert caught.value.status == 503
    assert caught.value.retry_after == 4.0
    assert len(server.seen) == 4
    assert len(recorded_sleep.delays) == 3
    assert recorded_sleep.delays[0] >= 1.0
    assert recorded_sleep.delays[1] >= 2.0
    assert recorded_sleep.delays[2] >= 3.0


async def test_connection_refused_is_retried_for_a_get_only(
    refused_url: str,
    make_client: MakeClient,
    recorded_sleep: RecordedSleep,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="kezek.voucher")
    voucher = make_client(base_url=refused_url, max_attempts=3)

    with pytest.raises(ServiceUnavailable) as get_failed:
        await voucher.get_application("app-1")
    assert get_failed.value.status == 0
    assert get_failed.value.retry_after is None
    assert len(recorded_sleep.delays) == 2
    assert _attempts_logged(caplog, "/applications/{application_id}") == [1, 2, 3]

    with pytest.raises(ServiceUnavailable):
        await voucher.request_otp(PHONE)
    assert len(recorded_sleep.delays) == 2  # no new backoff
    assert _attempts_logged(caplog, "/otp") == [1]


async def test_a_plain_500_is_unavailable_and_not_retried(
    server: FaultServer, make_client: MakeClient, recorded_sleep: RecordedSleep
) -> None:
    server.script(HTML_500)
    voucher = make_client()

    with pytest.raises(ServiceUnavailable) as get_failed:
        await voucher.list_queue_types()
    with pytest.raises(ServiceUnavailable) as post_failed:
        await voucher.submit_application(SESSION, "k", application_request())

    assert get_failed.value.status == post_failed.value.status == 500
    assert get_failed.value.retry_after is None
    assert len(server.seen) == 2
    assert recorded_sleep.delays == []


async def test_a_5xx_problem_with_any_code_is_unavailable(
    server: FaultServer, make_client: MakeClient
) -> None:
    server.script(problem(500, "not_found", retry_after="9"))

    with pytest.raises(ServiceUnavailable) as caught:
        await make_client().request_otp(PHONE)

    assert type(caught.value) is ServiceUnavailable
    assert caught.value.retry_after == 9.0


async def test_429_on_a_get_with_retry_after_is_retried(
    server: FaultServer, make_client: MakeClient, recorded_sleep: RecordedSleep
) -> None:
    server.script(problem(429, "too_many_requests", "3"), Reply(200, QUEUE_TYPES))

    assert len(await make_client().list_queue_types()) == 1
    assert recorded_sleep.delays == [3.0]


async def test_429_without_retry_after_or_on_a_post_is_final(
    server: FaultServer, make_client: MakeClient, recorded_sleep: RecordedSleep
) -> None:
    voucher = make_client()
    server.script(problem(429, "too_many_requests"))
    with pytest.raises(TooManyRequests) as on_get:
        await voucher.list_queue_types()
    server.script(problem(429, "too_many_requests", "60"))
    with pytest.raises(TooManyRequests) as on_otp:
        await voucher.request_otp(PHONE)

    assert on_get.value.retry_after is None
    assert on_otp.value.retry_after == 60.0
    assert len(server.seen) == 2
    assert recorded_sleep.delays == []


async def test_a_4xx_answer_is_final_even_where_retries_are_allowed(
    server: FaultServer, make_client: MakeClient, recorded_sleep: RecordedSleep
) -> None:
    voucher = make_client()
    server.script(problem(404, "not_found"))
    with pytest.raises(NotFound):
        await voucher.get_application("nope")
    server.script(problem(409, "duplicate_application", number="KZ-7"))
    with pytest.raises(DuplicateApplication) as duplicate:
        await voucher.submit_application(SESSION, "k", application_request())

    assert duplicate.value.number == "KZ-7"
    assert len(server.seen) == 2
    assert recorded_sleep.delays == []


# --- fail fast: every POST that must not be repeated ---------------------------------------

FAIL_FAST: dict[str, Callable[[VoucherClient], Awaitable[object]]] = {
    "request_otp": lambda v: v.request_otp(PHONE),
    "verify_otp": lambda v: v.verify_otp("otp-1", OTP_CODE),
    "create_consent": lambda v: v.create_consent(SESSION, IIN),
    "upload_document": lambda v: v.upload_document(SESSION, "disability", b"%PDF-1.4"),
    "preview_queue": lambda v: v.preview_queue(SESSION, preview_request()),
    "sandbox_answer_consent": lambda v: v.sandbox_answer_consent("c-1", "yes"),
    "sandbox_set_status": lambda v: v.sandbox_set_status("a-1", StatusChange(status="registered")),
    "sandbox_set_faults": lambda v: v.sandbox_set_faults(failure_rate=0.0),
}


@pytest.mark.parametrize("call", FAIL_FAST.values(), ids=FAIL_FAST.keys())
@pytest.mark.parametrize("fault", ["503", "timeout"])
async def test_unrepeatable_posts_are_sent_once_and_fail_fast(
    server: FaultServer,
    make_client: MakeClient,
    recorded_sleep: RecordedSleep,
    call: Callable[[VoucherClient], Awaitable[object]],
    fault: str,
) -> None:
    server.script(unavailable("5") if fault == "503" else Reply(hang=True))

    with pytest.raises(ServiceUnavailable) as caught:
        await call(make_client(read_timeout=HANG_TIMEOUT))

    assert len(server.seen) == 1
    assert server.seen[0].method == "POST"
    assert recorded_sleep.delays == []
    assert caught.value.retry_after == (5.0 if fault == "503" else None)


# --- every problem code --------------------------------------------------------------------

STATUS_OF_CODE = {
    "unavailable": 503,
    "unauthorized": 401,
    "session_invalid": 401,
    "not_found": 404,
    "validation_error": 422,
    "phone_invalid": 422,
    "phone_not_registered": 404,
    "too_many_requests": 429,
    "otp_invalid": 422,
    "otp_locked": 423,
    "otp_expired": 410,
    "iin_invalid": 422,
    "person_not_found": 404,
    "consent_required": 403,
    "consent_not_pending": 409,
    "unsupported_type": 415,
    "file_too_large": 413,
    "age_out_of_range": 422,
    "document_required": 422,
    "consent_missing": 422,
    "idempotency_key_reused": 422,
    "intake_closed": 409,
    "duplicate_application": 409,
}
EXTRA = {
    "attempts_left": 3,
    "number": "KZ-2026-000042",
    "errors": [{"field": "phone", "message": "bad"}],
}


def test_the_code_table_covers_every_typed_exception() -> None:
    assert set(STATUS_OF_CODE) == set(ERRORS_BY_CODE)


@pytest.mark.parametrize("code", sorted(STATUS_OF_CODE))
async def test_every_problem_code_raises_its_exception_with_its_fields(
    server: FaultServer, make_client: MakeClient, code: str
) -> None:
    status = STATUS_OF_CODE[code]
    server.script(problem(status, code, retry_after="7", **EXTRA))

    with pytest.raises(VoucherError) as caught:
        await make_client().request_otp(PHONE)

    error = caught.value
    assert type(error) is ERRORS_BY_CODE[code]
    assert error.code == code
    assert error.status == status
    assert error.detail == f"d-{code}"
    assert error.extra == EXTRA
    if isinstance(error, TooManyRequests | ServiceUnavailable):
        assert error.retry_after == 7.0
    if isinstance(error, OtpInvalid):
        assert error.attempts_left == 3
    if isinstance(error, DuplicateApplication):
        assert error.number == "KZ-2026-000042"
    if isinstance(error, ValidationFailed):
        assert error.errors == [{"field": "phone", "message": "bad"}]


async def test_an_unknown_code_is_a_plain_voucher_error(
    server: FaultServer, make_client: MakeClient
) -> None:
    server.script(problem(418, "brand_new_code", hint="x"))

    with pytest.raises(VoucherError) as caught:
        await make_client().request_otp(PHONE)

    assert type(caught.value) is VoucherError
    assert caught.value.status == 418
    assert caught.value.extra == {"code": "brand_new_code", "hint": "x"}


async def test_a_4xx_without_a_problem_body_is_a_plain_voucher_error(
    server: FaultServer, make_client: MakeClient
) -> None:
    server.script(Reply(404, text="no such page", content_type="text/plain"))

    with pytest.raises(VoucherError) as caught:
        await make_client().get_application("a")

    assert type(caught.value) is VoucherError
    assert caught.value.status == 404
    assert len(server.seen) == 1


async def test_a_success_body_off_the_contract_is_reported_without_its_values(
    server: FaultServer, make_client: MakeClient
) -> None:
    server.script(Reply(200, {"iin": IIN, "last_name": "Сейтқали", "first_name": 5}))

    with pytest.raises(VoucherError) as caught:
        await make_client().get_person(SESSION, "c-1")

    message = str(caught.value)
    assert "first_name" in message
    assert IIN not in message
    assert "Сейтқали" not in message


# --- what goes on the wire -----------------------------------------------------------------


async def test_token_and_session_headers_go_where_the_contract_needs_them(
    server: FaultServer, make_client: MakeClient
) -> None:
    server.script(problem(404, "not_found"))
    voucher = make_client()
    with_session: list[Callable[[], Awaitable[object]]] = [
        lambda: voucher.create_consent(SESSION, IIN),
        lambda: voucher.get_consent(SESSION, "c-1"),
        lambda: voucher.get_person(SESSION, "c-1"),
        lambda: voucher.upload_document(SESSION, "benefit", b"\x89PNG\r\n\x1a\n"),
        lambda: voucher.preview_queue(SESSION, preview_request()),
        lambda: voucher.submit_application(SESSION, "k", application_request()),
    ]
    without_session: list[Callable[[], Awaitable[object]]] = [
        lambda: voucher.request_otp(PHONE),
        lambda: voucher.verify_otp("o-1", OTP_CODE),
        voucher.list_queue_types,
        voucher.list_state_order_types,
        voucher.list_providers,
        lambda: voucher.list_groups("p-1"),
        lambda: voucher.get_application("a-1"),
        voucher.list_changes,
        lambda: voucher.sandbox_inbox(PHONE),
        lambda: voucher.sandbox_answer_consent("c-1", "no"),
        voucher.sandbox_list_applications,
        lambda: voucher.sandbox_set_status("a-1", StatusChange(status="cancelled")),
        voucher.sandbox_get_faults,
        lambda: voucher.sandbox_set_faults(latency_ms=0),
    ]
    for call in [*with_session, *without_session]:
        with pytest.raises(NotFound):
            await call()

    assert len(server.seen) == len(with_session) + len(without_session)
    assert all(s.headers["authorization"] == "Bearer tok" for s in server.seen)
    sessions = [s.headers.get("x-session") for s in server.seen]
    assert sessions == [SESSION] * len(with_session) + [None] * len(without_session)


async def test_paths_and_queries_are_encoded(server: FaultServer, make_client: MakeClient) -> None:
    server.script(problem(404, "not_found"))
    voucher = make_client()
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: voucher.get_application("a/b c?#"),
        lambda: voucher.get_consent(SESSION, ".."),
        lambda: voucher.list_groups("p%1"),
        lambda: voucher.verify_otp("ö+1", OTP_CODE),
        lambda: voucher.sandbox_inbox(PHONE),
        lambda: voucher.list_providers(q="домбыра & co", page=2, per_page=5),
        voucher.list_providers,
        lambda: voucher.list_changes(after="c/1=", limit=7),
        voucher.list_changes,
    ]
    for call in calls:
        with pytest.raises(NotFound):
            await call()

    assert [s.raw_path for s in server.seen] == [
        "/api/v1/applications/a%2Fb%20c%3F%23",
        "/api/v1/consents/%2E%2E",
        "/api/v1/providers/p%251/groups",
        "/api/v1/otp/%C3%B6%2B1/verify",
        "/api/v1/sandbox/inbox?phone=%2B77001234567",
        "/api/v1/providers?page=2&per_page=5&q=%D0%B4%D0%BE%D0%BC%D0%B1%D1%8B%D1%80%D0%B0+%26+co",
        "/api/v1/providers?page=1&per_page=10",
        "/api/v1/applications/changes?limit=7&after=c%2F1%3D",
        "/api/v1/applications/changes?limit=100",
    ]


async def test_an_empty_path_parameter_is_refused_before_sending(
    server: FaultServer, make_client: MakeClient
) -> None:
    with pytest.raises(ValueError, match="empty"):
        await make_client().get_application("")
    assert server.seen == []


async def test_bodies_carry_only_what_was_given(
    server: FaultServer, make_client: MakeClient
) -> None:
    server.script(problem(404, "not_found"))
    voucher = make_client()
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: voucher.sandbox_set_faults(failure_rate=1.0),
        lambda: voucher.sandbox_set_faults(consent_auto_answer_s=None, intake_closed=["special"]),
        lambda: voucher.sandbox_set_status(
            "a-1", StatusChange(status="registered", queue_position=3)
        ),
        lambda: voucher.sandbox_answer_consent("c-1", "yes"),
        lambda: voucher.verify_otp("o-1", OTP_CODE),
    ]
    for call in calls:
        with pytest.raises(NotFound):
            await call()

    assert [json.loads(s.body) for s in server.seen] == [
        {"failure_rate": 1.0},
        {"consent_auto_answer_s": None, "intake_closed": ["special"]},
        {"status": "registered", "queue_position": 3},
        {"answer": "yes"},
        {"code": OTP_CODE},
    ]
    assert all(s.headers["content-type"] == "application/json" for s in server.seen)


async def test_a_document_goes_as_multipart_with_its_kind(
    server: FaultServer, make_client: MakeClient
) -> None:
    content = b"%PDF-1.7 binary \x00\xff"
    uploaded = {"document_id": "d-1", "size": 18, "content_type": "application/pdf", "sha256": "0"}
    server.script(Reply(201, uploaded))

    result = await make_client().upload_document(SESSION, "disability", content, "scan.pdf")

    assert result.document_id == "d-1"
    sent = server.seen[0]
    assert sent.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert b'name="kind"\r\n\r\ndisability\r\n' in sent.body
    assert b'name="file"; filename="scan.pdf"' in sent.body
    assert content in sent.body


async def test_unknown_fault_switches_are_refused_before_sending(
    server: FaultServer, make_client: MakeClient
) -> None:
    with pytest.raises(ValueError, match="no_such_switch"):
        await make_client().sandbox_set_faults(no_such_switch=1)
    assert server.seen == []


async def test_async_with_closes_the_connection_pool(server: FaultServer) -> None:
    server.script(Reply(200, QUEUE_TYPES))
    async with VoucherClient(server.base_url, "tok") as voucher:
        assert len(await voucher.list_queue_types()) == 1

    with pytest.raises(RuntimeError, match="closed"):
        await voucher.list_queue_types()
    assert len(server.seen) == 1


# --- logs ----------------------------------------------------------------------------------


def _attempts_logged(caplog: pytest.LogCaptureFixture, route: str) -> list[int]:
    """The attempt numbers of the client's per-attempt log lines for one route template."""
    attempts = []
    for record in caplog.records:
        args = record.args
        # The per-attempt line's args: method, route, outcome, ms, attempt.
        if record.name == "kezek.voucher" and isinstance(args, tuple) and len(args) == 5:
            if args[1] == route:
                attempts.append(int(args[4]))
    return attempts


@pytest.fixture
async def garbled_url() -> AsyncIterator[str]:
    """A server that answers every request with a line that is not HTTP."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"not http\r\n\r\n")
        await writer.drain()
        writer.close()

    garbled = await asyncio.start_server(answer, "127.0.0.1", 0)
    host, port = garbled.sockets[0].getsockname()[:2]
    yield f"http://{host}:{port}/api/v1"
    garbled.close()
    await garbled.wait_closed()


async def test_logs_hold_routes_statuses_and_attempts_but_no_personal_data(
    server: FaultServer,
    make_client: MakeClient,
    garbled_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, aiohttp's and asyncio's included
    server.script(
        problem(422, "phone_invalid"),
        problem(422, "otp_invalid", attempts_left=2),
        unavailable("1"),
        problem(404, "person_not_found"),
        Reply(200, []),
        problem(404, "not_found"),
    )
    voucher = make_client()

    with pytest.raises(VoucherError):
        await voucher.request_otp(PHONE)
    with pytest.raises(VoucherError):
        await voucher.verify_otp("otp-1", OTP_CODE)
    with pytest.raises(VoucherError):
        await voucher.create_consent(SESSION, IIN)
    with pytest.raises(VoucherError):
        await voucher.create_consent(SESSION, CHILD_IIN)
    assert await voucher.sandbox_inbox(PHONE) == []
    with pytest.raises(VoucherError):
        await voucher.submit_application(SESSION, "k-1", application_request())
    # The one call whose URL holds the phone, failing inside aiohttp: aiohttp's message for a
    # malformed answer quotes the whole URL, query string included. A handler that logs the
    # error with its traceback (as an error middleware does) must not find it there either.
    with pytest.raises(ServiceUnavailable) as garbled:
        await make_client(base_url=garbled_url, max_attempts=1).sandbox_inbox(PHONE)
    logging.getLogger("tests.handler").error("the call failed", exc_info=garbled.value)

    text = caplog.text
    assert "Traceback" in text  # the traceback is in what the secrets are looked for in
    for secret in (PHONE, PHONE[1:], PHONE[2:], "%2B7", IIN, CHILD_IIN, SESSION, OTP_CODE):
        assert secret not in text, secret
    printed = "".join(traceback.format_exception(garbled.value))
    assert "%2B7" not in printed and PHONE[2:] not in printed
    ours = [r.getMessage() for r in caplog.records if r.name == "kezek.voucher"]
    assert any(m.startswith("voucher POST /otp -> 422 phone_invalid ") for m in ours)
    assert any(m.startswith("voucher POST /otp/{otp_id}/verify -> 422 otp_invalid") for m in ours)
    assert any(m.startswith("voucher POST /consents -> 503 unavailable") for m in ours)
    assert any(m.startswith("voucher GET /sandbox/inbox -> 200 ") for m in ours)
    # The failure really was aiohttp's, the kind whose message holds the URL.
    assert any(m.startswith("voucher GET /sandbox/inbox -> ClientResponseError ") for m in ours)
    assert all(m.endswith("attempt 1") for m in ours if " -> " in m)


# --- our own pool: a wait for a free connection is not the service being down ---------------

CHANGES = {"items": [], "next": "c-0"}
HELD = Reply(200, QUEUE_TYPES, hang=True)  # holds the only connection until released

POOL_WAITERS: dict[str, tuple[str, Reply, Callable[[VoucherClient], Awaitable[object]]]] = {
    "GET": ("/applications/changes", Reply(200, CHANGES), lambda v: v.list_changes()),
    "POST /applications": (
        "/applications",
        Reply(201, CREATED),
        lambda v: v.submit_application(SESSION, "k-pool", application_request()),
    ),
}


@pytest.mark.parametrize("waiter", POOL_WAITERS.values(), ids=POOL_WAITERS.keys())
async def test_a_full_pool_fails_after_the_pool_timeout_without_a_retry(
    server: FaultServer,
    make_client: MakeClient,
    recorded_sleep: RecordedSleep,
    caplog: pytest.LogCaptureFixture,
    waiter: tuple[str, Reply, Callable[[VoucherClient], Awaitable[object]]],
) -> None:
    caplog.set_level(logging.INFO, logger="kezek.voucher")
    route, reply, call = waiter
    server.script(HELD, reply)
    voucher = make_client(max_connections=1, pool_timeout=0.05)
    holder = asyncio.create_task(voucher.list_queue_types())
    await asyncio.wait_for(server.hanging.wait(), 5)  # the slow call holds the one connection

    # Both calls are ones the client retries on a timeout; a pool wait is not retried.
    with pytest.raises(ServiceUnavailable) as waited:
        await call(voucher)

    assert (waited.value.status, waited.value.detail) == (0, "PoolTimeout")
    assert waited.value.retry_after is None
    assert len(server.seen) == 1  # it never went on the wire
    assert recorded_sleep.delays == []
    assert _attempts_logged(caplog, route) == [1]
    server.release()
    assert len(await holder) == 1  # the slow call itself is not disturbed
    await call(voucher)  # its connection is free again
    assert len(server.seen) == 2


async def test_with_a_long_pool_timeout_a_call_waits_for_the_connection(
    server: FaultServer, make_client: MakeClient, recorded_sleep: RecordedSleep
) -> None:
    server.script(HELD, Reply(200, CHANGES))
    voucher = make_client(max_connections=1, pool_timeout=30.0)
    holder = asyncio.create_task(voucher.list_queue_types())
    await asyncio.wait_for(server.hanging.wait(), 5)
    waiting = asyncio.create_task(voucher.list_changes())  # queues behind the slow call
    server.release()

    assert len(await holder) == 1
    assert (await waiting).next == "c-0"
    assert [s.raw_path for s in server.seen] == [
        "/api/v1/catalog/queue-types",
        "/api/v1/applications/changes?limit=100",
    ]
    # One connection, in turn: the second request came over the first one's socket.
    assert server.seen[0].peer == server.seen[1].peer
    assert recorded_sleep.delays == []


async def test_the_pool_is_opened_lazily_and_closing_is_idempotent(server: FaultServer) -> None:
    never_used = VoucherClient(server.base_url, "tok")  # outside any call: nothing opened yet
    await never_used.aclose()
    await never_used.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await never_used.get_application("a-1")

    server.script(Reply(200, QUEUE_TYPES))
    used = VoucherClient(server.base_url, "tok")
    assert len(await used.list_queue_types()) == 1
    await used.aclose()
    await used.aclose()
    assert len(server.seen) == 1

"""Step 3: document upload — the type from the bytes, the size limit, the owner."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import httpx
import pytest

from tests.sandbox.helpers import JPEG, PDF, PNG, error_fields, login, problem, upload

LIMIT = 10 * 1024 * 1024


@pytest.mark.parametrize(
    ("content", "content_type"),
    [(PDF, "application/pdf"), (JPEG, "image/jpeg"), (PNG, "image/png")],
)
async def test_type_comes_from_the_bytes(
    client: httpx.AsyncClient, content: bytes, content_type: str
) -> None:
    session = await login(client)
    # helpers.upload always names the file scan.pdf and sends application/octet-stream.
    response = await upload(client, session, content, "benefit")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["content_type"] == content_type
    assert body["size"] == len(content)
    assert body["sha256"] == hashlib.sha256(content).hexdigest()
    assert body["document_id"]


async def test_unknown_bytes_are_unsupported(client: httpx.AsyncClient) -> None:
    session = await login(client)
    problem(await upload(client, session, b"GIF89a...."), 415, "unsupported_type")
    problem(await upload(client, session, b""), 415, "unsupported_type")


async def test_exactly_10_mib_is_accepted(client: httpx.AsyncClient) -> None:
    session = await login(client)
    content = PDF + b"\0" * (LIMIT - len(PDF))
    response = await upload(client, session, content)
    assert response.status_code == 201
    assert response.json()["size"] == LIMIT


async def test_over_10_mib_is_too_large_even_when_the_type_is_wrong(
    client: httpx.AsyncClient,
) -> None:
    session = await login(client)
    problem(await upload(client, session, b"x" * (LIMIT + 1)), 413, "file_too_large")


async def test_bad_kind_or_no_file(client: httpx.AsyncClient) -> None:
    session = await login(client)
    assert error_fields(await upload(client, session, PDF, "passport")) == ["kind"]
    only_kind = {"kind": (None, "disability")}  # multipart, but without a file part
    response = await client.post("/documents", files=only_kind, headers={"X-Session": session})
    assert error_fields(response) == ["file"]
    response = await client.post(
        "/documents", data={"kind": "disability"}, headers={"X-Session": session}
    )
    assert error_fields(response) == ["file"]  # a plain form cannot carry the file
    response = await client.post(
        "/documents", files={"file": ("a.pdf", PDF)}, headers={"X-Session": session}
    )
    assert error_fields(response) == ["kind"]
    response = await client.post(
        "/documents", json={"kind": "disability"}, headers={"X-Session": session}
    )
    assert error_fields(response) == ["file"]


async def test_upload_needs_a_session(client: httpx.AsyncClient) -> None:
    problem(await upload(client, "nope", PDF), 401, "session_invalid")


async def test_only_metadata_is_kept(client: httpx.AsyncClient, db_path: Path) -> None:
    session = await login(client)
    marker = b"UNIQUE-MARKER-" + b"7" * 40
    response = await upload(client, session, PDF + marker)
    assert response.status_code == 201
    for path in db_path.parent.iterdir():
        assert marker not in path.read_bytes()
    with sqlite3.connect(db_path) as conn:
        (count,) = conn.execute("SELECT COUNT(*) FROM documents").fetchone()
    assert count == 1

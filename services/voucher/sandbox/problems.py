"""`application/problem+json` answers: one exception type that every handler raises."""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import partial
from http import HTTPStatus
from typing import Any

from aiohttp import web
from pydantic import ValidationError

PROBLEM_JSON = "application/problem+json"
dumps = partial(json.dumps, ensure_ascii=False)


class ProblemError(Exception):
    """An error answer: status, contract `code`, a human `detail` and the code's extra fields."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(f"{status} {code}")
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = dict(headers or {})
        self.extra = extra

    def response(self) -> web.Response:
        """The problem as an HTTP response."""
        body = {
            "type": "about:blank",
            "title": HTTPStatus(self.status).phrase,
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
            **self.extra,
        }
        return web.json_response(
            body, status=self.status, headers=self.headers, content_type=PROBLEM_JSON, dumps=dumps
        )


def invalid(*errors: tuple[str, str]) -> ProblemError:
    """422 `validation_error` listing `(field, message)` pairs."""
    fields = ", ".join(dict.fromkeys(field for field, _ in errors))
    return ProblemError(
        422,
        "validation_error",
        f"Invalid request: {fields}.",
        errors=[{"field": field, "message": message} for field, message in errors],
    )


def from_validation_error(exc: ValidationError, *, prefix: str = "") -> ProblemError:
    """Pydantic's errors as the contract's `errors: [{field, message}]`."""
    pairs = []
    for error in exc.errors(include_url=False, include_input=False):
        field = ".".join(str(part) for part in error["loc"]) or "body"
        pairs.append((prefix + field, error["msg"]))
    return invalid(*pairs)


def not_found(what: str) -> ProblemError:
    return ProblemError(404, "not_found", f"No such {what}.")

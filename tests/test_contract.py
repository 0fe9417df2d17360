"""The voucher-service contract, `docs/voucher-api.yaml`, against the code that implements it.

Four things must agree with the YAML, and a drift in any of them is a bug the bot would only
meet in production against the operator's service:
- the pydantic models (`services/voucher/models.py`) with the component schemas,
- the typed errors (`services/voucher/errors.py`) with the problem codes the YAML lists,
- the sandbox's aiohttp routes with the YAML's paths and methods,
- the client's public methods (`services/voucher/client.py`) with the operationIds.
"""

from __future__ import annotations

import copy
import inspect
import re
import types
import typing
from collections.abc import AsyncIterator
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin
from urllib.parse import urlsplit

import annotated_types
import pytest
import yaml
from aiohttp import FormData
from aiohttp.test_utils import TestClient, TestServer
from jsonschema import Draft202012Validator
from openapi_spec_validator import OpenAPIV31SpecValidator, validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from services.clock import FakeClock
from services.voucher import errors, models

SPEC_FILE = Path(__file__).resolve().parents[1] / "docs" / "voucher-api.yaml"
SPEC: dict[str, Any] = yaml.safe_load(SPEC_FILE.read_text(encoding="utf-8"))
SCHEMAS: dict[str, dict[str, Any]] = SPEC["components"]["schemas"]
API_PREFIX = "/api/v1"
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

# What the written contract (/work/shared/voucher-api.md) names, typed out independently of
# the YAML so that an edit of the YAML cannot silently move an operation.
OPERATIONS: dict[str, tuple[str, str]] = {
    "request_otp": ("POST", "/otp"),
    "verify_otp": ("POST", "/otp/{otp_id}/verify"),
    "create_consent": ("POST", "/consents"),
    "get_consent": ("GET", "/consents/{consent_id}"),
    "get_person": ("GET", "/consents/{consent_id}/person"),
    "list_queue_types": ("GET", "/catalog/queue-types"),
    "list_state_order_types": ("GET", "/catalog/state-order-types"),
    "list_providers": ("GET", "/providers"),
    "list_groups": ("GET", "/providers/{provider_id}/groups"),
    "upload_document": ("POST", "/documents"),
    "preview_queue": ("POST", "/queue/preview"),
    "submit_application": ("POST", "/applications"),
    "get_application": ("GET", "/applications/{application_id}"),
    "list_changes": ("GET", "/applications/changes"),
    "sandbox_inbox": ("GET", "/sandbox/inbox"),
    "sandbox_answer_consent": ("POST", "/sandbox/consents/{consent_id}"),
    "sandbox_list_applications": ("GET", "/sandbox/applications"),
    "sandbox_set_status": ("POST", "/sandbox/applications/{application_id}/status"),
    "sandbox_get_faults": ("GET", "/sandbox/faults"),
    "sandbox_set_faults": ("POST", "/sandbox/faults"),
}
# "X-Session ... is required on POST /consents, GET /consents/*, POST /documents,
# POST /queue/preview and POST /applications"; everything else needs only the token.
SESSION_OPERATIONS = frozenset(
    {
        "create_consent",
        "get_consent",
        "get_person",
        "upload_document",
        "preview_queue",
        "submit_application",
    }
)
# Query parameters and their bounds as the written contract states them.
QUERY_BOUNDS: dict[tuple[str, str], dict[str, int]] = {
    ("list_providers", "page"): {"minimum": 1, "default": 1},
    ("list_providers", "per_page"): {"minimum": 1, "maximum": 100, "default": 10},
    ("list_changes", "limit"): {"minimum": 1, "maximum": 1000, "default": 100},
}

# Pydantic bases that carry configuration only and are never a body of their own.
MODEL_BASES = frozenset({"Model", "StrictModel"})
# Component schemas with no pydantic model: the multipart upload form is not JSON.
NON_MODEL_SCHEMAS = frozenset({"DocumentUpload"})
# Public async methods of VoucherClient that are lifecycle, not operations of the service.
CLIENT_LIFECYCLE = frozenset({"aclose"})

MODEL_CLASSES: dict[str, type[BaseModel]] = {
    name: obj
    for name, obj in vars(models).items()
    if isinstance(obj, type) and issubclass(obj, BaseModel) and obj.__module__ == models.__name__
}


def _operations() -> dict[str, tuple[str, str, dict[str, Any], dict[str, Any]]]:
    """operationId → (METHOD, path, operation, path item), for every operation under `paths`."""
    found: dict[str, tuple[str, str, dict[str, Any], dict[str, Any]]] = {}
    for path, item in SPEC["paths"].items():
        for method in HTTP_METHODS:
            if method in item:
                op = item[method]
                assert op["operationId"] not in found, f"duplicate operationId {op['operationId']}"
                found[op["operationId"]] = (method.upper(), path, op, item)
    return found


OPS = _operations()


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    """Follow a local `$ref` (the YAML uses only `#/components/...` references)."""
    while "$ref" in node:
        target: Any = SPEC
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def _parameters(op_id: str) -> list[dict[str, Any]]:
    _, _, op, item = OPS[op_id]
    return [_resolve(p) for p in [*item.get("parameters", []), *op.get("parameters", [])]]


# --- the document itself ----------------------------------------------------------------------


def test_spec_is_valid_openapi_3_1() -> None:
    assert re.fullmatch(r"3\.1\.\d+", SPEC["openapi"])
    validate(SPEC, cls=OpenAPIV31SpecValidator)


def test_the_validator_does_catch_a_broken_spec() -> None:
    # Proves the check above has teeth: a path parameter nobody declares must be rejected.
    broken = copy.deepcopy(SPEC)
    del broken["paths"]["/otp/{otp_id}/verify"]["post"]["parameters"]
    with pytest.raises(OpenAPIValidationError, match="otp_id"):
        validate(broken, cls=OpenAPIV31SpecValidator)


def test_every_server_is_rooted_at_api_v1() -> None:
    assert SPEC["servers"]
    for server in SPEC["servers"]:
        url = server["url"]
        for name, variable in server.get("variables", {}).items():
            url = url.replace("{" + name + "}", variable["default"])
        assert urlsplit(url).path == API_PREFIX, server["url"]


def test_operations_are_the_written_contracts() -> None:
    assert {op_id: (m, p) for op_id, (m, p, _, _) in OPS.items()} == OPERATIONS


def test_sandbox_operations_are_tagged_sandbox() -> None:
    for op_id, (_, path, op, _) in OPS.items():
        assert ("sandbox" in op.get("tags", [])) == path.startswith("/sandbox/"), op_id


def test_bearer_token_everywhere_and_session_exactly_where_written() -> None:
    schemes = SPEC["components"]["securitySchemes"]
    assert schemes["bearerToken"] == schemes["bearerToken"] | {"type": "http", "scheme": "bearer"}
    session = {"type": "apiKey", "in": "header", "name": "X-Session"}
    assert schemes["session"] == schemes["session"] | session
    assert SPEC["security"] == [{"bearerToken": []}]
    for op_id, (_, _, op, _) in OPS.items():
        security = op.get("security", SPEC["security"])
        expected = {"bearerToken": [], "session": []} if op_id in SESSION_OPERATIONS else {}
        assert security == [{"bearerToken": [], **expected}], op_id


def test_query_parameters_have_the_written_bounds() -> None:
    for (op_id, name), bounds in QUERY_BOUNDS.items():
        (param,) = [p for p in _parameters(op_id) if p["name"] == name and p["in"] == "query"]
        assert param["schema"]["type"] == "integer"
        assert {k: param["schema"].get(k) for k in bounds} == bounds, (op_id, name)
        assert param.get("required", False) is False


def test_idempotency_key_is_a_required_header_of_submit_application_only() -> None:
    for op_id in OPS:
        keys = [p for p in _parameters(op_id) if p["name"] == "Idempotency-Key"]
        if op_id == "submit_application":
            (key,) = keys
            assert key["in"] == "header" and key["required"] is True
            assert key["schema"]["maxLength"] == 255
        else:
            assert keys == [], op_id


def test_upload_is_multipart_with_the_models_document_kinds() -> None:
    _, _, op, _ = OPS["upload_document"]
    content = op["requestBody"]["content"]
    assert list(content) == ["multipart/form-data"]
    form = _resolve(content["multipart/form-data"]["schema"])
    assert set(form["required"]) == {"file", "kind"}
    assert set(form["properties"]["kind"]["enum"]) == set(get_args(models.DocumentKind))


def test_the_push_to_the_bot_is_a_signed_webhook_of_change_items() -> None:
    hook = SPEC["webhooks"]["voucherEvent"]["post"]
    body = hook["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/ChangeItem"}
    (signature,) = [p for p in hook["parameters"] if p["name"] == "X-Signature"]
    assert signature["in"] == "header" and signature["required"] is True
    assert re.fullmatch(signature["schema"]["pattern"], "sha256=" + "ab" * 32)
    assert set(hook["responses"]) == {"204", "401"}


# --- errors -------------------------------------------------------------------------------------


def _error_responses() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (op_id, status, _resolve(response))
        for op_id, (_, _, op, _) in OPS.items()
        for status, response in op["responses"].items()
        if status[0] in "45"
    ]


def test_every_error_response_is_a_problem_with_its_codes() -> None:
    for op_id, status, response in _error_responses():
        schema = response["content"]["application/problem+json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/Problem"}, (op_id, status)
        assert response["x-codes"], (op_id, status)
        if status in {"429", "503"}:
            assert "Retry-After" in response["headers"], (op_id, status)


def test_generic_errors_are_documented_where_they_can_happen() -> None:
    for op_id, (_, path, op, _) in OPS.items():
        codes = {
            status: set(_resolve(r).get("x-codes", [])) for status, r in op["responses"].items()
        }
        assert "unauthorized" in codes.get("401", set()), op_id
        if op_id in SESSION_OPERATIONS:
            assert "session_invalid" in codes["401"], op_id
        if "{" in path:
            assert "not_found" in codes.get("404", set()), op_id
        if "requestBody" in op or any(p["in"] == "query" for p in _parameters(op_id)):
            assert "validation_error" in codes.get("422", set()), op_id
        # The sandbox's failure_rate applies to every non-sandbox endpoint, and only to them.
        assert ("unavailable" in codes.get("503", set())) == (not path.startswith("/sandbox/"))


def test_problem_codes_are_exactly_the_typed_errors() -> None:
    statuses: dict[str, set[str]] = {}
    for _, status, response in _error_responses():
        for code in response["x-codes"]:
            statuses.setdefault(code, set()).add(status)
    assert set(statuses) == set(errors.ERRORS_BY_CODE)
    # One code, one HTTP status: the bot may branch on either.
    assert {code: s for code, s in statuses.items() if len(s) > 1} == {}
    # The Problem schema's prose table must say the same.
    described = dict(re.findall(r"`([a-z_]+)`\s+(\d{3})", SCHEMAS["Problem"]["description"]))
    assert described == {code: s.pop() for code, s in statuses.items()}


# --- models ↔ component schemas -----------------------------------------------------------------

PRIMITIVES: dict[type, tuple[str, str | None]] = {
    str: ("string", None),
    bool: ("boolean", None),
    int: ("integer", None),
    float: ("number", None),
    datetime: ("string", "date-time"),
    date: ("string", "date"),
}
BOUND_KEYS = {
    annotated_types.Ge: ("minimum", "ge"),
    annotated_types.Le: ("maximum", "le"),
    annotated_types.Gt: ("exclusiveMinimum", "gt"),
    annotated_types.Lt: ("exclusiveMaximum", "lt"),
}


def _unwrap(annotation: Any, meta: list[Any]) -> tuple[Any, bool]:
    """Strip Annotated (collecting its metadata into `meta`) and `| None`; say if None was there."""
    nullable = False
    while True:
        if get_origin(annotation) is Annotated:
            annotation, *extra = get_args(annotation)
            meta.extend(extra)
        elif get_origin(annotation) in (Union, types.UnionType) and type(None) in get_args(
            annotation
        ):
            rest = [a for a in get_args(annotation) if a is not type(None)]
            if len(rest) != 1:
                return annotation, True  # a real union: reported as unsupported below
            annotation, nullable = rest[0], True
        else:
            return annotation, nullable


def _split_nullable(schema: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """The schema without its null alternative (`type: [X, "null"]` or anyOf/oneOf a null)."""
    kind = schema.get("type")
    if isinstance(kind, list) and "null" in kind:
        rest = [k for k in kind if k != "null"]
        return {**schema, "type": rest[0] if len(rest) == 1 else rest}, True
    for key in ("anyOf", "oneOf"):
        options = schema.get(key, [])
        rest = [o for o in options if o != {"type": "null"}]
        if len(rest) == 1 and len(options) == 2:
            merged = {k: v for k, v in schema.items() if k != key}
            return merged | rest[0], True
    return schema, False


def _bounds(meta: list[Any]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for item in meta:
        for constraint in item.metadata if isinstance(item, FieldInfo) else [item]:
            for cls, (keyword, attr) in BOUND_KEYS.items():
                if isinstance(constraint, cls):
                    found[keyword] = getattr(constraint, attr)
    return found


def _mismatches(annotation: Any, schema: dict[str, Any], where: str, meta: list[Any]) -> list[str]:
    """Every way `schema` fails to describe `annotation`; empty when they agree."""
    meta = list(meta)
    tp, nullable = _unwrap(annotation, meta)
    schema, schema_nullable = _split_nullable(schema)
    problems: list[str] = []
    if nullable != schema_nullable:
        problems.append(f"{where}: model nullable={nullable}, schema nullable={schema_nullable}")

    bounds = _bounds(meta)
    schema_bounds = {k: schema[k] for k, _ in BOUND_KEYS.values() if k in schema}
    # Every bound a model enforces must be published. The schema may state more: what the
    # service guarantees in responses, or checks a handler makes beyond the request model.
    if bounds != {k: schema_bounds.get(k) for k in bounds}:
        problems.append(f"{where}: model bounds {bounds}, schema bounds {schema_bounds}")

    if get_origin(tp) is Literal:
        values = set(get_args(tp))
        if set(schema.get("enum", [])) != values:
            problems.append(
                f"{where}: model Literal {sorted(values)}, schema enum {schema.get('enum')}"
            )
        if schema.get("type") != "string":
            problems.append(
                f"{where}: an enum of strings needs type string, not {schema.get('type')}"
            )
        return problems
    if "enum" in schema:
        problems.append(f"{where}: schema enum {schema['enum']} but the model is not a Literal")

    if isinstance(tp, type) and issubclass(tp, BaseModel):
        if schema.get("$ref") != f"#/components/schemas/{tp.__name__}":
            problems.append(f"{where}: model {tp.__name__}, schema {schema}")
    elif get_origin(tp) is list:
        if schema.get("type") != "array":
            problems.append(f"{where}: model list, schema type {schema.get('type')}")
        else:
            (item,) = get_args(tp)
            problems += _mismatches(item, schema["items"], f"{where}[]", [])
    elif get_origin(tp) is dict:
        if schema.get("type") != "object":
            problems.append(f"{where}: model dict, schema type {schema.get('type')}")
    elif tp in PRIMITIVES:
        kind, fmt = PRIMITIVES[tp]
        if schema.get("type") != kind:
            problems.append(f"{where}: model {tp.__name__}, schema type {schema.get('type')}")
        if (fmt or schema.get("format") in {"date", "date-time"}) and schema.get("format") != fmt:
            problems.append(f"{where}: model {tp.__name__}, schema format {schema.get('format')}")
    else:
        problems.append(f"{where}: annotation {tp!r} is not one the contract test understands")
    return problems


def test_every_model_has_a_schema_and_every_schema_a_model() -> None:
    bodies = set(MODEL_CLASSES) - MODEL_BASES
    assert MODEL_BASES <= set(MODEL_CLASSES), "the allow-listed bases must exist"
    assert sorted(bodies - set(SCHEMAS)) == [], "models without a component schema"
    assert sorted(set(SCHEMAS) - bodies - NON_MODEL_SCHEMAS) == [], "schemas without a model"
    assert NON_MODEL_SCHEMAS <= set(SCHEMAS)


@pytest.mark.parametrize("name", sorted(set(MODEL_CLASSES) - MODEL_BASES))
def test_schema_matches_model(name: str) -> None:
    model = MODEL_CLASSES[name]
    schema = SCHEMAS[name]
    assert schema["type"] == "object"
    properties: dict[str, dict[str, Any]] = schema.get("properties", {})
    fields = model.model_fields
    assert sorted(set(fields) - set(properties)) == [], "model fields missing from the schema"
    assert sorted(set(properties) - set(fields)) == [], "schema properties the model lacks"
    required = {n for n, f in fields.items() if f.is_required()}
    assert sorted(schema.get("required", [])) == sorted(required), "required fields differ"

    forbids_extra = model.model_config.get("extra") == "forbid"
    assert (schema.get("additionalProperties") is False) == forbids_extra, (
        "request models forbid unknown fields and say so; response models tolerate them"
    )

    problems: list[str] = []
    for field_name, field in fields.items():
        prop = properties[field_name]
        where = f"{name}.{field_name}"
        problems += _mismatches(field.annotation, prop, where, field.metadata)
        if not field.is_required():
            default = field.get_default(call_default_factory=True)
            if "default" in prop and prop["default"] != default:
                problems.append(f"{where}: model default {default!r}, schema {prop['default']!r}")
            if "default" not in prop and default is not None:
                problems.append(f"{where}: model default {default!r} is not in the schema")
    assert problems == []


def test_the_contract_checker_spots_a_drift() -> None:
    # The comparison above must not be vacuous: a few deliberate drifts must all be reported.
    assert _mismatches(str | None, {"type": "string"}, "x", [])
    assert _mismatches(int, {"type": "string"}, "x", [])
    assert _mismatches(models.ConsentStatus, {"type": "string", "enum": ["pending"]}, "x", [])
    assert _mismatches(
        list[models.Localized],
        {"type": "array", "items": {"type": "object"}},
        "x",
        [],
    )
    bounded = models.FaultsPatch.model_fields["retry_after"].annotation
    assert _mismatches(bounded, {"type": ["integer", "null"], "minimum": 0}, "x", [])
    assert _mismatches(datetime, {"type": "string", "format": "date"}, "x", [])
    assert not _mismatches(
        models.Localized | None,
        {"anyOf": [{"$ref": "#/components/schemas/Localized"}, {"type": "null"}]},
        "x",
        [],
    )


# --- sandbox routes ↔ paths -----------------------------------------------------------------


def test_sandbox_routes_are_the_documented_operations(tmp_path: Path) -> None:
    # Imported here so that a broken sandbox fails this test alone, not the model checks.
    from services.voucher.sandbox import SandboxConfig, create_sandbox_app

    app = create_sandbox_app(SandboxConfig(token="t", db_path=tmp_path / "s.db"))
    served: set[tuple[str, str]] = set()
    for route in app.router.routes():
        # aiohttp adds a HEAD twin to every GET; "*" would be a catch-all, not an operation.
        if route.method in {"HEAD", "*"} or route.resource is None:
            continue
        served.add((route.method, route.resource.canonical))
    documented = {(method, API_PREFIX + path) for method, path, _, _ in OPS.values()}
    assert sorted(served - documented) == [], "served but not in docs/voucher-api.yaml"
    assert sorted(documented - served) == [], "in docs/voucher-api.yaml but not served"


# --- client methods ↔ operations ----------------------------------------------------------------


def _client_methods() -> dict[str, Any]:
    from services.voucher.client import VoucherClient

    return {
        name: fn
        for name, fn in inspect.getmembers(VoucherClient, inspect.iscoroutinefunction)
        if not name.startswith("_")
    }


def test_client_methods_are_the_operation_ids() -> None:
    methods = set(_client_methods())
    assert CLIENT_LIFECYCLE <= methods, "the lifecycle allow-list must stay accurate"
    assert sorted(methods - CLIENT_LIFECYCLE - set(OPS)) == [], "client methods with no operation"
    assert sorted(set(OPS) - methods) == [], "operations with no client method"


def _expected_return(schema: dict[str, Any]) -> str:
    if schema.get("type") == "array":
        return f"list[{schema['items']['$ref'].rsplit('/', 1)[1]}]"
    return schema["$ref"].rsplit("/", 1)[1]


def _annotation_name(tp: Any) -> str:
    if get_origin(tp) is list:
        return f"list[{get_args(tp)[0].__name__}]"
    return getattr(tp, "__name__", repr(tp))


@pytest.mark.parametrize("op_id", sorted(OPERATIONS))
def test_client_method_fits_its_operation(op_id: str) -> None:
    method = _client_methods()[op_id]
    signature = inspect.signature(method)
    params = signature.parameters
    _, _, op, _ = OPS[op_id]

    # Every success answer parses into the model the client promises to return.
    hints = typing.get_type_hints(method)
    for status, response in op["responses"].items():
        if status.startswith("2"):
            schema = response["content"]["application/json"]["schema"]
            assert _annotation_name(hints["return"]) == _expected_return(schema), status

    for param in _parameters(op_id):
        if param["in"] == "path":
            assert param["name"] in params, f"path parameter {param['name']}"
        elif param["in"] == "query":
            assert param["name"] in params, f"query parameter {param['name']}"
            default = params[param["name"]].default
            if param.get("required", False):
                assert default is inspect.Parameter.empty, f"{param['name']} must be required"
            else:
                assert default is not inspect.Parameter.empty, f"{param['name']} is optional"
                assert default in (None, param["schema"].get("default")), param["name"]
    header_names = {p["name"] for p in _parameters(op_id) if p["in"] == "header"}
    assert ("idempotency_key" in params) == ("Idempotency-Key" in header_names)
    assert ("session" in params) == (op_id in SESSION_OPERATIONS)


# --- the sandbox's real answers ↔ the documented schemas ------------------------------------


def _closed(node: Any) -> Any:
    """A copy of the components where every object with properties forbids other fields.

    The published schemas let responses grow within v1; the sandbox, being the reference
    implementation, must not send anything the document does not name.
    """
    if isinstance(node, dict):
        out = {key: _closed(value) for key, value in node.items()}
        if "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(node, list):
        return [_closed(item) for item in node]
    return node


CLOSED_COMPONENTS = _closed(SPEC["components"])


class ContractWalk:
    """Calls operations by operationId on the real sandbox and checks each answer against the
    YAML: the status must be documented, the media type and body must match its schema."""

    def __init__(self, http: TestClient[Any, Any], token: str) -> None:
        self.http = http
        self.token = token
        self.session: str | None = None
        self.visited: set[str] = set()

    async def call(
        self,
        op_id: str,
        expect: int,
        *,
        path: dict[str, str] | None = None,
        token: str | None = None,
        **kwargs: Any,
    ) -> Any:
        method, template, op, _ = OPS[op_id]
        headers = {"Authorization": f"Bearer {self.token if token is None else token}"}
        if op_id in SESSION_OPERATIONS and self.session is not None:
            headers["X-Session"] = self.session
        headers |= kwargs.pop("headers", {})
        url = API_PREFIX + template.format(**(path or {}))
        async with self.http.request(method, url, headers=headers, **kwargs) as response:
            body = await response.json(content_type=None)
            assert response.status == expect, (op_id, response.status, body)
            documented = op["responses"].get(str(response.status))
            assert documented is not None, f"{op_id} answered an undocumented {response.status}"
            documented = _resolve(documented)
            media_type = response.content_type
            assert media_type in documented["content"], (op_id, media_type)
            for name, header in documented.get("headers", {}).items():
                if _resolve(header).get("required", False):
                    assert name in response.headers, (op_id, name)
        schema = {"components": CLOSED_COMPONENTS, **documented["content"][media_type]["schema"]}
        validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
        problems = [
            f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(body)
        ]
        assert problems == [], (op_id, response.status)
        self.visited.add(op_id)
        return body


@pytest.fixture
async def walk(tmp_path: Path) -> AsyncIterator[ContractWalk]:
    from services.voucher.sandbox import SandboxConfig, create_sandbox_app

    # The switches are spelled out so that SANDBOX_* variables in the shell cannot leak in.
    config = SandboxConfig(
        token="t",
        db_path=tmp_path / "s.db",
        latency_ms=0,
        failure_rate=0.0,
        intake_closed=[],
        consent_auto_answer_s=None,
        unknown_iins=set(),
    )
    # 10 September 2026 in Almaty: academic year 2026-2027, fixed ages.
    app = create_sandbox_app(config, clock=FakeClock())
    async with TestClient(TestServer(app)) as http:
        yield ContractWalk(http, config.token)


@pytest.mark.parametrize("op_id", sorted(OPERATIONS))
async def test_every_operation_answers_a_wrong_token_with_a_documented_401(
    walk: ContractWalk, op_id: str
) -> None:
    path = {name: "x" for name in re.findall(r"{(\w+)}", OPS[op_id][1])}
    problem = await walk.call(op_id, 401, path=path, token="wrong")
    assert problem["code"] == "unauthorized"


async def test_every_operation_answers_as_documented(walk: ContractWalk) -> None:
    """One pass through the whole parent journey and the staff side, every answer checked."""
    phone, parent_iin, child_iin = "+77012345678", "871008401427", "180903500017"  # child: 7

    otp = await walk.call("request_otp", 201, json={"phone": phone})
    (message,) = await walk.call("sandbox_inbox", 200, params={"phone": phone})
    wrong = "0000" if message["otp_code"] != "0000" else "1111"
    problem = await walk.call(
        "verify_otp", 422, path={"otp_id": otp["otp_id"]}, json={"code": wrong}
    )
    assert (problem["code"], problem["attempts_left"]) == ("otp_invalid", 4)
    verified = await walk.call(
        "verify_otp", 200, path={"otp_id": otp["otp_id"]}, json={"code": message["otp_code"]}
    )
    walk.session = verified["session"]

    consent_ids = {}
    for iin in (parent_iin, child_iin):
        created = await walk.call("create_consent", 201, json={"iin": iin})
        consent_ids[iin] = created["consent_id"]
        path = {"consent_id": created["consent_id"]}
        problem = await walk.call("get_person", 403, path=path)
        assert problem["code"] == "consent_required"
        await walk.call("sandbox_answer_consent", 200, path=path, json={"answer": "yes"})
        assert (await walk.call("get_consent", 200, path=path))["status"] == "granted"
    child = await walk.call("get_person", 200, path={"consent_id": consent_ids[child_iin]})
    assert (child["birth_date"], child["gender"]) == ("2018-09-03", "male")
    assert child["birth_certificate"] is not None

    await walk.call("list_queue_types", 200)
    state_order = (await walk.call("list_state_order_types", 200))[0]["code"]
    page = await walk.call("list_providers", 200, params={"page": "1", "per_page": "100"})
    problem = await walk.call("list_providers", 422, params={"per_page": "101"})
    assert problem["code"] == "validation_error" and problem["errors"]
    provider_id, group_id = "", ""
    for provider in page["items"]:
        groups = await walk.call("list_groups", 200, path={"provider_id": provider["id"]})
        fitting = [g for g in groups if g["age_min"] <= 7 <= g["age_max"]]
        if fitting:
            provider_id, group_id = provider["id"], fitting[0]["id"]
            break
    assert group_id, "the catalogue must hold a group for a seven-year-old"

    form = FormData()
    form.add_field("kind", "disability")
    form.add_field("file", b"%PDF-1.7\n%contract\n", filename="d.pdf")
    document = await walk.call("upload_document", 201, data=form)

    choice = {"queue_type": "special", "state_order_type": state_order, "group_id": group_id}
    preview = await walk.call(
        "preview_queue",
        200,
        json={"child_iin": child_iin, **choice, "documents": [document["document_id"]]},
    )
    assert preview["queue"]["code"] == "special-7-10"
    assert preview["academic_year"] == "2026-2027"

    application = {
        "parent": {"iin": parent_iin, "phone": phone},
        "child": {"iin": child_iin},
        **choice,
        "provider_id": provider_id,
        "documents": [document["document_id"]],
        "notification": {"channel": "telegram", "language": "kk"},
        "consents": {"personal_data": True, "contact_use": True, "offer": True},
        "telegram_chat_id": 42,
    }
    key = {"Idempotency-Key": "contract-walk-1"}
    created = await walk.call("submit_application", 201, json=application, headers=key)
    replay = await walk.call("submit_application", 200, json=application, headers=key)
    assert replay == created
    problem = await walk.call(
        "submit_application", 409, json=application, headers={"Idempotency-Key": "another"}
    )
    assert (problem["code"], problem["number"]) == ("duplicate_application", created["number"])

    path = {"application_id": created["id"]}
    await walk.call("get_application", 200, path=path)
    change = {"status": "voucher_issued", "queue_position": 3, "reason": {"kk": "а", "ru": "б"}}
    issued = await walk.call("sandbox_set_status", 200, path=path, json=change)
    assert issued["deadline"] is not None
    feed = await walk.call("list_changes", 200, params={"limit": "1"})
    feed = await walk.call("list_changes", 200, params={"after": feed["next"]})
    assert [item["status"] for item in feed["items"]] == ["voucher_issued"]
    problem = await walk.call("get_application", 404, path={"application_id": "nope"})
    assert problem["code"] == "not_found"
    (listed,) = await walk.call("sandbox_list_applications", 200)
    assert listed["body"] == application

    await walk.call("sandbox_get_faults", 200)
    faults = await walk.call("sandbox_set_faults", 200, json={"failure_rate": 1.0})
    assert faults["failure_rate"] == 1.0
    problem = await walk.call("list_queue_types", 503)
    assert problem["code"] == "unavailable"

    assert walk.visited == set(OPS), "every operation must be exercised"

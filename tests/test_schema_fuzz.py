"""Schema fuzzing: schemathesis generates requests from the OpenAPI document and checks every answer.

It runs against a real uvicorn process over HTTP, with a bounded number of examples
per operation, once without an API key and once with one. Every answer must be no 5xx,
a status the document lists, the documented content type and a body matching the
documented schema; schema-violating requests must be refused, and with a key set,
a request without it must get a 401.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from app.config import Settings
from app.main import create_app
from tests.conftest import ARTIFACTS
from tests.server import ServerURL, running_server

pytestmark = pytest.mark.slow

#: Examples per operation: enough to reach every documented error path, and the file in well under a minute.
MAX_EXAMPLES = 20
KEY = "fuzz-key-0123456789"

#: An upload route takes any bytes by its schema, but only an image is a 2xx: schemathesis'
#: "schema-valid data must be accepted" check cannot hold there (a 400/415 is the right answer).
CONTENT_CHECKED = {"/v1/classify", "/classify_image"}

FUZZ = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,  # the same examples on every run: a failure in CI reproduces locally
    suppress_health_check=list(HealthCheck),
    database=None,
)


def openapi_document(api_key: str | None = None) -> dict:
    """The app's OpenAPI document, built without serving (schemathesis needs it at collection time)."""
    return create_app(Settings(_env_file=None, artifacts_dir=ARTIFACTS, api_key=api_key)).openapi()


# schemathesis' fixture-based (lazy) loading breaks on pytest 9 (it sets Node._nodeid), so the
# documents are built at import; test_served_documents_are_the_fuzzed_ones checks that is what is served.
open_schema = schemathesis.openapi.from_dict(openapi_document())
keyed_schema = schemathesis.openapi.from_dict(openapi_document(KEY))


def _serve(tmp: Path, **env: str) -> Iterator[ServerURL]:
    # The LATEST watcher is off: a fuzzed reload must be the only thing that changes the model.
    with running_server(tmp / "server.log", LOG_LEVEL="WARNING", MODEL_WATCH_INTERVAL_S="0", **env) as base:
        yield base


@pytest.fixture(scope="module")
def open_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerURL]:
    yield from _serve(tmp_path_factory.mktemp("fuzz-open"))


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerURL]:
    yield from _serve(tmp_path_factory.mktemp("fuzz-keyed"), API_KEY=KEY)


def _excluded(case: schemathesis.Case) -> list:
    return [schemathesis.checks.positive_data_acceptance] if case.path in CONTENT_CHECKED else []


@open_schema.parametrize()
@FUZZ
def test_fuzz_without_api_key(case: schemathesis.Case, open_server: ServerURL) -> None:
    case.call_and_validate(base_url=open_server, excluded_checks=_excluded(case), timeout=60)


@keyed_schema.parametrize()
@FUZZ
def test_fuzz_with_api_key(case: schemathesis.Case, keyed_server: ServerURL) -> None:
    headers = {"X-API-Key": KEY} if case.operation.definition.raw.get("security") else None
    case.call_and_validate(
        base_url=keyed_server, headers=headers, excluded_checks=_excluded(case), timeout=60
    )


def test_served_documents_are_the_fuzzed_ones(open_server: ServerURL, keyed_server: ServerURL) -> None:
    assert httpx.get(f"{open_server}/openapi.json").json() == openapi_document()
    assert httpx.get(f"{keyed_server}/openapi.json").json() == openapi_document(KEY)


def test_documents_cover_the_api() -> None:
    """A route dropped from the document would silently go unfuzzed; the key is documented where enforced."""
    operations = {
        f"{op.method.upper()} {op.path}": op for op in (r.ok() for r in keyed_schema.get_all_operations())
    }
    assert {"POST /v1/classify", "GET /v1/models", "POST /v1/models/reload", "GET /readyz"} <= set(operations)
    assert operations["POST /v1/classify"].definition.raw["security"] == [{"APIKeyHeader": []}]
    assert "security" not in operations["GET /readyz"].definition.raw
    assert not any("security" in op for path in openapi_document()["paths"].values() for op in path.values())

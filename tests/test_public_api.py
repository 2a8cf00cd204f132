"""The public API's documents against the app that serves them.

- Every route the full app serves is documented: HTTP routes in /v1/openapi.json (the admin API
  in its own document, tests/test_admin_api.py), /v1/ws in /v1/asyncapi.json; pages are not API.
- Every documented route the app serves answers as documented: schemathesis sends generated and
  example requests to a real `liveupdates serve` process and validates every response (status,
  content type, headers, body schema) against /v1/openapi.json.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance
from starlette.routing import Mount, Route, WebSocketRoute

from liveupdates.api.asyncapi import asyncapi_document
from liveupdates.api.openapi import openapi_document
from liveupdates.backends import open_backends
from liveupdates.server import build_app
from liveupdates.settings import Settings
from tests.support.served import Served, serving

# Not API: the reader page, the admin page, the reference page, the demo feed, Prometheus, the
# WebSub callback (for hubs, not clients). /v1/admin/... is the admin document's.
PAGES = {
    "/",
    "/sw.js",  # the reader page's service worker
    "/admin",
    "/admin/admin.js",
    "/admin/admin.css",
    "/docs",
    "/docs/docs.js",
    "/docs/docs.css",
    "/metrics",
    "/demo/feed.xml",
    "/demo/stories/{slug}",
}
NOT_API_PREFIXES = ("/v1/admin", "/v1/websub/")  # WebSub: docs/websub.md
# A cursor is opaque: the schema cannot say which strings of its pattern the server gave out, so
# a well-formed one the server never gave is a 400 that schemathesis calls a rejected valid request.
# A device registration's keys and endpoint are checked beyond what a schema can say (a P-256
# point, a 16-byte secret, an allowed push service host): such a schema-valid body is a 400 too.
OPAQUE = {
    "/v1/feeds": [positive_data_acceptance],
    "/v1/devices": [positive_data_acceptance],
}
# Streams forever when the channel exists: checked on its own below, not by generated requests.
STREAMING = "/v1/sse"


def _served_routes(tmp_path: Path) -> tuple[set[tuple[str, str]], set[str]]:
    """(method, path) of every HTTP route and the path of every WebSocket route of the full app
    (`liveupdates serve` with the demo and WebSub on)."""
    settings = Settings(data_dir=str(tmp_path), hub_demo=True, public_url="https://news.example")
    app = build_app(settings, open_backends(settings), self_url="http://127.0.0.1:1")
    http: set[tuple[str, str]] = set()
    ws: set[str] = set()
    for route in app.routes:
        if isinstance(route, WebSocketRoute):
            ws.add(route.path)
        elif isinstance(route, Route):
            for method in route.methods or ():
                if method != "HEAD":
                    http.add((method.lower(), route.path))
        else:
            assert isinstance(route, Mount) and route.path == "/static", route
    return http, ws


def _documented() -> set[tuple[str, str]]:
    return {(method, path) for path, item in openapi_document()["paths"].items() for method in item}


def test_every_served_route_is_documented(tmp_path: Path) -> None:
    http, ws = _served_routes(tmp_path)
    public = {(m, p) for m, p in http if p not in PAGES and not p.startswith(NOT_API_PREFIXES)}
    assert public, "no public routes found"
    assert public <= _documented(), f"served but not in /v1/openapi.json: {public - _documented()}"
    addresses = {c["address"].split("?")[0] for c in asyncapi_document()["channels"].values()}
    assert ws <= addresses, f"WebSocket routes not in /v1/asyncapi.json: {ws - addresses}"
    assert "/v1/sse" in addresses


def test_every_documented_route_is_served(tmp_path: Path) -> None:
    http, _ = _served_routes(tmp_path)
    unserved = _documented() - http
    assert not unserved, f"documented but served by nothing: {unserved}"


def test_the_documents_name_every_model_they_reference() -> None:
    for document in (openapi_document(), asyncapi_document()):
        text = json.dumps(document)
        schemas = document["components"]["schemas"]
        for ref in {part.split('"')[0] for part in text.split('"$ref": "')[1:]}:
            if ref.startswith("#/components/schemas/"):
                assert ref.rsplit("/", 1)[1] in schemas, ref


# -- the live app -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """`liveupdates serve` with the demo feed (so stories exist) and room for many requests."""
    with serving(
        tmp_path_factory.mktemp("public-api"),
        LIVEUPDATES_LIMITS_REQUESTS_PER_SECOND_PER_ADDRESS="100000",
        LIVEUPDATES_PUBLIC_URL="http://127.0.0.1:1",
        # Generated registrations name only a closed loopback port: nothing is ever sent out.
        LIVEUPDATES_PUSH_WEBPUSH_HOSTS="127.0.0.1:9",
    ) as running:
        yield running


@pytest.fixture(scope="module")
def live_schema(live: Served, tmp_path_factory: pytest.TempPathFactory) -> schemathesis.BaseSchema:
    schema = schemathesis.openapi.from_url(f"{live.url}/v1/openapi.json")
    return schema.exclude(path=STREAMING)


def test_the_live_app_answers_as_documented(live_schema: schemathesis.BaseSchema) -> None:
    """Generated and example requests for every operation; every response must conform.

    Driven through Hypothesis directly: schemathesis's pytest plugin does not run under this
    pytest."""
    checked = []
    for result in live_schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=25,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: schemathesis.Case) -> None:
            excluded = OPAQUE.get(case.operation.path, [])
            case.call_and_validate(timeout=10, excluded_checks=excluded)

        check()
        checked.append(operation.label)
    assert len(checked) >= 8, checked


def test_documents_are_served_as_generated(live: Served) -> None:
    assert httpx.get(f"{live.url}/v1/openapi.json").json() == openapi_document()
    assert httpx.get(f"{live.url}/v1/asyncapi.json").json() == asyncapi_document()


def test_sse_answers_as_documented(live: Served) -> None:
    doc = schemathesis.openapi.from_url(f"{live.url}/v1/openapi.json")
    operation = doc["/v1/sse"]["GET"]
    for params, status in (
        ({"channel": "story:nope"}, 404),
        ({"channel": "nope"}, 400),
        ({"channel": "feed:demo", "since": "²"}, 400),
        ({}, 400),
    ):
        response = httpx.get(f"{live.url}/v1/sse", params=params, timeout=10)
        assert response.status_code == status, response.text
        operation.validate_response(response)
    with httpx.stream("GET", f"{live.url}/v1/sse", params={"channel": "feed:demo"}) as stream:
        assert stream.status_code == 200
        documented = openapi_document()["paths"]["/v1/sse"]["get"]["responses"]["200"]["content"]
        assert stream.headers["content-type"].split(";")[0] in documented
        assert next(stream.iter_lines()).startswith("retry:")

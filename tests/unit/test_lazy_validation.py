"""The resolver's request validation is built with the first request (not when the handler is
imported: tests/unit/test_lazy_imports.py), and validates that first request as before."""

from __future__ import annotations

import json
from typing import Annotated, Any

import pytest
from aws_lambda_powertools.event_handler.openapi.params import Query

from clinicpay.api.auth import Access
from clinicpay.api.resolver import make_resolver


def _event(query: dict[str, str]) -> dict[str, Any]:
    return {"version": "2.0", "routeKey": "GET /things", "rawPath": "/things", "rawQueryString": "",
            "queryStringParameters": query, "headers": {}, "isBase64Encoded": False,
            "requestContext": {"http": {"method": "GET", "path": "/things", "sourceIp": "203.0.113.9"},
                               "stage": "$default"}}


def test_the_first_request_is_validated_and_later_ones_too() -> None:
    app = make_resolver()

    @app.get("/things", access=Access.NONE)
    def things(limit: Annotated[int, Query(ge=1, le=10)] = 5) -> dict[str, int]:
        return {"limit": limit}

    assert not hasattr(app, "_request_validation_middleware")  # nothing built yet
    first = app.resolve(_event({"limit": "0"}), {})
    assert first["statusCode"] == 422
    [detail] = json.loads(first["body"])["error"]["details"]
    assert detail["field"] == "query.limit" and detail["kind"] == "too_small" and detail["limit"] == 1
    assert hasattr(app, "_request_validation_middleware")
    assert app.resolve(_event({"limit": "x"}), {})["statusCode"] == 422
    ok = app.resolve(_event({"limit": "3"}), {})
    assert ok["statusCode"] == 200 and json.loads(ok["body"]) == {"limit": 3}


def test_a_routes_first_call_runs_with_the_collector_paused_and_leaves_it_running(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Building a route's validation makes pydantic's schemas: no collection walks them meanwhile
    # (api.route_groups.collector_paused), and the collector runs again for the requests after.
    import gc

    freezes: list[bool] = []
    monkeypatch.setattr(gc, "freeze", lambda: freezes.append(True))
    app = make_resolver()
    collecting: list[bool] = []

    @app.get("/things", access=Access.NONE)
    def things(limit: Annotated[int, Query(ge=1, le=10)] = 5) -> dict[str, int]:
        collecting.append(gc.isenabled())
        return {"limit": limit}

    assert gc.isenabled()
    assert app.resolve(_event({"limit": "3"}), {})["statusCode"] == 200
    assert gc.isenabled() and freezes == [True]  # what the first call loaded
    assert app.resolve(_event({"limit": "4"}), {})["statusCode"] == 200
    assert collecting == [False, True] and freezes == [True]


def test_a_collector_turned_off_stays_off_and_nothing_is_frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    import gc

    from clinicpay.api.route_groups import collector_paused

    freezes: list[bool] = []
    monkeypatch.setattr(gc, "freeze", lambda: freezes.append(True))
    gc.disable()
    try:
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled() and freezes == []
    finally:
        gc.enable()

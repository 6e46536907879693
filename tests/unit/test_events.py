"""events/ has one sample per HttpApi route and schedule in template.yaml, and nothing stale."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from local import apigw, template

ROOT = template.ROOT
EVENTS = ROOT / "events"
REGENERATE = "run `python -m local.make_events`"


def _template_events() -> list[tuple[Path, str, dict]]:
    """(expected file, event type, event properties) for every HttpApi and schedule event."""
    functions = template.functions()
    found = []
    for logical_id, resource in template.load()["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        folder = EVENTS / functions[logical_id].code_uri.name
        for name, event in resource["Properties"].get("Events", {}).items():
            if event["Type"] in ("HttpApi", "Schedule", "ScheduleV2"):
                found.append((folder / f"{name}.json", event["Type"], event["Properties"]))
    return found


TEMPLATE_EVENTS = _template_events()
EVENT_FILES = sorted(EVENTS.rglob("*.json"))


def _id(value: object) -> str:
    return str(value.relative_to(ROOT)) if isinstance(value, Path) else ""


def test_template_has_routes_and_schedules() -> None:
    kinds = {kind for _, kind, _ in TEMPLATE_EVENTS}
    assert "HttpApi" in kinds and kinds & {"Schedule", "ScheduleV2"}


@pytest.mark.parametrize(("path", "kind", "props"), TEMPLATE_EVENTS, ids=[_id(p) for p, _, _ in TEMPLATE_EVENTS])
def test_every_template_event_has_a_sample(path: Path, kind: str, props: dict) -> None:
    assert path.is_file(), f"{path.relative_to(ROOT)} is missing; {REGENERATE}"
    event = json.loads(path.read_text())
    if kind == "HttpApi":
        expected = f"{props['Method'].upper()} {props['Path']}" if "Path" in props else "$default"
        assert event["routeKey"] == expected, REGENERATE
    else:
        assert event == json.loads(props["Input"]), REGENERATE


@pytest.mark.parametrize("path", EVENT_FILES, ids=[_id(p) for p in EVENT_FILES])
def test_every_sample_matches_the_template(path: Path) -> None:
    event = json.loads(path.read_text())
    default = template.default_route()
    route_keys = {route.route_key for route in template.routes()} | ({default.route_key} if default else set())
    if "job" in event:
        assert event["job"] in template.schedules(), f"{path.relative_to(ROOT)}: no such schedule; {REGENERATE}"
        return
    if "Records" in event:  # a job queue's batch: one shard of a job the queue's function runs
        mapping = next(m for m in template.event_source_mappings() if m.queue == path.stem)
        for record in event["Records"]:
            assert record["eventSource"] == "aws:sqs" and record["eventSourceARN"].endswith(f":{mapping.queue}")
            assert template.schedules()[json.loads(record["body"])["job"]] == mapping.function
        return
    assert event.get("version") == "2.0", f"{path.relative_to(ROOT)} is not an HTTP API v2 event"
    assert event["routeKey"] in route_keys, f"{path.relative_to(ROOT)}: route is gone from template.yaml; {REGENERATE}"
    # The local API Gateway routes the sample's path back to the same route.
    method = event["requestContext"]["http"]["method"]
    matched = apigw.match(method, event["rawPath"])
    assert matched is not None and matched[0].route_key == event["routeKey"]
    assert matched[1] == event.get("pathParameters", {})
    if event.get("body") and event["headers"].get("content-type") == "application/json":
        json.loads(event["body"])

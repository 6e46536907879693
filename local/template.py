"""Reads template.yaml (with its CloudFormation tags) into routes, schedules and tables."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"


class _CfnLoader(yaml.SafeLoader):
    pass


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {f"Fn::{suffix}" if suffix != "Ref" else "Ref": value}


_CfnLoader.add_multi_constructor("!", _tag)


@dataclass(frozen=True)
class Route:
    function: str  # logical id, e.g. CreateLinkFunction
    method: str
    path: str  # "/v1/clinics/{clinic_id}/appointments"
    pattern: re.Pattern[str] = field(compare=False)

    @property
    def route_key(self) -> str:
        return "$default" if self.path == "$default" else f"{self.method} {self.path}"

    @property
    def specificity(self) -> tuple[int, int]:
        # Literal segments beat parameters; longer paths beat shorter ones.
        segments = self.path.strip("/").split("/")
        return (sum(1 for s in segments if not s.startswith("{")), len(segments))


@dataclass(frozen=True)
class Function:
    logical_id: str
    code_uri: Path
    handler: str
    environment: dict[str, Any]


@lru_cache(maxsize=1)
def load() -> dict[str, Any]:
    return yaml.load(TEMPLATE.read_text(), Loader=_CfnLoader)  # noqa: S506 - our own loader


def _path_regex(path: str) -> re.Pattern[str]:
    def param(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.endswith("+"):
            return f"(?P<{name[:-1]}>.+)"
        return f"(?P<{name}>[^/]+)"

    return re.compile("^" + re.sub(r"\{([^}]+)\}", param, path) + "$")


def functions() -> dict[str, Function]:
    doc = load()
    result = {}
    for logical_id, resource in doc["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        props = resource["Properties"]
        env = dict(doc.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {}))
        env.update(props.get("Environment", {}).get("Variables", {}))
        result[logical_id] = Function(logical_id, ROOT / props["CodeUri"], props["Handler"], env)
    return result


def routes() -> list[Route]:
    found = []
    for logical_id, resource in load()["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        for event in resource["Properties"].get("Events", {}).values():
            p = event.get("Properties") or {}
            if event["Type"] == "HttpApi" and "Path" in p:
                found.append(Route(logical_id, p["Method"].upper(), p["Path"], _path_regex(p["Path"])))
    return sorted(found, key=lambda r: r.specificity, reverse=True)


def default_route() -> Route | None:
    """The HTTP API's `$default` route (an HttpApi event without Path and Method): it receives every
    request no other route matches."""
    for logical_id, resource in load()["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        for event in resource["Properties"].get("Events", {}).values():
            if event["Type"] == "HttpApi" and "Path" not in (event.get("Properties") or {}):
                return Route(logical_id, "ANY", "$default", re.compile(".*"))
    return None


def schedules() -> dict[str, str]:
    """job name (from the schedule's Input) -> function logical id."""
    import json

    jobs = {}
    for logical_id, resource in load()["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        for event in resource["Properties"].get("Events", {}).values():
            if event["Type"] in ("ScheduleV2", "Schedule"):
                jobs[json.loads(event["Properties"]["Input"])["job"]] = logical_id
    return jobs


def tables() -> dict[str, dict[str, Any]]:
    """Logical id -> CreateTable arguments, straight from the template so tests cannot drift."""
    result = {}
    for logical_id, resource in load()["Resources"].items():
        if resource["Type"] != "AWS::DynamoDB::Table":
            continue
        props = resource["Properties"]
        args: dict[str, Any] = {
            "TableName": logical_id,
            "KeySchema": props["KeySchema"],
            "AttributeDefinitions": props["AttributeDefinitions"],
            "BillingMode": "PAY_PER_REQUEST",
        }
        if props.get("GlobalSecondaryIndexes"):
            args["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
        result[logical_id] = args
    return result

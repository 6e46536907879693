"""Reads template.yaml (with its CloudFormation tags) into routes, schedules, tables, queues and the
queues' event source mappings."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"
LAMBDA_DEFAULT_TIMEOUT = 3  # seconds, when neither the function nor Globals set one


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
    timeout: float  # seconds, the function's own or Globals' (Lambda's default is 3)


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
        globals_ = doc.get("Globals", {}).get("Function", {})
        env = dict(globals_.get("Environment", {}).get("Variables", {}))
        env.update(props.get("Environment", {}).get("Variables", {}))
        timeout = float(props.get("Timeout", globals_.get("Timeout", LAMBDA_DEFAULT_TIMEOUT)))
        result[logical_id] = Function(logical_id, ROOT / props["CodeUri"], props["Handler"], env, timeout)
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
    jobs = {}
    for logical_id, resource in load()["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        for event in resource["Properties"].get("Events", {}).values():
            if event["Type"] in ("ScheduleV2", "Schedule"):
                jobs[json.loads(event["Properties"]["Input"])["job"]] = logical_id
    return jobs


@dataclass(frozen=True)
class QueueMapping:
    """An AWS::Lambda::EventSourceMapping from an SQS queue of this stack to a function."""

    queue: str  # logical id
    function: str  # logical id
    batch_size: int
    reports_item_failures: bool


def event_source_mappings() -> list[QueueMapping]:
    found = []
    for resource in load()["Resources"].values():
        if resource["Type"] != "AWS::Lambda::EventSourceMapping":
            continue
        props = resource["Properties"]
        queue = props["EventSourceArn"]["Fn::GetAtt"]
        queue_id = queue[0] if isinstance(queue, list) else queue.split(".", 1)[0]
        function = str(props["FunctionName"]["Ref"]).split(".", 1)[0]  # "<Function>.Alias": SAM's alias
        found.append(QueueMapping(queue_id, function, int(props.get("BatchSize", 10)),
                                  "ReportBatchItemFailures" in props.get("FunctionResponseTypes", [])))
    return found


def queues() -> dict[str, dict[str, str]]:
    """Logical id -> CreateQueue Attributes (strings, as SQS takes them), resolved the local way.
    Queues that are a redrive target come first, so a source queue's DLQ exists when it is made."""
    resolver = Resolver()
    found: dict[str, dict[str, str]] = {}
    for logical_id, resource in load()["Resources"].items():
        if resource["Type"] != "AWS::SQS::Queue":
            continue
        props = resolver.resolve(resource.get("Properties", {}))
        attributes = {name: str(props[name]) for name in ("VisibilityTimeout", "MessageRetentionPeriod") if name in props}
        if "RedrivePolicy" in props:
            attributes["RedrivePolicy"] = json.dumps(props["RedrivePolicy"])
        found[logical_id] = attributes
    return dict(sorted(found.items(), key=lambda item: "RedrivePolicy" in item[1]))


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


# ---------------------------------------------------------------- intrinsic functions, the local way
# The local stack "deploys" template.yaml into one moto account: a resource's physical name is its
# logical id, parameters take their defaults (or the overrides given), conditions are evaluated.
REGION = "us-east-1"
ACCOUNT_ID = "123456789012"  # moto's default account
PSEUDO = {"AWS::Region": REGION, "AWS::AccountId": ACCOUNT_ID, "AWS::Partition": "aws",
          "AWS::URLSuffix": "amazonaws.com", "AWS::StackName": "clinicpay-local"}
NO_VALUE = object()  # AWS::NoValue: the property is left out


def local_arn(resource_type: str, logical_id: str) -> str:
    prefix = f"arn:aws:{{}}:{REGION}:{ACCOUNT_ID}:"
    kinds = {"AWS::DynamoDB::Table": ("dynamodb", f"table/{logical_id}"),
             "AWS::SQS::Queue": ("sqs", logical_id),
             "AWS::SNS::Topic": ("sns", logical_id),
             "AWS::Logs::LogGroup": ("logs", f"log-group:{logical_id}"),
             "AWS::Serverless::Function": ("lambda", f"function:{logical_id}")}
    service, rest = kinds.get(resource_type, ("local", logical_id))
    return prefix.format(service) + rest


def queue_url(logical_id: str) -> str:
    """A queue's URL as SQS names it (moto finds the queue by its last segment, whatever the host)."""
    return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT_ID}/{logical_id}"


def secret_arn(name: str) -> str:
    """A secret's ARN ends in "-" and six random characters; locally always the same six."""
    return f"arn:aws:secretsmanager:{REGION}:{ACCOUNT_ID}:secret:{name}-Ab12Cd"


class Resolver:
    def __init__(self, parameters: dict[str, str] | None = None):
        doc = load()
        self.resources: dict[str, Any] = doc.get("Resources", {})
        self.parameters = {name: str(p.get("Default", "")) for name, p in doc.get("Parameters", {}).items()}
        self.parameters.update({k: v for k, v in (parameters or {}).items() if v is not None})
        self._conditions: dict[str, Any] = doc.get("Conditions", {})

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self._conditions[name]))

    def ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in PSEUDO:
            return PSEUDO[name]
        if name in self.parameters:
            return self.parameters[name]
        if name.endswith(".Alias") and name.rsplit(".", 1)[0] in self.resources:
            return name.rsplit(".", 1)[0]  # SAM's AutoPublishAlias alias: locally the function itself
        resource = self.resources[name]
        if resource["Type"] == "AWS::SecretsManager::Secret":
            return secret_arn(str(self.resolve(resource["Properties"]["Name"])))
        if resource["Type"] == "AWS::SNS::Topic":
            return local_arn(resource["Type"], name)
        if resource["Type"] == "AWS::SQS::Queue":
            return queue_url(name)  # Ref of a queue is its URL
        return name

    def get_att(self, logical_id: str, attribute: str) -> str:
        kind = self.resources[logical_id]["Type"]
        if attribute == "Arn":
            return local_arn(kind, logical_id)
        if attribute == "QueueName":
            return logical_id
        raise KeyError(f"{logical_id}.{attribute}: no local value")

    def sub(self, text: str, variables: dict[str, Any] | None = None) -> str:
        def value(match: re.Match[str]) -> str:
            name = match.group(1)
            if variables and name in variables:
                return str(self.resolve(variables[name]))
            if "." in name and not name.startswith("AWS::"):
                return self.get_att(*name.split(".", 1))
            return str(self.ref(name))

        return re.sub(r"\$\{([^}!]+)\}", value, text)

    def resolve(self, value: Any) -> Any:  # noqa: C901 - one branch per intrinsic function
        if isinstance(value, list):
            return [v for v in (self.resolve(item) for item in value) if v is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (name, arg), = value.items()
            if name == "Ref":
                return self.ref(arg)
            if name == "Fn::GetAtt":
                logical_id, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.get_att(logical_id, attribute)
            if name == "Fn::Sub":
                return self.sub(arg) if isinstance(arg, str) else self.sub(arg[0], arg[1])
            if name == "Fn::If":
                return self.resolve(arg[1] if self.condition(arg[0]) else arg[2])
            if name == "Fn::Equals":
                return str(self.resolve(arg[0])) == str(self.resolve(arg[1]))
            if name == "Fn::Not":
                return not self.resolve(arg[0])
            if name == "Fn::And":
                return all(self.resolve(a) for a in arg)
            if name == "Fn::Or":
                return any(self.resolve(a) for a in arg)
            if name == "Fn::Condition" or name == "Condition":
                return self.condition(arg)
            if name == "Fn::Select":
                return self.resolve(arg[1])[int(self.resolve(arg[0]))]
            if name == "Fn::Split":
                return str(self.resolve(arg[1])).split(arg[0])
            if name == "Fn::Join":
                return arg[0].join(str(v) for v in self.resolve(arg[1]))
        return {k: r for k, r in ((k, self.resolve(v)) for k, v in value.items()) if r is not NO_VALUE}

"""IAM for the local stack: a handler may make only the AWS calls its function's role allows.

moto answers every call, so a role in template.yaml that lacks an action, or names the wrong table,
index or secret, would pass every test and fail in AWS. While `enforce()` is on, each call a
handler makes (apigw runs handlers inside `invoking(logical_id)`) is evaluated against the
statements of that function's `Policies`, resolved the local way (template.Resolver), as IAM does:
an explicit Deny wins, otherwise an Allow must match the action, the resource and the condition. A
call that is not allowed fails as it would in AWS (AccessDeniedException, which repositories turn
into a 503) and is recorded in `denials`, which the test suites report by name.

Modelled: the calls our code makes, as IAM authorizes them (DynamoDB items, queries on tables and
indexes, batches, and transactions item by item; Secrets Manager by secret ARN; SES v2 SendEmail by
identity with ses:FromAddress; SNS Publish by topic, or "*" for a phone number; SQS by queue ARN,
batches as their single action), `*` and `?` in
actions and resources, and the String* condition operators. Not modelled: SAM's managed policies
(logs, X-Ray: never called through boto3), resource policies, SCPs, permission boundaries.
Calls made outside a handler (tests, the local tools) are not checked. With CLINICPAY_LOCAL_IAM_LOG
set to a file, every allowed call is appended to it ("function action resource"), to find grants
nothing uses.
"""

from __future__ import annotations

import contextvars
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.utils import parseaddr
from functools import lru_cache
from typing import Any

from botocore.client import BaseClient
from botocore.exceptions import ClientError

from local import template

_current: contextvars.ContextVar[str | None] = contextvars.ContextVar("clinicpay_local_iam_function", default=None)
_lock = threading.Lock()
_parameters: dict[str, str] = {}
_original_call = BaseClient._make_api_call
denials: list[str] = []

_SQS_BATCH_ACTIONS = {"SendMessageBatch": "SendMessage", "DeleteMessageBatch": "DeleteMessage",
                      "ChangeMessageVisibilityBatch": "ChangeMessageVisibility"}
_TRANSACT_ACTIONS = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem",
                     "ConditionCheck": "ConditionCheckItem", "Get": "GetItem"}


@dataclass(frozen=True)
class Request:
    action: str  # "dynamodb:GetItem"
    resources: tuple[str, ...]  # allowed when the policy allows any of them (SES: address or domain identity)
    context: tuple[tuple[str, str], ...] = ()

    def describe(self) -> str:
        return f"{self.action} on {' or '.join(self.resources)}"


# ---------------------------------------------------------------- switching it on
def enforce(parameters: dict[str, str] | None = None) -> None:
    """Check every AWS call a handler makes from now on. `parameters` are the template parameters
    the local stack "deploys" with (e.g. EmailSender), so resources resolve as the calls name them."""
    with _lock:
        _parameters.clear()
        _parameters.update(parameters or {})
        _statements.cache_clear()
        if BaseClient._make_api_call is not _checked_call:
            BaseClient._make_api_call = _checked_call  # type: ignore[method-assign]


def stop() -> None:
    with _lock:
        BaseClient._make_api_call = _original_call  # type: ignore[method-assign]


@contextmanager
def invoking(logical_id: str) -> Iterator[None]:
    """Calls made in this context (this thread) are the function `logical_id`'s."""
    token = _current.set(logical_id)
    try:
        yield
    finally:
        _current.reset(token)


def _checked_call(client: BaseClient, operation_name: str, api_params: dict[str, Any]) -> Any:
    function = _current.get()
    if function is not None:
        for request in requests_for(client.meta.service_model.signing_name, operation_name, api_params):
            if not is_allowed(function, request):
                message = (f"{function} is not allowed {request.describe()} by its Policies in template.yaml "
                           "(local IAM, as AWS would answer)")
                denials.append(message)
                raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": message},
                                   "ResponseMetadata": {"HTTPStatusCode": 400}}, operation_name)
            if os.environ.get("CLINICPAY_LOCAL_IAM_LOG"):
                with open(os.environ["CLINICPAY_LOCAL_IAM_LOG"], "a") as log:
                    log.write(f"{function} {request.describe()}\n")
    return _original_call(client, operation_name, api_params)


# ---------------------------------------------------------------- what a call asks IAM for
def requests_for(service: str, operation: str, params: dict[str, Any]) -> list[Request]:
    if service == "dynamodb":
        return _dynamodb(operation, params)
    if service == "secretsmanager":
        secret = str(params.get("SecretId") or params.get("Name") or "*")
        arn = secret if secret.startswith("arn:") else template.secret_arn(secret)
        return [Request(f"secretsmanager:{operation}", (arn,))]
    if service == "ses" and operation in ("SendEmail", "SendBulkEmail"):
        address = parseaddr(str(params.get("FromEmailAddress", "")))[1]
        domain = address.rpartition("@")[2]
        identity = f"arn:aws:ses:{template.REGION}:{template.ACCOUNT_ID}:identity/"
        return [Request(f"ses:{operation}", (identity + address, identity + domain), (("ses:FromAddress", address),))]
    if service == "sns" and operation == "Publish":
        return [Request("sns:Publish", (str(params.get("TopicArn") or params.get("TargetArn") or "*"),))]
    if service == "sqs" and params.get("QueueUrl"):
        # IAM authorizes a batch as its single action (SendMessageBatch is sqs:SendMessage), on the
        # queue's ARN, which its URL spells: https://sqs.<region>.amazonaws.com/<account>/<name>
        action = _SQS_BATCH_ACTIONS.get(operation, operation)
        account, name = str(params["QueueUrl"]).rstrip("/").split("/")[-2:]
        return [Request(f"sqs:{action}", (f"arn:aws:sqs:{template.REGION}:{account}:{name}",))]
    return [Request(f"{service}:{operation}", ("*",))]


def _table_arn(name: str) -> str:
    return name if name.startswith("arn:") else f"arn:aws:dynamodb:{template.REGION}:{template.ACCOUNT_ID}:table/{name}"


def _dynamodb(operation: str, params: dict[str, Any]) -> list[Request]:
    if operation in ("TransactWriteItems", "TransactGetItems"):
        # IAM authorizes a transaction item by item, each as its own action.
        found = []
        for item in params.get("TransactItems", []):
            (kind, body), = item.items()
            found.append(Request(f"dynamodb:{_TRANSACT_ACTIONS[kind]}", (_table_arn(body["TableName"]),)))
        return found
    if operation in ("BatchGetItem", "BatchWriteItem"):
        return [Request(f"dynamodb:{operation}", (_table_arn(name),)) for name in params.get("RequestItems", {})]
    arn = _table_arn(str(params.get("TableName", "*")))
    if params.get("IndexName"):
        arn = f"{arn}/index/{params['IndexName']}"
    return [Request(f"dynamodb:{operation}", (arn,))]


# ---------------------------------------------------------------- evaluating a role's statements
@lru_cache(maxsize=32)
def _statements(function: str, parameters: tuple[tuple[str, str], ...]) -> tuple[dict[str, Any], ...]:
    resolver = template.Resolver(dict(parameters))
    properties = template.load()["Resources"][function]["Properties"]
    found: list[dict[str, Any]] = []
    for policy in properties.get("Policies", []):
        if not (isinstance(policy, dict) and set(policy) == {"Statement"}):
            raise ValueError(f"{function}: local IAM evaluates inline statements only, not {policy!r}; "
                             "write the statements out in template.yaml")
        found.extend(resolver.resolve(policy["Statement"]))
    return tuple(found)


def is_allowed(function: str, request: Request, parameters: dict[str, str] | None = None) -> bool:
    """Whether `function`'s role allows `request`, with the template resolved with `parameters`
    (by default those `enforce` was given)."""
    chosen = _parameters if parameters is None else parameters
    statements = _statements(function, tuple(sorted(chosen.items())))
    return any(_allowed_on(statements, request, resource) for resource in request.resources)


def _allowed_on(statements: tuple[dict[str, Any], ...], request: Request, resource: str) -> bool:
    context = dict(request.context)
    if any(_matches(s, request.action, resource, context) for s in statements if s["Effect"] == "Deny"):
        return False
    return any(_matches(s, request.action, resource, context) for s in statements if s["Effect"] == "Allow")


def _listed(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _wildcard(pattern: str, text: str, *, ignore_case: bool = False) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, text, re.IGNORECASE if ignore_case else 0) is not None


def _matches(statement: dict[str, Any], action: str, resource: str, context: dict[str, str]) -> bool:
    unsupported = {"NotAction", "NotResource", "Principal", "NotPrincipal"} & set(statement)
    if unsupported:
        raise ValueError(f"local IAM does not evaluate {sorted(unsupported)} (statement {statement.get('Sid')})")
    if not any(_wildcard(a, action, ignore_case=True) for a in _listed(statement["Action"])):
        return False
    if not any(_wildcard(r, resource) for r in _listed(statement["Resource"])):
        return False
    return all(_condition(operator, values, context) for operator, values in statement.get("Condition", {}).items())


def _condition(operator: str, values: dict[str, Any], context: dict[str, str]) -> bool:
    tests = {"StringEquals": lambda want, got: want == got,
             "StringEqualsIgnoreCase": lambda want, got: want.lower() == got.lower(),
             "StringLike": lambda want, got: _wildcard(want, got)}
    if operator not in tests:
        raise ValueError(f"local IAM does not evaluate the condition operator {operator}")
    # A key the request does not carry fails the condition, as in IAM.
    return all(key in context and any(tests[operator](want, context[key]) for want in _listed(wanted))
               for key, wanted in values.items())

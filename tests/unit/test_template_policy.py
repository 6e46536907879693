"""Policy checks on template.yaml that keep production safe: nothing deleted by accident, failures
visible, least privilege, every name per stage.

A focused pytest rather than cfn-lint custom rules or checkov: these rules are ours (every schedule
has a DLQ *and* an OnFailure destination, only admin writes API keys, alarms watch the metrics the
code really emits), they read the SAM template as written (before the transform expands it), and
they run in `make test` with no extra tool or venv. Cost, measured with
`pytest tests/unit/test_template_policy.py -q --durations=8` on the shared CI-like machine: 72 checks
in 2.4-4.5 s wall on their own, of which the checks take about 0.7 s and the rest is pytest start-up
and imports that `make test` pays once anyway (for scale: `make sam-validate` took 6.4 s; checkov
would need a venv of its own and custom checks for these same rules).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from local import iam, template

DOC = template.load()
RESOURCES: dict[str, dict[str, Any]] = DOC["Resources"]
ROOT = template.ROOT
RESOLVED = template.Resolver()


def allowed(function: str, request: iam.Request) -> bool:
    """IAM's answer for the role as deployed with the template's default parameters."""
    return iam.is_allowed(function, request, parameters={})


def of_type(kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in RESOURCES.items() if r["Type"] == kind}


FUNCTIONS = of_type("AWS::Serverless::Function")
ALARMS = of_type("AWS::CloudWatch::Alarm")
QUEUES = of_type("AWS::SQS::Queue")


def statements(function: str) -> list[dict[str, Any]]:
    found = []
    for policy in FUNCTIONS[function]["Properties"].get("Policies", []):
        found.extend(policy["Statement"])
    return found


def listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def get_att(value: Any) -> tuple[str, str] | None:
    """(logical id, attribute) of a !GetAtt, in either of its forms."""
    if not (isinstance(value, dict) and "Fn::GetAtt" in value):
        return None
    arg = value["Fn::GetAtt"]
    logical_id, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
    return str(logical_id), str(attribute)


# ---------------------------------------------------------------- nothing deleted by accident
@pytest.mark.parametrize("name", sorted(of_type("AWS::DynamoDB::Table")))
def test_every_table_is_retained_protected_and_recoverable(name: str) -> None:
    table = RESOURCES[name]
    props = table["Properties"]
    assert table.get("DeletionPolicy") == "Retain" and table.get("UpdateReplacePolicy") == "Retain"
    assert props.get("DeletionProtectionEnabled") is True
    assert props.get("PointInTimeRecoverySpecification") == {"PointInTimeRecoveryEnabled": True}
    assert props.get("SSESpecification") == {"SSEEnabled": True}


def test_there_are_four_tables() -> None:
    assert set(of_type("AWS::DynamoDB::Table")) == {"AppointmentsTable", "KeysTable", "CardsTable", "IdempotencyTable"}


@pytest.mark.parametrize("name", sorted(of_type("AWS::SecretsManager::Secret")))
def test_secrets_the_stack_creates_are_retained(name: str) -> None:
    assert RESOURCES[name].get("DeletionPolicy") == "Retain" and RESOURCES[name].get("UpdateReplacePolicy") == "Retain"


def test_code_deletes_secrets_only_with_a_recovery_window() -> None:
    sources = [*ROOT.joinpath("layers").rglob("*.py"), *ROOT.joinpath("functions").rglob("*.py")]
    calls = [(path, line) for path in sources for line in path.read_text().splitlines() if "delete_secret(" in line]
    assert calls, "secrets.delete_credentials deletes gateway secrets"
    for path, line in calls:
        assert "RecoveryWindowInDays" in line and "ForceDeleteWithoutRecovery" not in line, f"{path}: {line.strip()}"
    assert not any("ForceDeleteWithoutRecovery" in p.read_text() for p in sources)


@pytest.mark.parametrize("name", sorted(of_type("AWS::Logs::LogGroup")))
def test_log_groups_are_retained_with_a_retention(name: str) -> None:
    group = RESOURCES[name]
    assert group.get("DeletionPolicy") == "Retain" and group.get("UpdateReplacePolicy") == "Retain"
    assert group["Properties"].get("RetentionInDays") == {"Ref": "LogRetentionDays"}


def test_every_function_has_its_log_group() -> None:
    named = {json.dumps(g["Properties"].get("LogGroupName")) for g in of_type("AWS::Logs::LogGroup").values()}
    for function in FUNCTIONS:
        assert json.dumps({"Fn::Sub": f"/aws/lambda/${{{function}}}"}) in named, function


# ---------------------------------------------------------------- failures visible
def _alarm_on(namespace: str, metric: str, dimension: str, target: Any) -> list[str]:
    def same(value: Any) -> bool:
        return value == target or (get_att(value) is not None and get_att(value) == get_att(target))

    return [name for name, alarm in ALARMS.items()
            if alarm["Properties"].get("Namespace") == namespace and alarm["Properties"].get("MetricName") == metric
            and any(d["Name"] == dimension and same(d["Value"]) for d in alarm["Properties"].get("Dimensions", []))]


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_every_function_has_error_and_throttle_alarms(function: str) -> None:
    for metric in ("Errors", "Throttles"):
        found = _alarm_on("AWS/Lambda", metric, "FunctionName", {"Ref": function})
        assert found, f"{function} has no {metric} alarm"
        props = ALARMS[found[0]]["Properties"]
        assert props["Statistic"] == "Sum" and props["Threshold"] == 1
        assert props["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"


# Job queues carry work (one message per shard, clinicpay.fanout) and send what keeps failing to
# their DLQ; every other queue keeps what failed for a person to read.
JOB_QUEUES = sorted(q for q, r in QUEUES.items() if "RedrivePolicy" in r["Properties"])
FAILURE_QUEUES = sorted(set(QUEUES) - set(JOB_QUEUES))
MAPPINGS = of_type("AWS::Lambda::EventSourceMapping")


@pytest.mark.parametrize("queue", FAILURE_QUEUES)
def test_every_queue_of_failures_has_a_depth_alarm_and_keeps_messages_14_days(queue: str) -> None:
    assert _alarm_on("AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", {"Fn::GetAtt": [queue, "QueueName"]})
    assert QUEUES[queue]["Properties"]["MessageRetentionPeriod"] == 1209600


def _mapping_of(queue: str) -> dict[str, Any]:
    found = [m["Properties"] for m in MAPPINGS.values() if get_att(m["Properties"]["EventSourceArn"]) == (queue, "Arn")]
    assert len(found) == 1, f"{queue} is read by {len(found)} event source mappings"
    return found[0]


def _function_of(mapping: dict[str, Any]) -> str:
    name = str(mapping["FunctionName"]["Ref"])
    assert name.endswith(".Alias"), "the mapping invokes the published alias (SnapStart), not $LATEST"
    return name.removesuffix(".Alias")


@pytest.mark.parametrize("queue", JOB_QUEUES)
def test_every_job_queue_redrives_to_an_alarmed_dlq_and_alarms_when_its_shards_are_stuck(queue: str) -> None:
    props = QUEUES[queue]["Properties"]
    dlq = _queue_of(props["RedrivePolicy"]["deadLetterTargetArn"])
    assert dlq in FAILURE_QUEUES and 1 <= props["RedrivePolicy"]["maxReceiveCount"] <= 5
    # A message moved to a DLQ keeps its first enqueue time: the DLQ must keep it longer.
    assert props["MessageRetentionPeriod"] < QUEUES[dlq]["Properties"]["MessageRetentionPeriod"]
    assert props.get("SqsManagedSseEnabled") is True
    stuck = _alarm_on("AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", {"Fn::GetAtt": [queue, "QueueName"]})
    assert stuck and ALARMS[stuck[0]]["Properties"]["Threshold"] <= 3600


@pytest.mark.parametrize("queue", JOB_QUEUES)
def test_every_job_queue_hands_its_function_one_shard_at_a_time_and_retries_only_failed_ones(queue: str) -> None:
    mapping = _mapping_of(queue)
    function = _function_of(mapping)
    assert mapping["BatchSize"] == 1 and mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": {"Ref": "JobConcurrency"}}
    assert int(DOC["Parameters"]["JobConcurrency"]["Default"]) == 2  # SQS's least: the API keeps the rest
    # Lambda advises a visibility timeout of at least six times the function's timeout.
    assert QUEUES[queue]["Properties"]["VisibilityTimeout"] >= 6 * template.functions()[function].timeout
    # The function sends its shards to this queue (its URL in its environment).
    env = FUNCTIONS[function]["Properties"]["Environment"]["Variables"]
    assert {"Ref": queue} in env.values()


@pytest.mark.parametrize("queue", JOB_QUEUES)
def test_only_the_queues_function_may_use_it_and_only_as_a_dispatcher_and_its_mapping_need(queue: str) -> None:
    arn = template.local_arn("AWS::SQS::Queue", queue)
    owner = _function_of(_mapping_of(queue))
    needed = {"SendMessage", "ReceiveMessage", "DeleteMessage", "GetQueueAttributes"}
    for function in FUNCTIONS:
        for action in ("SendMessage", "ReceiveMessage", "DeleteMessage", "GetQueueAttributes", "PurgeQueue",
                       "ChangeMessageVisibility", "SetQueueAttributes", "DeleteQueue"):
            expected = function == owner and action in needed
            assert allowed(function, iam.Request(f"sqs:{action}", (arn,))) == expected, (function, action)
    # and nothing on any other queue of the account
    other = template.local_arn("AWS::SQS::Queue", "SomeoneElsesQueue")
    assert not any(allowed(owner, iam.Request(f"sqs:{a}", (other,))) for a in needed)


SCHEDULED = sorted(name for name, f in FUNCTIONS.items()
                   if any(e["Type"] in ("Schedule", "ScheduleV2") for e in f["Properties"].get("Events", {}).values()))


@pytest.mark.parametrize("function", SCHEDULED)
def test_every_function_with_a_schedule_has_one_job_queue(function: str) -> None:
    assert [q for q in JOB_QUEUES if _function_of(_mapping_of(q)) == function] != []
    # SAM's `SQS` event would attach AWSLambdaSQSQueueExecutionRole (every queue in the account).
    events = FUNCTIONS[function]["Properties"].get("Events", {}).values()
    assert not any(e["Type"] == "SQS" for e in events)


def _schedules() -> list[tuple[str, str, dict[str, Any]]]:
    return [(function, event_name, event["Properties"]) for function, resource in FUNCTIONS.items()
            for event_name, event in resource["Properties"].get("Events", {}).items()
            if event["Type"] in ("Schedule", "ScheduleV2")]


def _queue_of(arn: Any) -> str:
    found = get_att(arn)
    assert found is not None, f"not a queue of this stack: {arn}"
    logical_id, attribute = found
    assert attribute == "Arn" and logical_id in QUEUES, f"{logical_id} is not an SQS queue of this stack"
    return logical_id


@pytest.mark.parametrize(("function", "event", "props"), _schedules(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_schedule_keeps_what_it_could_not_run(function: str, event: str, props: dict[str, Any]) -> None:
    # the invocation Scheduler could not make
    assert "Arn" in props.get("DeadLetterConfig", {}), f"{event} has no DeadLetterConfig.Arn"
    _queue_of(props["DeadLetterConfig"]["Arn"])
    assert props["RetryPolicy"]["MaximumRetryAttempts"] >= 1
    # the run that raised: Scheduler invokes asynchronously, so only an OnFailure destination keeps it
    invoke = FUNCTIONS[function]["Properties"].get("EventInvokeConfig", {})
    on_failure = invoke.get("DestinationConfig", {}).get("OnFailure", {})
    assert on_failure.get("Type") == "SQS", f"{function} runs {event} but has no OnFailure SQS destination"
    _queue_of(on_failure["Destination"])
    assert "MaximumRetryAttempts" in invoke and "MaximumEventAgeInSeconds" in invoke


@pytest.mark.parametrize("alarm", sorted(ALARMS))
def test_every_alarm_notifies_the_alarm_topic_when_it_fires_and_clears(alarm: str) -> None:
    target = [{"Fn::If": ["CreateAlarmTopic", {"Ref": "AlarmTopic"}, {"Ref": "AlarmTopicArn"}]}]
    props = ALARMS[alarm]["Properties"]
    assert props.get("AlarmActions") == target and props.get("OKActions") == target
    assert "${Stage}" in props["AlarmName"]["Fn::Sub"]
    assert props.get("TreatMissingData") in ("notBreaching", "ignore")


def test_an_alarm_topic_is_created_only_when_none_is_given() -> None:
    assert DOC["Parameters"]["AlarmTopicArn"]["Default"] == ""
    assert RESOURCES["AlarmTopic"]["Condition"] == "CreateAlarmTopic"
    assert not template.Resolver({"AlarmTopicArn": "arn:aws:sns:us-east-1:1:ops"}).condition("CreateAlarmTopic")
    assert template.Resolver().condition("CreateAlarmTopic")


_INSIGHTS = re.compile(r'^SELECT (?P<stat>[A-Z]+)\((?P<metric>\w+)\) FROM SCHEMA\("(?P<namespace>[^"]+)", (?P<dims>[\w, ]+)\)$')


def _insights_alarm(metric: str) -> tuple[str, set[str]]:
    """(namespace, dimensions) of the Metrics Insights alarm on `metric`, resolved the local way."""
    for alarm in ALARMS.values():
        for query in alarm["Properties"].get("Metrics", []):
            found = _INSIGHTS.match(str(RESOLVED.resolve(query.get("Expression", ""))))
            if found and found["metric"] == metric:
                return found["namespace"], {d.strip() for d in found["dims"].split(",")}
    raise AssertionError(f"no alarm on {metric}")


def _emitted_namespace() -> str:
    return str(RESOLVED.resolve(DOC["Globals"]["Function"]["Environment"]["Variables"]["POWERTOOLS_METRICS_NAMESPACE"]))


def _emf(blob: dict[str, Any], metric: str) -> tuple[str, set[str]]:
    """(namespace, dimensions) of `metric` in an EMF blob."""
    for directive in blob["_aws"]["CloudWatchMetrics"]:
        if metric in {m["Name"] for m in directive["Metrics"]}:
            return directive["Namespace"], {d for dims in directive["Dimensions"] for d in dims}
    raise AssertionError(f"{metric} not in {blob}")


@pytest.fixture
def lambda_env(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The environment template.yaml gives a function: its metrics namespace and service name."""
    def set_for(function: str) -> None:
        monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", _emitted_namespace())
        monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", FUNCTIONS[function]["Properties"]["Environment"]["Variables"]
                           ["POWERTOOLS_SERVICE_NAME"])

    return set_for


def test_every_function_names_its_service_for_the_metrics_dimension() -> None:
    for function, resource in FUNCTIONS.items():
        assert resource["Properties"]["Environment"]["Variables"].get("POWERTOOLS_SERVICE_NAME"), function


@pytest.mark.parametrize("function", ["WebhookFunction", "TokenizeFunction"])
def test_the_amount_mismatch_alarm_watches_what_the_payment_events_emit(function: str, lambda_env: Any) -> None:
    from aws_lambda_powertools import Metrics

    from clinicpay.usecases import payment_events
    from tests.unit.usecases.test_payment_events import (
        test_an_amount_or_currency_that_is_not_the_price_is_foreign_and_does_not_mark_paid as emit_mismatch,
    )

    lambda_env(function)
    # The shared Metrics instance as the function's container builds it (namespace and service from its env).
    in_lambda = Metrics(namespace=_emitted_namespace())
    in_lambda.clear_metrics()
    original, payment_events.metrics = payment_events.metrics, in_lambda
    try:
        emit_mismatch()  # the code path that emits it
        blob = in_lambda.serialize_metric_set()
    finally:
        payment_events.metrics = original
        in_lambda.clear_metrics()
    assert _insights_alarm("PaymentAmountMismatch") == _emf(blob, "PaymentAmountMismatch")


def test_the_message_given_up_alarm_watches_what_the_message_retry_job_emits(lambda_env: Any) -> None:
    from aws_lambda_powertools import Metrics

    from clinicpay.api.route_groups import function_module
    from local import apigw

    lambda_env("CreateLinkFunction")
    apigw.handler_for("CreateLinkFunction")
    # create_link's jobs module, as its handler loads it on a job event (functions/create_link/jobs.py)
    jobs = function_module(apigw._modules["CreateLinkFunction"].__file__, "jobs")
    in_lambda = Metrics(namespace=_emitted_namespace())
    in_lambda.clear_metrics()
    original, jobs.metrics = jobs.metrics, in_lambda
    try:
        jobs._message_given_up(None, "given_up")  # what the job calls when it gives a message up
        blob = in_lambda.serialize_metric_set()
    finally:
        jobs.metrics = original
        in_lambda.clear_metrics()
    assert _insights_alarm("MessageGivenUp") == _emf(blob, "MessageGivenUp")


def test_the_unfiscalized_alarm_watches_what_the_daily_check_emits(capsys: pytest.CaptureFixture[str],
                                                                   lambda_env: Any) -> None:
    from clinicpay.api.route_groups import function_module

    lambda_env("FiscalizeFunction")
    jobs = function_module(str(ROOT / "functions/fiscalize/app.py"), "jobs")  # what the job branch loads
    capsys.readouterr()
    jobs._emit_unfiscalized("cl_test", 3)
    blob = next(json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line)
    assert _insights_alarm("UnfiscalizedQrPayments") == _emf(blob, "UnfiscalizedQrPayments")


# ---------------------------------------------------------------- least privilege
@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_roles_are_written_out_statement_by_statement(function: str) -> None:
    # No SAM policy templates (DynamoDBCrudPolicy & co. grant Scan, DeleteItem, BatchWriteItem...):
    # what a role may do is what its statements say.
    for policy in FUNCTIONS[function]["Properties"].get("Policies", []):
        assert isinstance(policy, dict) and set(policy) == {"Statement"}, f"{function}: {policy}"


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_no_wildcards_except_sms_publish(function: str) -> None:
    for statement in statements(function):
        for action in listed(statement["Action"]):
            assert "*" not in action, f"{function} {statement['Sid']}: {action}"
        for resource in RESOLVED.resolve(listed(statement["Resource"])):
            if resource == "*":
                # SMS to a phone number has no ARN; the role must deny every topic and endpoint.
                assert statement["Effect"] == "Allow" and listed(statement["Action"]) == ["sns:Publish"], statement["Sid"]
                assert any(s["Effect"] == "Deny" and listed(s["Action"]) == ["sns:Publish"]
                           and RESOLVED.resolve(s["Resource"]) == "arn:aws:sns:*:*:*" for s in statements(function))
            elif "*" in resource and statement["Effect"] == "Allow":
                # Clinic secrets of this stage only: clinicpay/<Stage>/clinics/<clinic>/<provider>.
                assert resource.startswith(f"arn:aws:secretsmanager:{template.REGION}:{template.ACCOUNT_ID}:secret:"
                                           "clinicpay/dev/clinics/"), f"{function} {statement['Sid']}: {resource}"


KEYS_TABLE_ARN = template.local_arn("AWS::DynamoDB::Table", "KeysTable")
WRITES = ("PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "ConditionCheckItem", "Query", "Scan")


@pytest.mark.parametrize("function", sorted(set(FUNCTIONS) - {"AdminFunction"}))
def test_only_admin_writes_or_lists_api_keys(function: str) -> None:
    for action in WRITES:
        request = iam.Request(f"dynamodb:{action}", (KEYS_TABLE_ARN, f"{KEYS_TABLE_ARN}/index/ByClinic"))
        assert not allowed(function, request), f"{function} may {action} API keys"


def test_admin_writes_api_keys() -> None:
    for action in ("GetItem", "PutItem", "UpdateItem"):
        assert allowed("AdminFunction", iam.Request(f"dynamodb:{action}", (KEYS_TABLE_ARN,)))


@pytest.mark.parametrize("function", sorted(set(FUNCTIONS) - {"TokenizeFunction"}))
def test_only_tokenize_touches_the_cards_table(function: str) -> None:
    cards = template.local_arn("AWS::DynamoDB::Table", "CardsTable")
    assert not any(cards in json.dumps(RESOLVED.resolve(s["Resource"])) for s in statements(function))


def test_email_only_from_the_sender_and_sms_only_to_phone_numbers() -> None:
    sender, ses = "payments@example.com", f"arn:aws:ses:{template.REGION}:{template.ACCOUNT_ID}:identity/"
    for function in ("CreateLinkFunction", "WebhookFunction", "TokenizeFunction"):
        assert allowed(function, iam.Request("ses:SendEmail", (ses + sender,), (("ses:FromAddress", sender),)))
        assert allowed(function, iam.Request("ses:SendEmail", (ses + "example.com",), (("ses:FromAddress", sender),)))
        assert not allowed(function, iam.Request("ses:SendEmail", (ses + "example.com",),
                                                        (("ses:FromAddress", "ceo@example.com"),)))
        assert not allowed(function, iam.Request("ses:SendEmail", (ses + "other.org",), (("ses:FromAddress", sender),)))
        assert allowed(function, iam.Request("sns:Publish", ("*",)))
        assert not allowed(function, iam.Request("sns:Publish", ("arn:aws:sns:us-east-1:123456789012:anything",)))
    for function in ("AdminFunction", "FiscalizeFunction"):
        assert not allowed(function, iam.Request("sns:Publish", ("*",)))
        assert not allowed(function, iam.Request("ses:SendEmail", (ses + sender,), (("ses:FromAddress", sender),)))


def test_only_admin_writes_clinic_credentials_and_never_reads_them() -> None:
    secret = template.secret_arn("clinicpay/dev/clinics/cl_1/stripe")
    for function in FUNCTIONS:
        for action in ("CreateSecret", "PutSecretValue", "DeleteSecret", "RestoreSecret"):
            assert allowed(function, iam.Request(f"secretsmanager:{action}", (secret,))) == (function == "AdminFunction")
    assert not allowed("AdminFunction", iam.Request("secretsmanager:GetSecretValue", (secret,)))
    assert allowed("TokenizeFunction", iam.Request("secretsmanager:GetSecretValue", (secret,)))
    # another stage's secrets are out of reach
    prod = template.secret_arn("clinicpay/prod/clinics/cl_1/stripe")
    assert not any(allowed(f, iam.Request("secretsmanager:GetSecretValue", (prod,))) for f in FUNCTIONS)


def test_reserved_concurrency_is_off_unless_asked_for() -> None:
    # A new account's limit is 10 and Lambda keeps 100 unreserved (10 in such accounts): any default
    # reservation would fail the deploy there.
    assert str(DOC["Parameters"]["WebhookReservedConcurrency"]["Default"]) == "0"
    reserved = {name: f["Properties"].get("ReservedConcurrentExecutions") for name, f in FUNCTIONS.items()}
    assert reserved.pop("WebhookFunction") == {
        "Fn::If": ["ReserveWebhookConcurrency", {"Ref": "WebhookReservedConcurrency"}, {"Ref": "AWS::NoValue"}]}
    assert set(reserved.values()) == {None}


# ---------------------------------------------------------------- one account, several stages
def test_every_schedule_and_secret_name_carries_the_stage() -> None:
    for _, event, props in _schedules():
        assert "${Stage}" in props["Name"]["Fn::Sub"], event
    env = DOC["Globals"]["Function"]["Environment"]["Variables"]
    assert env["SECRETS_PREFIX"] == {"Fn::Sub": "clinicpay/${Stage}"}
    for name, secret in of_type("AWS::SecretsManager::Secret").items():
        assert "${Stage}" in secret["Properties"]["Name"]["Fn::Sub"], name
    staged = template.Resolver({"Stage": "prod"})
    for function in FUNCTIONS:
        for statement in statements(function):
            for resource in staged.resolve(listed(statement["Resource"])):
                if ":secretsmanager:" in resource:
                    assert ":secret:clinicpay/prod/" in resource, f"{function} {statement['Sid']}: {resource}"


def test_the_local_stack_reads_the_same_names() -> None:
    from local import aws

    env = aws.function_environment()
    assert env["SECRETS_PREFIX"] == "clinicpay/dev" and env["KEYS_TABLE"] == "KeysTable"
    assert set(template.tables()) == set(of_type("AWS::DynamoDB::Table"))


def test_the_template_points_readers_at_these_checks() -> None:
    assert f"tests/unit/{Path(__file__).name}" in template.TEMPLATE.read_text()


def test_the_long_open_shift_alarm_watches_what_the_daily_check_emits(capsys: pytest.CaptureFixture[str],
                                                                      lambda_env: Any,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from clinicpay.observability import metrics
    from clinicpay.usecases.fiscal_shift_schedule import emit_long_open

    lambda_env("FiscalizeFunction")
    monkeypatch.setattr(metrics, "namespace", _emitted_namespace())  # as the function's container builds it
    capsys.readouterr()
    emit_long_open("cl_test", 25)
    blob = next(json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line)
    assert _insights_alarm("FiscalShiftOpenTooLong") == _emf(blob, "FiscalShiftOpenTooLong")


def test_the_qr_refund_above_balance_alarm_watches_what_the_refund_ledger_emits(
        capsys: pytest.CaptureFixture[str], lambda_env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from clinicpay.observability import metrics
    from clinicpay.usecases import qr_refunds

    lambda_env("FiscalizeFunction")
    monkeypatch.setattr(metrics, "namespace", _emitted_namespace())
    capsys.readouterr()
    qr_refunds._count("QrRefundAboveBalance")  # what recording a refund above the balance emits
    blob = next(json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line)
    assert _insights_alarm("QrRefundAboveBalance") == _emf(blob, "QrRefundAboveBalance")


@pytest.mark.parametrize(("metric", "module", "function"), [
    ("DisputeOpened", "clinicpay.usecases.card_events", "TokenizeFunction"),
    ("RefundLedgerMismatch", "clinicpay.usecases.card_refunds", "TokenizeFunction"),
    ("RefundLedgerMismatch", "clinicpay.usecases.refunds", "WebhookFunction"),
])
def test_the_ledger_alarms_watch_what_the_shared_metrics_emit(metric: str, module: str, function: str,
                                                              lambda_env: Any) -> None:
    import importlib
    import inspect

    from aws_lambda_powertools import Metrics

    from clinicpay import observability

    emitting = importlib.import_module(module)
    # the module emits it through the shared Metrics instance (not a single_metric of its own dimensions)
    assert emitting.metrics is observability.metrics
    assert f'metrics.add_metric(name="{metric}"' in inspect.getsource(emitting)
    lambda_env(function)
    in_lambda = Metrics(namespace=_emitted_namespace())  # the shared instance as the function's container builds it
    in_lambda.clear_metrics()
    try:
        in_lambda.add_metric(name=metric, unit="Count", value=1)
        blob = in_lambda.serialize_metric_set()
    finally:
        in_lambda.clear_metrics()
    assert _insights_alarm(metric) == _emf(blob, metric)

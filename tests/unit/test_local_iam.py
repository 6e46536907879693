"""local/iam.py answers a handler's AWS calls as IAM would, from the roles in template.yaml."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from local import iam, template

TABLE = f"arn:aws:dynamodb:{template.REGION}:{template.ACCOUNT_ID}:table/"


@pytest.fixture
def enforced() -> Iterator[None]:
    before = dict(iam._parameters)  # a test stack in this process may have enforced its own
    iam.enforce({})
    iam.denials.clear()
    yield
    iam.denials.clear()
    iam.enforce(before)


def _client(service: str) -> object:
    return boto3.client(service, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")


def test_a_transaction_is_authorized_item_by_item() -> None:
    requests = iam.requests_for("dynamodb", "TransactWriteItems", {"TransactItems": [
        {"Put": {"TableName": "AppointmentsTable", "Item": {}}},
        {"ConditionCheck": {"TableName": "CardsTable", "Key": {}}},
        {"Update": {"TableName": "KeysTable", "Key": {}}},
    ]})
    assert [(r.action, r.resources) for r in requests] == [
        ("dynamodb:PutItem", (TABLE + "AppointmentsTable",)),
        ("dynamodb:ConditionCheckItem", (TABLE + "CardsTable",)),
        ("dynamodb:UpdateItem", (TABLE + "KeysTable",)),
    ]


def test_a_query_on_an_index_names_the_index() -> None:
    request, = iam.requests_for("dynamodb", "Query", {"TableName": "KeysTable", "IndexName": "ByClinic"})
    assert request.resources == (TABLE + "KeysTable/index/ByClinic",)


def test_email_is_checked_against_both_identities_and_the_from_address() -> None:
    request, = iam.requests_for("ses", "SendEmail", {"FromEmailAddress": "Clínica <payments@example.com>"})
    assert request.resources[1].endswith(":identity/example.com")
    assert dict(request.context) == {"ses:FromAddress": "payments@example.com"}


def test_sms_to_a_phone_number_has_no_resource_but_a_topic_has_its_arn() -> None:
    assert iam.requests_for("sns", "Publish", {"PhoneNumber": "+56911112222"})[0].resources == ("*",)
    topic = "arn:aws:sns:us-east-1:123456789012:ops"
    assert iam.requests_for("sns", "Publish", {"TopicArn": topic})[0].resources == (topic,)


def test_an_sqs_call_names_its_queue_and_a_batch_is_its_single_action() -> None:
    url = template.queue_url("CreateLinkJobShards")
    arn = f"arn:aws:sqs:{template.REGION}:{template.ACCOUNT_ID}:CreateLinkJobShards"
    sent, = iam.requests_for("sqs", "SendMessageBatch", {"QueueUrl": url, "Entries": []})
    deleted, = iam.requests_for("sqs", "DeleteMessageBatch", {"QueueUrl": url + "/", "Entries": []})
    received, = iam.requests_for("sqs", "ReceiveMessage", {"QueueUrl": url})
    assert (sent.action, deleted.action, received.action) == ("sqs:SendMessage", "sqs:DeleteMessage", "sqs:ReceiveMessage")
    assert sent.resources == deleted.resources == received.resources == (arn,)
    # create_link dispatches to its own job queue, never to fiscalize's
    assert iam.is_allowed("CreateLinkFunction", sent, parameters={})
    other, = iam.requests_for("sqs", "SendMessage", {"QueueUrl": template.queue_url("FiscalizeJobShards")})
    assert not iam.is_allowed("CreateLinkFunction", other, parameters={})


def test_an_explicit_deny_wins_over_an_allow() -> None:
    topic = iam.Request("sns:Publish", ("arn:aws:sns:us-east-1:123456789012:ops",))
    # CreateLinkFunction allows sns:Publish on "*" and denies it on every topic
    assert not iam.is_allowed("CreateLinkFunction", topic, parameters={})
    assert iam.is_allowed("CreateLinkFunction", iam.Request("sns:Publish", ("*",)), parameters={})


def test_a_call_the_role_does_not_allow_fails_as_in_aws_and_is_recorded(enforced: None) -> None:
    dynamodb = _client("dynamodb")
    with iam.invoking("WebhookFunction"), pytest.raises(ClientError) as raised:
        dynamodb.put_item(TableName="KeysTable", Item={"pk": {"S": "KEY#x"}})  # type: ignore[attr-defined]
    assert raised.value.response["Error"]["Code"] == "AccessDeniedException"
    assert iam.denials == [f"WebhookFunction is not allowed dynamodb:PutItem on {TABLE}KeysTable by its Policies "
                           "in template.yaml (local IAM, as AWS would answer)"]


def test_allowed_calls_and_calls_outside_a_handler_go_through(enforced: None) -> None:
    dynamodb = _client("dynamodb")
    with Stubber(dynamodb) as stub:  # type: ignore[arg-type]
        stub.add_response("get_item", {}, {"TableName": "KeysTable", "Key": {"pk": {"S": "KEY#x"}}})
        stub.add_response("put_item", {}, {"TableName": "KeysTable", "Item": {"pk": {"S": "KEY#x"}}})
        with iam.invoking("CreateLinkFunction"):  # may read one key by its hash
            dynamodb.get_item(TableName="KeysTable", Key={"pk": {"S": "KEY#x"}})  # type: ignore[attr-defined]
        dynamodb.put_item(TableName="KeysTable", Item={"pk": {"S": "KEY#x"}})  # type: ignore[attr-defined]
    assert iam.denials == []


def test_a_role_written_with_a_sam_policy_template_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    doc = template.load()
    function = doc["Resources"]["AdminFunction"]["Properties"]
    monkeypatch.setitem(function, "Policies", [{"DynamoDBCrudPolicy": {"TableName": {"Ref": "KeysTable"}}}])
    iam._statements.cache_clear()
    try:
        with pytest.raises(ValueError, match="inline statements only"):
            iam.is_allowed("AdminFunction", iam.Request("dynamodb:GetItem", (TABLE + "KeysTable",)), parameters={})
    finally:
        monkeypatch.undo()
        iam._statements.cache_clear()

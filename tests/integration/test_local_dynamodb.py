"""The local DynamoDB (moto in server mode) keeps DynamoDB's atomicity under concurrent requests.

moto's TransactWriteItems restores a copy of the table when a transaction is cancelled, taken when
it began; without local/aws.serialize_dynamodb_requests that wipes writes other requests made in
between, which real DynamoDB never does, and the race tests of the product would fail by chance.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.exceptions import ClientError

from tests.support.env import TestStack

TABLE = "AppointmentsTable"
WRITES = 150


def test_a_cancelled_transaction_never_undoes_a_concurrent_write(stack: TestStack) -> None:
    dynamodb = boto3.client("dynamodb")
    dynamodb.put_item(TableName=TABLE, Item={"pk": {"S": "RACE#taken"}, "sk": {"S": "RACE"}})

    def cancelled_transaction(_: int) -> str:
        try:
            dynamodb.transact_write_items(TransactItems=[{"Put": {
                "TableName": TABLE, "Item": {"pk": {"S": "RACE#taken"}, "sk": {"S": "RACE"}},
                "ConditionExpression": "attribute_not_exists(pk)"}}])
        except ClientError as error:
            return error.response["Error"]["Code"]
        return "committed"

    def write(n: int) -> None:
        dynamodb.put_item(TableName=TABLE, Item={"pk": {"S": f"RACE#{n}"}, "sk": {"S": "RACE"}})

    with ThreadPoolExecutor(max_workers=8) as pool:  # the two kinds interleaved, from eight threads
        futures = [(pool.submit(cancelled_transaction, n), pool.submit(write, n)) for n in range(WRITES)]
        outcomes = [transaction.result() for transaction, written in futures if written.result() is None]

    assert set(outcomes) == {"TransactionCanceledException"}
    kept = boto3.client("dynamodb").get_paginator("scan").paginate(
        TableName=TABLE, FilterExpression="sk = :race", ExpressionAttributeValues={":race": {"S": "RACE"}})
    written = {item["pk"]["S"] for page in kept for item in page["Items"]} - {"RACE#taken"}
    assert written == {f"RACE#{n}" for n in range(WRITES)}

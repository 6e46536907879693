"""Request counters for the public routes: one item per key and fixed window, one conditional
UpdateItem per check, gone by TTL once the window is over.

Item `RATE#{key}` / `WINDOW#{window start}`: `hits` and `ttl`. The update adds one hit only while
`hits` is under the limit, so the counter never runs past it and the answer (allowed or not) comes
from the same write: two concurrent requests at the last free slot cannot both pass.
"""

from __future__ import annotations

import math

from botocore.exceptions import ClientError

from clinicpay.repositories.dynamo import table, translated_errors


class RateCounters:
    def __init__(self, table_name: str):
        self._table_name = table_name

    def hit(self, key: str, *, limit: int, window_seconds: int, now: float) -> int | None:
        """Count one request against `key` in the current window. None when it is allowed;
        otherwise the whole seconds until the window ends (for Retry-After)."""
        start = int(now // window_seconds) * window_seconds
        try:
            table(self._table_name).update_item(
                Key={"pk": f"RATE#{key}", "sk": f"WINDOW#{start}"},
                UpdateExpression="ADD hits :one SET #ttl = if_not_exists(#ttl, :expires)",
                ConditionExpression="attribute_not_exists(hits) OR hits < :limit",
                ExpressionAttributeNames={"#ttl": "ttl"},
                ExpressionAttributeValues={":one": 1, ":limit": limit, ":expires": start + 2 * window_seconds})
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return max(1, math.ceil(start + window_seconds - now))
            with translated_errors():
                raise
        return None

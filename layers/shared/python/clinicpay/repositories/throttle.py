"""Windows shared by every container: `THROTTLE#{key}` / `THROTTLE`, claimed by a conditional write.

Used by clinicpay.refresh_gate so a flood of forged webhooks makes at most one key re-read a minute
across all containers. The item expires by itself (`ttl`).
"""

from __future__ import annotations

import time
from typing import Any

from clinicpay.repositories.dynamo import conditional, table


def claim_window(table_name: str, key: str, window_seconds: float, *, now: float | None = None) -> bool:
    """True for the first caller of the window; False while a claim made less than `window_seconds`
    ago holds."""
    moment = time.time() if now is None else now
    until = int(moment + window_seconds)
    item: dict[str, Any] = {"pk": f"THROTTLE#{key}", "sk": "THROTTLE", "until": until, "ttl": until + 3600}
    return conditional(lambda: table(table_name).put_item(
        Item=item, ConditionExpression="attribute_not_exists(pk) OR #until <= :now",
        ExpressionAttributeNames={"#until": "until"}, ExpressionAttributeValues={":now": int(moment)}))

"""Operator tools run by hand against a deployed stack (never part of a function)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def scanned(table: Any, **args: Any) -> Iterator[dict[str, Any]]:
    """Every item a Scan with these arguments returns, page after page."""
    while True:
        page = table.scan(**args)
        yield from page.get("Items", [])
        if "LastEvaluatedKey" not in page:
            return
        args["ExclusiveStartKey"] = page["LastEvaluatedKey"]

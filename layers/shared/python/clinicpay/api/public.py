"""The public routes' limits, counted once the resolver has checked the publishable key for this
clinic (a route declares `access=Access.PUBLISHABLE, limit="read"|"write"`; api/resolver.py).

Limits are counted in DynamoDB (repositories/rate_limits.py), per client address and per clinic,
because API Gateway cannot: an HTTP API has route-level throttling for everyone at once, no usage
plans or API keys per client, and WAF (rate-based rules per IP) does not attach to HTTP APIs. The
count comes after authentication, so a stranger without the clinic's key cannot use up its budget.

The client address is the API Gateway event's `requestContext.http.sourceIp`, never a header the
client writes (X-Forwarded-For). An IPv6 client is counted by its /64, which one subscriber holds.
"""

from __future__ import annotations

import ipaddress
import time
from typing import Literal

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

from clinicpay.domain.errors import RateLimited
from clinicpay.observability import logger, metrics
from clinicpay.repositories.rate_limits import RateCounters
from clinicpay.settings import get_settings

Kind = Literal["write", "read"]


def client_address(app: APIGatewayHttpResolver) -> str:
    source = app.current_event.request_context.http.source_ip or "unknown"
    try:
        address = ipaddress.ip_address(source)
    except ValueError:
        return source
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False).network_address) + "/64"
    return str(address)


def enforce_limits(kind: Kind, clinic_id: str, client: str) -> None:
    """Count this request for the client address and for the clinic; 429 over either limit."""
    settings = get_settings()
    counters = RateCounters(settings.app_table)
    limits = {"write": (settings.public_writes_per_client, settings.public_writes_per_clinic),
              "read": (settings.public_reads_per_client, settings.public_reads_per_clinic)}[kind]
    window = settings.public_window_seconds
    now = time.time()
    for scope, key, limit in (("client", f"public#{kind}#{clinic_id}#client#{client}", limits[0]),
                              ("clinic", f"public#{kind}#{clinic_id}#clinic", limits[1])):
        wait = counters.hit(key, limit=limit, window_seconds=window, now=now)
        if wait is not None:
            metrics.add_metric(name="PublicRateLimited", unit="Count", value=1)
            logger.warning("public route limit reached", extra={"clinic_id": clinic_id, "scope": scope,
                                                                "kind": kind, "retry_after": wait})
            raise RateLimited(retry_after=wait)

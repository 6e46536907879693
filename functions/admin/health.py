"""admin's health check: answers anyone, without a key (a load balancer's or a status page's probe)."""

import json
from typing import Any

from aws_lambda_powertools.event_handler import Response

from clinicpay.api.auth import Access
from clinicpay.api.resolver import error_response
from clinicpay.api.route_groups import loading_routes
from clinicpay.repositories import health as probes
from clinicpay.settings import get_settings
from clinicpay.usecases.health import run_checks

app = loading_routes()

# Health answers anyone: check names say what is wrong, never a table name or an error text.
HEALTH_RETRY_AFTER_SECONDS = 30


@app.get("/health", access=Access.NONE)
def health() -> Response[Any]:
    settings = get_settings()
    report = run_checks({
        "storage": lambda: probes.probe_appointments(settings.app_table),
        "keys": lambda: probes.probe_keys(settings.keys_table),
    })
    no_store = {"Cache-Control": "no-store"}
    if report.healthy:
        return Response(200, "application/json", json.dumps({"status": "ok", "checks": report.checks}),
                        headers=no_store)
    return error_response(503, "unhealthy", f"Not ready: {', '.join(report.failing)} failing; try again shortly.",
                          [{"check": name, "status": status} for name, status in report.checks.items()],
                          headers={**no_store, "Retry-After": str(HEALTH_RETRY_AFTER_SECONDS)})

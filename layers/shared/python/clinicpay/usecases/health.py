"""GET /health: run named checks and say which fail. Knows nothing of HTTP or boto3."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from clinicpay.observability import logger

OK, FAILING = "ok", "failing"


@dataclass(frozen=True)
class HealthReport:
    checks: dict[str, str]  # check name -> "ok" | "failing"

    @property
    def healthy(self) -> bool:
        return all(status == OK for status in self.checks.values())

    @property
    def failing(self) -> list[str]:
        return [name for name, status in self.checks.items() if status != OK]


def run_checks(checks: Mapping[str, Callable[[], None]]) -> HealthReport:
    """Every check runs, so one answer names every failing part. The reason goes to the log only:
    the caller may be anonymous."""
    results: dict[str, str] = {}
    for name, check in checks.items():
        try:
            check()
            results[name] = OK
        except Exception as error:  # noqa: BLE001 - whatever broke, the check is failing, and says so
            logger.warning("health check failing", extra={"check": name, "error_class": type(error).__name__})
            results[name] = FAILING
    return HealthReport(results)

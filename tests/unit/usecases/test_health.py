"""GET /health's checks: every check runs, each failure is named, whatever it raised."""

from __future__ import annotations

from clinicpay.domain.errors import StorageUnavailable
from clinicpay.usecases.health import run_checks

calls: list[str] = []


def _ok(name: str):  # type: ignore[no-untyped-def]
    return lambda: calls.append(name)


def _raises(error: Exception):  # type: ignore[no-untyped-def]
    def check() -> None:
        raise error

    return check


def test_all_checks_pass() -> None:
    report = run_checks({"storage": _ok("storage"), "keys": _ok("keys")})
    assert report.healthy and report.checks == {"storage": "ok", "keys": "ok"} and report.failing == []


def test_every_check_runs_and_each_failure_is_named_whatever_it_raised() -> None:
    calls.clear()
    report = run_checks({"storage": _raises(StorageUnavailable()), "keys": _ok("keys"),
                         "other": _raises(RuntimeError("secret text"))})
    assert not report.healthy
    assert report.checks == {"storage": "failing", "keys": "ok", "other": "failing"}
    assert report.failing == ["storage", "other"]
    assert calls == ["keys"]

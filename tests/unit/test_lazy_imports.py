"""phonenumbers (~30 ms) and PyJWT (~0.1 s, it loads `cryptography`) are imported on first use, by the
public bookings that carry a phone or a patient token, never when a handler is imported (cold start).
Likewise the X-Ray SDK (loaded by the first traced call: clinicpay.observability), and the webhook's
provider code (each provider's route loads its own), and `cryptography` for monobank's webhook
signatures (verified by `webhook` only; `fiscalize`'s QR routes load the monobank adapter with their
route group)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PROGRAM = """
import importlib.util, json, sys
sys.path.insert(0, {layer!r})
for name in {functions!r}:
    spec = importlib.util.spec_from_file_location("fn_" + name, {root!r} + "/functions/" + name + "/app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for path in {paths!r}:  # the route groups a request to each path loads
        module.app.load_routes(path)
print(json.dumps(sorted(m for m in {modules!r} if m in sys.modules)))
"""

ON_FIRST_USE = ("phonenumbers", "jwt", "aws_xray_sdk.core", "cryptography", "babel")  # babel: when a message is rendered


def _loaded(names: tuple[str, ...], functions: tuple[str, ...], paths: tuple[str, ...] = (), **env: str) -> list[str]:
    program = PROGRAM.format(layer=str(ROOT / "layers/shared/python"), root=str(ROOT), functions=functions,
                             modules=names, paths=paths)
    out = subprocess.run([sys.executable, "-c", program],
                         capture_output=True, text=True, check=True, timeout=120,
                         env={"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x",
                              "PATH": "/usr/bin:/bin", **env})
    return list(json.loads(out.stdout.strip().splitlines()[-1]))


def test_no_handler_imports_phonenumbers_jwt_or_the_xray_sdk_at_import() -> None:
    functions = ("create_link", "tokenize", "admin", "webhook", "fiscalize")
    assert _loaded(ON_FIRST_USE, functions, POWERTOOLS_TRACE_DISABLED="true") == []
    # In Lambda (tracing on) too: the recorder waits for the first traced call.
    assert _loaded(ON_FIRST_USE, functions, LAMBDA_TASK_ROOT=str(ROOT)) == []


def test_the_webhook_loads_no_provider_code_at_import() -> None:
    provider_code = ("clinicpay.providers.registry", "clinicpay.usecases.payment_events", "clinicpay.secrets",
                     "clinicpay.providers.fintoc.adapter", "clinicpay.providers.monobank.adapter")
    assert _loaded(provider_code, ("webhook",)) == []


def test_create_link_loads_no_route_code_at_import() -> None:
    # Its route groups (functions/create_link/*.py) and jobs bring them with the first request or job event.
    route_code = ("clinicpay.domain.model", "clinicpay.api.pages", "clinicpay.usecases.appointments",
                  "clinicpay.usecases.payment_links", "clinicpay.usecases.refunds", "clinicpay.repositories.appointments",
                  "clinicpay.providers.registry", "clinicpay.notify.sender")
    assert _loaded(route_code, ("create_link",)) == []


def test_fiscalize_loads_its_routes_and_jobs_code_with_their_first_request() -> None:
    # Route groups (api/route_groups.py) and jobs.py: a QR route or a job loads them, never the import.
    route_or_job_only = ("clinicpay.providers.registry", "clinicpay.providers.monobank.adapter",
                         "clinicpay.providers.checkbox.adapter", "clinicpay.repositories.qr", "clinicpay.domain.qr",
                         "clinicpay.usecases.fiscalization", "clinicpay.usecases.qr_report", "clinicpay.api.idempotency")
    assert _loaded(route_or_job_only, ("fiscalize",)) == []


def test_tokenize_loads_no_route_code_at_import() -> None:
    # Its route groups (functions/tokenize/*.py), its job and the Idempotency-Key handling bring them with the
    # first request or job event.
    route_code = ("clinicpay.domain.model", "clinicpay.api.pages", "clinicpay.usecases.cards",
                  "clinicpay.usecases.card_setup", "clinicpay.usecases.card_events", "clinicpay.repositories.cards",
                  "clinicpay.providers.stripe.adapter", "clinicpay.notify.sender", "clinicpay.secrets",
                  "clinicpay.api.idempotency")
    assert _loaded(route_code, ("tokenize",)) == []


def test_tokenize_card_setup_pages_load_no_stripe_code() -> None:
    # The consent and done pages read only our tables: Stripe's code waits for the first call to Stripe
    # (the consent form's submission, the webhook).
    stripe_code = ("clinicpay.providers.stripe.adapter", "clinicpay.providers.stripe.client", "clinicpay.secrets")
    assert _loaded(stripe_code, ("tokenize",), paths=("/cards/setup/abc",)) == []
    assert _loaded(stripe_code, ("tokenize",), paths=("/webhooks/stripe/cl_1",)) == list(stripe_code)


GC_PROGRAM = """
import gc, importlib.util, json, sys
sys.path.insert(0, {layer!r})
spec = importlib.util.spec_from_file_location("handler", {root!r} + "/functions/{function}/app.py")
module = importlib.util.module_from_spec(spec)
code = spec.loader.get_code("handler")  # compiling an edited app.py may collect: that is before it runs
collections = sum(generation["collections"] for generation in gc.get_stats())
exec(code, module.__dict__)
print(json.dumps({{"collections": sum(g["collections"] for g in gc.get_stats()) - collections,
                  "enabled": gc.isenabled(), "frozen": gc.get_freeze_count()}}))
"""


@pytest.mark.parametrize("function", ["create_link", "tokenize", "admin", "webhook", "fiscalize"])
def test_the_collector_waits_while_a_handler_loads_then_resumes(function: str) -> None:
    # clinicpay.coldstart, imported before anything else: a collection during the import (boto3,
    # Powertools, pydantic, our models) would mean something heavy now loads before the pause.
    program = GC_PROGRAM.format(layer=str(ROOT / "layers/shared/python"), root=str(ROOT), function=function)
    out = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True, timeout=120,
                         env={"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x",
                              "PATH": "/usr/bin:/bin"})
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert found["collections"] == 0
    # ... and collects again afterwards, never walking what the import loaded (gc.freeze).
    assert found["enabled"] is True
    assert found["frozen"] > 10_000


def test_admin_loads_provider_code_secrets_health_and_docs_with_their_routes() -> None:
    # Only gateway changes use them: the service list the booking widget asks admin for waits for none.
    route_only = ("clinicpay.providers.registry", "clinicpay.providers.http", "clinicpay.ports", "clinicpay.secrets",
                  "clinicpay.api.docs_page", "clinicpay.repositories.health", "clinicpay.usecases.health")
    assert _loaded(route_only, ("admin",)) == []


def test_admin_answers_its_keyless_paths_without_loading_the_staff_routes_code() -> None:
    # Route groups (functions/admin/app.py): a probe of /health, the API document, its page and the
    # booking widget's service list each load their own group, not the clinics, keys, gateways or templates code.
    staff_code = ("clinicpay.usecases.clinics", "clinicpay.notify.builtin", "clinicpay.repositories.templates",
                  "clinicpay.usecases.patient_tokens", "clinicpay.providers.registry", "clinicpay.secrets")
    for path in ("/health", "/openapi.json", "/docs", "/v1/public/clinics/cl_demo/services"):
        assert _loaded(staff_code, ("admin",), paths=(path,)) == [], path
    # ... and the API document not even the clinic's models, the settings or the page texts.
    assert _loaded(("clinicpay.domain.clinic", "clinicpay.settings", "clinicpay.api.pages"), ("admin",),
                   paths=("/openapi.json",)) == []
    # A staff path loads its group's code (what the test above would otherwise pass by never loading it).
    assert _loaded(staff_code, ("admin",), paths=("/v1/clinics/cl_demo/message-templates",)) == [
        "clinicpay.notify.builtin", "clinicpay.repositories.templates", "clinicpay.usecases.clinics"]


# Powertools' request validation and most of pydantic (a third of a bare handler's import): the
# resolver lets Powertools build its validation middlewares with the first route it calls.
VALIDATION = ("pydantic", "pydantic_core", "aws_lambda_powertools.event_handler.middlewares.openapi_validation",
              "aws_lambda_powertools.event_handler.openapi.params")
FUNCTIONS = ("create_link", "tokenize", "admin", "webhook", "fiscalize")


def test_no_handler_loads_pydantic_or_powertools_validation_at_import() -> None:
    assert _loaded(VALIDATION, FUNCTIONS) == []


SNAPSHOT_PROGRAM = """
import importlib.util, json, sys
sys.path[:0] = [{hooks!r}, {layer!r}]
import snapshot_restore_py
spec = importlib.util.spec_from_file_location("handler", {root!r} + "/functions/{function}/app.py")
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
before = sorted(m for m in {modules!r} if m in sys.modules)
while snapshot_restore_py.hooks:
    snapshot_restore_py.hooks.pop()()
print(json.dumps([before, sorted(m for m in {modules!r} if m in sys.modules)]))
"""


@pytest.mark.parametrize("function", FUNCTIONS)
def test_with_snapstart_the_validation_is_loaded_before_the_snapshot(tmp_path: Path, function: str) -> None:
    # Lambda's managed runtimes ship snapshot_restore_py; this one records what is registered.
    (tmp_path / "snapshot_restore_py.py").write_text("hooks = []\ndef register_before_snapshot(func):\n"
                                                     "    hooks.append(func)\n")
    program = SNAPSHOT_PROGRAM.format(hooks=str(tmp_path), layer=str(ROOT / "layers/shared/python"), root=str(ROOT),
                                      function=function, modules=VALIDATION)
    out = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120,
                         env={"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x",
                              "POWERTOOLS_TRACE_DISABLED": "true", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-3000:]
    before, after = json.loads(out.stdout.strip().splitlines()[-1])
    assert before == [] and after == sorted(VALIDATION)


PORT_MODULES = tuple(f"clinicpay.ports.{module}" for module in ("payments", "refunds", "messaging", "cards", "qr"))


def test_no_handler_loads_a_port_module_at_import() -> None:
    assert _loaded(PORT_MODULES, ("create_link", "tokenize", "admin", "webhook", "fiscalize")) == []


@pytest.mark.parametrize(("function", "path", "ports"), [
    # clinicpay.ports is one module per capability: a first request loads its own capability's ports only.
    # A Protocol only annotated with (a store, a gateway) is imported for the type checker only.
    ("create_link", "/pay/abc", ("payments",)),
    ("create_link", "/v1/public/clinics/cl_1/appointments", ("messaging", "payments")),
    ("tokenize", "/cards/setup/abc", ("cards", "messaging")),
    ("tokenize", "/webhooks/stripe/cl_1", ("cards", "messaging", "payments", "refunds")),  # Stripe's adapter: links too
    ("fiscalize", "/v1/clinics/cl_1/reports/qr-payments", ()),
    ("fiscalize", "/v1/clinics/cl_1/qr-payments/qp_1/refunds", ("qr", "refunds")),
    ("admin", "/v1/clinics/cl_1/settings", ()),
])
def test_a_first_request_loads_the_ports_of_its_capability_only(function: str, path: str, ports: tuple[str, ...]) -> None:
    assert _loaded(PORT_MODULES, (function,), paths=(path,)) == [f"clinicpay.ports.{port}" for port in ports]


def test_a_link_or_card_setup_page_loads_no_ledger_and_a_card_setup_page_no_appointment_code() -> None:
    # The ledger's models wait for the routes that move money (webhooks, refunds, desk payments); the
    # appointments' code for the card refunds and disputes that write an appointment's ledger.
    ledger = ("clinicpay.domain.ledger", "clinicpay.repositories.ledger")
    for path in ("/pay/abc", "/v1/public/clinics/cl_1/appointments", "/v1/clinics/cl_1/appointments"):
        assert _loaded(ledger, ("create_link",), paths=(path,)) == [], path
    appointment_code = ("clinicpay.domain.appointment", "clinicpay.repositories.appointments", *ledger)
    assert _loaded(appointment_code, ("tokenize",), paths=("/cards/setup/abc",)) == []
    # A ledger route loads it (what the test above would otherwise pass by never loading it).
    assert _loaded(ledger, ("create_link",), paths=("/v1/clinics/cl_1/appointments/ap_1/refunds",)) == list(ledger)


def test_the_qr_report_loads_no_provider_code() -> None:
    # It reads our tables only: the registry (secrets, the HTTP client) waits for a route that asks
    # monobank or Checkbox something (fiscalize/dependencies.py).
    provider_code = ("clinicpay.providers.registry", "clinicpay.secrets", "clinicpay.providers.http")
    assert _loaded(provider_code, ("fiscalize",), paths=("/v1/clinics/cl_1/reports/qr-payments",)) == []
    assert _loaded(provider_code, ("fiscalize",), paths=("/v1/clinics/cl_1/qr-registers",)) == sorted(provider_code)


WEBHOOK_FIRST_EVENT = """
import importlib.util, json, sys
sys.path.insert(0, {layer!r})
spec = importlib.util.spec_from_file_location("handler", {app!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
from clinicpay import secrets  # what the webhook's Fintoc route loads (bench/import_time.py)
from clinicpay.providers.registry import link_gateway
from clinicpay.usecases.payment_events import apply_payment_events
print(json.dumps(sorted(m for m in {modules!r} if m in sys.modules)))
"""


def test_a_payment_event_loads_no_booking_code() -> None:
    # A paid event updates the appointment and sends its receipt: the bookings' code (patient tokens,
    # phones, card requests, the appointments use case) waits for a booking.
    booking_code = ("clinicpay.usecases.appointments", "clinicpay.usecases.patient_tokens", "clinicpay.domain.phones",
                    "clinicpay.repositories.card_requests", "clinicpay.usecases.payment_links")
    program = WEBHOOK_FIRST_EVENT.format(layer=str(ROOT / "layers/shared/python"), app=str(ROOT / "functions/webhook/app.py"),
                                         modules=booking_code)
    out = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True, timeout=120,
                         env={"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x",
                              "PATH": "/usr/bin:/bin"})
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []

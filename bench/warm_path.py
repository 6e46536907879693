"""Warm-path overhead: our Lambda handlers next to hand-written minimal handlers making the same AWS calls.

    .venv/bin/python bench/warm_path.py [--runs 30]
    .venv/bin/python bench/warm_path.py --instructions     # about 5 minutes

Three flows, each handled in-process by the real `lambda_handler` (Powertools resolver, validation,
logging, metrics; a warm container: key cache, secrets and clients already loaded) against the
same in-process moto DynamoDB and SES:
- a staff booking that gets a payment link (BatchGetItem of clinic/settings/service/templates,
  TransactWriteItems of appointment + link + patient, the creation email);
- a patient's click on `/pay/<token>` whose checkout session is live (link, appointment and clinic
  reads, a 303 to the processor's page);
- a signed Fintoc `payment_intent.succeeded` (TransactWriteItems of event + appointment + payment
  row, BatchGetItem for the receipt, the receipt email).
The minimal handlers do the same work with plain boto3 and the standard library: the same calls,
items and condition expressions (checked each run: the bench stops if they differ), the
signature check, the JSON answer, no framework, no models, no logging. Runs alternate ours and
minimal; each figure is the median of --runs invocations. Local IAM checks are off while timing
(in AWS, IAM is not in the function's time) and tracing is off (no X-Ray daemon here).

Two figures per flow: wall time (what the caller waits, moto's handling of each call included: it
stands in for DynamoDB's and SES's latency) and the handler thread's CPU time (the handler's own
work: our framework, validation, models, serialization, logging; moto works in its own threads).

`--instructions` counts instead of timing, because CPU time on a shared machine moves by 0.05-0.1x
between runs: each handler runs its flow in a process of its own under valgrind (moto stays in this
process, uncounted), and one warm invocation's instructions are the difference between a process
making more invocations and one making fewer. Instructions leave out what the CPU's caches do with
the larger working set of ours, which the CPU-time column includes.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import hashlib
import hmac
import importlib.util
import json
import logging
import os
import pstats
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "layers/shared/python"), str(ROOT)]

import boto3  # noqa: E402

from tests.support.clinics import add_service, create_clinic  # noqa: E402
from tests.support.env import SENDER, start_test_stack  # noqa: E402

# ---------------------------------------------------------------- what each handler asks of AWS
recorded: list[tuple[str, Any]] = []
recording = False


def _record(event_name: str, params: dict[str, Any], **_: Any) -> None:
    if recording:
        recorded.append((event_name.rsplit(".", 1)[-1], params))


def _shape(calls: list[tuple[str, Any]]) -> list[Any]:
    """What must be the same for ours and minimal: each call's operation and, for writes, each
    item's kind, key prefixes, attribute names and expressions (values differ: ids, times)."""
    def prefix(value: Any) -> Any:
        return value.split("#", 1)[0] if isinstance(value, str) else value

    shaped: list[Any] = []
    for operation, params in calls:
        if operation == "TransactWriteItems":
            writes = []
            for write in params["TransactItems"]:
                (kind, body), = write.items()
                key = body.get("Item") or body.get("Key") or {}
                writes.append((kind, prefix(key.get("pk")), prefix(key.get("sk")), sorted(body.get("Item", {})),
                               body.get("ConditionExpression"), body.get("UpdateExpression"),
                               sorted(body.get("ExpressionAttributeValues", {}))))
            shaped.append((operation, writes))
        elif operation == "BatchGetItem":
            keys = [(prefix(k["pk"]), k["sk"].split("#", 1)[0]) for t in params["RequestItems"].values()
                    for k in t["Keys"]]
            shaped.append((operation, sorted(keys)))
        elif operation == "GetItem":
            shaped.append((operation, prefix(params["Key"]["pk"]), params.get("ConsistentRead", False)))
        else:
            shaped.append((operation,))
    return shaped


# ---------------------------------------------------------------- the minimal handlers
class Minimal:
    """What a hand-written handler would do for each flow: plain boto3, json, hmac."""

    def __init__(self, table: str, sender: str, base_url: str, staff_keys: dict[str, str], webhook_secret: str):
        self.table = boto3.resource("dynamodb").Table(table)
        self.client = self.table.meta.client
        self.ses = boto3.client("sesv2")
        self.table_name, self.sender, self.base_url = table, sender, base_url
        self.staff_keys = staff_keys  # sha256(key) -> clinic_id: a warm container's key cache
        self.webhook_secret = webhook_secret  # read once per container, as ours is

    @staticmethod
    def answer(status: int, body: Any, headers: dict[str, str] | None = None) -> dict[str, Any]:
        return {"statusCode": status, "headers": {"Content-Type": "application/json", **(headers or {})},
                "body": json.dumps(body, default=int)}  # DynamoDB's numbers are Decimals

    def _email(self, to: str, subject: str, body: str) -> None:
        self.ses.send_email(FromEmailAddress=self.sender, Destination={"ToAddresses": [to]},
                            Content={"Simple": {"Subject": {"Data": subject, "Charset": "UTF-8"},
                                                "Body": {"Text": {"Data": body, "Charset": "UTF-8"}}}})

    def _batch_get(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
        found = self.client.batch_get_item(RequestItems={self.table_name: {"Keys": [
            {"pk": pk, "sk": sk} for pk, sk in keys]}})["Responses"][self.table_name]
        return {(item["pk"], item["sk"]): item for item in found}

    @staticmethod
    def _templates(clinic_id: str, kind: str) -> list[tuple[str, str]]:
        return [(f"CLINIC#{clinic_id}", f"TEMPLATE#{kind}#{channel}#{locale}")
                for channel in ("email", "sms") for locale in ("es", "en", "fr", "uk", "nb")]

    def book(self, event: dict[str, Any], _: Any) -> dict[str, Any]:
        clinic_id = event["pathParameters"]["clinic_id"]
        key = event["headers"].get("authorization", "").removeprefix("Bearer ")
        if self.staff_keys.get(hashlib.sha256(key.encode()).hexdigest()) != clinic_id:
            return self.answer(401, {"error": {"code": "unauthorized", "message": "", "details": []}})
        body = json.loads(event["body"])
        patient, service_id, starts_at = body["patient"], body["service_id"], body["starts_at"]
        pk = f"CLINIC#{clinic_id}"
        found = self._batch_get([(pk, "PROFILE"), (pk, "SETTINGS"), (pk, f"SERVICE#{service_id}"),
                                 *self._templates(clinic_id, "appointment_created")])
        clinic, settings, service = found[(pk, "PROFILE")], found[(pk, "SETTINGS")], found[(pk, f"SERVICE#{service_id}")]
        now = datetime.now(UTC)
        starts = datetime.fromisoformat(starts_at)
        appointment_id, token = f"ap_{uuid.uuid4().hex}", f"lnk_{uuid.uuid4().hex}"
        reminders = sorted(moment.astimezone(UTC).isoformat() for h in settings.get("reminder_hours_before", [])
                           if (moment := starts - timedelta(hours=int(h))) > now)
        appointment = {
            "pk": pk, "sk": f"APPT#{appointment_id}", "appointment_id": appointment_id, "clinic_id": clinic_id,
            "patient": {k: v for k, v in patient.items() if v is not None}, "service_id": service_id,
            "service_name": service["name"], "starts_at": starts.isoformat(), "booked_by": "staff",
            "price": service["price"], "payment_status": "unpaid", "status": "confirmed",
            "created_at": now.isoformat(), "link_token": token, "session_attempts": 0,
            # The appointment's ledger starts empty (several payments and refunds per appointment).
            "amount_paid": {"amount": 0, "currency": service["price"]["currency"]},
            "amount_refunded": {"amount": 0, "currency": service["price"]["currency"]}, "ledger_version": 0}
        if reminders:
            appointment.update(reminders_pending=reminders, reminder_pk="REMINDER", reminder_due_at=reminders[0])
        self.client.transact_write_items(TransactItems=[
            {"Put": {"TableName": self.table_name, "Item": appointment, "ConditionExpression": "attribute_not_exists(pk)"}},
            {"Put": {"TableName": self.table_name, "ConditionExpression": "attribute_not_exists(pk)",
                     "Item": {"pk": f"LINK#{token}", "sk": "LINK", "clinic_id": clinic_id,
                              "appointment_id": appointment_id}}},
            {"Update": {"TableName": self.table_name, "Key": {"pk": pk, "sk": f"PATIENT#{patient['id']}"},
                        "UpdateExpression": "SET #n = :n, email = :e, phone = :p, locale = :l, updated_at = :u, "
                                            "patient_id = :id",
                        "ExpressionAttributeNames": {"#n": "name"},
                        "ExpressionAttributeValues": {":n": patient["name"], ":e": patient.get("email"),
                                                      ":p": patient.get("phone"), ":l": patient.get("locale"),
                                                      ":u": now.isoformat(), ":id": patient["id"]}}}])
        url = f"{self.base_url}/pay/{token}"
        self._email(patient["email"], f"{clinic['name']}: your appointment",
                    f"Hello {patient['name']}, your appointment is on {starts_at}. Pay here: {url}")
        return self.answer(201, {**{k: v for k, v in appointment.items() if k not in ("pk", "sk")},
                                 "payment_link": {"url": url}})

    def pay(self, event: dict[str, Any], _: Any) -> dict[str, Any]:
        token = event["pathParameters"]["token"]
        link = self.table.get_item(Key={"pk": f"LINK#{token}", "sk": "LINK"}).get("Item")
        if not link:
            return {"statusCode": 404, "headers": {"Content-Type": "text/html"}, "body": "No such link"}
        pk = f"CLINIC#{link['clinic_id']}"
        appointment = self.table.get_item(Key={"pk": pk, "sk": f"APPT#{link['appointment_id']}"},
                                          ConsistentRead=True)["Item"]
        clinic = self.table.get_item(Key={"pk": pk, "sk": "PROFILE"})["Item"]
        session = appointment.get("provider_session")
        if appointment["payment_status"] in ("unpaid", "pending") and session and \
                datetime.fromisoformat(session["expires_at"]) > datetime.now(UTC) + timedelta(minutes=5):
            return {"statusCode": 303, "headers": {"Location": session["url"], "Cache-Control": "no-store"}, "body": ""}
        return {"statusCode": 200, "headers": {"Content-Type": "text/html"}, "body": f"<h1>{clinic['name']}</h1>"}

    def webhook(self, event: dict[str, Any], _: Any) -> dict[str, Any]:
        clinic_id = event["pathParameters"]["clinic_id"]
        raw = event["body"].encode()
        parts = dict(part.split("=", 1) for part in event["headers"]["fintoc-signature"].split(","))
        expected = hmac.new(self.webhook_secret.encode(), f"{parts['t']}.".encode() + raw, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, parts["v1"]) or abs(time.time() - int(parts["t"])) > 300:
            return self.answer(401, {"error": {"code": "invalid_signature", "message": "", "details": []}})
        payload = json.loads(raw)
        intent = payload["data"]
        metadata = intent["metadata"]
        appointment_id, session_id = metadata["appointment_id"], metadata["checkout_session_id"]
        pk = f"CLINIC#{clinic_id}"
        occurred = datetime.fromisoformat(payload["created_at"]).isoformat()
        payment: dict[str, Any] = {"provider": "fintoc", "reference": intent["id"],
                                   "amount": {"amount": intent["amount"], "currency": intent["currency"]},
                                   "paid_at": occurred}
        if intent["currency"] == "CLP":  # Fintoc's fee: 1.1 % rounded half up, plus 19 % VAT on it
            net = (2 * intent["amount"] * 11 + 1000) // 2000
            payment["fee"] = {"amount": net + (2 * net * 19 + 100) // 200, "currency": "CLP"}
        # The event, the payment row and the appointment in one transaction. The appointment moves to
        # what /pay worked out when it made the session (its status and amount paid after this
        # payment), on condition that the session and the amount are the ones it asked and that no
        # other ledger write came in between (the ledger's version).
        self.client.transact_write_items(TransactItems=[
            {"Put": {"TableName": self.table_name, "ConditionExpression": "attribute_not_exists(pk)", "Item": {
                "pk": f"EVENT#{clinic_id}#fintoc#{payload['id']}", "sk": "EVENT", "clinic_id": clinic_id,
                "provider": "fintoc", "event_id": payload["id"], "kind": "succeeded", "outcome": "applied",
                "occurred_at": occurred, "appointment_id": appointment_id, "session_id": session_id}}},
            {"Put": {"TableName": self.table_name, "ConditionExpression": "attribute_not_exists(pk)",
                     "Item": {"pk": pk, "sk": f"PAYMENT#fintoc#{intent['id']}", "appointment_id": appointment_id,
                              **payment, "method": "online", "refunded": 0, "refund_pending": 0,
                              "session_id": session_id}}},
            {"Update": {"TableName": self.table_name, "Key": {"pk": pk, "sk": f"APPT#{appointment_id}"},
                        "UpdateExpression": "SET payment_status = provider_session.status_after, "
                                            "amount_paid = provider_session.paid_after, "
                                            "ledger_version = ledger_version + :one, payment = :payment, "
                                            "last_event_at = :t ADD payment_keys :pk "
                                            "REMOVE reminder_pk, reminder_due_at, reminders_pending",
                        "ConditionExpression": "attribute_exists(pk) AND provider_session.session_id = :sid AND "
                                               "contains(session_asks, :ask) AND "
                                               "provider_session.ledger_version = ledger_version",
                        "ExpressionAttributeValues": {":one": 1, ":payment": payment, ":t": occurred,
                                                      ":sid": session_id, ":pk": {f"fintoc#{intent['id']}"},
                                                      ":ask": f"{session_id}:{intent['amount']}:{intent['currency']}"},
                        "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}}])
        found = self._batch_get([(pk, f"APPT#{appointment_id}"), (pk, "PROFILE"), (pk, "SETTINGS"),
                                 *self._templates(clinic_id, "payment_receipt")])
        appointment, clinic = found[(pk, f"APPT#{appointment_id}")], found[(pk, "PROFILE")]
        self._email(appointment["patient"]["email"], f"{clinic['name']}: payment received",
                    f"Hello {appointment['patient']['name']}, we received {intent['amount']} {intent['currency']}.")
        return self.answer(200, {"received": 1, "outcomes": ["applied"]})


# ---------------------------------------------------------------- running handlers in-process
def load_handler(name: str) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """functions/<name>/app.py as a warm container holds it (its own module, like handler_for)."""
    spec = importlib.util.spec_from_file_location(f"warm_{name}", ROOT / "functions" / name / "app.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.lambda_handler  # type: ignore[no-any-return]


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """Log lines and metrics still get written (their cost counts), to /dev/null instead of the terminal."""
    sys.stdout.flush()
    saved, devnull = os.dup(1), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def timed(handler: Callable[..., dict[str, Any]], event: dict[str, Any],
          function: str) -> tuple[tuple[float, float], dict[str, Any]]:
    """((wall, cpu) seconds, answer). The CPU time is this thread's: the handler's own work, without
    moto's (which runs in its server's threads and stands in for DynamoDB's time)."""
    from local.apigw import LambdaContext

    context = LambdaContext.for_function(function)
    started, cpu = time.perf_counter(), time.thread_time()
    answer = handler(event, context)
    return (time.perf_counter() - started, time.thread_time() - cpu), answer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--profile", metavar="FLOW", help="cProfile our handler on this flow (e.g. 'book'); "
                        "the top functions by cumulative time go to stderr")
    parser.add_argument("--instructions", action="store_true",
                        help="count each handler's instructions per warm invocation (valgrind) instead of timing")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # one handler's process, under valgrind
    args = parser.parse_args()
    if args.child:
        _child(args.child)
        return
    if args.instructions:
        _print_instructions()
        return
    # Clients copy the session's event hooks when they are made, so register before any exists.
    boto3._get_default_session().events.register("provide-client-params.dynamodb", _record)
    boto3._get_default_session().events.register("provide-client-params.sesv2", _record)
    with quiet_stdout():
        stack = start_test_stack()
        try:
            results = _run(stack, args.runs, args.profile)
        finally:
            stack.server.stop()
            stack.moto.stop()
    print(f"warm path, median of {args.runs} invocations each, ours and minimal alternating (in-process moto)")
    print(f"{'':<27} {'wall: ours':>10} {'minimal':>9} {'ratio':>6} {'extra':>8}   {'cpu: ours':>9} {'minimal':>8} "
          f"{'ratio':>6}   AWS calls (the same for both)")
    for label, wall, minimal_wall, cpu, minimal_cpu, (our_shape, minimal_shape) in results:
        if our_shape != minimal_shape:
            raise SystemExit(f"{label}: the minimal handler no longer makes our calls:\n ours    {our_shape}\n"
                             f" minimal {minimal_shape}")
        calls = ", ".join(call[0] for call in our_shape)
        print(f"{label:<27} {wall * 1000:7.1f} ms {minimal_wall * 1000:6.1f} ms {wall / minimal_wall:5.2f}x "
              f"{(wall - minimal_wall) * 1000:5.1f} ms   {cpu * 1000:6.1f} ms {minimal_cpu * 1000:5.1f} ms "
              f"{cpu / minimal_cpu:5.2f}x   {calls}")


def _run(stack: Any, runs: int, profile: str | None) -> list[Result]:
    from local import iam

    fixture = _prepare(stack, 2 * runs + 4)
    iam.stop()  # IAM is AWS's work, not the function's
    return [_measure(flow, runs, profile) for flow in _flows(fixture, fixture["opened"])]


def _prepare(stack: Any, appointments: int) -> dict[str, Any]:
    """The clinic every flow works on (Fintoc gateway, links in emails, a service), and `appointments`
    whose link the patient has opened (the Fintoc sandbox made the session): one per webhook to
    apply, and one whose link is clicked again and again. As JSON, for a process of its own."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request lines
    from tests.support.api import ApiClient

    clinic = create_clinic()
    secret = "whsec_bench"
    clinic.admin().put(clinic.path("/gateways/fintoc"), json={"secret_key": "sk_test_bench",
                                                             "public_key": "pk_test_bench", "webhook_secret": secret})
    clinic.admin().patch(clinic.path("/settings"), json={"show_payment_link_in_email": True})
    add_service(clinic, "consulta", 25000)
    staff = clinic.staff()
    fixture: dict[str, Any] = {
        "clinic_id": clinic.clinic_id, "clinic_path": clinic.path(), "staff_key": clinic.staff_key, "secret": secret,
        "starts": (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0).isoformat(),
        "base_url": stack.base_url, "opened": []}
    for _ in range(appointments):
        created = staff.post(clinic.path("/appointments"), json=_booking_body(fixture)).json()
        token = created["payment_link"]["url"].rsplit("/", 1)[1]
        session_id = ApiClient().get(f"/pay/{token}").headers["Location"].rsplit("/", 1)[1]
        fixture["opened"].append((created["appointment_id"], token, session_id))
    return fixture


def _booking_body(fixture: dict[str, Any]) -> dict[str, Any]:
    return {"patient": {"id": f"p{uuid.uuid4().hex[:8]}", "name": "Ana", "email": "ana@example.cl"},
            "service_id": "consulta", "starts_at": fixture["starts"]}


Flow = tuple[str, Callable[[], dict[str, Any]], Callable[..., dict[str, Any]], Callable[..., dict[str, Any]], str, int]


def _flows(fixture: dict[str, Any], opened: list[Any]) -> list[Flow]:
    """Each flow: label, a maker of its next request, our handler, the minimal one, the function, the
    status both answer. The webhook flow pays the appointments of `opened`, one per request."""
    from local import apigw

    minimal = Minimal(os.environ["APP_TABLE"], SENDER, fixture["base_url"],
                      {hashlib.sha256(fixture["staff_key"].encode()).hexdigest(): fixture["clinic_id"]},
                      fixture["secret"])
    loaded: dict[str, Callable[..., dict[str, Any]]] = {}

    def ours(name: str) -> Callable[..., dict[str, Any]]:
        def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
            if name not in loaded:  # loaded by the first call (a warm-up), as a container would
                loaded[name] = load_handler(name)
            return loaded[name](event, context)
        return handler

    def event(method: str, path: str, headers: dict[str, str], body: bytes | None = None) -> dict[str, Any]:
        found = apigw.match(method, path)
        assert found
        return apigw.build_event(found[0], found[1], method, path, headers=headers, body=body)

    def booking_event() -> dict[str, Any]:
        return event("POST", f"{fixture['clinic_path']}/appointments",
                     {"Authorization": f"Bearer {fixture['staff_key']}", "Content-Type": "application/json"},
                     json.dumps(_booking_body(fixture)).encode())

    click_token = fixture["opened"][-1][1]

    def click_event() -> dict[str, Any]:
        return event("GET", f"/pay/{click_token}", {})

    payable = list(opened)
    if payable and payable[-1][1] == click_token:
        payable.pop()

    def webhook_event() -> dict[str, Any]:
        appointment_id, _, session_id = payable.pop()
        body = json.dumps({
            "id": f"evt_{uuid.uuid4().hex}", "type": "payment_intent.succeeded", "mode": "test",
            "object": "event", "created_at": datetime.now(UTC).isoformat(),
            "data": {"id": f"pi_{uuid.uuid4().hex}", "object": "payment_intent", "status": "succeeded",
                     "amount": 25000, "currency": "CLP",
                     "metadata": {"clinic_id": fixture["clinic_id"], "appointment_id": appointment_id,
                                  "checkout_session_id": session_id}}}).encode()
        t = int(time.time())
        signature = hmac.new(fixture["secret"].encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
        return event("POST", f"/webhooks/fintoc/{fixture['clinic_id']}",
                     {"Fintoc-Signature": f"t={t},v1={signature}", "Content-Type": "application/json"}, body)

    return [
        ("book with link", booking_event, ours("create_link"), minimal.book, "CreateLinkFunction", 201),
        ("/pay click (live session)", click_event, ours("create_link"), minimal.pay, "CreateLinkFunction", 303),
        ("paid webhook", webhook_event, ours("webhook"), minimal.webhook, "WebhookFunction", 200),
    ]


# ---------------------------------------------------------------- counting instructions
# CPU time on a shared machine moves by 0.05-0.1x between runs. Instructions do not: each handler
# runs in a process of its own under valgrind (moto stays in this one, uncounted), once with
# WARM_UP + FEW invocations and once with WARM_UP + MANY; the difference over MANY - FEW is one warm
# invocation's instructions, with the import, the clients and the first requests cancelled out.
WARM_UP, FEW, MANY = 3, 2, 10


def _print_instructions() -> None:
    import shutil

    if shutil.which("valgrind") is None:
        raise SystemExit("--instructions needs valgrind (apt-get install valgrind)")
    with quiet_stdout():
        stack = start_test_stack()
        try:
            from local import iam

            fixture = _prepare(stack, 3 * 2 * (2 * WARM_UP + FEW + MANY) + 1)
            iam.stop()
            results = _count_instructions(fixture)
        finally:
            stack.server.stop()
            stack.moto.stop()
    print(f"warm path, instructions per warm invocation (valgrind; each handler in a process of its own, "
          f"{MANY} invocations less {FEW}, after {WARM_UP} to warm up; moto uncounted)")
    print(f"{'':<27} {'ours':>8} {'minimal':>9} {'ratio':>6}")
    for label, ours, minimal in results:
        print(f"{label:<27} {ours / 1e6:6.1f} M {minimal / 1e6:7.1f} M {ours / minimal:5.2f}x")


def _count_instructions(fixture: dict[str, Any]) -> list[tuple[str, float, float]]:
    results = []
    opened = [item for item in fixture["opened"] if item is not fixture["opened"][-1]]
    with tempfile.TemporaryDirectory() as folder:
        for index, label in enumerate(("book with link", "/pay click (live session)", "paid webhook")):
            per_invocation = []
            for who in ("ours", "minimal"):
                counts = []
                for count in (FEW, MANY):
                    # Each process pays its own appointments (a webhook applies once).
                    share, opened = opened[:WARM_UP + count], opened[WARM_UP + count:]
                    path = Path(folder) / f"{index}-{who}-{count}.json"
                    path.write_text(json.dumps({**fixture, "opened": [*share, fixture["opened"][-1]]}))
                    counts.append(_instructions_of(index, who, WARM_UP + count, path))
                per_invocation.append((counts[1] - counts[0]) / (MANY - FEW))
            results.append((label, per_invocation[0], per_invocation[1]))
    return results


def _instructions_of(flow: int, who: str, invocations: int, fixture_path: Any) -> int:
    import re
    import subprocess

    command = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
               sys.executable, __file__, "--child", f"{flow},{who},{invocations},{fixture_path}"]
    out = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"},
                         timeout=900)
    if out.returncode != 0:
        raise SystemExit(f"the {who} handler's process failed:\n{out.stderr[-3000:]}")
    found = re.search(r"I\s+refs:\s+([\d,]+)", out.stderr)
    if not found:
        raise SystemExit("valgrind printed no instruction count")
    return int(found.group(1).replace(",", ""))


def _child(spec: str) -> None:
    """One handler's invocations of one flow, in this process (run under valgrind by the parent)."""
    from local.apigw import LambdaContext

    flow, who, invocations, fixture_path = spec.split(",", 3)
    fixture = json.loads(Path(fixture_path).read_text())
    _, make_event, our_handler, minimal_handler, function, status = _flows(fixture, fixture["opened"])[int(flow)]
    handler = our_handler if who == "ours" else minimal_handler
    # Each invocation gets its own deadline (the handlers' timeouts come from it), without reading
    # template.yaml again each time: that is the runtime's work, not the handler's.
    timeout = LambdaContext.for_function(function).get_remaining_time_in_millis() / 1000
    with quiet_stdout():
        for _ in range(int(invocations)):
            answer = handler(make_event(), LambdaContext(function_name=function, deadline=time.time() + timeout))
            if answer["statusCode"] != status:
                raise SystemExit(f"{who} answered {answer['statusCode']}: {answer.get('body', '')[:300]}")


Result = tuple[str, float, float, float, float, list[Any]]  # label, wall ours/minimal, cpu ours/minimal, calls


def _measure(flow: tuple[Any, ...], runs: int, profile: str | None) -> Result:
    """One flow: a recorded warm-up each, then `runs` invocations of ours and minimal, alternating."""
    global recording
    label, make_event, our_handler, minimal_handler, function, status = flow
    shapes = []
    for handler in (our_handler, minimal_handler):
        recorded.clear()
        recording = True
        _, answer = timed(handler, make_event(), function)
        recording = False
        assert answer["statusCode"] == status, (label, answer)
        shapes.append(_shape(recorded))
    ours_s: list[tuple[float, float]] = []
    minimal_s: list[tuple[float, float]] = []
    # The profiler's clock is the handler thread's CPU time (what the cpu column counts), so time
    # spent waiting on moto is left out; WARM_PROFILE_MINIMAL=1 profiles the minimal handler instead.
    profiled = minimal_handler if os.environ.get("WARM_PROFILE_MINIMAL") else our_handler
    profiler = cProfile.Profile(time.thread_time) if profile and profile in label else None
    for _ in range(runs):
        for handler, into in ((our_handler, ours_s), (minimal_handler, minimal_s)):
            request = make_event()
            if profiler and handler is profiled:
                profiler.enable()
            took, answer = timed(handler, request, function)
            if profiler and handler is profiled:
                profiler.disable()
            if answer["statusCode"] != status:
                # On a loaded machine moto can stall past the read timeout; botocore's retry then
                # finds the first attempt's write (moto ignores ClientRequestToken). Counted, not timed.
                print(f"{label}: {'ours' if handler is our_handler else 'minimal'} answered "
                      f"{answer['statusCode']}, not timed", file=sys.stderr)
                continue
            into.append(took)
    if profiler:
        # WARM_PROFILE_SORT: pstats' sort key; WARM_PROFILE_FILTER: a regex of the files to show.
        stats = pstats.Stats(profiler, stream=sys.stderr).sort_stats(os.environ.get("WARM_PROFILE_SORT", "cumulative"))
        stats.print_stats(os.environ.get("WARM_PROFILE_FILTER", ""), 60)
        if dump := os.environ.get("WARM_PROFILE_DUMP"):  # for pstats elsewhere, e.g. ours against minimal
            stats.dump_stats(dump)
        if callers := os.environ.get("WARM_PROFILE_CALLERS"):  # who calls what matches this regex
            stats.print_callers(callers)
    return (label, statistics.median(t[0] for t in ours_s), statistics.median(t[0] for t in minimal_s),
            statistics.median(t[1] for t in ours_s), statistics.median(t[1] for t in minimal_s), shapes)


if __name__ == "__main__":
    main()

"""create_link: appointments, their payment links, `/pay/{token}`, online booking, reminders.

The routes live in route groups next to this file (api/route_groups.py), each loaded by the first
request to one of its paths: payment_page.py (`/pay/...`), payment_status.py and online_booking.py
(what a patient waits on), appointments.py and ledger.py (staff). The scheduled jobs are in jobs.py,
loaded by the first job event; dependencies.py is what several of them build alike."""


from clinicpay import coldstart  # first: the garbage collector waits while this module loads

# isort: split
from typing import Any

from aws_lambda_powertools.logging import correlation_paths

from clinicpay.api.idempotency import idempotent_http
from clinicpay.api.resolver import make_resolver
from clinicpay.api.route_groups import function_module
from clinicpay.deadline import lambda_deadline
from clinicpay.job_events import is_job_event
from clinicpay.observability import logger, metrics, tracer
from clinicpay.snapstart import before_snapshot

app = make_resolver()
_APPOINTMENT = "/v1/clinics/<clinic_id>/appointments/<appointment_id>"
app.route_groups(__file__, {
    "payment_page": ("/pay/<token>", "/pay/<token>/result", "/pay/<token>/calendar.ics"),
    "payment_status": ("/v1/public/payments/<token>",),
    "online_booking": ("/v1/public/clinics/<clinic_id>/appointments",),
    "appointments": ("/v1/clinics/<clinic_id>/appointments", _APPOINTMENT, f"{_APPOINTMENT}/payment-link",
                     f"{_APPOINTMENT}/payment-link/send", f"{_APPOINTMENT}/cancel"),
    "ledger": (f"{_APPOINTMENT}/payments", f"{_APPOINTMENT}/refunds"),
})

before_snapshot(lambda: function_module(__file__, "jobs"))  # a restored job container finds its code loaded too

_http = idempotent_http(app.resolve)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
@metrics.log_metrics
@lambda_deadline
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if is_job_event(event):
        return function_module(__file__, "jobs").jobs.handle(event, context)
    return _http(event, context)


coldstart.loaded()

"""create_link's scheduled jobs (clinicpay.fanout): reminders, the retry of kept messages, and the
reconciliation of link sessions and refunds still waiting for the provider. Loaded by the handler's
first job event (`function_module(__file__, "jobs")`), never by an HTTP request."""

from typing import Any

from clinicpay import fanout
from clinicpay.api.route_groups import function_module
from clinicpay.deadline import provider_seconds_left
from clinicpay.notify.sender import AwsNotifier
from clinicpay.observability import metrics
from clinicpay.providers.registry import link_gateway
from clinicpay.repositories.appointments import AppointmentRepository
from clinicpay.repositories.clinics import ClinicRepository
from clinicpay.repositories.templates import TemplateRepository
from clinicpay.settings import get_settings
from clinicpay.usecases import refunds
from clinicpay.usecases.reminders import ReminderDeps, send_due_reminders

dependencies = function_module(__file__, "dependencies")


def run_reminders(shard: int) -> dict[str, Any]:
    settings = get_settings()
    deps = ReminderDeps(appointments=AppointmentRepository(settings.app_table),
                        clinics=ClinicRepository(settings.app_table), templates=TemplateRepository(settings.app_table),
                        notifier=AwsNotifier(settings.email_sender), public_base_url=settings.public_base_url,
                        # A reminder's own calls are AWS calls; the provider reserve is what they need.
                        has_time=lambda: provider_seconds_left() > 0)
    return send_due_reminders(deps, shard)


def run_message_retry(shard: int) -> dict[str, Any]:
    from clinicpay.notify.sender import AwsTransport
    from clinicpay.repositories.message_outbox import MessageOutbox
    from clinicpay.usecases.message_retry import MessageRetryDeps
    from clinicpay.usecases.message_retry import run_message_retry as retry

    settings = get_settings()
    deps = MessageRetryDeps(outbox=MessageOutbox(settings.app_table), transport=AwsTransport(settings.email_sender),
                            has_time=lambda: provider_seconds_left() > 0, gave_up=_message_given_up)
    return retry(deps, shard)


def run_link_reconcile(shard: int) -> dict[str, Any]:
    """Ask the providers about link sessions whose webhook has not come (usecases/link_reconcile.py),
    then about refunds still pending for want of an answer (usecases/refunds.reconcile_refunds)."""
    from datetime import UTC, datetime

    from clinicpay.repositories.link_watches import LinkWatchRepository
    from clinicpay.usecases.link_reconcile import LinkReconcileDeps
    from clinicpay.usecases.link_reconcile import run_link_reconcile as reconcile
    from clinicpay.usecases.payment_events import apply_payment_events

    settings = get_settings()
    repo = AppointmentRepository(settings.app_table)
    deps = LinkReconcileDeps(watches=LinkWatchRepository(settings.app_table), appointments=repo,
                             gateway_for=link_gateway, apply=lambda cid, events: apply_payment_events(cid, events, repo),
                             # each ask is a provider call and its writes: stop while they still fit
                             has_time=lambda: provider_seconds_left() > 0)
    now = datetime.now(UTC)
    counts = reconcile(deps, shard, now)
    # and the shard's refunds whose provider answer or event never came (usecases/refunds.py)
    counts["refunds"] = refunds.reconcile_refunds(dependencies.refund_deps(), shard, now,
                                                  has_time=lambda: provider_seconds_left() > 0)
    return counts


def _message_given_up(kept: Any, why: str) -> None:
    # Summed over every service by the MessageGivenUp alarm; the log line names the clinic.
    metrics.add_metric(name="MessageGivenUp", unit="Count", value=1)


jobs = fanout.Jobs({"reminders": run_reminders, "message-retry": run_message_retry,
                    "link-reconcile": run_link_reconcile},
                   queue_url=lambda: get_settings().create_link_jobs_queue_url)

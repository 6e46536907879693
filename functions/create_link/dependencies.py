"""What several of create_link's route groups and its jobs build alike (loaded with
`function_module(__file__, "dependencies")`). Each builder imports what it builds when first called,
so a group that asks for one pays for no other."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import JsonValue

from clinicpay.settings import get_settings

if TYPE_CHECKING:
    from clinicpay.usecases.appointments import AppointmentDeps
    from clinicpay.usecases.refunds import RefundDeps

# The patient of the staff and the online booking request examples.
PATIENT_EXAMPLE: dict[str, JsonValue] = {"id": "pat-1042", "name": "Ana Rojas", "email": "ana@example.cl",
                                         "phone": "+56912345678", "locale": "es"}


def appointment_deps() -> AppointmentDeps:
    from clinicpay.notify.sender import AwsNotifier
    from clinicpay.repositories.appointments import AppointmentRepository
    from clinicpay.repositories.card_requests import CardRequestRepository
    from clinicpay.repositories.clinics import ClinicRepository
    from clinicpay.repositories.patient_tokens import PatientTokenSecrets
    from clinicpay.repositories.patients import PatientRepository
    from clinicpay.repositories.templates import TemplateRepository
    from clinicpay.usecases.appointments import AppointmentDeps

    settings = get_settings()
    return AppointmentDeps(
        appointments=AppointmentRepository(settings.app_table), clinics=ClinicRepository(settings.app_table),
        patients=PatientRepository(settings.app_table), card_requests=CardRequestRepository(settings.app_table),
        templates=TemplateRepository(settings.app_table), notifier=AwsNotifier(settings.email_sender),
        public_base_url=settings.public_base_url, token_secrets=PatientTokenSecrets(settings.app_table))


def refund_deps() -> RefundDeps:
    from functools import partial

    from clinicpay.notify.sender import AwsNotifier
    from clinicpay.providers.registry import refunding_gateway
    from clinicpay.repositories.appointments import AppointmentRepository
    from clinicpay.repositories.ledger import LedgerRepository
    from clinicpay.repositories.templates import TemplateRepository
    from clinicpay.usecases.receipts import send_refund_message
    from clinicpay.usecases.refunds import RefundDeps

    settings = get_settings()
    repo = AppointmentRepository(settings.app_table)
    notify = partial(send_refund_message, repo, TemplateRepository(settings.app_table),
                     AwsNotifier(settings.email_sender))
    return RefundDeps(appointments=repo, ledger=LedgerRepository(settings.app_table),
                      gateway_for=refunding_gateway, notify=notify)

"""What fiscalize's route groups and jobs are built from: the clock, the QR store, the fiscal register
(quick tries) and monobank's own receipts. Loaded with `function_module(__file__, "dependencies")`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from clinicpay.repositories.fiscal import ShiftRepository
from clinicpay.repositories.qr import QrRepository
from clinicpay.settings import get_settings

if TYPE_CHECKING:  # the adapter itself loads with the first register (registry.fiscal_register)
    from clinicpay.providers.checkbox.adapter import CheckboxFiscalRegister


def now() -> datetime:
    return datetime.now(UTC)


def qr_store() -> QrRepository:
    return QrRepository(get_settings().app_table)


def shifts() -> ShiftRepository:
    return ShiftRepository(get_settings().app_table)


# The provider registry (secrets, the HTTP client) loads with the first register or acquirer asked for:
# a QR report or a payment's page, which read our tables only, load none of it.
def register(clinic_id: str) -> CheckboxFiscalRegister:
    # Short, single tries (see registry.fiscal_register): a person waits on the HTTP routes, and a job must
    # stop starting receipts in time (jobs.JOB_MARGIN_SECONDS > one attempt). What does not finish stays
    # pending for the next sweep.
    from clinicpay.providers.registry import fiscal_register

    return fiscal_register(clinic_id, quick=True)


def checks(clinic_id: str) -> Any:
    # monobank's own receipts for an invoice (fiscal-checks): a sale monobank fiscalized gets none of ours.
    from clinicpay.providers.registry import qr_acquirer

    return qr_acquirer(clinic_id)

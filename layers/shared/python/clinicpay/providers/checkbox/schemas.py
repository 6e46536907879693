"""Checkbox (pRRO) wire models (reference/providers.md section 3): only the fields we read.

Money is in kopecks (integers); quantities in thousandths (1000 = one unit); currency is UAH.
"""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field, StrictInt

from clinicpay.domain.model import Model


class _Wire(Model):
    model_config = ConfigDict(extra="ignore")


class AccessToken(_Wire):
    access_token: str
    token_type: str | None = None
    type: str | None = None


class Transaction(_Wire):
    id: str | None = None
    type: str | None = None
    status: str | None = None
    response_status: str | None = None
    response_error_message: str | None = None


class Shift(_Wire):
    id: str
    serial: int | None = None
    status: str
    opened_at: str | None = None
    closed_at: str | None = None
    initial_transaction: Transaction | None = None
    closing_transaction: Transaction | None = None


class Receipt(_Wire):
    id: str
    type: str | None = None
    status: str
    serial: int | None = None
    fiscal_code: str | None = None
    fiscal_date: str | None = None
    tax_url: str | None = None
    total_sum: StrictInt | None = None
    transaction: Transaction | None = None


class ErrorBody(_Wire):
    """400/403/404 answers: a human `message`, in Ukrainian."""

    message: str | None = None


class ValidationErrorBody(_Wire):
    """422 answers: FastAPI's `detail: [{loc, msg, type, ctx}]`."""

    detail: list[dict[str, Any]] = Field(default_factory=list)

"""monobank acquiring wire models (reference/providers.md section 2): only the fields we read.

Unknown fields are ignored (monobank adds fields freely). Amounts are int64 kopecks; `ccy` is the
ISO 4217 *numeric* code (980 = UAH).
"""

from __future__ import annotations

from pydantic import ConfigDict, Field, StrictInt

from clinicpay.domain.model import Model


class _Wire(Model):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class ErrorBody(_Wire):
    err_code: str | int | None = Field(default=None, alias="errCode")  # "BAD_REQUEST" or 1001
    err_text: str | None = Field(default=None, alias="errText")


class PubKey(_Wire):
    key: str


class QrListItem(_Wire):
    short_qr_id: str | None = Field(default=None, alias="shortQrId")
    qr_id: str = Field(alias="qrId")
    amount_type: str = Field(alias="amountType")
    page_url: str = Field(alias="pageUrl")


class QrList(_Wire):
    items: list[QrListItem] = Field(default_factory=list, alias="list")


class QrDetails(_Wire):
    short_qr_id: str | None = Field(default=None, alias="shortQrId")
    invoice_id: str | None = Field(default=None, alias="invoiceId")
    amount: StrictInt | None = None
    ccy: StrictInt | None = None


class InvoiceCreated(_Wire):
    invoice_id: str = Field(alias="invoiceId")
    page_url: str = Field(alias="pageUrl")


class PaymentInfo(_Wire):
    masked_pan: str | None = Field(default=None, alias="maskedPan")
    approval_code: str | None = Field(default=None, alias="approvalCode")
    rrn: str | None = None
    tran_id: str | None = Field(default=None, alias="tranId")
    terminal: str | None = None
    bank: str | None = None
    payment_system: str | None = Field(default=None, alias="paymentSystem")
    payment_method: str | None = Field(default=None, alias="paymentMethod")
    fee: StrictInt | None = None
    country: str | int | None = None  # ISO 3166-1 numeric; seen as both number and string


class CancelListItem(_Wire):
    """One refund asked of a paid invoice (`cancelList[]`)."""

    status: str  # processing, success, failure
    amount: StrictInt | None = None
    ccy: StrictInt | None = None
    created_date: str | None = Field(default=None, alias="createdDate")
    modified_date: str | None = Field(default=None, alias="modifiedDate")
    approval_code: str | None = Field(default=None, alias="approvalCode")
    rrn: str | None = None
    ext_ref: str | None = Field(default=None, alias="extRef")


class InvoiceStatusBody(_Wire):
    """`GET /api/merchant/invoice/status` and every webhook body share this schema. Only invoiceId,
    status, amount and ccy are required by monobank's spec: `modifiedDate` may be absent."""

    invoice_id: str = Field(alias="invoiceId")
    status: str
    failure_reason: str | None = Field(default=None, alias="failureReason")
    err_code: str | int | None = Field(default=None, alias="errCode")  # "BAD_REQUEST" or 1001
    amount: StrictInt | None = None
    ccy: StrictInt | None = None
    final_amount: StrictInt | None = Field(default=None, alias="finalAmount")
    created_date: str | None = Field(default=None, alias="createdDate")
    modified_date: str | None = Field(default=None, alias="modifiedDate")
    reference: str | None = None
    destination: str | None = None
    payment_info: PaymentInfo | None = Field(default=None, alias="paymentInfo")
    cancel_list: list[CancelListItem] = Field(default_factory=list, alias="cancelList")


class InvoiceCancelled(_Wire):
    """`POST /api/merchant/invoice/cancel` answer: where the refund stands now."""

    status: str  # processing, success, failure
    created_date: str | None = Field(default=None, alias="createdDate")
    modified_date: str | None = Field(default=None, alias="modifiedDate")


class FiscalCheck(_Wire):
    id: str
    type: str  # sale, return
    status: str  # new, process, done, failed
    status_description: str | None = Field(default=None, alias="statusDescription")
    tax_url: str | None = Field(default=None, alias="taxUrl")
    fiscalization_source: str = Field(alias="fiscalizationSource")  # checkbox, monopay
    # `file` (the receipt as a base64 PDF) is not read: it can be large and we only link to taxUrl.


class FiscalChecks(_Wire):
    checks: list[FiscalCheck] = Field(default_factory=list)

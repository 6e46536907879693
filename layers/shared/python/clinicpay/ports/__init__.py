"""Ports: what the use cases need from the outside world, one module per capability (not per provider).

    payments   payment links: CheckoutRequest, PaymentEvent, PaymentGateway ...
    refunds    money given back: RefundRequest, RefundResult, RefundingGateway, RefundLookup
    messaging  messages to patients: OutgoingMessage, Notifier
    cards      cards on file: CardVault, CardEvent, ChargeResult, OffSessionCharge ...
    qr         QR payments and fiscal receipts: QrAcquirer, QrStore, FiscalRegister, ShiftStore ...

Our code imports from the module of its capability, so a request loads only the ports it uses (a
payment page no card models, a QR report no link models: cold start, bench/import_time.py).
`from clinicpay.ports import X` still works (tests, scripts): the name's module is imported on first
use. Adapters live in `clinicpay.providers.<name>`; tests use fakes that implement the same Protocols.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from clinicpay.snapstart import load_before_snapshot

if TYPE_CHECKING:  # the names, for the type checker and readers (at run time: __getattr__ below)
    from clinicpay.ports.cards import (
        CardEvent,
        CardEventKind,
        CardSetupRequest,
        CardSetupSession,
        CardVault,
        ChargeResult,
        ChargeStatus,
        DisputeObservation,
        OffSessionCharge,
        RefundObservation,
        VaultCard,
    )
    from clinicpay.ports.messaging import Notifier, OutgoingMessage
    from clinicpay.ports.payments import (
        CheckoutRequest,
        CheckoutSession,
        PaymentEvent,
        PaymentEventKind,
        PaymentGateway,
        RefundNotice,
        SessionAnswer,
        asked_event_id,
    )
    from clinicpay.ports.qr import FiscalRegister, ProviderFiscalCheck, QrAcquirer, QrStore, ShiftStore
    from clinicpay.ports.refunds import RefundingGateway, RefundLookup, RefundRequest, RefundResult

__all__ = [
    "CardEvent", "CardEventKind", "CardSetupRequest", "CardSetupSession", "CardVault", "ChargeResult", "ChargeStatus",
    "CheckoutRequest", "CheckoutSession", "DisputeObservation", "FiscalRegister", "Notifier", "OffSessionCharge",
    "OutgoingMessage", "PaymentEvent", "PaymentEventKind", "PaymentGateway", "ProviderFiscalCheck", "QrAcquirer",
    "QrStore", "RefundLookup", "RefundNotice", "RefundObservation", "RefundRequest", "RefundResult", "RefundingGateway",
    "SessionAnswer", "ShiftStore", "VaultCard", "asked_event_id",
]

# The module that defines each name (tests/unit/test_ports.py checks this, __all__ and the modules agree).
MODULES: dict[str, tuple[str, ...]] = {
    "payments": ("CheckoutRequest", "CheckoutSession", "PaymentEventKind", "RefundNotice", "PaymentEvent",
                 "SessionAnswer", "asked_event_id", "PaymentGateway"),
    "refunds": ("RefundRequest", "RefundResult", "RefundingGateway", "RefundLookup"),
    "messaging": ("OutgoingMessage", "Notifier"),
    "cards": ("VaultCard", "CardSetupRequest", "CardSetupSession", "OffSessionCharge", "ChargeStatus", "ChargeResult",
              "CardEventKind", "RefundObservation", "DisputeObservation", "CardEvent", "CardVault"),
    "qr": ("QrAcquirer", "ProviderFiscalCheck", "FiscalRegister", "QrStore", "ShiftStore"),
}
_HOME = {name: module for module, names in MODULES.items() for name in names}


if not TYPE_CHECKING:  # hidden from mypy, which would otherwise take any name from this package

    def __getattr__(name: str) -> Any:
        """`clinicpay.ports.X`: imports X's module the first time X is asked for."""
        module = _HOME.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
        globals()[name] = value
        return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOME))


# A function that uses one port holds them all in its SnapStart snapshot, loaded and built.
load_before_snapshot(*(f"{__name__}.{module}" for module in MODULES))

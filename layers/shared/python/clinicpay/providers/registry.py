"""The one place that knows the concrete adapters: provider name -> adapter, built from the clinic's
secret. Adapters are imported lazily so a handler only loads the providers it really uses."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from clinicpay import secrets
from clinicpay.domain.clinic import Provider
from clinicpay.domain.errors import ClinicpayError, ValidationFailed
from clinicpay.observability import logger
from clinicpay.providers import http
from clinicpay.settings import Settings, get_settings

if TYPE_CHECKING:
    from clinicpay.ports.payments import PaymentGateway
    from clinicpay.ports.refunds import RefundingGateway

# Adding a link gateway: one package under providers/ and one line here.
_LINK_GATEWAYS: dict[Provider, str] = {
    Provider.FINTOC: "clinicpay.providers.fintoc.adapter:FintocGateway",
    Provider.MONOBANK: "clinicpay.providers.monobank.adapter:MonobankGateway",
    Provider.STRIPE: "clinicpay.providers.stripe.adapter:StripeGateway",
}


def _load(path: str) -> Any:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def build_link_gateway(provider: Provider, credentials: dict[str, Any], settings: Settings) -> PaymentGateway:
    if provider not in _LINK_GATEWAYS:
        raise ValidationFailed(f"{provider.value} cannot take link payments.", code="gateway_not_supported")
    cls = _load(_LINK_GATEWAYS[provider])
    if provider is Provider.FINTOC:
        return cls(credentials, base_url=settings.fintoc_api_base, timeout=settings.provider_timeout_seconds)
    return cls(credentials, settings)  # type: ignore[no-any-return]


def link_gateway(clinic_id: str, provider: Provider) -> PaymentGateway:
    credentials = secrets.read_credentials(clinic_id, provider.value)
    return build_link_gateway(provider, credentials, get_settings())


def refunding_gateway(clinic_id: str, provider: str) -> RefundingGateway:
    """The clinic's gateway for a provider that took a link payment, to give money back through it.
    Whether it can (`refund`) is for the caller to check: gateways gain it one at a time."""
    try:
        chosen = Provider(provider)
    except ValueError:
        raise ValidationFailed(f"{provider} payments are not refunded through a provider.",
                               code="refund_not_supported") from None
    return link_gateway(clinic_id, chosen)  # type: ignore[return-value]


def qr_acquirer(clinic_id: str) -> Any:
    """The clinic's monobank merchant for QR registers (GatewayNotConfigured when none)."""
    from clinicpay.providers.monobank.adapter import MonobankQrAcquirer

    return MonobankQrAcquirer(secrets.read_credentials(clinic_id, Provider.MONOBANK.value), get_settings())


def fiscal_register(clinic_id: str, *, quick: bool = False) -> Any:
    """The clinic's Checkbox register (GatewayNotConfigured when none). `quick` is for callers a
    person or a provider waits on: one short try, so what does not finish stays pending for the
    scheduled sweeps, which have the function's whole minute."""
    from clinicpay.providers.checkbox.adapter import QUICK_POLL_SECONDS, QUICK_TIMEOUT_SECONDS, CheckboxFiscalRegister

    settings = get_settings()
    credentials = secrets.read_credentials(clinic_id, Provider.CHECKBOX.value)
    if not quick:
        return CheckboxFiscalRegister(credentials, settings)
    return CheckboxFiscalRegister(credentials, settings, poll_seconds=QUICK_POLL_SECONDS, attempts=1,
                                  timeout=min(settings.provider_timeout_seconds, QUICK_TIMEOUT_SECONDS))


def probe_credentials(provider: Provider, values: dict[str, str]) -> bool:
    """A cheap authenticated read at the provider, so admins see at once whether a key works.

    Best effort: an unreachable provider reports `false` and the credentials are stored anyway."""
    settings = get_settings()
    probes = {
        Provider.FINTOC: ("GET", f"{settings.fintoc_api_base}/v1/webhook_endpoints",
                          {"Authorization": values.get("secret_key", "")}),
        Provider.STRIPE: ("GET", f"{settings.stripe_api_base}/v1/customers?limit=1",
                          {"Authorization": f"Bearer {values.get('secret_key', '')}"}),
        Provider.MONOBANK: ("GET", f"{settings.monobank_api_base}/api/merchant/details",
                            {"X-Token": values.get("token", "")}),
    }
    if provider not in probes:
        return False
    method, url, headers = probes[provider]
    try:
        http.request(provider.value, method, url, headers=headers, timeout=3, attempts=1)
        return True
    except ClinicpayError as error:
        logger.info("credential probe failed", extra={"provider": provider.value, "error_code": error.code})
        return False

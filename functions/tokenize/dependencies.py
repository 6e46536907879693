"""What tokenize's route groups and its job share (`function_module(__file__, "dependencies")`): the
clinic's Stripe vault, the card use cases' dependencies, and the path parameter of our ids."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_lambda_powertools.event_handler.openapi.params import Path

from clinicpay.api.resolver import ClinicpayResolver, header
from clinicpay.domain.errors import GatewayNotConfigured
from clinicpay.notify.sender import AwsNotifier
from clinicpay.repositories.card_requests import CardRequestRepository
from clinicpay.repositories.cards import CardAppointments, CardRepository
from clinicpay.repositories.clinics import ClinicRepository
from clinicpay.repositories.patients import PatientRepository
from clinicpay.repositories.templates import TemplateRepository
from clinicpay.settings import get_settings
from clinicpay.usecases.cards_ports import CardDeps

if TYPE_CHECKING:
    from clinicpay.ports.cards import CardVault
    from clinicpay.providers.stripe.adapter import StripeCardVault

PROVIDER = "stripe"
# A path parameter naming one of our ids: `Annotated[str, dependencies.IDENTIFIER]` in each group (one
# instance, as when the routes shared one module).
IDENTIFIER = Path(pattern=r"^[A-Za-z0-9_\-.@]{1,64}$")
BASE = "/v1/clinics/<clinic_id>/patients/<patient_id>"


def vault(clinic_id: str, *, fresh: bool = False) -> StripeCardVault:
    # Stripe's code loads with the first call to Stripe: the consent and done pages a patient opens
    # first read only our tables.
    from clinicpay import secrets
    from clinicpay.providers.stripe.adapter import StripeCardVault

    return StripeCardVault(secrets.read_credentials(clinic_id, PROVIDER, fresh=fresh), get_settings())


def card_deps(clinic_id: str | None, clinic_vault: CardVault | None = None) -> CardDeps:
    settings = get_settings()

    def vault_for(provider: str) -> CardVault:
        if provider != PROVIDER or clinic_id is None:
            raise GatewayNotConfigured(f"No card processor {provider!r} for this clinic.")
        return clinic_vault or vault(clinic_id)

    return CardDeps(cards=CardRepository(settings.cards_table), vault_for=vault_for,
                    appointments=CardAppointments(settings.app_table), patients=PatientRepository(settings.app_table),
                    clinics=ClinicRepository(settings.app_table),
                    card_requests=CardRequestRepository(settings.app_table),
                    public_base_url=settings.public_base_url, provider=PROVIDER,
                    notifier=AwsNotifier(settings.email_sender), templates=TemplateRepository(settings.app_table))


def client(app: ClinicpayResolver) -> tuple[str | None, str | None]:
    """The caller's IP and user agent, kept with a consent."""
    http = app.current_event.request_context.http
    return http.source_ip or None, header(app, "user-agent")

"""Small HTML pages a patient sees around `/pay/{token}`, in the patient's language.

Every HTML answer gets its security headers (CSP with the hashes of its inline scripts, no framing,
no Referer, nosniff, no-store) from `resolver.harden`, whichever function serves it.
"""

from __future__ import annotations

from datetime import datetime
from html import escape
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from clinicpay.notify.formatting import format_money

if TYPE_CHECKING:
    from clinicpay.usecases.payment_links import Receipt

_PAGE_DESCRIPTIONS = {200: "The page", 303: "Redirect (see Location)", 404: "Page: not found", 409: "Page: nothing to pay",
                      410: "Page: the link expired", 422: "Page: the form needs a correction",
                      503: "Page: try again later (see Retry-After)"}


def html_responses(*statuses: int) -> dict[int, Any]:
    """OpenAPI responses of a route that answers pages: each status as text/html (303: a redirect)."""
    responses: dict[int, Any] = {}
    for status in statuses:
        if status == 303:
            responses[status] = {"description": _PAGE_DESCRIPTIONS[303],
                                 "content": {"text/plain": {"schema": {"type": "string", "maxLength": 0}}}}
        else:
            responses[status] = {"description": _PAGE_DESCRIPTIONS.get(status, "Page"),
                                 "content": {"text/html": {"schema": {"type": "string"}}}}
    return responses

_TEXT: dict[str, dict[str, str]] = {
    "paid": {"es": "Pagado. ¡Gracias!", "en": "Paid — thank you", "fr": "Payé — merci !",
             "uk": "Оплачено — дякуємо!", "nb": "Betalt – takk!"},
    "paid_lead": {"es": "Recibimos tu pago. Tu hora está confirmada.",
                  "en": "We received your payment. Your appointment is confirmed.",
                  "fr": "Nous avons bien reçu votre paiement. Votre rendez-vous est confirmé.",
                  "uk": "Ми отримали вашу оплату. Запис підтверджено.",
                  "nb": "Vi har mottatt betalingen. Timen din er bekreftet."},
    "clinic": {"es": "Clínica", "en": "Clinic", "fr": "Clinique", "uk": "Клініка", "nb": "Klinikk"},
    "service": {"es": "Servicio", "en": "Service", "fr": "Prestation", "uk": "Послуга", "nb": "Tjeneste"},
    "amount_paid": {"es": "Monto pagado", "en": "Amount paid", "fr": "Montant payé", "uk": "Сплачено",
                    "nb": "Betalt beløp"},
    "when": {"es": "Fecha y hora", "en": "Date and time", "fr": "Date et heure", "uk": "Дата й час",
             "nb": "Dato og tid"},
    "reference": {"es": "N.º de reserva", "en": "Booking reference", "fr": "Référence du rendez-vous",
                  "uk": "Номер запису", "nb": "Bestillingsnummer"},
    "provider_reference": {"es": "Referencia del pago ({provider})", "en": "Payment reference ({provider})",
                           "fr": "Référence du paiement ({provider})", "uk": "Номер платежу ({provider})",
                           "nb": "Betalingsreferanse ({provider})"},
    "paid_at": {"es": "Pagado el", "en": "Paid on", "fr": "Payé le", "uk": "Дата оплати", "nb": "Betalt"},
    "receipt_sent": {"es": "Enviamos el comprobante a {email}.", "en": "A receipt was sent to {email}.",
                     "fr": "Un reçu a été envoyé à {email}.", "uk": "Квитанцію надіслано на {email}.",
                     "nb": "Kvitteringen er sendt til {email}."},
    "add_to_calendar": {"es": "Agregar al calendario", "en": "Add to calendar", "fr": "Ajouter à l’agenda",
                        "uk": "Додати в календар", "nb": "Legg til i kalenderen"},
    "back_to_site": {"es": "Volver al sitio de la clínica", "en": "Back to the clinic’s website",
                     "fr": "Retour au site de la clinique", "uk": "Повернутися на сайт клініки",
                     "nb": "Tilbake til klinikkens nettside"},
    "deposit_paid": {"es": "Recibimos tu abono. El saldo se paga en la clínica. ¡Gracias!",
                     "en": "We received your deposit. The balance is paid at the clinic. Thank you!",
                     "fr": "Nous avons reçu votre acompte. Le solde se règle à la clinique. Merci !",
                     "uk": "Ми отримали ваш аванс. Решту сплачують у клініці. Дякуємо!",
                     "nb": "Vi har mottatt depositumet ditt. Resten betales på klinikken. Takk!"},
    "expired": {"es": "Este enlace de pago expiró. Pide uno nuevo a la clínica.",
                "en": "This payment link has expired. Ask the clinic for a new one.",
                "fr": "Ce lien de paiement a expiré. Demandez-en un nouveau à la clinique.",
                "uk": "Термін дії посилання минув. Попросіть у клініки нове.",
                "nb": "Denne betalingslenken har utløpt. Be klinikken om en ny."},
    "not_found": {"es": "No encontramos este enlace de pago.", "en": "We could not find this payment link.",
                  "fr": "Ce lien de paiement est introuvable.", "uk": "Посилання на оплату не знайдено.",
                  "nb": "Vi fant ikke denne betalingslenken."},
    "no_payment": {"es": "Esta hora no tiene un pago pendiente.", "en": "There is nothing to pay for this appointment.",
                   "fr": "Rien à payer pour ce rendez-vous.", "uk": "Цей запис не потребує оплати.",
                   "nb": "Det er ingenting å betale for denne timen."},
    "retry": {"es": "El medio de pago no responde en este momento. Nada se cobró: inténtalo de nuevo en un minuto.",
              "en": "The payment provider is not answering right now. Nothing was charged: try again in a minute.",
              "fr": "Le prestataire de paiement ne répond pas. Rien n'a été débité : réessayez dans une minute.",
              "uk": "Платіжний провайдер зараз не відповідає. Кошти не списано: спробуйте за хвилину.",
              "nb": "Betalingsleverandøren svarer ikke akkurat nå. Ingenting er trukket: prøv igjen om et minutt."},
    "unavailable": {"es": "La clínica aún no activa los pagos en línea.", "en": "The clinic has not set up online payments yet.",
                    "fr": "La clinique n'a pas encore activé le paiement en ligne.",
                    "uk": "Клініка ще не підключила онлайн-оплату.", "nb": "Klinikken har ikke satt opp nettbetaling ennå."},
    "waiting": {"es": "Estamos confirmando tu pago…", "en": "We are confirming your payment…",
                "fr": "Nous confirmons votre paiement…", "uk": "Підтверджуємо вашу оплату…",
                "nb": "Vi bekrefter betalingen din…"},
    "cancelled": {"es": "El pago no se completó; no se cobró nada. Puedes intentarlo de nuevo.",
                  "en": "The payment was not completed; nothing was charged. You can try again.",
                  "fr": "Le paiement n’a pas abouti ; rien n’a été débité. Vous pouvez réessayer.",
                  "uk": "Оплату не завершено, кошти не списано. Можна спробувати ще раз.",
                  "nb": "Betalingen ble ikke fullført, og ingenting er trukket. Du kan prøve igjen."},
    "try_again": {"es": "Intentar de nuevo", "en": "Try again", "fr": "Réessayer", "uk": "Спробувати ще раз",
                  "nb": "Prøv igjen"},
}


def text(key: str, locale: str) -> str:
    return _TEXT[key].get(locale, _TEXT[key]["en"])


_PROVIDER_NAMES = {"fintoc": "Fintoc", "stripe": "Stripe", "monobank": "monobank"}


def local_time(moment: datetime, timezone: str, locale: str, *, named: bool = True) -> str:
    """The clinic's wall clock as the patient's messages say it (CLDR via Babel, notify/formatting.py):
    `viernes, 14 de marzo de 2031, 10:30 (hora de Chile)` with the weekday and the zone named, or,
    not `named` (a time the page already places, e.g. when a payment was made), `14 mar 2031, 10:30`."""
    from clinicpay.notify.formatting import format_time

    if named:
        return format_time(moment, timezone, locale)
    from babel.dates import format_skeleton, get_datetime_format
    from babel.dates import format_time as babel_time

    local = moment.astimezone(ZoneInfo(timezone))
    day = format_skeleton("yMMMd", local, locale=locale)
    clock = babel_time(local, "short", locale=locale)
    return str(get_datetime_format("medium", locale=locale)).replace("{1}", day).replace("{0}", clock)


_RECEIPT_STYLE = """main.receipt-page h1{font-size:1.5rem;color:#14532d}
main.receipt-page h1::before{content:"\\2713";display:inline-block;margin-right:.5rem;width:1.8rem;height:1.8rem;
line-height:1.8rem;text-align:center;border-radius:50%;background:#dcfce7;color:#14532d;font-size:1.1rem}
dl.receipt{margin:1rem 0;border-top:1px solid #dde2ea}
dl.receipt div{display:flex;flex-wrap:wrap;justify-content:space-between;gap:.25rem 1rem;padding:.55rem 0;
border-bottom:1px solid #dde2ea}
dl.receipt dt{color:#4a5466} dl.receipt dd{margin:0;font-weight:600;text-align:right;overflow-wrap:anywhere}
#amount{font-size:1.15rem} .lead{margin:.25rem 0 0}
p.actions{display:flex;flex-wrap:wrap;gap:.75rem} p.actions a.button{margin-top:0;border:1px solid #1f4e79}
@media (max-width:34rem){main.receipt-page{margin:0 auto;border-radius:0;border-width:0 0 1px}}
a.button.secondary{background:#fff;color:#1f4e79;border:1px solid #1f4e79}
#status.sr-only{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}"""


def page(title: str, message: str, locale: str, *, status_id: str, extra: str = "", receipt: bool = False) -> str:
    # The receipt's heading already says "paid": its status line is kept for the poller and screen
    # readers only, so the text is not shown twice.
    status_class = ' class="sr-only"' if receipt else ""
    main_class = ' class="receipt-page"' if receipt else ""
    style = _RECEIPT_STYLE if receipt else ""
    return f"""<!doctype html>
<html lang="{escape(locale)}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{escape(title)}</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}}
main{{max-width:32rem;margin:12vh auto;padding:1.5rem;background:#fff;border-radius:12px;border:1px solid #dde2ea}}
h1{{font-size:1.2rem;margin:0 0 .5rem}} a.button{{display:inline-block;margin-top:1rem;padding:.6rem 1rem;
background:#1f4e79;color:#fff;border-radius:8px;text-decoration:none}}
{style}</style></head>
<body><main{main_class}><h1>{escape(title)}</h1><p id="status"{status_class} data-status="{escape(status_id)}" role="status">{escape(message)}</p>
{extra}</main></body></html>"""


def receipt_page(token: str, receipt: Receipt, locale: str) -> str:
    """The paid page: a receipt the patient can keep (or screenshot) and come back to from the link."""
    t = lambda key: escape(text(key, locale))  # noqa: E731
    rows = [(t("clinic"), escape(receipt.clinic_name)), (t("service"), escape(receipt.service_in(locale))),
            (t("amount_paid"), f'<span id="amount">{escape(format_money(receipt.amount, locale))}</span>'),
            (t("when"), f'<time id="starts-at" datetime="{receipt.starts_at.isoformat()}">'
                        f"{escape(local_time(receipt.starts_at, receipt.timezone, locale))}</time>"),
            (t("reference"), f'<span id="reference">{escape(receipt.appointment_id)}</span>')]
    if receipt.provider and receipt.provider_reference:
        label = text("provider_reference", locale).format(
            provider=_PROVIDER_NAMES.get(receipt.provider, receipt.provider))
        rows.append((escape(label), f'<span id="provider-reference">{escape(receipt.provider_reference)}</span>'))
    if receipt.paid_at:
        rows.append((t("paid_at"), f'<time id="paid-at" datetime="{receipt.paid_at.isoformat()}">'
                                   f"{escape(local_time(receipt.paid_at, receipt.timezone, locale, named=False))}</time>"))
    details = "".join(f"<div><dt>{label}</dt><dd>{value}</dd></div>" for label, value in rows)
    sent = ""
    if receipt.receipt_email:
        sent = (f'<p id="receipt-sent">'
                f"{escape(text('receipt_sent', locale).format(email=receipt.receipt_email))}</p>")
    actions = (f'<a class="button" id="calendar" href="/pay/{escape(token)}/calendar.ics" download>'
               f"{t('add_to_calendar')}</a>")
    if receipt.website:
        actions += (f'<a class="button secondary" id="website" href="{escape(receipt.website)}" rel="noopener">'
                    f"{t('back_to_site')}</a>")
    body = f"""<p class="lead">{t("paid_lead")}</p>
<dl class="receipt">{details}</dl>
{sent}<p class="actions">{actions}</p>"""
    return page(text("paid", locale), text("paid", locale), locale, status_id="paid", extra=body, receipt=True)


def result_page(token: str, locale: str, clinic_name: str, status: str, cancelled: bool,
                deposit_done: bool = False) -> str:
    """The page the provider sends the patient back to when it is not yet paid: it polls until the
    webhook has landed, then reloads into the receipt. A patient who left the provider's checkout
    without paying (the cancel URL) is told so, with a way to try again. `deposit_done`: the link
    asked a deposit, so `deposit_paid` is the end of this payment."""
    if status == "paid":  # the handlers show the receipt instead; kept for any other caller
        return page(clinic_name, text("paid", locale), locale, status_id="paid")
    if status == "deposit_paid" and deposit_done:
        return page(clinic_name, text("deposit_paid", locale), locale, status_id="deposit_paid")
    # A pending payment is not "nothing was charged"; a balance link left unpaid is.
    cancelled = cancelled and status in ("unpaid", "deposit_paid")
    message = text("cancelled", locale) if cancelled else text("waiting", locale)
    retry = f'<a class="button" href="/pay/{escape(token)}">{escape(text("try_again", locale))}</a>' if cancelled else ""
    deposit_text = text("deposit_paid", locale)
    deposit_check = "d.payment_status==='deposit_paid'" if deposit_done else "false"
    script = f"""<script>
(function poll(n){{fetch('/v1/public/payments/{escape(token)}').then(r=>r.json()).then(d=>{{
 var s=document.getElementById('status');
 if(d.payment_status==='paid'){{location.replace('/pay/{escape(token)}/result');}}
 else if({deposit_check}){{s.dataset.status='deposit_paid';s.textContent={deposit_text!r};}}
 else if(n<120) setTimeout(function(){{poll(n+1)}},1000);}})
 .catch(function(){{if(n<120) setTimeout(function(){{poll(n+1)}},2000)}});}})(0);
</script>"""
    return page(clinic_name, message, locale, status_id="cancelled" if cancelled else "waiting",
                extra=retry + script)

"""Small HTML pages a patient sees around `/pay/{token}`, in the patient's language.

Every HTML answer gets its security headers (CSP with the hashes of its inline scripts, no framing,
no Referer, nosniff, no-store) from `resolver.harden`, whichever function serves it.
"""

from __future__ import annotations

from html import escape
from typing import Any

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
    "paid": {"es": "Esta hora ya está pagada. ¡Gracias!", "en": "This appointment is paid. Thank you!",
             "fr": "Ce rendez-vous est payé. Merci !", "uk": "Цей запис оплачено. Дякуємо!",
             "nb": "Denne timen er betalt. Takk!"},
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
                   "fr": "Rien à payer pour ce rendez-vous.", "uk": "За цей запис нічого сплачувати.",
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
    "cancelled": {"es": "El pago no se completó. Puedes intentarlo de nuevo.",
                  "en": "The payment was not completed. You can try again.",
                  "fr": "Le paiement n'a pas abouti. Vous pouvez réessayer.",
                  "uk": "Оплату не завершено. Можна спробувати ще раз.",
                  "nb": "Betalingen ble ikke fullført. Du kan prøve igjen."},
    "try_again": {"es": "Intentar de nuevo", "en": "Try again", "fr": "Réessayer", "uk": "Спробувати ще раз",
                  "nb": "Prøv igjen"},
}


def text(key: str, locale: str) -> str:
    return _TEXT[key].get(locale, _TEXT[key]["en"])


def page(title: str, message: str, locale: str, *, status_id: str, extra: str = "") -> str:
    return f"""<!doctype html>
<html lang="{escape(locale)}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{escape(title)}</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}}
main{{max-width:32rem;margin:12vh auto;padding:1.5rem;background:#fff;border-radius:12px;border:1px solid #dde2ea}}
h1{{font-size:1.2rem;margin:0 0 .5rem}} a.button{{display:inline-block;margin-top:1rem;padding:.6rem 1rem;
background:#1f4e79;color:#fff;border-radius:8px;text-decoration:none}}</style></head>
<body><main><h1>{escape(title)}</h1><p id="status" data-status="{escape(status_id)}" role="status">{escape(message)}</p>
{extra}</main></body></html>"""


def result_page(token: str, locale: str, clinic_name: str, status: str, cancelled: bool,
                deposit_done: bool = False) -> str:
    """The page the provider sends the patient back to; it polls until the webhook has landed.
    `deposit_done`: the link asked a deposit, so `deposit_paid` is the end of this payment."""
    if status == "paid":
        return page(clinic_name, text("paid", locale), locale, status_id="paid")
    if status == "deposit_paid" and deposit_done:
        return page(clinic_name, text("deposit_paid", locale), locale, status_id="deposit_paid")
    message = text("cancelled", locale) if cancelled else text("waiting", locale)
    retry = f'<a class="button" href="/pay/{escape(token)}">{escape(text("try_again", locale))}</a>' if cancelled else ""
    paid_text = text("paid", locale)
    deposit_text = text("deposit_paid", locale)
    deposit_check = "d.payment_status==='deposit_paid'" if deposit_done else "false"
    script = f"""<script>
(function poll(n){{fetch('/v1/public/payments/{escape(token)}').then(r=>r.json()).then(d=>{{
 var s=document.getElementById('status');
 if(d.payment_status==='paid'){{s.dataset.status='paid';s.textContent={paid_text!r};}}
 else if({deposit_check}){{s.dataset.status='deposit_paid';s.textContent={deposit_text!r};}}
 else if(n<120) setTimeout(function(){{poll(n+1)}},1000);}})
 .catch(function(){{if(n<120) setTimeout(function(){{poll(n+1)}},2000)}});}})(0);
</script>"""
    return page(clinic_name, message, locale, status_id="cancelled" if cancelled else "waiting",
                extra=retry + script)

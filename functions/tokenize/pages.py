"""The pages a patient sees around saving a card, in es/en/fr/uk/nb: our consent page (before the
processor's hosted card page), its "done" page, and the page after completing an authentication.

Plain HTML, no script (`html` sends a page): readable on a phone, usable by keyboard, labelled for screen readers.
"""

from __future__ import annotations

from html import escape
from typing import Any

from aws_lambda_powertools.event_handler import Response

_TEXT: dict[str, dict[str, str]] = {
    "title": {"es": "Guardar una tarjeta", "en": "Save a card", "fr": "Enregistrer une carte",
              "uk": "Збереження картки", "nb": "Lagre et kort"},
    "intro": {"es": "$clinic te pide guardar una tarjeta para tus atenciones. Lee y acepta lo siguiente:",
              "en": "$clinic asks you to save a card for your appointments. Please read and accept the following:",
              "fr": "$clinic vous demande d'enregistrer une carte pour vos rendez-vous. Lisez et acceptez ce qui suit :",
              "uk": "$clinic просить зберегти картку для ваших візитів. Прочитайте та погодьтеся з наведеним нижче:",
              "nb": "$clinic ber deg lagre et kort for timene dine. Les og godta følgende:"},
    "version": {"es": "Versión del texto", "en": "Text version", "fr": "Version du texte", "uk": "Версія тексту",
                "nb": "Tekstversjon"},
    "agree": {"es": "Acepto y autorizo estos cobros", "en": "I agree and authorise these charges",
              "fr": "J'accepte et j'autorise ces débits", "uk": "Я погоджуюся і дозволяю ці списання",
              "nb": "Jeg godtar og gir tillatelse til disse belastningene"},
    "continue": {"es": "Continuar", "en": "Continue", "fr": "Continuer", "uk": "Продовжити", "nb": "Fortsett"},
    "where": {"es": "Ingresarás la tarjeta en la página segura del procesador de pagos. La clínica nunca ve el "
                    "número de tu tarjeta.",
              "en": "You will enter your card on the payment processor's secure page. The clinic never sees your "
                    "card number.",
              "fr": "Vous saisirez votre carte sur la page sécurisée du prestataire de paiement. La clinique ne voit "
                    "jamais le numéro de votre carte.",
              "uk": "Картку ви введете на захищеній сторінці платіжного провайдера. Клініка ніколи не бачить номер "
                    "вашої картки.",
              "nb": "Du legger inn kortet på betalingsleverandørens sikre side. Klinikken ser aldri kortnummeret ditt."},
    "consent_required": {"es": "Marca la casilla para continuar.", "en": "Tick the box to continue.",
                         "fr": "Cochez la case pour continuer.", "uk": "Позначте прапорець, щоб продовжити.",
                         "nb": "Kryss av i boksen for å fortsette."},
    "consent_text_changed": {"es": "El texto cambió. Léelo de nuevo y confirma.",
                             "en": "The text has changed. Please read it again and confirm.",
                             "fr": "Le texte a changé. Relisez-le et confirmez.",
                             "uk": "Текст змінився. Прочитайте його ще раз і підтвердьте.",
                             "nb": "Teksten er endret. Les den på nytt og bekreft."},
    "completed": {"es": "Tu tarjeta ya está guardada. ¡Gracias!", "en": "Your card is saved. Thank you!",
                  "fr": "Votre carte est enregistrée. Merci !", "uk": "Вашу картку збережено. Дякуємо!",
                  "nb": "Kortet ditt er lagret. Takk!"},
    "booking_confirmed": {"es": "Tu hora está confirmada:", "en": "Your booking is confirmed:",
                          "fr": "Votre rendez-vous est confirmé :", "uk": "Ваш запис підтверджено:",
                          "nb": "Timen din er bekreftet:"},
    "booking_to_confirm": {"es": "La tarjeta confirma tu hora:", "en": "The card confirms your booking:",
                           "fr": "La carte confirme votre rendez-vous :", "uk": "Картка підтверджує ваш запис:",
                           "nb": "Kortet bekrefter timen din:"},
    "no_show_fee": {"es": "Si no asistes sin avisar, $clinic puede cobrar a esta tarjeta un cargo por inasistencia de "
                          "$fee.",
                    "en": "If you miss the appointment without notice, $clinic may charge this card a no-show fee of "
                          "$fee.",
                    "fr": "Si vous ne vous présentez pas sans prévenir, $clinic peut débiter de cette carte des frais "
                          "de rendez-vous non honoré de $fee.",
                    "uk": "Якщо ви не прийдете без попередження, клініка може списати з цієї картки плату за неявку: "
                          "$fee.",
                    "nb": "Hvis du uteblir uten å gi beskjed, kan $clinic trekke et gebyr for uteblitt time på $fee "
                          "fra dette kortet."},
    "booking_for": {"es": "La tarjeta quedó asociada a tu hora:", "en": "The card is for your booking:",
                    "fr": "La carte est liée à votre rendez-vous :", "uk": "Картку привʼязано до вашого запису:",
                    "nb": "Kortet gjelder timen din:"},
    "setup_cancelled": {"es": "Saliste de la página de la tarjeta sin guardarla: no se guardó nada. Puedes intentarlo "
                                "de nuevo.",
                          "en": "You left the card page before saving a card: nothing was saved. You can try again.",
                          "fr": "Vous avez quitté la page de la carte sans l’enregistrer : rien n’a été enregistré. "
                                "Vous pouvez réessayer.",
                          "uk": "Ви вийшли зі сторінки картки, не зберігши її: нічого не збережено. Можна спробувати "
                                "ще раз.",
                          "nb": "Du forlot kortsiden før kortet ble lagret, så ingenting er lagret. Du kan prøve igjen."},
    "saving": {"es": "Estamos guardando tu tarjeta…", "en": "We are saving your card…",
               "fr": "Nous enregistrons votre carte…", "uk": "Зберігаємо вашу картку…",
               "nb": "Vi lagrer kortet ditt…"},
    "expired": {"es": "Este enlace expiró. Pide uno nuevo a la clínica.",
                "en": "This link has expired. Ask the clinic for a new one.",
                "fr": "Ce lien a expiré. Demandez-en un nouveau à la clinique.",
                "uk": "Термін дії посилання минув. Попросіть у клініки нове.",
                "nb": "Denne lenken har utløpt. Be klinikken om en ny."},
    "not_found": {"es": "No encontramos este enlace.", "en": "We could not find this link.",
                  "fr": "Ce lien est introuvable.", "uk": "Посилання не знайдено.", "nb": "Vi fant ikke denne lenken."},
    "retry": {"es": "El procesador de pagos no responde. No se guardó nada: inténtalo de nuevo en un minuto.",
              "en": "The payment processor is not answering. Nothing was saved: try again in a minute.",
              "fr": "Le prestataire de paiement ne répond pas. Rien n'a été enregistré : réessayez dans une minute.",
              "uk": "Платіжний провайдер не відповідає. Нічого не збережено: спробуйте за хвилину.",
              "nb": "Betalingsleverandøren svarer ikke. Ingenting er lagret: prøv igjen om et minutt."},
    "unavailable": {"es": "La clínica aún no activa el guardado de tarjetas.",
                    "en": "The clinic has not set up saving cards yet.",
                    "fr": "La clinique n'a pas encore activé l'enregistrement des cartes.",
                    "uk": "Клініка ще не підключила збереження карток.",
                    "nb": "Klinikken har ikke satt opp lagring av kort ennå."},
    "authenticated": {"es": "Listo, confirmaste el pago. ¡Gracias!", "en": "Done: you confirmed the payment. Thank you!",
                      "fr": "C'est fait : vous avez confirmé le paiement. Merci !",
                      "uk": "Готово: ви підтвердили оплату. Дякуємо!", "nb": "Ferdig: du bekreftet betalingen. Takk!"},
    "authentication_failed": {"es": "El pago no se confirmó. La clínica se pondrá en contacto contigo.",
                              "en": "The payment was not confirmed. The clinic will be in touch.",
                              "fr": "Le paiement n'a pas été confirmé. La clinique vous recontactera.",
                              "uk": "Оплату не підтверджено. Клініка звʼяжеться з вами.",
                              "nb": "Betalingen ble ikke bekreftet. Klinikken tar kontakt."},
    "try_again": {"es": "Intentar de nuevo", "en": "Try again", "fr": "Réessayer", "uk": "Спробувати ще раз",
                  "nb": "Prøv igjen"},
}

LOCALES = ("es", "en", "fr", "uk", "nb")


def html(status: int, body: str, headers: dict[str, str] | None = None) -> Response[Any]:
    return Response(status, "text/html; charset=utf-8", body, headers=headers)  # security headers: resolver.harden


def text(key: str, locale: str) -> str:
    return _TEXT[key].get(locale, _TEXT[key]["en"])


_STYLE = """body{font:16px/1.5 system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
main{max-width:34rem;margin:6vh auto;padding:1.5rem;background:#fff;border-radius:12px;border:1px solid #dde2ea}
h1{font-size:1.3rem;margin:0 0 .75rem}.consent{background:#f3f6fa;border-left:4px solid #1f4e79;padding:.75rem 1rem}
.muted{color:#5a6475;font-size:.9rem}.check{display:flex;gap:.6rem;align-items:flex-start;margin:1rem 0}
.check input{width:1.4rem;height:1.4rem;margin-top:.1rem}button,a.button{display:inline-block;font-size:1rem;
padding:.75rem 1.25rem;border:0;border-radius:8px;background:#1f4e79;color:#fff;text-decoration:none;cursor:pointer;
min-height:44px}button:focus-visible,input:focus-visible,a:focus-visible{outline:3px solid #f0b429;outline-offset:2px}
.error{color:#a40e26;font-weight:600}
.notice{padding:.6rem .8rem;border-radius:8px;background:#fff7e6;border:1px solid #d9a23a}
@media (max-width:30rem){main{margin:0;border-radius:0;border:0}}"""


def _document(title: str, body: str, locale: str, *, refresh: int | None = None) -> str:
    meta = f'<meta http-equiv="refresh" content="{refresh}">' if refresh else ""
    return (f'<!doctype html>\n<html lang="{escape(locale)}"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">{meta}'
            f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body><main>{body}</main></body></html>")


def consent_page(*, clinic_name: str, locale: str, consent_text: str, text_version: str,
                 error_key: str | None = None, notice_key: str | None = None, booking: str = "") -> str:
    """`booking`: the booking_summary (and no_show_line) of the online booking the card is for."""
    error = (f'<p class="error" role="alert" id="error">{escape(text(error_key, locale))}</p>'
             if error_key else "")
    if notice_key and not error_key:
        error = f'<p class="notice" role="status" id="notice">{escape(text(notice_key, locale))}</p>'

    intro = escape(text("intro", locale).replace("$clinic", clinic_name))
    invalid = ' aria-invalid="true"' if error_key == "consent_required" else ""
    body = (f'<h1>{escape(text("title", locale))}: {escape(clinic_name)}</h1>'
            f"<p>{intro}</p>{booking}{error}"
            f'<div class="consent" id="consent-text"><p>{escape(consent_text)}</p>'
            f'<p class="muted">{escape(text("version", locale))}: <span id="text-version">{escape(text_version)}'
            "</span></p></div>"
            '<form method="post">'
            f'<input type="hidden" name="text_version" value="{escape(text_version)}">'
            f'<input type="hidden" name="lang" value="{escape(locale)}">'
            '<div class="check"><input type="checkbox" id="consent" name="consent" value="yes" required '
            f'aria-describedby="consent-text"{invalid}>'
            f'<label for="consent">{escape(text("agree", locale))}</label></div>'
            f'<button type="submit" id="continue">{escape(text("continue", locale))}</button></form>'
            f'<p class="muted">{escape(text("where", locale))}</p>')
    return _document(text("title", locale), body, locale)


def message_page(title: str, key: str, locale: str, *, extra: str = "", refresh: int | None = None) -> str:
    body = (f"<h1>{escape(title)}</h1>"
            f'<p id="status" data-status="{escape(key)}" role="status">{escape(text(key, locale))}</p>{extra}')
    return _document(title, body, locale, refresh=refresh)


def booking_summary(locale: str, *, service: str, starts_at: str, confirmed: bool, to_confirm: bool = False) -> str:
    """The booking a saved card was asked for: what it is, when (the clinic's time, zone named).
    `to_confirm`: on the consent page, before the card is saved."""
    lead = text("booking_to_confirm" if to_confirm else "booking_confirmed" if confirmed else "booking_for", locale)
    return (f'<p id="booking" data-confirmed="{str(confirmed).lower()}">{escape(lead)} '
            f"<strong>{escape(service)}</strong>, <strong>{escape(starts_at)}</strong></p>")


def no_show_line(locale: str, *, clinic_name: str, fee: str) -> str:
    """The no-show fee the patient agrees may be charged to the card, named before they agree."""
    line = text("no_show_fee", locale).replace("$clinic", clinic_name).replace("$fee", fee)
    return f'<p id="no-show-fee">{escape(line)}</p>'


def retry_link(url: str, locale: str) -> str:
    return f'<a class="button" href="{escape(url)}">{escape(text("try_again", locale))}</a>'

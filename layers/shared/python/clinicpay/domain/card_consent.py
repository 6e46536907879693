"""The consent text a patient agrees to before a card is kept on file, per locale, and its version.

What it must cover (reference/providers.md 4.2, Stripe's save-and-reuse note): agreement to charges
the clinic starts without the patient present, when they happen, how their amount is worked out,
and the no-show and late-cancellation fee policy. Change the words -> change the version: stored
consents name the version they agreed to, so old wording stays provable.
"""

from __future__ import annotations

from string import Template

CONSENT_TEXT_VERSION = "cards-2026-02"

_TEXTS: dict[str, str] = {
    "es": ("Autorizo a $clinic_name a guardar mi tarjeta con su procesador de pagos y a cobrar en ella, sin que yo "
           "esté presente, el precio de mis atenciones una vez realizadas y, si no asisto o cancelo fuera de "
           "plazo, el cargo por inasistencia indicado en su lista de precios. Cada cobro corresponde a una "
           "atención o inasistencia concreta y me será informado. Puedo pedir que se elimine la tarjeta en "
           "cualquier momento."),
    "en": ("I authorise $clinic_name to keep my card with its payment processor and to charge it, without me "
           "being present, the price of my appointments once they have taken place and, if I do not attend or "
           "cancel too late, the no-show fee shown in its price list. Each charge is for one appointment or "
           "missed appointment and I will be told about it. I can ask for the card to be removed at any time."),
    "fr": ("J'autorise $clinic_name à conserver ma carte auprès de son prestataire de paiement et à la débiter, "
           "sans ma présence, du prix de mes rendez-vous une fois effectués et, si je ne me présente pas ou si "
           "j'annule trop tard, des frais d'absence indiqués dans sa grille tarifaire. Chaque débit correspond à "
           "un rendez-vous ou à une absence précis et m'est notifié. Je peux demander la suppression de la carte "
           "à tout moment."),
    "uk": ("Я дозволяю клініці ($clinic_name) зберігати мою картку в її платіжного провайдера і списувати з неї без моєї "
           "присутності вартість моїх візитів після того, як вони відбулися, а якщо я не прийду або скасую "
           "запис надто пізно, — плату за неявку, зазначену в прайс-листі клініки. Кожне списання стосується "
           "конкретного візиту чи неявки, і мене про нього повідомлять. Я можу будь-коли попросити видалити "
           "картку."),
    "nb": ("Jeg gir $clinic_name tillatelse til å lagre kortet mitt hos betalingsleverandøren og å belaste det, "
           "uten at jeg er til stede, med prisen for timene mine etter at de er gjennomført og, hvis jeg ikke "
           "møter eller avbestiller for sent, gebyret for uteblivelse som står i prislisten. Hver belastning "
           "gjelder én bestemt time eller uteblivelse, og jeg får beskjed om den. Jeg kan når som helst be om "
           "at kortet slettes."),
}

LOCALES = tuple(_TEXTS)


def consent_text(locale: str, clinic_name: str) -> str:
    return Template(_TEXTS.get(locale) or _TEXTS["en"]).safe_substitute(clinic_name=clinic_name)

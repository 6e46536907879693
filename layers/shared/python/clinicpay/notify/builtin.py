"""Built-in message texts, the last fallback after the clinic's and the organization's own.

Placeholders use `$name` (string.Template): safe with admin-written text, unlike str.format.
`$payment_line` and `$card_line` are whole sentences or empty, so a template reads well either way.
"""

from __future__ import annotations

from typing import NamedTuple


class Text(NamedTuple):
    subject: str
    body: str


# kind -> locale -> (email subject, email body, sms body)
_TEXTS: dict[str, dict[str, tuple[str, str, str]]] = {
    "appointment_created": {
        "es": ("Tu hora en $clinic_name", "Hola $patient_name,\n\nTu hora de $service_name en $clinic_name quedó agendada para el $starts_at.\n$payment_line\n\n$change_line\n\n$clinic_name\n$clinic_contact", "$clinic_name: hora de $service_name el $starts_at. $payment_line"),
        "en": ("Your appointment at $clinic_name", "Hello $patient_name,\n\nYour $service_name appointment at $clinic_name is booked for $starts_at.\n$payment_line\n\n$change_line\n\n$clinic_name\n$clinic_contact", "$clinic_name: $service_name on $starts_at. $payment_line"),
        "fr": ("Votre rendez-vous chez $clinic_name", "Bonjour $patient_name,\n\nVotre rendez-vous $service_name chez $clinic_name est fixé au $starts_at.\n$payment_line\n\n$change_line\n\n$clinic_name\n$clinic_contact", "$clinic_name : $service_name le $starts_at. $payment_line"),
        "uk": ("$clinic_name: ваш запис", "Вітаємо, $patient_name!\n\nВас записано.\nПослуга: $service_name\nДата й час: $starts_at\n$payment_line\n\n$change_line\n\n$clinic_name\n$clinic_contact", "$clinic_name: вас записано. $service_name, $starts_at. $payment_line"),
        "nb": ("Din time hos $clinic_name", "Hei $patient_name,\n\nTimen din for $service_name hos $clinic_name er bestilt til $starts_at.\n$payment_line\n\n$change_line\n\n$clinic_name\n$clinic_contact", "$clinic_name: timen din for $service_name er bestilt til $starts_at. $payment_line"),
    },
    "appointment_reminder": {
        "es": ("Recordatorio: tu hora en $clinic_name", "Hola $patient_name,\n\nTe recordamos tu hora de $service_name el $starts_at.\n$payment_line\n\n$change_line\n\n$clinic_name\n$clinic_contact", "Recordatorio $clinic_name: $service_name el $starts_at. $payment_line"),
        "en": ("Reminder: your appointment at $clinic_name", "Hello $patient_name,\n\nA reminder of your $service_name appointment on $starts_at.\n$payment_line\n\n$change_line\n\n$clinic_name\n$clinic_contact", "Reminder from $clinic_name: $service_name on $starts_at. $payment_line"),
        "fr": ("Rappel : votre rendez-vous chez $clinic_name", "Bonjour $patient_name,\n\nNous vous rappelons votre rendez-vous $service_name le $starts_at.\n$payment_line\n\n$change_line\n\n$clinic_name\n$clinic_contact", "Rappel $clinic_name : $service_name le $starts_at. $payment_line"),
        "uk": ("$clinic_name: нагадування про запис", "Вітаємо, $patient_name!\n\nНагадуємо про ваш запис: $service_name, $starts_at.\n$payment_line\n\n$change_line\n\n$clinic_name\n$clinic_contact", "$clinic_name нагадує про запис: $service_name, $starts_at. $payment_line"),
        "nb": ("Påminnelse: din time hos $clinic_name", "Hei $patient_name,\n\nPåminnelse om timen din for $service_name $starts_at.\n$payment_line\n\n$change_line\n\n$clinic_name\n$clinic_contact", "Påminnelse fra $clinic_name: $service_name $starts_at. $payment_line"),
    },
    "payment_link": {
        "es": ("Paga tu hora en $clinic_name", "Hola $patient_name,\n\nPuedes pagar tu hora de $service_name del $starts_at ($amount) aquí:\n$payment_link\n\n$clinic_name\n$clinic_contact", "$clinic_name: paga tu hora ($amount): $payment_link"),
        "en": ("Pay for your appointment at $clinic_name", "Hello $patient_name,\n\nYou can pay for your $service_name appointment on $starts_at ($amount) here:\n$payment_link\n\n$clinic_name\n$clinic_contact", "$clinic_name: pay for your appointment ($amount): $payment_link"),
        "fr": ("Payez votre rendez-vous chez $clinic_name", "Bonjour $patient_name,\n\nVous pouvez payer votre rendez-vous $service_name du $starts_at ($amount) ici :\n$payment_link\n\n$clinic_name\n$clinic_contact", "$clinic_name : payez votre rendez-vous ($amount) : $payment_link"),
        "uk": ("$clinic_name: оплатіть запис", "Вітаємо, $patient_name!\n\nОплатити запис ($service_name, $starts_at, $amount) можна тут:\n$payment_link\n\n$clinic_name\n$clinic_contact", "$clinic_name: оплата запису ($amount): $payment_link"),
        "nb": ("Betal for timen din hos $clinic_name", "Hei $patient_name,\n\nDu kan betale for timen din for $service_name $starts_at ($amount) her:\n$payment_link\n\n$clinic_name\n$clinic_contact", "$clinic_name: betal for timen ($amount): $payment_link"),
    },
    "card_request": {
        "es": ("$clinic_name te pide guardar una tarjeta", "Hola $patient_name,\n\n$clinic_name te pide registrar una tarjeta para tus atenciones. Se ingresa en la página segura del procesador de pagos:\n$card_link\n\n$clinic_name\n$clinic_contact", "$clinic_name: registra tu tarjeta en $card_link"),
        "en": ("$clinic_name asks you to save a card", "Hello $patient_name,\n\n$clinic_name asks you to save a card for your appointments. You enter it on the payment processor's secure page:\n$card_link\n\n$clinic_name\n$clinic_contact", "$clinic_name: save your card at $card_link"),
        "fr": ("$clinic_name vous demande d'enregistrer une carte", "Bonjour $patient_name,\n\n$clinic_name vous demande d'enregistrer une carte pour vos rendez-vous. Vous la saisissez sur la page sécurisée du prestataire de paiement :\n$card_link\n\n$clinic_name\n$clinic_contact", "$clinic_name : enregistrez votre carte sur $card_link"),
        "uk": ("$clinic_name просить зберегти картку", "Вітаємо, $patient_name!\n\n$clinic_name просить зберегти картку для ваших візитів. Картку вводять на захищеній сторінці платіжного провайдера:\n$card_link\n\n$clinic_name\n$clinic_contact", "$clinic_name: збережіть картку: $card_link"),
        "nb": ("$clinic_name ber deg lagre et kort", "Hei $patient_name,\n\n$clinic_name ber deg lagre et kort for timene dine. Du legger det inn på betalingsleverandørens sikre side:\n$card_link\n\n$clinic_name\n$clinic_contact", "$clinic_name: lagre kortet ditt på $card_link"),
    },
    # A card-required online booking whose patient left the card step: sent once by the reminders job.
    "card_booking_reminder": {
        "es": ("Tu hora en $clinic_name espera tu tarjeta", "Hola $patient_name,\n\nTu hora de $service_name del $starts_at se confirma cuando registres una tarjeta. Puedes hacerlo aquí:\n$card_link\n\n$clinic_name\n$clinic_contact", "$clinic_name: para confirmar tu hora del $starts_at, registra tu tarjeta en $card_link"),
        "en": ("Your appointment at $clinic_name is waiting for your card", "Hello $patient_name,\n\nYour $service_name appointment on $starts_at will be confirmed once you save a card. You can do it here:\n$card_link\n\n$clinic_name\n$clinic_contact", "$clinic_name: to confirm your appointment on $starts_at, save your card at $card_link"),
        "fr": ("Votre rendez-vous chez $clinic_name attend votre carte", "Bonjour $patient_name,\n\nVotre rendez-vous $service_name du $starts_at sera confirmé dès que vous aurez enregistré une carte. Vous pouvez le faire ici :\n$card_link\n\n$clinic_name\n$clinic_contact", "$clinic_name : pour confirmer votre rendez-vous du $starts_at, enregistrez votre carte sur $card_link"),
        "uk": ("$clinic_name: запис чекає на вашу картку", "Вітаємо, $patient_name!\n\nВаш запис буде підтверджено, щойно ви збережете картку.\nПослуга: $service_name\nДата й час: $starts_at\n\nЗберегти картку можна тут:\n$card_link\n\n$clinic_name\n$clinic_contact", "$clinic_name: щоб підтвердити запис ($starts_at), збережіть картку: $card_link"),
        "nb": ("Timen din hos $clinic_name venter på kortet ditt", "Hei $patient_name,\n\nTimen din for $service_name $starts_at blir bekreftet når du har lagret et kort. Det kan du gjøre her:\n$card_link\n\n$clinic_name\n$clinic_contact", "$clinic_name: Lagre kortet ditt på $card_link for å bekrefte timen $starts_at."),
    },
    "payment_receipt": {
        "es": ("Recibimos tu pago en $clinic_name", "Hola $patient_name,\n\nRecibimos tu pago de $amount por $service_name del $starts_at. Tu hora queda confirmada. ¡Gracias!\n\n$references\n\n$receipt_line\n$change_line\n\n$clinic_name\n$clinic_contact", "$clinic_name: recibimos tu pago de $amount. ¡Gracias!"),
        "en": ("Payment received by $clinic_name", "Hello $patient_name,\n\nWe received your payment of $amount for $service_name on $starts_at. Your appointment is confirmed. Thank you!\n\n$references\n\n$receipt_line\n$change_line\n\n$clinic_name\n$clinic_contact", "$clinic_name: we received your payment of $amount. Thank you!"),
        "fr": ("Paiement reçu par $clinic_name", "Bonjour $patient_name,\n\nNous avons reçu votre paiement de $amount pour $service_name du $starts_at. Votre rendez-vous est confirmé. Merci !\n\n$references\n\n$receipt_line\n$change_line\n\n$clinic_name\n$clinic_contact", "$clinic_name : paiement de $amount reçu. Merci !"),
        "uk": ("$clinic_name: оплату отримано", "Вітаємо, $patient_name!\n\nМи отримали вашу оплату $amount. Ваш запис підтверджено: $service_name, $starts_at. Дякуємо!\n\n$references\n\n$receipt_line\n$change_line\n\n$clinic_name\n$clinic_contact", "$clinic_name: оплату $amount отримано. Дякуємо!"),
        "nb": ("Betaling mottatt av $clinic_name", "Hei $patient_name,\n\nVi har mottatt betalingen din på $amount for $service_name $starts_at. Timen din er bekreftet. Takk!\n\n$references\n\n$receipt_line\n$change_line\n\n$clinic_name\n$clinic_contact", "$clinic_name: betaling på $amount mottatt. Takk!"),
    },
    "refund_issued": {
        "es": ("$clinic_name te devolvió $amount", "Hola $patient_name,\n\n$clinic_name te devolvió $amount de tu pago. Según tu banco, puede tardar unos días en verse en tu cuenta.\n\n$clinic_name\n$clinic_contact", "$clinic_name: te devolvimos $amount. Puede tardar unos días en verse en tu cuenta."),
        "en": ("$clinic_name refunded $amount", "Hello $patient_name,\n\n$clinic_name refunded $amount of your payment. Depending on your bank, it may take a few days to show in your account.\n\n$clinic_name\n$clinic_contact", "$clinic_name: we refunded $amount. It may take a few days to show in your account."),
        "fr": ("$clinic_name vous a remboursé $amount", "Bonjour $patient_name,\n\n$clinic_name vous a remboursé $amount sur votre paiement. Selon votre banque, il peut s'écouler quelques jours avant qu'il n'apparaisse sur votre compte.\n\n$clinic_name\n$clinic_contact", "$clinic_name : remboursement de $amount effectué. Il peut mettre quelques jours à apparaître sur votre compte."),
        "uk": ("$clinic_name: вам повернуто $amount", "Вітаємо, $patient_name!\n\nВам повернуто $amount з вашої оплати. Залежно від банку кошти можуть надійти за кілька днів.\n\n$clinic_name\n$clinic_contact", "$clinic_name: повернули вам $amount. Кошти можуть надійти за кілька днів."),
        "nb": ("$clinic_name har refundert $amount", "Hei $patient_name,\n\n$clinic_name har refundert $amount av betalingen din. Avhengig av banken kan det ta noen dager før beløpet vises på kontoen din.\n\n$clinic_name\n$clinic_contact", "$clinic_name: vi har refundert $amount. Det kan ta noen dager før det vises på kontoen din."),
    },
    # $card is the brand and last four ("Visa ····4242"); $charge_reason says why (CHARGE_REASONS);
    # $charge_reference is our charge id, which the clinic's staff see too.
    "card_charged": {
        "es": ("$clinic_name cobró $amount a tu tarjeta", "Hola $patient_name,\n\n$clinic_name cobró $amount a tu tarjeta $card.\n\nConcepto: $charge_reason\nReferencia del cobro: $charge_reference\n\nSi tienes dudas sobre este cobro, escríbenos o llámanos.\n\n$clinic_name\n$clinic_contact", "$clinic_name: cobramos $amount a tu tarjeta $card ($charge_reason). Ref. $charge_reference"),
        "en": ("$clinic_name charged $amount to your card", "Hello $patient_name,\n\n$clinic_name charged $amount to your card $card.\n\nFor: $charge_reason\nCharge reference: $charge_reference\n\nIf you have any questions about this charge, please get in touch.\n\n$clinic_name\n$clinic_contact", "$clinic_name: we charged $amount to your card $card ($charge_reason). Ref. $charge_reference"),
        "fr": ("$clinic_name a débité $amount de votre carte", "Bonjour $patient_name,\n\n$clinic_name a débité $amount de votre carte $card.\n\nMotif : $charge_reason\nRéférence du paiement : $charge_reference\n\nPour toute question sur ce paiement, contactez-nous.\n\n$clinic_name\n$clinic_contact", "$clinic_name : débit de $amount sur votre carte $card ($charge_reason). Réf. $charge_reference"),
        "uk": ("$clinic_name: з вашої картки списано $amount", "Вітаємо, $patient_name!\n\nЗ вашої картки $card списано $amount.\n\nПризначення: $charge_reason\nНомер платежу: $charge_reference\n\nЯкщо маєте запитання щодо цього платежу, звʼяжіться з нами.\n\n$clinic_name\n$clinic_contact", "Від $clinic_name: з вашої картки $card списано $amount ($charge_reason). Номер платежу $charge_reference"),
        "nb": ("$clinic_name har trukket $amount fra kortet ditt", "Hei $patient_name,\n\n$clinic_name har trukket $amount fra kortet ditt $card.\n\nGjelder: $charge_reason\nReferanse: $charge_reference\n\nHar du spørsmål om denne betalingen, ta gjerne kontakt med oss.\n\n$clinic_name\n$clinic_contact", "$clinic_name: Vi har trukket $amount fra kortet ditt $card ($charge_reason). Ref. $charge_reference"),
    },
}

# Why a card was charged ($charge_reason in card_charged): for an appointment (its service and local
# date and time), a no-show fee (with its appointment when we can read it), anything else.
CHARGE_REASONS: dict[str, dict[str, str]] = {
    "appointment": {
        "es": "tu hora de $service_name del $starts_at",
        "en": "your $service_name appointment on $starts_at",
        "fr": "votre rendez-vous $service_name du $starts_at",
        "uk": "запис: $service_name, $starts_at",
        "nb": "timen din for $service_name $starts_at",
    },
    "no_show_appointment": {
        "es": "cargo por inasistencia a tu hora de $service_name del $starts_at",
        "en": "no-show fee, $service_name appointment on $starts_at",
        "fr": "frais de rendez-vous non honoré, $service_name du $starts_at",
        "uk": "плата за неявку на прийом, $service_name, $starts_at",
        "nb": "gebyr for uteblitt time, $service_name $starts_at",
    },
    "no_show": {
        "es": "cargo por inasistencia",
        "en": "no-show fee",
        "fr": "frais de rendez-vous non honoré",
        "uk": "плата за неявку на прийом",
        "nb": "gebyr for uteblitt time",
    },
    "other_appointment": {
        "es": "relacionado con tu hora de $service_name del $starts_at",
        "en": "related to your $service_name appointment on $starts_at",
        "fr": "en lien avec votre rendez-vous $service_name du $starts_at",
        "uk": "щодо запису: $service_name, $starts_at",
        "nb": "knyttet til timen din for $service_name $starts_at",
    },
    "other": {
        "es": "servicios de la clínica",
        "en": "clinic services",
        "fr": "prestations de la clinique",
        "uk": "послуги клініки",
        "nb": "tjenester fra klinikken",
    },
}

# Lines filled in by notify/messages.py `render`, each empty when it has nothing to say:
# $clinic_contact (the clinic's address, phone and site from its settings, one per line),
# $references (booking number, and the payment's reference where there is one), $receipt_line
# (the appointment's page: receipt and calendar file) and $change_line (there is no patient-side
# cancellation: the patient is told to contact the clinic).
REFERENCES = {
    "es": ("N.º de reserva: $booking_reference", "Referencia del pago: $payment_reference"),
    "en": ("Booking reference: $booking_reference", "Payment reference: $payment_reference"),
    "fr": ("Référence du rendez-vous : $booking_reference", "Référence du paiement : $payment_reference"),
    "uk": ("Номер запису: $booking_reference", "Номер платежу: $payment_reference"),
    "nb": ("Bestillingsnummer: $booking_reference", "Betalingsreferanse: $payment_reference"),
}
RECEIPT_LINE = {
    "es": "Tu comprobante y el archivo para tu calendario: $receipt_link",
    "en": "Your receipt and a calendar file: $receipt_link",
    "fr": "Votre reçu et un fichier pour votre agenda : $receipt_link",
    "uk": "Квитанція та файл для календаря: $receipt_link",
    "nb": "Kvittering og kalenderfil: $receipt_link",
}
CHANGE_LINE = {
    "es": "Si necesitas cambiar o anular tu hora, contacta a $clinic_name.",
    "en": "To change or cancel your appointment, please contact $clinic_name.",
    "fr": "Pour modifier ou annuler votre rendez-vous, contactez $clinic_name.",
    "uk": "Щоб змінити або скасувати запис, зверніться до клініки.",
    "nb": "Ta kontakt med $clinic_name hvis du må endre eller avbestille timen.",
}

# The sentence that carries the link inside created/reminder messages, when there is one.
PAYMENT_LINE = {
    "es": "Puedes pagar en línea aquí: $payment_link",
    "en": "You can pay online here: $payment_link",
    "fr": "Vous pouvez payer en ligne ici : $payment_link",
    "uk": "Оплатити онлайн можна тут: $payment_link",
    "nb": "Du kan betale på nett her: $payment_link",
}

KINDS = tuple(_TEXTS)
CHANNELS = ("email", "sms")
LOCALES = ("es", "en", "fr", "uk", "nb")


def builtin(kind: str, channel: str, locale: str) -> Text:
    subject, email_body, sms_body = _TEXTS[kind].get(locale) or _TEXTS[kind]["en"]
    return Text(subject, email_body) if channel == "email" else Text("", sms_body)

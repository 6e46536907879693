/*
 * clinicpay booking widget: one container and one script tag on the clinic's own site.
 *
 *   <div id="clinicpay-widget" data-clinic="cln_..." data-key="pk_..." data-locale="es"
 *        data-api="https://pay.example.com" data-patient-token="eyJ..."></div>
 *   <script src="https://pay.example.com/widget.js" defer></script>
 *
 * data-clinic and data-key (the clinic's publishable key) are required. data-api defaults to the
 * origin this script was served from; data-locale (es, en, fr, uk, nb) defaults to the clinic's.
 * data-patient-token is for a patient signed in on the clinic's site: a token the site's server
 * signs with the clinic's patient-token secret (docs/API.md, "Returning patients"). Without it the
 * booking is for a new patient with the details typed here; nothing typed here ever names or
 * changes a patient the clinic already has.
 * No framework, no build step, no card data: cards are typed only on the processor's own page.
 */
(function () {
  "use strict";

  var LOCALES = ["es", "en", "fr", "uk", "nb"];
  var LANGUAGE_NAMES = { es: "Español", en: "English", fr: "Français", uk: "Українська", nb: "Norsk bokmål" };
  // Minor-unit exponent per currency (the API's Money): CLP has none, the others two.
  var EXPONENTS = { CLP: 0 };

  var T = {
    title: { es: "Reserva tu hora", en: "Book an appointment", fr: "Prendre rendez-vous", uk: "Запис на прийом", nb: "Bestill time" },
    language: { es: "Idioma", en: "Language", fr: "Langue", uk: "Мова", nb: "Språk" },
    loading: { es: "Cargando servicios…", en: "Loading services…", fr: "Chargement des prestations…", uk: "Завантажуємо послуги…", nb: "Laster inn tjenester…" },
    service: { es: "Servicio", en: "Service", fr: "Prestation", uk: "Послуга", nb: "Tjeneste" },
    free: { es: "Sin costo", en: "Free", fr: "Gratuit", uk: "Безкоштовно", nb: "Gratis" },
    pay_online: { es: "Se paga en línea al reservar", en: "Paid online when you book", fr: "Paiement en ligne à la réservation", uk: "Оплата онлайн під час запису", nb: "Betales på nett når du bestiller" },
    card_required: { es: "Requiere registrar una tarjeta", en: "A saved card is needed to book", fr: "Carte bancaire requise pour réserver", uk: "Потрібно зберегти картку", nb: "Krever at du lagrer et kort" },
    time: { es: "Fecha y hora", en: "Date and time", fr: "Date et heure", uk: "Дата й час", nb: "Dato og klokkeslett" },
    tz_hint: { es: "Hora de la clínica ({tz})", en: "Clinic time ({tz})", fr: "Heure de la clinique ({tz})", uk: "Час клініки ({tz})", nb: "Klinikkens tid ({tz})" },
    name: { es: "Nombre y apellido", en: "Full name", fr: "Nom et prénom", uk: "Імʼя та прізвище", nb: "Fullt navn" },
    email: { es: "Correo electrónico", en: "Email", fr: "Adresse e-mail", uk: "Електронна пошта", nb: "E-post" },
    phone: { es: "Teléfono móvil", en: "Mobile phone", fr: "Téléphone mobile", uk: "Мобільний телефон", nb: "Mobiltelefon" },
    phone_hint: { es: "Con código de país, p. ej. +56961234567", en: "With the country code, e.g. +14165550123", fr: "Avec l'indicatif du pays, p. ex. +33612345678", uk: "З кодом країни, напр. +380501234567", nb: "Med landskode, f.eks. +4791234567" },
    phone_hint_country: { es: "Un móvil de {country}, con +{code}", en: "A mobile number from {country}, with +{code}", fr: "Un mobile de {country}, avec +{code}", uk: "Мобільний номер ({country}), з +{code}", nb: "Et mobilnummer fra {country}, med +{code}" },
    contact_hint: { es: "Indica un correo o un teléfono para enviarte la confirmación.", en: "Give an email or a phone so we can send you the confirmation.", fr: "Indiquez un e-mail ou un téléphone pour recevoir la confirmation.", uk: "Вкажіть пошту або телефон, щоб отримати підтвердження.", nb: "Oppgi e-post eller telefon, så sender vi deg bekreftelsen." },
    optional: { es: "opcional", en: "optional", fr: "facultatif", uk: "необовʼязково", nb: "valgfritt" },
    submit: { es: "Reservar", en: "Book", fr: "Réserver", uk: "Записатися", nb: "Bestill" },
    submit_pay: { es: "Reservar y pagar", en: "Book and pay", fr: "Réserver et payer", uk: "Записатися й оплатити", nb: "Bestill og betal" },
    submit_card: { es: "Reservar y registrar tarjeta", en: "Book and save a card", fr: "Réserver et enregistrer une carte", uk: "Записатися й зберегти картку", nb: "Bestill og lagre kort" },
    booking: { es: "Reservando tu hora…", en: "Booking your appointment…", fr: "Réservation en cours…", uk: "Записуємо вас…", nb: "Bestiller timen…" },
    confirmed: { es: "Tu hora está reservada", en: "Your appointment is booked", fr: "Votre rendez-vous est réservé", uk: "Вас записано", nb: "Timen din er bestilt" },
    confirmed_detail: { es: "{service}, {when}.", en: "{service}, {when}.", fr: "{service}, {when}.", uk: "{service}, {when}.", nb: "{service}, {when}." },
    confirmed_sent: { es: "Enviamos la confirmación a {contact}.", en: "We sent the confirmation to {contact}.", fr: "Nous avons envoyé la confirmation à {contact}.", uk: "Ми надіслали підтвердження на {contact}.", nb: "Vi har sendt bekreftelsen til {contact}." },
    going_to_pay: { es: "Tu hora quedó reservada. Te llevamos a la página de pago…", en: "Your appointment is reserved. Taking you to the payment page…", fr: "Votre rendez-vous est réservé. Redirection vers la page de paiement…", uk: "Запис створено. Переходимо до сторінки оплати…", nb: "Timen er reservert. Sender deg til betalingssiden…" },
    go_pay: { es: "Ir a pagar", en: "Go to payment", fr: "Aller au paiement", uk: "Перейти до оплати", nb: "Gå til betaling" },
    going_to_card: { es: "Para confirmar tu hora, registra una tarjeta en la página segura de la clínica. Te llevamos allí…", en: "To confirm your appointment, save a card on the clinic's secure card page. Taking you there…", fr: "Pour confirmer, enregistrez une carte sur la page sécurisée de la clinique. Redirection…", uk: "Щоб підтвердити запис, збережіть картку на захищеній сторінці клініки. Переходимо…", nb: "For å bekrefte timen, lagre et kort på klinikkens sikre kortside. Sender deg dit…" },
    go_card: { es: "Registrar tarjeta", en: "Save a card", fr: "Enregistrer une carte", uk: "Зберегти картку", nb: "Lagre kort" },
    book_another: { es: "Reservar otra hora", en: "Book another appointment", fr: "Prendre un autre rendez-vous", uk: "Записатися ще раз", nb: "Bestill en ny time" },
    retry: { es: "Intentar de nuevo", en: "Try again", fr: "Réessayer", uk: "Спробувати ще раз", nb: "Prøv igjen" },
    no_services: { es: "Esta clínica aún no ofrece horas en línea.", en: "This clinic has no services to book online yet.", fr: "Cette clinique ne propose pas encore de réservation en ligne.", uk: "Ця клініка ще не має послуг для онлайн-запису.", nb: "Denne klinikken har ingen tjenester for nettbestilling ennå." },
    secure_note: { es: "Nunca escribas datos de tarjeta aquí: se ingresan solo en la página del procesador de pagos.", en: "Never type card details here: they are entered only on the payment processor's page.", fr: "Ne saisissez jamais de carte ici : elle se saisit uniquement sur la page du prestataire de paiement.", uk: "Ніколи не вводьте тут дані картки: їх вводять лише на сторінці платіжного провайдера.", nb: "Skriv aldri inn kortopplysninger her: de oppgis bare på betalingsleverandørens side." },
    err_summary: { es: "Revisa los campos marcados.", en: "Please check the highlighted fields.", fr: "Vérifiez les champs signalés.", uk: "Перевірте позначені поля.", nb: "Sjekk de markerte feltene." },
    err_required: { es: "Completa este campo.", en: "Fill in this field.", fr: "Renseignez ce champ.", uk: "Заповніть це поле.", nb: "Fyll ut dette feltet." },
    err_service: { es: "Elige un servicio.", en: "Choose a service.", fr: "Choisissez une prestation.", uk: "Оберіть послугу.", nb: "Velg en tjeneste." },
    err_time: { es: "Elige una fecha y hora.", en: "Choose a date and time.", fr: "Choisissez une date et une heure.", uk: "Оберіть дату й час.", nb: "Velg dato og klokkeslett." },
    err_time_past: { es: "Elige una hora futura.", en: "Choose a time in the future.", fr: "Choisissez un horaire à venir.", uk: "Оберіть час у майбутньому.", nb: "Velg et tidspunkt fram i tid." },
    err_contact: { es: "Indica un correo o un teléfono.", en: "Give an email or a phone number.", fr: "Indiquez un e-mail ou un numéro de téléphone.", uk: "Вкажіть пошту або номер телефону.", nb: "Oppgi e-post eller telefonnummer." },
    err_email: { es: "Escribe un correo válido, como nombre@ejemplo.cl.", en: "Enter a valid email, like name@example.com.", fr: "Saisissez un e-mail valide, comme nom@exemple.fr.", uk: "Введіть коректну пошту, наприклад name@example.com.", nb: "Skriv inn en gyldig e-post, som navn@eksempel.no." },
    err_phone: { es: "Escribe el teléfono con + y el código de país.", en: "Enter the phone with + and the country code.", fr: "Saisissez le numéro avec + et l'indicatif du pays.", uk: "Введіть номер із + та кодом країни.", nb: "Skriv nummeret med + og landskode." },
    err_phone_country: { es: "Solo enviamos SMS a móviles de {country} (+{code}). Usa uno, o deja el teléfono en blanco e indica un correo.", en: "We only text mobile numbers from {country} (+{code}). Use one, or leave the phone empty and give an email.", fr: "Nous n'envoyons de SMS qu'aux mobiles de {country} (+{code}). Indiquez-en un, ou laissez le téléphone vide et donnez un e-mail.", uk: "Ми надсилаємо SMS лише на мобільні номери ({country}, +{code}). Вкажіть такий або залиште телефон порожнім і вкажіть пошту.", nb: "Vi sender bare SMS til mobilnumre fra {country} (+{code}). Bruk et slikt, eller la telefon stå tom og oppgi e-post." },
    err_name: { es: "Escribe solo el nombre, en una línea, sin caracteres especiales.", en: "Type just the name, on one line, without special characters.", fr: "Saisissez seulement le nom, sur une ligne, sans caractères spéciaux.", uk: "Введіть лише імʼя в один рядок, без спеціальних символів.", nb: "Skriv bare navnet, på én linje, uten spesialtegn." },
    err_session: { es: "Tu sesión en el sitio de la clínica expiró. Vuelve a cargar la página para reservar.", en: "Your sign-in on the clinic's site has expired. Reload the page to book.", fr: "Votre session sur le site de la clinique a expiré. Rechargez la page pour réserver.", uk: "Ваш сеанс на сайті клініки завершився. Оновіть сторінку, щоб записатися.", nb: "Innloggingen din på klinikkens side er utløpt. Last inn siden på nytt for å bestille." },
    err_rejected: { es: "Este dato no fue aceptado.", en: "This value was not accepted.", fr: "Cette valeur n'a pas été acceptée.", uk: "Це значення не прийнято.", nb: "Denne verdien ble ikke godtatt." },
    err_card_data: { es: "No escribas números de tarjeta en este formulario. La tarjeta se ingresa solo en la página segura del procesador de pagos.", en: "Do not type card numbers in this form. Cards are entered only on the payment processor's secure page.", fr: "Ne saisissez pas de numéro de carte dans ce formulaire. La carte se saisit uniquement sur la page sécurisée du prestataire.", uk: "Не вводьте номер картки в цій формі. Картку вводять лише на захищеній сторінці платіжного провайдера.", nb: "Ikke skriv kortnumre i dette skjemaet. Kortet oppgis bare på betalingsleverandørens sikre side." },
    err_service_gone: { es: "Este servicio ya no está disponible. Elige otro.", en: "This service is no longer offered. Choose another one.", fr: "Cette prestation n'est plus proposée. Choisissez-en une autre.", uk: "Ця послуга більше недоступна. Оберіть іншу.", nb: "Denne tjenesten tilbys ikke lenger. Velg en annen." },
    err_config: { es: "Este formulario de reserva no está bien configurado (clave de la clínica). Contacta a la clínica.", en: "This booking form is not set up correctly (clinic key). Please contact the clinic.", fr: "Ce formulaire de réservation est mal configuré (clé de la clinique). Contactez la clinique.", uk: "Форму запису налаштовано неправильно (ключ клініки). Зверніться до клініки.", nb: "Bestillingsskjemaet er ikke satt opp riktig (klinikknøkkel). Kontakt klinikken." },
    err_provider: { es: "El medio de pago no responde en este momento. No se cobró nada. Inténtalo de nuevo en {s} segundos.", en: "The payment provider is not answering right now. Nothing was charged. Try again in {s} seconds.", fr: "Le prestataire de paiement ne répond pas pour le moment. Rien n'a été débité. Réessayez dans {s} secondes.", uk: "Платіжний провайдер зараз не відповідає. Кошти не списано. Спробуйте ще раз за {s} с.", nb: "Betalingsleverandøren svarer ikke akkurat nå. Ingenting er trukket. Prøv igjen om {s} sekunder." },
    err_busy: { es: "El servicio está ocupado. No se reservó nada. Inténtalo de nuevo en {s} segundos.", en: "The service is busy. Nothing was booked. Try again in {s} seconds.", fr: "Le service est occupé. Rien n'a été réservé. Réessayez dans {s} secondes.", uk: "Сервіс перевантажений. Запис не створено. Спробуйте ще раз за {s} с.", nb: "Tjenesten er opptatt. Ingenting ble bestilt. Prøv igjen om {s} sekunder." },
    err_payments_off: { es: "La clínica no puede recibir pagos en línea en este momento. Contacta a la clínica para reservar.", en: "The clinic cannot take online payments right now. Please contact the clinic to book.", fr: "La clinique ne peut pas encaisser en ligne pour le moment. Contactez-la pour réserver.", uk: "Клініка зараз не приймає онлайн-оплату. Зверніться до клініки, щоб записатися.", nb: "Klinikken kan ikke ta imot nettbetaling akkurat nå. Kontakt klinikken for å bestille." },
    err_throttled: { es: "Demasiados intentos. Espera {s} segundos y vuelve a intentarlo.", en: "Too many attempts. Wait {s} seconds and try again.", fr: "Trop de tentatives. Attendez {s} secondes puis réessayez.", uk: "Забагато спроб. Зачекайте {s} с і спробуйте знову.", nb: "For mange forsøk. Vent {s} sekunder og prøv igjen." },
    err_network: { es: "No pudimos conectar con el servicio de reservas. Revisa tu conexión e inténtalo de nuevo.", en: "We could not reach the booking service. Check your connection and try again.", fr: "Impossible de joindre le service de réservation. Vérifiez votre connexion et réessayez.", uk: "Не вдалося звʼязатися із сервісом запису. Перевірте зʼєднання та спробуйте ще раз.", nb: "Vi fikk ikke kontakt med bestillingstjenesten. Sjekk tilkoblingen og prøv igjen." },
    err_server: { es: "Algo falló de nuestro lado. No se cobró nada. Inténtalo de nuevo.", en: "Something went wrong on our side. Nothing was charged. Please try again.", fr: "Une erreur s'est produite de notre côté. Rien n'a été débité. Réessayez.", uk: "Сталася помилка на нашому боці. Кошти не списано. Спробуйте ще раз.", nb: "Noe gikk galt hos oss. Ingenting er trukket. Prøv igjen." },
    err_conflict: { es: "No pudimos completar la reserva. Inténtalo de nuevo o contacta a la clínica.", en: "We could not complete the booking. Try again or contact the clinic.", fr: "La réservation n'a pas pu aboutir. Réessayez ou contactez la clinique.", uk: "Не вдалося завершити запис. Спробуйте ще раз або зверніться до клініки.", nb: "Vi kunne ikke fullføre bestillingen. Prøv igjen eller kontakt klinikken." },
    card_refused: { es: "La tarjeta no fue aceptada y tu hora aún no está confirmada. Prueba con otra tarjeta.", en: "The card was not accepted and your appointment is not confirmed yet. Try another card.", fr: "La carte n'a pas été acceptée et votre rendez-vous n'est pas encore confirmé. Essayez une autre carte.", uk: "Картку не прийнято, і запис ще не підтверджено. Спробуйте іншу картку.", nb: "Kortet ble ikke godtatt, og timen er ikke bekreftet ennå. Prøv et annet kort." }
  };

  // ------------------------------------------------------------------ helpers
  function pickLocale(wanted) {
    var tag = String(wanted || "").toLowerCase();
    if (LOCALES.indexOf(tag) >= 0) return tag;
    var base = tag.split(/[-_]/)[0];
    if (base === "no" || base === "nn") return "nb";
    return LOCALES.indexOf(base) >= 0 ? base : null;
  }

  function t(locale, key, vars) {
    var entry = T[key] || {};
    var text = entry[locale] || entry.en || key;
    return text.replace(/\{(\w+)\}/g, function (_, name) { return vars && vars[name] != null ? vars[name] : ""; });
  }

  function exponent(currency) { return EXPONENTS.hasOwnProperty(currency) ? EXPONENTS[currency] : 2; }

  function formatMoney(money, locale) {
    var digits = exponent(money.currency);
    var major = money.amount / Math.pow(10, digits);
    try {
      return new Intl.NumberFormat(locale, { style: "currency", currency: money.currency,
        minimumFractionDigits: digits, maximumFractionDigits: digits }).format(major);
    } catch (e) {
      return major.toFixed(digits) + " " + money.currency;
    }
  }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) {
      var value = attrs[name];
      if (value == null || value === false) return;
      if (name === "text") node.textContent = value;
      else if (name.slice(0, 2) === "on") node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : value);
    });
    (children || []).forEach(function (child) {
      if (child != null) node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return node;
  }

  // The offset (minutes east of UTC) of a time zone at an instant, from Intl alone.
  function zoneOffset(ms, timeZone) {
    var parts = {};
    new Intl.DateTimeFormat("en-US", { timeZone: timeZone, hourCycle: "h23", year: "numeric", month: "2-digit",
      day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" })
      .formatToParts(new Date(ms)).forEach(function (p) { parts[p.type] = p.value; });
    var asUtc = Date.UTC(+parts.year, +parts.month - 1, +parts.day, +parts.hour % 24, +parts.minute, +parts.second);
    return Math.round((asUtc - Math.floor(ms / 1000) * 1000) / 60000);
  }

  // "2030-01-15T10:00" read as wall time in the clinic's zone -> "2030-01-15T10:00:00-03:00" and its instant.
  function zonedIso(wall, timeZone) {
    var m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})/.exec(wall || "");
    if (!m) return null;
    var guess = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5]);
    var offset = zoneOffset(guess, timeZone);
    var second = zoneOffset(guess - offset * 60000, timeZone);
    if (second !== offset) offset = second;
    var sign = offset < 0 ? "-" : "+";
    var abs = Math.abs(offset);
    var pad = function (n) { return (n < 10 ? "0" : "") + n; };
    return { iso: m[1] + "-" + m[2] + "-" + m[3] + "T" + m[4] + ":" + m[5] + ":00" + sign + pad(Math.floor(abs / 60)) + ":" + pad(abs % 60),
             instant: guess - offset * 60000 };
  }

  // The wall time in a zone, as a datetime-local value.
  function wallTime(ms, timeZone) {
    var shifted = new Date(ms + zoneOffset(ms, timeZone) * 60000);
    return shifted.toISOString().slice(0, 16);
  }

  // The clinic's country, named in the patient's language ("CL" -> "Chile").
  function countryName(code, locale) {
    try { return new Intl.DisplayNames([locale], { type: "region" }).of(code) || code; } catch (e) { return code; }
  }

  function randomKey() {
    var bytes = new Uint8Array(16);
    (window.crypto || window.msCrypto).getRandomValues(bytes);
    return "cpw-" + Array.prototype.map.call(bytes, function (b) { return (b < 16 ? "0" : "") + b.toString(16); }).join("");
  }

  var EMAIL = /^[^@\s]+@[^@\s]+\.[^@\s]+$/;
  var PHONE = /^\+[1-9]\d{6,14}$/;

  // ------------------------------------------------------------------ styles (scoped to .cpw)
  var CSS = "" +
    ".cpw{--cpw-accent:#1f5f99;--cpw-accent-ink:#fff;--cpw-ink:#1b2430;--cpw-muted:#5b6675;--cpw-line:#cfd6df;" +
    "--cpw-bg:#fff;--cpw-soft:#f3f6f9;--cpw-error:#b3261e;--cpw-ok:#1e6b3a;font:16px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;" +
    "color:var(--cpw-ink);background:var(--cpw-bg);border:1px solid var(--cpw-line);border-radius:14px;padding:1.25rem;max-width:34rem;box-sizing:border-box}" +
    ".cpw *{box-sizing:border-box}" +
    ".cpw-head{display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:center;justify-content:space-between;margin-bottom:1rem}" +
    ".cpw h2{font-size:1.25rem;margin:0;line-height:1.3}.cpw h3{font-size:1.1rem;margin:0 0 .5rem}" +
    ".cpw-lang{display:flex;align-items:center;gap:.4rem;font-size:.9rem;color:var(--cpw-muted)}" +
    ".cpw select,.cpw input[type=text],.cpw input[type=email],.cpw input[type=tel],.cpw input[type=datetime-local]{font:inherit;color:inherit;" +
    "background:#fff;border:1px solid #8a96a6;border-radius:8px;padding:.55rem .65rem;width:100%;min-height:2.75rem}" +
    ".cpw-lang select{width:auto;min-height:2.25rem;padding:.25rem .5rem}" +
    ".cpw fieldset{border:0;margin:0 0 1rem;padding:0}.cpw legend{font-weight:600;margin-bottom:.4rem;padding:0}" +
    ".cpw-field{margin:0 0 1rem}.cpw-field>label{display:block;font-weight:600;margin-bottom:.3rem}" +
    ".cpw-hint{display:block;color:var(--cpw-muted);font-size:.875rem;margin-top:.25rem}" +
    ".cpw-opt{font-weight:400;color:var(--cpw-muted);font-size:.875rem}" +
    ".cpw-services{display:grid;gap:.5rem}" +
    ".cpw-service{display:flex;gap:.75rem;align-items:flex-start;border:1px solid var(--cpw-line);border-radius:10px;padding:.7rem .8rem;cursor:pointer;background:#fff}" +
    ".cpw-service:hover{border-color:var(--cpw-accent)}" +
    ".cpw-service:has(input:checked){border-color:var(--cpw-accent);background:var(--cpw-soft);box-shadow:inset 0 0 0 1px var(--cpw-accent)}" +
    ".cpw-service input{margin:.3rem 0 0;width:1.1rem;height:1.1rem;accent-color:var(--cpw-accent);flex:none}" +
    ".cpw-service-body{flex:1;min-width:0}.cpw-service-top{display:flex;justify-content:space-between;gap:.75rem;flex-wrap:wrap}" +
    ".cpw-service-name{font-weight:600}.cpw-price{font-variant-numeric:tabular-nums;font-weight:600;white-space:nowrap}" +
    ".cpw-badge{display:inline-block;font-size:.8rem;color:var(--cpw-muted);margin-top:.15rem}" +
    ".cpw-row{display:grid;grid-template-columns:1fr 1fr;gap:0 1rem}@media (max-width:480px){.cpw-row{grid-template-columns:1fr}}" +
    ".cpw input[aria-invalid=true]:not([type=radio]){border-color:var(--cpw-error);box-shadow:0 0 0 1px var(--cpw-error)}" +
    ".cpw fieldset[aria-invalid=true] .cpw-service{border-color:var(--cpw-error)}" +
    ".cpw-err{display:block;color:var(--cpw-error);font-size:.875rem;margin-top:.25rem}.cpw-err:empty{display:none}" +
    ".cpw-btn{font:inherit;font-weight:600;border:0;border-radius:10px;padding:.7rem 1.2rem;min-height:2.75rem;cursor:pointer;" +
    "background:var(--cpw-accent);color:var(--cpw-accent-ink);display:inline-block;text-decoration:none;text-align:center}" +
    ".cpw-btn[disabled]{opacity:.6;cursor:progress}.cpw-btn.cpw-secondary{background:var(--cpw-soft);color:var(--cpw-ink);border:1px solid var(--cpw-line)}" +
    ".cpw-btn-wide{width:100%}" +
    ".cpw :focus-visible{outline:3px solid #f0a500;outline-offset:2px}" +
    ".cpw-status{margin:.75rem 0 0}.cpw-status:empty,.cpw-status:has(> .cpw-sr:only-child){margin:0}" +
    ".cpw-msg{border-radius:10px;padding:.7rem .85rem;margin:.5rem 0 0}" +
    ".cpw-msg-error{background:#fdecea;color:#7a1a14;border:1px solid #f1b7b1}" +
    ".cpw-msg-info{background:var(--cpw-soft);border:1px solid var(--cpw-line)}" +
    ".cpw-msg-ok{background:#e7f4ec;color:#124a27;border:1px solid #a9d6b8}" +
    ".cpw-msg .cpw-btn{margin-top:.6rem}" +
    ".cpw-note{color:var(--cpw-muted);font-size:.8rem;margin:.75rem 0 0}" +
    ".cpw-done p{margin:.25rem 0}.cpw-done h3:focus{outline:none}" +
    ".cpw-sr{position:absolute!important;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}";

  function injectStyles() {
    if (document.getElementById("cpw-styles")) return;
    var style = el("style", { id: "cpw-styles" });
    style.textContent = CSS;
    (document.head || document.documentElement).appendChild(style);
  }

  // ------------------------------------------------------------------ the widget
  function Widget(root) {
    this.root = root;
    this.clinicId = root.getAttribute("data-clinic") || "";
    this.key = root.getAttribute("data-key") || "";
    this.patientToken = root.getAttribute("data-patient-token") || "";
    this.api = (root.getAttribute("data-api") || scriptOrigin()).replace(/\/+$/, "");
    this.locale = pickLocale(root.getAttribute("data-locale"));
    this.fixedLocale = !!this.locale;
    this.clinic = null;
    this.services = [];
    this.values = {};
    this.pending = null; // {body, key}: the booking being sent, kept for "Try again" with the same Idempotency-Key
    this.uid = "cpw" + Math.random().toString(36).slice(2, 8);
    root.classList.add("cpw");
    root.setAttribute("data-state", "loading");
    this.load();
  }

  Widget.prototype.tr = function (key, vars) { return t(this.locale || pickLocale(navigator.language) || "en", key, vars); };
  // A service's name in the widget's language when the clinic gave one (`names`), else its name.
  Widget.prototype.serviceName = function (service) {
    var names = service.names || {};
    return names[this.locale] || service.name;
  };

  Widget.prototype.request = function (method, path, body, idempotencyKey) {
    var headers = { "X-Clinic-Key": this.key, "Accept": "application/json" };
    if (body) headers["Content-Type"] = "application/json";
    if (idempotencyKey) headers["Idempotency-Key"] = idempotencyKey;
    return fetch(this.api + path, { method: method, headers: headers, body: body ? JSON.stringify(body) : undefined,
      credentials: "omit", mode: "cors" })
      .then(function (response) {
        return response.text().then(function (text) {
          var data = null;
          try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
          var retry = parseInt(response.headers.get("Retry-After") || "", 10);
          return { status: response.status, data: data, retryAfter: isNaN(retry) ? null : retry };
        });
      }, function () { return { status: 0, data: null, network: true }; });
  };

  Widget.prototype.load = function () {
    var self = this;
    this.renderShell();
    this.setStatus("info", this.tr("loading"));
    if (!this.clinicId || !this.key) {
      this.fail(this.tr("err_config"), false);
      return;
    }
    this.request("GET", "/v1/public/clinics/" + encodeURIComponent(this.clinicId) + "/services").then(function (res) {
      if (res.status === 200 && res.data) {
        self.clinic = res.data.clinic || {};
        self.services = res.data.services || [];
        if (!self.fixedLocale) self.locale = pickLocale(self.clinic.locale) || pickLocale(navigator.language) || "en";
        self.renderForm();
        self.root.dispatchEvent(new CustomEvent("clinicpay:ready", { bubbles: true, detail: { clinic: self.clinic } }));
        return;
      }
      if (!self.locale) self.locale = pickLocale(navigator.language) || "en";
      self.renderShell();
      if (res.status === 401 || res.status === 403 || res.status === 404) self.fail(self.tr("err_config"), false);
      else self.fail(self.describe(res), true, function () { self.load(); });
    });
  };

  Widget.prototype.renderShell = function () {
    var self = this;
    var locale = this.locale || "en";
    this.root.textContent = "";
    this.root.setAttribute("lang", locale);
    var select = el("select", { id: this.uid + "-lang", onchange: function () { self.switchLocale(this.value); } },
      LOCALES.map(function (code) {
        return el("option", { value: code, selected: code === locale, lang: code, text: LANGUAGE_NAMES[code] });
      }));
    var section = el("section", { "aria-labelledby": this.uid + "-title" }, [
      el("div", { "class": "cpw-head" }, [
        el("h2", { id: this.uid + "-title", text: this.clinic && this.clinic.name ? this.clinic.name + " · " + this.tr("title") : this.tr("title") }),
        el("div", { "class": "cpw-lang" }, [el("label", { "for": this.uid + "-lang", text: this.tr("language") }), select])
      ]),
      this.body = el("div", { "class": "cpw-body" }),
      this.status = el("div", { "class": "cpw-status", role: "status", "aria-live": "polite", "aria-atomic": "true" })
    ]);
    this.root.appendChild(section);
  };

  Widget.prototype.switchLocale = function (code) {
    this.locale = pickLocale(code) || "en";
    this.fixedLocale = true;
    var state = this.root.getAttribute("data-state");
    this.collect();
    if (state === "form" || state === "error-form") {
      this.renderForm();
      this.restore();
    } else if (state === "done") {
      this.renderDone(this.lastDone);
    } else {
      this.load();
    }
    var picker = document.getElementById(this.uid + "-lang");
    if (picker) picker.focus();
  };

  Widget.prototype.field = function (name) { return document.getElementById(this.uid + "-" + name); };

  Widget.prototype.renderForm = function () {
    var self = this;
    this.renderShell();
    this.root.setAttribute("data-state", "form");
    if (!this.services.length) {
      this.body.appendChild(el("p", { "class": "cpw-msg cpw-msg-info", text: this.tr("no_services") }));
      return;
    }
    var currencyLocale = this.locale;
    var options = this.services.map(function (service, index) {
      var id = self.uid + "-svc-" + index;
      var badges = [];
      if (service.requires_card_on_file) badges.push(self.tr("card_required"));
      else if (service.requires_online_payment && service.price.amount > 0) badges.push(self.tr("pay_online"));
      return el("label", { "class": "cpw-service", "for": id }, [
        el("input", { type: "radio", name: self.uid + "-service", id: id, value: service.service_id,
          "data-service": service.service_id, onchange: function () { self.updateSubmit(); self.clearError("service"); } }),
        el("span", { "class": "cpw-service-body" }, [
          el("span", { "class": "cpw-service-top" }, [
            el("span", { "class": "cpw-service-name", text: self.serviceName(service) }),
            el("span", { "class": "cpw-price", text: service.price.amount > 0 ? formatMoney(service.price, currencyLocale) : self.tr("free") })
          ]),
          badges.length ? el("span", { "class": "cpw-badge", text: badges.join(" · ") }) : null
        ])
      ]);
    });
    var tz = this.clinic.timezone || Intl.DateTimeFormat().resolvedOptions().timeZone;
    var now = Date.now();
    var tomorrow = wallTime(now + 24 * 3600 * 1000, tz).slice(0, 10) + "T10:00";
    var form = el("form", { novalidate: true, onsubmit: function (event) { event.preventDefault(); self.submit(); } }, [
      el("fieldset", { id: this.uid + "-service", "aria-describedby": this.uid + "-service-err" }, [
        el("legend", { text: this.tr("service") }),
        el("div", { "class": "cpw-services" }, options),
        el("span", { "class": "cpw-err", id: this.uid + "-service-err" })
      ]),
      this.input("time", "datetime-local", this.tr("time"), { hint: this.tr("tz_hint", { tz: tz }), required: true,
        min: wallTime(now, tz), step: 900, value: tomorrow }),
      this.input("name", "text", this.tr("name"), { required: true, autocomplete: "name", maxlength: 200 }),
      el("p", { "class": "cpw-hint", id: this.uid + "-contact-hint", text: this.tr("contact_hint") }),
      el("div", { "class": "cpw-row" }, [
        this.input("email", "email", this.tr("email"), { autocomplete: "email", inputmode: "email", maxlength: 254, optional: true }),
        this.input("phone", "tel", this.tr("phone"), { autocomplete: "tel", inputmode: "tel", hint: this.phoneHint(),
          placeholder: "+", optional: true })
      ]),
      this.submitButton = el("button", { type: "submit", "class": "cpw-btn cpw-btn-wide", id: this.uid + "-submit", text: this.tr("submit") }),
      el("p", { "class": "cpw-note", text: this.tr("secure_note") })
    ]);
    this.form = form;
    this.body.appendChild(form);
    this.updateSubmit();
  };

  // Texts go only to mobiles of the clinic's country: say which, when the clinic tells us its code.
  Widget.prototype.phoneHint = function () {
    var clinic = this.clinic || {};
    if (!clinic.country || !clinic.phone_country_code) return this.tr("phone_hint");
    return this.tr("phone_hint_country", { country: countryName(clinic.country, this.locale), code: clinic.phone_country_code });
  };

  Widget.prototype.input = function (name, type, label, opts) {
    var id = this.uid + "-" + name;
    var described = [opts.hint ? id + "-hint" : null, id + "-err"].filter(Boolean).join(" ");
    var attrs = { id: id, name: name, type: type, "aria-describedby": described, required: opts.required || null,
      autocomplete: opts.autocomplete, inputmode: opts.inputmode, maxlength: opts.maxlength, min: opts.min,
      step: opts.step, value: opts.value, placeholder: opts.placeholder };
    var self = this;
    attrs.oninput = function () { self.clearError(name); };
    return el("div", { "class": "cpw-field" }, [
      el("label", { "for": id }, [label, opts.optional ? el("span", { "class": "cpw-opt", text: " (" + this.tr("optional") + ")" }) : null]),
      el("input", attrs),
      opts.hint ? el("span", { "class": "cpw-hint", id: id + "-hint", text: opts.hint }) : null,
      el("span", { "class": "cpw-err", id: id + "-err" })
    ]);
  };

  Widget.prototype.chosenService = function () {
    var checked = this.root.querySelector("input[name='" + this.uid + "-service']:checked");
    var id = checked && checked.value;
    return this.services.filter(function (s) { return s.service_id === id; })[0] || null;
  };

  Widget.prototype.updateSubmit = function () {
    var service = this.chosenService();
    var label = "submit";
    if (service && service.requires_card_on_file) label = "submit_card";
    else if (service && service.requires_online_payment && service.price.amount > 0) label = "submit_pay";
    if (this.submitButton) this.submitButton.textContent = this.tr(label);
  };

  Widget.prototype.collect = function () {
    if (!this.form) return;
    var service = this.chosenService();
    var self = this;
    this.values = { service: service && service.service_id };
    ["time", "name", "email", "phone"].forEach(function (name) {
      var input = self.field(name);
      if (input) self.values[name] = input.value;
    });
  };

  Widget.prototype.restore = function () {
    var self = this;
    ["time", "name", "email", "phone"].forEach(function (name) {
      var input = self.field(name);
      if (input && self.values[name] != null) input.value = self.values[name];
    });
    if (this.values.service) {
      var radio = this.root.querySelector("input[data-service='" + this.values.service.replace(/'/g, "") + "']");
      if (radio) radio.checked = true;
    }
    this.updateSubmit();
  };

  Widget.prototype.setError = function (name, message) {
    var input = name === "service" ? this.field("service") : this.field(name);
    var slot = document.getElementById(this.uid + "-" + name + "-err");
    if (input) input.setAttribute("aria-invalid", "true");
    if (name === "service") this.root.querySelectorAll("input[name='" + this.uid + "-service']").forEach(function (r) { r.setAttribute("aria-invalid", "true"); });
    if (slot) slot.textContent = message;
  };

  Widget.prototype.clearError = function (name) {
    var input = this.field(name);
    var slot = document.getElementById(this.uid + "-" + name + "-err");
    if (input) input.removeAttribute("aria-invalid");
    if (name === "service") this.root.querySelectorAll("input[name='" + this.uid + "-service']").forEach(function (r) { r.removeAttribute("aria-invalid"); });
    if (slot) slot.textContent = "";
  };

  Widget.prototype.focusFirstError = function () {
    var first = this.root.querySelector("input[aria-invalid=true]");
    if (first) first.focus();
  };

  Widget.prototype.validate = function () {
    var self = this;
    var v = this.values;
    var errors = [];
    ["service", "time", "name", "email", "phone"].forEach(function (name) { self.clearError(name); });
    if (!v.service) errors.push(["service", this.tr("err_service")]);
    var tz = this.clinic.timezone || "UTC";
    var when = v.time ? zonedIso(v.time, tz) : null;
    if (!when) errors.push(["time", this.tr("err_time")]);
    else if (when.instant <= Date.now()) errors.push(["time", this.tr("err_time_past")]);
    if (!v.name || !v.name.trim()) errors.push(["name", this.tr("err_required")]);
    var email = (v.email || "").trim(), phone = (v.phone || "").replace(/[\s\-().]/g, "");
    if (!email && !phone) errors.push(["email", this.tr("err_contact")]);
    if (email && !EMAIL.test(email)) errors.push(["email", this.tr("err_email")]);
    if (phone && !PHONE.test(phone)) errors.push(["phone", this.tr("err_phone")]);
    errors.forEach(function (e) { self.setError(e[0], e[1]); });
    return errors.length ? null : { email: email, phone: phone, when: when };
  };

  Widget.prototype.submit = function () {
    this.collect();
    var ok = this.validate();
    if (!ok) {
      this.setStatus("error", this.tr("err_summary"));
      this.focusFirstError();
      return;
    }
    // No patient id: the API makes a new patient for what is typed here, unless the clinic's site
    // proved who this is with a patient token.
    var patient = { name: this.values.name.trim(), locale: this.locale };
    if (ok.email) patient.email = ok.email;
    if (ok.phone) patient.phone = ok.phone;
    var body = { patient: patient, service_id: this.values.service, starts_at: ok.when.iso };
    if (this.patientToken) body.patient_token = this.patientToken;
    // The same booking sent again (a retry after a failure) keeps its Idempotency-Key: never two bookings.
    var same = this.pending && JSON.stringify(this.pending.body) === JSON.stringify(body);
    this.pending = same ? this.pending : { body: body, key: randomKey() };
    this.send();
  };

  Widget.prototype.send = function () {
    var self = this;
    var pending = this.pending;
    this.busy(true);
    this.setStatus("info", this.tr("booking"));
    this.request("POST", "/v1/public/clinics/" + encodeURIComponent(this.clinicId) + "/appointments", pending.body, pending.key)
      .then(function (res) {
        self.busy(false);
        if (res.status === 201 && res.data) {
          self.pending = null;
          self.booked(res.data, pending.body);
        } else {
          self.bookingFailed(res);
        }
      });
  };

  Widget.prototype.busy = function (on) {
    if (!this.submitButton) return;
    this.submitButton.disabled = on;
    this.root.setAttribute("aria-busy", on ? "true" : "false");
  };

  Widget.prototype.describe = function (res) {
    var error = (res.data && res.data.error) || {};
    var details = error.details || [];
    var retry = res.retryAfter;
    details.forEach(function (d) { if (d && typeof d.retry_after === "number") retry = d.retry_after; });
    var seconds = String(retry || 30);
    if (res.network || res.status === 0) return this.tr("err_network");
    if (res.status === 429) return this.tr("err_throttled", { s: seconds });
    if (error.code === "storage_unavailable") return this.tr("err_busy", { s: seconds });
    if (res.status === 502 || res.status === 503 || res.status === 504) return this.tr("err_provider", { s: seconds });
    if (error.code === "gateway_not_configured") return this.tr("err_payments_off");
    if (error.code === "card_data_not_accepted") return this.tr("err_card_data");
    if (error.code === "card_declined" || error.code === "card_refused") return this.tr("card_refused");
    if (res.status === 409) return this.tr("err_conflict");
    return this.tr("err_server");
  };

  Widget.prototype.bookingFailed = function (res) {
    var self = this;
    var error = (res.data && res.data.error) || {};
    this.root.setAttribute("data-state", "error-form");
    // A refused booking (4xx) changed nothing: the corrected one is a new request with a new key.
    if (res.status >= 400 && res.status < 500 && res.status !== 429) this.pending = null;
    if (res.status === 422 && error.code !== "card_data_not_accepted") {
      var FIELDS = { "patient.name": ["name", "err_required"], "patient.email": ["email", "err_email"],
        "patient.phone": ["phone", "err_phone"], "starts_at": ["time", "err_time"], "service_id": ["service", "err_service"] };
      var marked = 0;
      var details = error.details || [];
      if (details.some(function (d) { return d && d.field === "patient_token"; })) {
        this.fail(this.tr("err_session"), false);
        return;
      }
      details.forEach(function (d) {
        var match = FIELDS[(d && d.field) || ""];
        if (d && d.field === "patient.name" && d.type === "value_error") {
          self.setError("name", self.tr("err_name"));
          marked++;
        } else if (d && d.type === "phone_country") {
          self.setError("phone", self.tr("err_phone_country", { country: countryName(d.country, self.locale), code: d.calling_code }));
          marked++;
        } else if (match) { self.setError(match[0], self.tr(match[1])); marked++; }
      });
      this.setStatus("error", marked ? this.tr("err_summary") : this.tr("err_rejected"));
      this.focusFirstError();
      return;
    }
    if (res.status === 404) {
      this.setError("service", this.tr("err_service_gone"));
      this.setStatus("error", this.tr("err_service_gone"));
      return;
    }
    if (res.status === 401 || res.status === 403) {
      this.fail(this.tr("err_config"), false);
      return;
    }
    var retryable = res.network || res.status === 0 || res.status === 429 || res.status >= 500;
    this.fail(this.describe(res), retryable, retryable ? function () { self.send(); } : null);
  };

  Widget.prototype.booked = function (data, body) {
    var action = data.next_action;
    var appointment = data.appointment || {};
    if (action && action.url && (action.type === "pay" || action.type === "save_card")) {
      this.root.setAttribute("data-state", action.type === "pay" ? "redirect-pay" : "redirect-card");
      var message = this.tr(action.type === "pay" ? "going_to_pay" : "going_to_card");
      var link = el("a", { "class": "cpw-btn", href: action.url, text: this.tr(action.type === "pay" ? "go_pay" : "go_card") });
      this.body.textContent = "";
      this.body.appendChild(el("div", { "class": "cpw-msg cpw-msg-info" }, [el("p", { text: message, style: "margin:0" }), link]));
      this.setStatus("info", message);
      link.focus();
      // The clinic page may listen for this (analytics, a spinner); navigation follows regardless.
      this.root.dispatchEvent(new CustomEvent("clinicpay:redirect", { bubbles: true, detail: { type: action.type, url: action.url, appointment_id: appointment.appointment_id } }));
      window.setTimeout(function () { window.location.assign(action.url); }, 400);
      return;
    }
    this.renderDone({ appointment: appointment, body: body });
  };

  Widget.prototype.renderDone = function (done) {
    var self = this;
    this.lastDone = done;
    this.renderShell();
    this.root.setAttribute("data-state", "done");
    var appointment = done.appointment || {}, body = done.body || {};
    var service = this.services.filter(function (s) { return s.service_id === (appointment.service_id || body.service_id); })[0];
    var when = appointment.starts_at || body.starts_at;
    var whenText = when;
    try {
      whenText = new Intl.DateTimeFormat(this.locale, { dateStyle: "full", timeStyle: "short", timeZone: this.clinic.timezone }).format(new Date(when));
    } catch (e) { /* keep the ISO text */ }
    var patient = appointment.patient || body.patient || {};
    var contact = patient.email || patient.phone;
    var heading = el("h3", { tabindex: "-1", text: this.tr("confirmed") });
    this.body.appendChild(el("div", { "class": "cpw-msg cpw-msg-ok cpw-done" }, [
      heading,
      el("p", { text: this.tr("confirmed_detail", { service: service ? this.serviceName(service) : (appointment.service_id || ""), when: whenText }) }),
      contact ? el("p", { text: this.tr("confirmed_sent", { contact: contact }) }) : null
    ]));
    this.body.appendChild(el("p", {}, [el("button", { type: "button", "class": "cpw-btn cpw-secondary",
      text: this.tr("book_another"), onclick: function () { self.values = {}; self.renderForm(); } })]));
    this.setStatus("ok", this.tr("confirmed"), true);
    heading.focus();
  };

  Widget.prototype.fail = function (message, retryable, onRetry) {
    var self = this;
    if (!this.status) this.renderShell();
    var box = el("div", { "class": "cpw-msg cpw-msg-error" }, [el("p", { text: message, style: "margin:0" })]);
    if (retryable && onRetry) {
      box.appendChild(el("button", { type: "button", "class": "cpw-btn cpw-secondary", text: this.tr("retry"),
        onclick: function () { self.setStatus(null); onRetry(); } }));
    }
    this.status.textContent = "";
    this.status.appendChild(box);
    if (this.root.getAttribute("data-state") === "loading") this.root.setAttribute("data-state", "error");
  };

  // quiet: announced to screen readers only (the same words are already on screen).
  Widget.prototype.setStatus = function (kind, message, quiet) {
    if (!this.status) return;
    this.status.textContent = "";
    if (!kind) return;
    this.status.appendChild(el("p", { "class": quiet ? "cpw-sr" : "cpw-msg cpw-msg-" + kind, text: message }));
  };

  function scriptOrigin() {
    var script = document.currentScript || document.querySelector("script[src*='widget.js']");
    try { return new URL(script.src, window.location.href).origin; } catch (e) { return window.location.origin; }
  }

  var origin = scriptOrigin();

  function start() {
    injectStyles();
    var roots = document.querySelectorAll("#clinicpay-widget, [data-clinicpay-widget]");
    Array.prototype.forEach.call(roots, function (root) {
      if (root.__clinicpay) return;
      if (!root.getAttribute("data-api")) root.setAttribute("data-api", origin);
      root.__clinicpay = new Widget(root);
    });
  }

  window.ClinicpayWidget = { start: start, formatMoney: formatMoney, zonedIso: zonedIso };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();

/*
 * clinicpay staff pages: appointments and payment links, patient cards, QR payments and fiscal
 * receipts, clinic settings. Plain JS on the HTTP API (docs/API.md); no framework, no build.
 * The key is kept in sessionStorage only (this tab), sent as `Authorization: Bearer`.
 */
(function () {
  "use strict";

  var TEXT = window.CLINICPAY_STAFF_TEXT;
  var LOCALES = window.CLINICPAY_LOCALES;
  var LANGUAGE_NAMES = { es: "Español", en: "English", fr: "Français", uk: "Українська", nb: "Norsk bokmål" };
  var EXPONENTS = { CLP: 0 };
  var PROVIDERS = {
    fintoc: ["secret_key", "public_key", "webhook_secret"],
    monobank: ["token"],
    stripe: ["secret_key", "publishable_key", "webhook_secret"],
    checkbox: ["license_key", "pin_code"]
  };
  var PROVIDER_NAMES = { fintoc: "Fintoc", monobank: "monobank", stripe: "Stripe", checkbox: "Checkbox" };
  var KINDS = ["appointment_created", "appointment_reminder", "payment_link", "card_request", "payment_receipt", "refund_issued"];
  // The consent text shown to the patient at the desk; the same words and version as the card page.
  var CONSENT_TEXT_VERSION = "cards-2026-02";
  var SESSION = "clinicpay.staff";
  // Same origin as the API by default (as the local stack serves it); a page hosted elsewhere names
  // the API with <meta name="clinicpay-api" content="https://pay.example.com"> (the API then needs CORS).
  var API_BASE = ((document.querySelector("meta[name=clinicpay-api]") || {}).content || "").replace(/\/+$/, "");
  var LOCALE_KEY = "clinicpay.staff.locale";

  var state = {
    clinicId: null, key: null, clinic: null, role: null, locale: "es",
    services: [], appointments: [], settings: null, gateways: null,
    cardsPatient: null, cards: [], charges: [], registers: [], shift: null, report: [], loaded: {}, fixedDeposit: null
  };

  // ------------------------------------------------------------------ text and formatting
  function pickLocale(wanted) {
    var tag = String(wanted || "").toLowerCase();
    if (LOCALES.indexOf(tag) >= 0) return tag;
    var base = tag.split(/[-_]/)[0];
    if (base === "no" || base === "nn") return "nb";
    return LOCALES.indexOf(base) >= 0 ? base : null;
  }

  function t(key, vars) {
    var text = (TEXT[state.locale] || {})[key];
    if (text == null) text = TEXT.en[key];
    if (text == null) text = key;
    return text.replace(/\{(\w+)\}/g, function (_, name) { return vars && vars[name] != null ? vars[name] : ""; });
  }

  function currency() { return (state.clinic && state.clinic.currency) || "CLP"; }
  function exponent(code) { return EXPONENTS.hasOwnProperty(code) ? EXPONENTS[code] : 2; }

  function formatMoney(money) {
    if (!money || typeof money.amount !== "number") return "—";
    var digits = exponent(money.currency);
    try {
      return new Intl.NumberFormat(state.locale, { style: "currency", currency: money.currency,
        minimumFractionDigits: digits, maximumFractionDigits: digits }).format(money.amount / Math.pow(10, digits));
    } catch (e) { return money.amount + " " + money.currency; }
  }

  // "25.000" (CLP) or "12,50" / "12.50" (UAH) typed by a person -> minor units; null when not a number.
  function toMinor(text, code) {
    var raw = String(text || "").replace(/[\s\u00a0\u202f]/g, "");
    if (!raw) return null;
    var digits = exponent(code);
    if (digits === 0) return /^\d{1,3}([.,]\d{3})*$|^\d+$/.test(raw) ? parseInt(raw.replace(/[.,]/g, ""), 10) : null;
    var lastSep = Math.max(raw.lastIndexOf("."), raw.lastIndexOf(","));
    var major = raw, minor = "";
    if (lastSep >= 0 && raw.length - lastSep - 1 <= digits) { major = raw.slice(0, lastSep); minor = raw.slice(lastSep + 1); }
    major = major.replace(/[.,]/g, "");
    if (!/^\d+$/.test(major || "0") || !/^\d*$/.test(minor)) return null;
    while (minor.length < digits) minor += "0";
    return parseInt(major || "0", 10) * Math.pow(10, digits) + parseInt(minor || "0", 10);
  }

  function fromMinor(money) {
    if (!money) return "";
    var digits = exponent(money.currency);
    if (!digits) return String(money.amount);
    var s = String(money.amount);
    while (s.length <= digits) s = "0" + s;
    return s.slice(0, -digits) + (state.locale === "en" ? "." : ",") + s.slice(-digits);
  }

  function timeZone() { return (state.clinic && state.clinic.timezone) || "UTC"; }

  function formatWhen(iso, style) {
    if (!iso) return "—";
    try {
      return new Intl.DateTimeFormat(state.locale, { dateStyle: style || "medium", timeStyle: "short", timeZone: timeZone() }).format(new Date(iso));
    } catch (e) { return iso; }
  }

  function zoneOffset(ms, tz) {
    var parts = {};
    new Intl.DateTimeFormat("en-US", { timeZone: tz, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", second: "2-digit" }).formatToParts(new Date(ms)).forEach(function (p) { parts[p.type] = p.value; });
    var asUtc = Date.UTC(+parts.year, +parts.month - 1, +parts.day, +parts.hour % 24, +parts.minute, +parts.second);
    return Math.round((asUtc - Math.floor(ms / 1000) * 1000) / 60000);
  }

  function pad(n) { return (n < 10 ? "0" : "") + n; }

  // A datetime-local value, read as wall time in the clinic's zone -> RFC 3339 with that zone's offset.
  function zonedIso(wall, tz) {
    var m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})/.exec(wall || "");
    if (!m) return null;
    var guess = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5]);
    var offset = zoneOffset(guess, tz);
    var second = zoneOffset(guess - offset * 60000, tz);
    if (second !== offset) offset = second;
    var abs = Math.abs(offset);
    return m[1] + "-" + m[2] + "-" + m[3] + "T" + m[4] + ":" + m[5] + ":00" + (offset < 0 ? "-" : "+") + pad(Math.floor(abs / 60)) + ":" + pad(abs % 60);
  }

  // A bare date as the start (or, with end, the end) of that day in the clinic's zone.
  function dayBound(day, end) {
    if (!day) return null;
    return zonedIso(day + (end ? "T23:59" : "T00:00"), timeZone());
  }

  function wallTime(ms) { return new Date(ms + zoneOffset(ms, timeZone()) * 60000).toISOString().slice(0, 16); }

  function randomKey() {
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return "staff-" + Array.prototype.map.call(bytes, function (b) { return pad16(b); }).join("");
  }
  function pad16(b) { return (b < 16 ? "0" : "") + b.toString(16); }

  // ------------------------------------------------------------------ DOM helpers
  function $(id) { return document.getElementById(id); }

  function h(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) {
      var value = attrs[name];
      if (value == null || value === false) return;
      if (name === "text") node.textContent = value;
      else if (name.slice(0, 2) === "on") node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : value);
    });
    (children || []).forEach(function (child) {
      if (child != null && child !== false) node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return node;
  }

  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); return node; }

  function say(region, kind, message, extra) {
    var node = typeof region === "string" ? $(region) : region;
    if (!node) return;
    clear(node);
    if (!kind) return;
    var box = h("div", { "class": "msg msg-" + kind }, [h("p", { text: message })]);
    (extra || []).forEach(function (child) { if (child) box.appendChild(child); });
    node.appendChild(box);
  }

  function busy(button, on) {
    if (!button) return;
    button.disabled = on;
    if (on) button.setAttribute("aria-busy", "true"); else button.removeAttribute("aria-busy");
  }

  // ------------------------------------------------------------------ API
  function api(method, path, opts) {
    opts = opts || {};
    var headers = { "Authorization": "Bearer " + state.key, "Accept": opts.accept || "application/json" };
    if (opts.body !== undefined) headers["Content-Type"] = "application/json";
    if (method === "POST" && opts.idempotent !== false) headers["Idempotency-Key"] = opts.idempotencyKey || randomKey();
    var url = API_BASE + path;
    if (opts.query) {
      var q = Object.keys(opts.query).filter(function (k) { return opts.query[k] != null && opts.query[k] !== ""; })
        .map(function (k) { return encodeURIComponent(k) + "=" + encodeURIComponent(opts.query[k]); }).join("&");
      if (q) url += "?" + q;
    }
    return fetch(url, { method: method, headers: headers, body: opts.body !== undefined ? JSON.stringify(opts.body) : undefined, credentials: "omit" })
      .then(function (response) {
        var reader = opts.accept === "text/csv" && response.ok ? response.blob() : response.text();
        return reader.then(function (payload) {
          var data = payload;
          if (typeof payload === "string") { try { data = payload ? JSON.parse(payload) : null; } catch (e) { data = payload; } }
          var retry = parseInt(response.headers.get("Retry-After") || "", 10);
          return { ok: response.ok, status: response.status, data: data, retryAfter: isNaN(retry) ? null : retry,
            error: (data && data.error) || null, route: method + " " + path.replace(/\?.*$/, "") };
        });
      }, function () { return { ok: false, status: 0, network: true, data: null, error: null, route: method + " " + path }; });
  }

  // The same request sent again after no answer (network, 5xx, 429) or an undecided one (202: a
  // charge still processing) keeps its Idempotency-Key, so a retried charge or booking happens once
  // and reaches the same payment; a definitive answer (201/200, other 4xx) ends it.
  var pendingKeys = {};
  function stickyKey(scope, body) {
    var text = JSON.stringify(body);
    var pending = pendingKeys[scope];
    if (!pending || pending.body !== text) pending = pendingKeys[scope] = { body: text, key: randomKey() };
    return pending.key;
  }
  function settleKey(scope, res) {
    if (!res.network && res.status !== 429 && res.status !== 202 && res.status < 500) delete pendingKeys[scope];
  }

  function clinicPath(rest) { return "/v1/clinics/" + encodeURIComponent(state.clinicId) + (rest || ""); }

  // A route API Gateway does not know answers {"message":"Not Found"} without our error envelope.
  function missingRoute(res) { return res.status === 404 && !res.error && res.data && res.data.message === "Not Found"; }

  function routeTemplate(route) {
    return route.replace(/\/v1\/clinics\/[^/]+/, "/v1/clinics/{clinic_id}").replace(/\/patients\/[^/]+/, "/patients/{patient_id}")
      .replace(/\/cards\/[^/]+/, "/cards/{card_id}").replace(/\/qr-registers\/(?!sync)[^/]+/, "/qr-registers/{qr_id}")
      .replace(/\/qr-payments\/[^/]+/, "/qr-payments/{payment_id}").replace(/\/appointments\/[^/]+/, "/appointments/{appointment_id}")
      .replace(/\/gateways\/[^/]+/, "/gateways/{provider}").replace(/\/services\/[^/]+/, "/services/{service_id}");
  }

  // The message for a failed call: our localized sentence, then what the API said ({error: {code, message}}).
  function explain(res) {
    if (res.network) return { text: t("err_network") };
    if (missingRoute(res)) return { text: t("not_built", { route: routeTemplate(res.route) }), missing: true };
    var error = res.error || {};
    var retry = res.retryAfter;
    (error.details || []).forEach(function (d) { if (d && typeof d.retry_after === "number") retry = d.retry_after; });
    var vars = { s: String(retry || 30) };
    var text = null;
    if (error.code && TEXT.en["code_" + error.code]) text = t("code_" + error.code, vars);
    else if (res.status >= 502 && res.status <= 504) text = t("err_5xx", vars);
    else if (TEXT.en["err_" + res.status]) text = t("err_" + res.status, vars);
    else if (res.status >= 500) text = t("err_500");
    else text = t("err_400");
    var fields = (error.details || []).filter(function (d) { return d && d.field; }).map(function (d) {
      return t("field_error", { field: fieldKey(d), message: fieldMessage(d) });
    });
    var detail = error.message ? t("api_said") + ": " + error.message + (error.code ? " (" + error.code + ")" : "") : null;
    return { text: text, detail: detail, fields: fields };
  }

  // `fields` (optional) names the form's inputs by the API's field paths ({"patient.id": "na-id"}): a
  // 422's details are then said on their inputs, in the page's language, and the region only points there.
  function sayError(region, res, fields) {
    var why = explain(res);
    var extra = [];
    var placed = fields && res.status === 422 ? placeFieldErrors(res.error, fields) : null;
    if (placed && placed.inputs.length) {
      why = { text: t("err_fields", { n: placed.inputs.length }), fields: placed.rest };
    }
    if (why.fields && why.fields.length) extra.push(h("ul", {}, why.fields.map(function (f) { return h("li", { text: f }); })));
    if (why.detail) extra.push(h("p", { "class": "detail", text: why.detail }));
    say(region, why.missing ? "warn" : "error", why.text, extra);
    if (placed && placed.inputs.length) placed.inputs[0].focus();
    if (res.status === 401) window.setTimeout(signOut, 1500);
  }

  // ------------------------------------------------------------------ field errors, on their fields
  // A 422 names each field by `path` and its rule by `kind` (docs/API.md, "Validation details"). The
  // words are ours: the API's `message` is English and may quote a regular expression.
  function fieldKey(detail) {
    var parts = Array.isArray(detail.path) ? detail.path.map(String) : String(detail.field || "").split(".");
    if (parts[0] === "body" || parts[0] === "path" || parts[0] === "query") parts = parts.slice(1);
    return parts.filter(function (p) { return !/^\d+$/.test(p); }).join(".");
  }

  // "Only letters, digits…" for a patient id's pattern; else the kind's sentence, with its bound.
  function fieldMessage(detail) {
    var kind = detail.kind || (detail.type === "missing" ? "missing" : "invalid");
    var dotted = fieldKey(detail), last = dotted.split(".").pop();
    var vars = { limit: detail.limit != null ? String(detail.limit) : "" };
    var tries = ["ferr_" + dotted.replace(/\./g, "_") + "_" + kind, "ferr_" + last + "_" + kind, "ferr_type_" + (detail.type || ""),
                 "ferr_" + kind + (detail.exclusive ? "_x" : "")];
    for (var i = 0; i < tries.length; i++) if (TEXT.en[tries[i]]) return t(tries[i], vars);
    return t("ferr_invalid");
  }

  // The message under the input (aria-describedby), the input marked invalid; `false` takes both away.
  function fieldError(input, on, message) {
    if (!input) return;
    var errorId = input.id + "-error";
    var old = $(errorId);
    var described = (input.getAttribute("aria-describedby") || "").split(/\s+/).filter(function (id) { return id && id !== errorId; });
    if (old) old.remove();
    if (on) input.setAttribute("aria-invalid", "true"); else input.removeAttribute("aria-invalid");
    if (on && message) {
      var note = h("span", { id: errorId, "class": "field-error", text: message });
      input.insertAdjacentElement("afterend", note);
      described.unshift(errorId);
    }
    if (described.length) input.setAttribute("aria-describedby", described.join(" ")); else input.removeAttribute("aria-describedby");
  }

  function clearFieldErrors(form) {
    Array.prototype.forEach.call(form.querySelectorAll("[aria-invalid]"), function (input) { fieldError(input, false); });
  }

  // A check made here, said as the API would say it: the same words on the same input.
  function markField(fields, input, kind) {
    var path = Object.keys(fields).filter(function (k) { return fields[k] === input.id; })[0] || input.id;
    fieldError(input, true, fieldMessage({ field: path, kind: kind }));
  }

  // Which input holds which of the API's field paths, per form.
  var NEW_APPT_FIELDS = { "patient": "na-name", "patient.name": "na-name", "patient.id": "na-id", "patient.email": "na-email",
    "patient.phone": "na-phone", "patient.locale": "na-locale", "service_id": "na-service", "starts_at": "na-when" };
  var CHARGE_FIELDS = { "amount": "charge-amount", "reason": "charge-reason", "card_id": "charge-card", "appointment_id": "charge-appt" };
  var SERVICE_FIELDS = { "service_id": "sv-id", "name": "sv-name", "price": "sv-price", "no_show_fee": "sv-noshow", "deposit": "sv-deposit",
    "requires_online_payment": "sv-online", "requires_card_on_file": "sv-card" };
  var SETTINGS_FIELDS = { "show_payment_link_in_email": "st-link", "card_required_for_online_booking": "st-card",
    "online_link_ttl_minutes": "st-ttl", "reminder_hours_before": "st-reminders", "default_gateway": "st-gateway",
    "fiscalization": "st-fiscalization", "fiscal_shift_schedule": "st-shift-open", "fiscal_shift_schedule.open": "st-shift-open",
    "fiscal_shift_schedule.close": "st-shift-close" };
  var TEMPLATE_FIELDS = { "subject": "tpl-subject", "body": "tpl-body" };

  // Each detail on the input its path names (the longest mapped prefix: "amount.amount" -> "amount");
  // the ones no input holds are listed, in words, with their field.
  function placeFieldErrors(error, fields) {
    var inputs = [], rest = [];
    Object.keys(fields).forEach(function (k) { var el = typeof fields[k] === "string" ? $(fields[k]) : fields[k]; if (el) fieldError(el, false); });
    ((error && error.details) || []).forEach(function (d) {
      if (!d || d.field == null) return;
      var key = fieldKey(d), input = null;
      for (var parts = key.split("."); parts.length && !input; parts.pop()) {
        var target = fields[parts.join(".")];
        input = typeof target === "string" ? $(target) : target || null;
      }
      if (!input) { rest.push(t("field_error", { field: key || "—", message: fieldMessage(d) })); return; }
      if (inputs.indexOf(input) >= 0) return;  // one message per input: the first rule it broke
      fieldError(input, true, fieldMessage(d));
      inputs.push(input);
    });
    return { inputs: inputs, rest: rest };
  }

  // ------------------------------------------------------------------ static texts and language
  function applyTexts() {
    document.documentElement.lang = state.locale;
    document.title = t("app_title") + (state.clinic ? " · " + state.clinic.name : "");
    Array.prototype.forEach.call(document.querySelectorAll("[data-i18n]"), function (node) { node.textContent = t(node.getAttribute("data-i18n")); });
    Array.prototype.forEach.call(document.querySelectorAll("[data-i18n-label]"), function (node) { node.setAttribute("aria-label", t(node.getAttribute("data-i18n-label"))); });
    Array.prototype.forEach.call(document.querySelectorAll(".lang-picker"), function (select) {
      clear(select);
      LOCALES.forEach(function (code) { select.appendChild(h("option", { value: code, lang: code, selected: code === state.locale, text: LANGUAGE_NAMES[code] })); });
    });
    Array.prototype.forEach.call(document.querySelectorAll(".locale-select"), function (select) {
      var value = select.value;
      clear(select);
      if (select.getAttribute("data-default-label")) select.appendChild(h("option", { value: "", text: t(select.getAttribute("data-default-label")) }));
      LOCALES.forEach(function (code) { select.appendChild(h("option", { value: code, lang: code, text: LANGUAGE_NAMES[code] })); });
      select.value = value || (select.id === "tpl-locale" ? state.locale : "");
    });
    var cur = currency();
    Array.prototype.forEach.call(document.querySelectorAll(".amount-label"), function (n) { n.textContent = t("amount_in", { currency: cur }); });
    Array.prototype.forEach.call(document.querySelectorAll(".svc-price-label"), function (n) { n.textContent = t("svc_price", { currency: cur }); });
    Array.prototype.forEach.call(document.querySelectorAll(".svc-noshow-label"), function (n) { n.textContent = t("svc_noshow", { currency: cur }); });
    Array.prototype.forEach.call(document.querySelectorAll(".min-label"), function (n) { n.textContent = t("min_amount") + " (" + cur + ")"; });
    Array.prototype.forEach.call(document.querySelectorAll(".max-label"), function (n) { n.textContent = t("max_amount") + " (" + cur + ")"; });
    Array.prototype.forEach.call(document.querySelectorAll(".tz-hint"), function (n) { n.textContent = t("clinic_time", { tz: timeZone() }); });
    if (state.clinic) {
      $("clinic-name").textContent = state.clinic.name;
      $("role").textContent = t(state.role === "admin" ? "role_admin" : "role_staff");
      $("consent-text").textContent = t("consent_text", { clinic: state.clinic.name });
    }
    var kind = $("tpl-kind");
    var chosen = kind.value;
    clear(kind);
    KINDS.forEach(function (k) { kind.appendChild(h("option", { value: k, text: t("kind_" + k) })); });
    if (chosen) kind.value = chosen;
    var scope = $("tpl-scope");
    var scopeValue = scope.value;
    clear(scope);
    scope.appendChild(h("option", { value: "clinic", text: t("tpl_clinic") }));
    if (state.clinic && state.clinic.org_id) scope.appendChild(h("option", { value: "org", text: t("tpl_org", { org: state.clinic.org_id }) }));
    if (scopeValue) scope.value = scopeValue;
  }

  function setLocale(code) {
    state.locale = pickLocale(code) || state.locale;
    sessionStorage.setItem(LOCALE_KEY, state.locale);
    applyTexts();
    renderAll();
    tabCue();
  }

  function renderAll() {
    if (!state.clinic) return;
    renderServiceOptions();
    if (state.loaded.appointments) renderAppointments();
    if (state.cardsPatient) renderCards();
    if (state.loaded.qr) { renderRegisters(); renderShift(); renderFiscalBy(); renderReport(); }
    if (state.loaded.settings) { renderSettings(); renderGateways(); renderServices(); }
  }

  // ------------------------------------------------------------------ sign-in and navigation
  function showSignIn(message) {
    $("app").hidden = true;
    $("signin").hidden = false;
    applyTexts();
    if (message) say("signin-status", "error", message);
    $("signin-clinic").focus();
  }

  function signOut() {
    sessionStorage.removeItem(SESSION);
    state.key = null; state.clinic = null; state.loaded = {}; state.firstView = null;
    state.cardsPatient = null;
    showSignIn();
  }

  function signIn(clinicId, key, fromSession) {
    state.clinicId = clinicId;
    state.key = key;
    var button = $("signin-form").querySelector("button");
    busy(button, true);
    if (!fromSession) say("signin-status", "info", t("signing_in"));
    return api("GET", clinicPath()).then(function (res) {
      if (!res.ok || !res.data || !res.data.clinic) {
        busy(button, false);
        sessionStorage.removeItem(SESSION);
        if (res.status === 401 || res.status === 404 || res.status === 403) showSignIn(t("bad_key"));
        else { showSignIn(); sayError("signin-status", res); }
        return;
      }
      state.clinic = res.data.clinic;
      // Admin keys may read the gateways; staff keys get 403: that tells the role.
      // The first view is known before the page shows, so it never opens on an empty one.
      return Promise.all([api("GET", clinicPath("/gateways")), chooseFirstView()]).then(function (answers) {
        var gw = answers[0];
        busy(button, false);
        state.role = gw.ok ? "admin" : "staff";
        state.gateways = gw.ok ? (gw.data.gateways || []) : null;
        sessionStorage.setItem(SESSION, JSON.stringify({ clinicId: clinicId, key: key }));
        state.locale = pickLocale(sessionStorage.getItem(LOCALE_KEY)) || pickLocale(state.clinic.locale) || "en";
        say("signin-status", null);
        $("signin").hidden = true;
        $("app").hidden = false;
        $("signin-key").value = "";
        applyTexts();
        $("tpl-locale").value = pickLocale(state.clinic.locale) || state.locale;
        Array.prototype.forEach.call(document.querySelectorAll(".admin-only"), function (fs) { fs.disabled = state.role !== "admin"; });
        $("settings-readonly").hidden = state.role === "admin";
        route();
      });
    });
  }

  function route(event) {
    if (!state.clinic) return;
    var view = (window.location.hash || "#" + (state.firstView || "appointments")).slice(1).split("/")[0];
    if (["appointments", "cards", "qr", "settings"].indexOf(view) < 0) view = "appointments";
    // The tab of the view the page opened on (no # yet) changes the address, not the view: loading it
    // again would re-render what staff have started on.
    if (event && event.type === "hashchange" && view === state.view) return;
    state.view = view;
    Array.prototype.forEach.call(document.querySelectorAll(".view"), function (section) { section.hidden = section.id !== "view-" + view; });
    Array.prototype.forEach.call(document.querySelectorAll("nav.tabs a"), function (a) {
      if (a.getAttribute("data-view") === view) { a.setAttribute("aria-current", "page"); showTab(a); } else a.removeAttribute("aria-current");
    });
    var loaders = { appointments: loadAppointmentsView, cards: loadCardsView, qr: loadQrView, settings: loadSettingsView };
    loaders[view]();
  }

  // The view a clinic opens on (no #view in the address): the appointments, unless the clinic takes
  // monobank QR payments and has no appointments, as a Ukrainian clinic at its registers does: then
  // the QR payments, where its day's work is. Two reads, once per sign-in.
  function chooseFirstView() {
    if (window.location.hash) return Promise.resolve();
    return Promise.all([api("GET", clinicPath("/qr-registers")), api("GET", clinicPath("/appointments"))]).then(function (answers) {
      var registers = answers[0].ok && answers[0].data && answers[0].data.registers;
      var appointments = answers[1].ok && answers[1].data && answers[1].data.appointments;
      state.firstView = registers && registers.length && !(appointments && appointments.length) ? "qr" : "appointments";
    });
  }

  // The tabs scroll sideways when they do not fit; the side with more shows a cue, and the current
  // tab is brought into view.
  function tabCue() {
    var nav = $("tabs"), list = nav.querySelector("ul");
    nav.classList.toggle("more-before", list.scrollLeft > 2);
    nav.classList.toggle("more-after", list.scrollLeft + list.clientWidth < list.scrollWidth - 2);
  }

  function showTab(a) {
    var list = a.closest("ul");
    var left = a.offsetLeft - list.offsetLeft, right = left + a.offsetWidth;
    if (left < list.scrollLeft + 40 || right > list.scrollLeft + list.clientWidth - 40) list.scrollLeft = Math.max(0, left - 40);
    tabCue();
  }

  // On a phone the new-appointment form is folded at the top of the list; this button opens it.
  function toggleNewAppointment(open) {
    var panel = $("new-appt-panel"), button = $("new-appt-toggle");
    panel.classList.toggle("open", open);
    button.setAttribute("aria-expanded", open ? "true" : "false");
    button.setAttribute("data-i18n", open ? "new_appt_close" : "new_appt_open");
    button.textContent = t(open ? "new_appt_close" : "new_appt_open");
    if (open) $("na-name").focus();
  }

  // ------------------------------------------------------------------ appointments
  function loadServices() {
    return api("GET", clinicPath("/services")).then(function (res) {
      if (res.ok) state.services = (res.data && res.data.services) || [];
      renderServiceOptions();
      return res;
    });
  }

  function serviceName(id) {
    var found = state.services.filter(function (s) { return s.service_id === id; })[0];
    return found ? found.name : id;
  }

  function renderServiceOptions() {
    var select = $("na-service");
    var value = select.value;
    clear(select);
    state.services.forEach(function (s) {
      select.appendChild(h("option", { value: s.service_id, text: s.name + " · " + (s.price.amount ? formatMoney(s.price) : t("ps_not_required")) }));
    });
    if (value) select.value = value;
  }

  function loadAppointmentsView() {
    if (!$("na-when").value) $("na-when").value = wallTime(Date.now() + 24 * 3600 * 1000).slice(0, 10) + "T10:00";
    $("na-when").min = wallTime(Date.now());
    loadServices().then(loadAppointments);
  }

  var APPTS_PAGE = 25;
  // Each load is numbered: an answer to an older search (typed over since) is dropped, not shown.
  var apptsLoad = { seq: 0, cursor: null, timer: null };

  // The list's filters as the API takes them (the CSV download sends the same).
  function appointmentsQuery() {
    return { payment_status: $("appts-status").value, from: dayBound($("appts-from").value, false), to: dayBound($("appts-to").value, true),
      q: $("appts-q").value.trim(), sort: $("appts-sort").value || "upcoming", status: $("appts-booking").value };
  }

  // The first page for the filters (more = false), or the next page after the last one shown.
  function loadAppointments(more) {
    var seq = ++apptsLoad.seq;
    var query = appointmentsQuery();
    query.limit = APPTS_PAGE;
    if (more === true) query.cursor = apptsLoad.cursor;
    var button = $("appts-more");
    if (more === true) busy(button, true); else say("appts-status-region", "info", t("loading"));
    return api("GET", clinicPath("/appointments"), { query: query }).then(function (res) {
      if (more === true) busy(button, false);
      if (seq !== apptsLoad.seq) return;
      if (!res.ok) { sayError("appts-status-region", res); return; }
      say("appts-status-region", null);
      var page = (res.data && res.data.appointments) || [];
      state.appointments = more === true ? state.appointments.concat(page) : page;
      apptsLoad.cursor = (res.data && res.data.next_cursor) || null;
      state.loaded.appointments = true;
      renderAppointments();
      if (res.data && res.data.complete === false) say("appts-status-region", "info", t("appts_incomplete"));
    });
  }

  // Filters apply as staff type: one request once typing pauses.
  function loadAppointmentsSoon() {
    window.clearTimeout(apptsLoad.timer);
    apptsLoad.timer = window.setTimeout(function () { loadAppointments(); }, 300);
  }

  function downloadAppointmentsCsv() {
    var button = $("appts-csv");
    busy(button, true);
    var query = appointmentsQuery();
    query.format = "csv";
    api("GET", clinicPath("/appointments"), { query: query, accept: "text/csv" }).then(function (res) {
      busy(button, false);
      if (!res.ok) { sayError("appts-status-region", res); return; }
      var blob = res.data instanceof Blob ? res.data : new Blob([String(res.data)], { type: "text/csv" });
      var url = URL.createObjectURL(blob);
      var a = h("a", { href: url, download: "appointments-" + state.clinicId + "-" + new Date().toISOString().slice(0, 10) + ".csv" });
      document.body.appendChild(a);
      a.click();
      a.remove();
      window.setTimeout(function () { URL.revokeObjectURL(url); }, 10000);
      say("appts-status-region", "ok", t("csv_ready"));
    });
  }

  var PAYMENT_BADGE = { paid: "badge-ok", unpaid: "badge-warn", pending: "badge-info", not_required: "badge-muted", refunded: "badge-muted",
    deposit_paid: "badge-info", partially_refunded: "badge-muted" };

  function amountOf(money) { return money && typeof money.amount === "number" ? money.amount : 0; }

  // What is left to give back on the appointment: paid, less refunded (pending refunds are counted
  // by the API per payment, when the refund form opens).
  function refundableTotal(a) { return amountOf(a.amount_paid) - amountOf(a.amount_refunded); }

  // "Paid 7.500 · Due 17.500": the appointment's money under its status badge.
  function moneyLine(a) {
    var parts = [];
    if (amountOf(a.amount_paid) > 0) parts.push(t("amt_paid", { amount: formatMoney(a.amount_paid) }));
    else if (a.deposit) parts.push(t("amt_deposit", { amount: formatMoney(a.deposit) }));
    if (amountOf(a.amount_refunded) > 0) parts.push(t("amt_refunded", { amount: formatMoney(a.amount_refunded) }));
    if (amountOf(a.amount_paid) > 0 && amountOf(a.balance_due) > 0) parts.push(t("amt_due", { amount: formatMoney(a.balance_due) }));
    return parts.length ? h("span", { "class": "sub", "data-money": "", text: parts.join(" · ") }) : null;
  }

  // Provider, reference, fee and when: the latest online payment on the row.
  function paymentDetails(a) {
    var p = a.payment;
    if (!p) return null;
    var parts = [PROVIDER_NAMES[p.provider] || p.provider, p.reference];
    if (p.fee) parts.push(t("pay_fee", { amount: formatMoney(p.fee) }));
    if (p.paid_at) parts.push(t("pay_paid_at", { when: formatWhen(p.paid_at) }));
    return h("span", { "class": "sub", "data-payment-details": "", text: parts.filter(Boolean).join(" · ") });
  }

  // The appointment's money, all of it: each payment (online or at the desk), each refund with its
  // outcome, each card charge made for it, and the receipt page the patient has. Read when asked.
  function openHistory(a, panel, region) {
    say(region, "info", t("loading"));
    var patient = a.patient || {};
    var reads = [api("GET", apptPath(a, "/payments")), api("GET", apptPath(a, "/refunds")),
                 patient.id ? api("GET", clinicPath("/patients/" + encodeURIComponent(patient.id) + "/charges")) : Promise.resolve(null)];
    Promise.all(reads).then(function (answers) {
      var failed = answers.filter(function (res) { return res && !res.ok && res.status !== 404; })[0];
      if (failed) { sayError(region, failed); return; }
      say(region, null);
      var payments = (answers[0].data && answers[0].data.payments) || [];
      var refunds = (answers[1].data && answers[1].data.refunds) || [];
      var charges = ((answers[2] && answers[2].ok && answers[2].data && answers[2].data.charges) || []).filter(function (c) {
        return c.appointment_id === a.appointment_id;
      });
      var items = [];
      payments.forEach(function (p) {
        var parts = [t("history_payment", { amount: formatMoney(p.amount), method: t("method_" + p.method) }),
                     p.method === "online" ? PROVIDER_NAMES[p.provider] || p.provider : null, p.reference, formatWhen(p.paid_at)];
        if (amountOf(p.refunded) > 0) parts.push(t("amt_refunded", { amount: formatMoney(p.refunded) }));
        items.push(h("li", { "data-history": "payment", text: parts.filter(Boolean).join(" · ") }));
      });
      refunds.forEach(function (r) {
        var parts = [t("history_refund", { amount: formatMoney(r.amount) }), t("refund_st_" + r.status), formatWhen(r.created_at)];
        if (r.reason) parts.push(r.reason);
        items.push(h("li", { "data-history": "refund", "data-status": r.status, text: parts.join(" · ") }));
      });
      charges.forEach(function (c) {
        items.push(h("li", { "data-history": "charge", "data-status": c.status, text: [
          t("history_charge", { amount: formatMoney(c.amount) }), chargeStatusText(c), formatWhen(c.created_at)].join(" · ") }));
      });
      var paid = ["paid", "deposit_paid", "partially_refunded", "refunded"].indexOf(a.payment_status) >= 0;
      clear(panel);
      panel.appendChild(h("div", { "class": "row-form", role: "group", "aria-label": t("history_title") }, [
        h("p", { "class": "row-form-title", text: t("history_title") }),
        items.length ? h("ul", { "class": "history" }, items) : h("p", { "class": "hint", text: t("history_empty") }),
        paid && a.payment_link ? h("p", {}, [h("a", { href: a.payment_link.url, target: "_blank", rel: "noopener", text: t("history_receipt") })]) : null,
        h("div", { "class": "actions" }, [h("button", { type: "button", "class": "btn btn-small btn-secondary",
          onclick: function () { clear(panel); }, text: t("close") })])]));
    });
  }

  // An "awaiting card" booking: send the patient the card request again, by every channel they have.
  function resendCardRequest(a, button, region) {
    var patient = a.patient || {};
    var channels = [];
    if (patient.email) channels.push("email");
    if (patient.phone) channels.push("sms");
    if (!channels.length) { say(region, "error", t("no_contact_card")); return; }
    busy(button, true);
    say(region, "info", t("sending"));
    var body = { channels: channels };
    var scope = "card-request-" + a.appointment_id;
    api("POST", clinicPath("/patients/" + encodeURIComponent(patient.id) + "/card-requests"), { body: body, idempotencyKey: stickyKey(scope, body) }).then(function (res) {
      busy(button, false);
      settleKey(scope, res);
      if (!res.ok) { sayError(region, res); return; }
      say(region, "ok", t("card_request_resent", { patient: patient.name, channels: channelNames(channels) }));
    });
  }

  // Cancel asks first, naming the patient and the time, and says what a cancel does not do (refund).
  function confirmCancel(a, panel, region) {
    var patient = (a.patient || {}).name;
    say(region, null);
    clear(panel);
    var yes = h("button", { type: "button", "class": "btn btn-small btn-danger", "data-action": "confirm-cancel", text: t("cancel_appt_confirm") });
    var keep = h("button", { type: "button", "class": "btn btn-small btn-secondary", onclick: function () { clear(panel); }, text: t("cancel_appt_keep") });
    var paid = refundableTotal(a) > 0;
    panel.appendChild(h("div", { "class": "row-form", role: "group", "aria-label": t("cancel_appt_button") }, [
      h("p", { "class": "row-form-title", text: t("cancel_appt_q", { patient: patient, when: formatWhen(a.starts_at) }) }),
      h("p", { "class": "hint", text: t(paid ? "cancel_appt_paid_hint" : "cancel_appt_hint") }),
      h("div", { "class": "actions" }, [yes, keep])]));
    yes.focus();
    yes.addEventListener("click", function () {
      busy(yes, true);
      say(region, "info", t("sending"));
      api("POST", apptPath(a, "/cancel"), { body: {} }).then(function (res) {
        busy(yes, false);
        if (!res.ok) { sayError(region, res); return; }
        clear(panel);
        say(region, "ok", t("cancel_appt_done", { patient: patient }));
        reloadAppointment(a, region);
      });
    });
  }

  function renderAppointments() {
    var box = clear($("appts-list"));
    var list = state.appointments;
    $("appts-count").textContent = t("count_appointments", { n: list.length });
    $("appts-more").hidden = !apptsLoad.cursor;
    if (!list.length) { box.appendChild(h("p", { "class": "hint", text: t("no_appointments") })); return; }
    var rows = list.map(function (a) {
      var patient = a.patient || {};
      var status = h("div", { "class": "row-status", role: "status", "aria-live": "polite", id: "row-status-" + a.appointment_id });
      var actions = [];
      var panel = h("div", { "class": "row-panel", id: "row-panel-" + a.appointment_id });
      var cancelled = a.status === "cancelled";
      var canPay = (a.payment_status === "unpaid" || a.payment_status === "pending") && a.payment_link && !cancelled;
      if (canPay) {
        actions.push(h("button", { type: "button", "class": "btn btn-small", "data-action": "send-link", "data-appointment": a.appointment_id,
          title: t("pay_button_hint", { patient: patient.name }),
          onclick: function (event) { sendLink(a, event.currentTarget, status); }, text: t("send_link_button") }));
      }
      if (a.status === "awaiting_card") {
        actions.push(h("button", { type: "button", "class": "btn btn-small", "data-action": "resend-card-request",
          onclick: function (event) { resendCardRequest(a, event.currentTarget, status); }, text: t("resend_card_request") }));
      }
      var owing = amountOf(a.balance_due) > 0 && a.payment_status !== "refunded" && !cancelled;
      if (owing && amountOf(a.amount_paid) > 0 && a.payment_link) {
        actions.push(h("button", { type: "button", "class": "btn btn-small", "data-action": "balance-link",
          onclick: function (event) { sendBalanceLink(a, event.currentTarget, status); }, text: t("balance_link_button") }));
      }
      if (owing) {
        actions.push(h("button", { type: "button", "class": "btn btn-small btn-secondary", "data-action": "desk",
          onclick: function () { openDeskForm(a, panel, status); }, text: t("desk_button") }));
      }
      if (refundableTotal(a) > 0) {
        actions.push(h("button", { type: "button", "class": "btn btn-small btn-secondary", "data-action": "refund",
          onclick: function () { openRefundForm(a, panel, status); }, text: t("refund_button") }));
      }
      if (a.payment_link && !cancelled) {
        actions.push(h("button", { type: "button", "class": "btn btn-small btn-secondary", onclick: function () { copyLink(a.payment_link.url, status); }, text: t("copy_link") }));
      }
      if (amountOf(a.amount_paid) > 0 || amountOf(a.amount_refunded) > 0) {
        actions.push(h("button", { type: "button", "class": "btn btn-small btn-secondary", "data-action": "history",
          onclick: function () { openHistory(a, panel, status); }, text: t("history_button") }));
      }
      if (!cancelled) {
        actions.push(h("button", { type: "button", "class": "btn btn-small btn-secondary", "data-action": "cancel-appointment",
          onclick: function () { confirmCancel(a, panel, status); }, text: t("cancel_appt_button") }));
      }
      actions.push(h("button", { type: "button", "class": "btn btn-small btn-secondary",
        onclick: function () { openCards(patient.id, patient.name); }, text: t("cards_button") }));
      return h("tr", { "data-appointment": a.appointment_id }, [
        h("td", { "data-label": t("col_when") }, [h("span", {}, [h("span", { "class": "when", text: formatWhen(a.starts_at) }), h("span", { "class": "sub", text: a.appointment_id })])]),
        h("td", { "data-label": t("col_patient") }, [h("span", {}, [patient.name || "—", h("span", { "class": "sub", text: [patient.email, patient.phone].filter(Boolean).join(" · ") })])]),
        h("td", { "data-label": t("col_service") }, [h("span", {}, [serviceName(a.service_id),
          a.status === "awaiting_card" ? h("span", { "class": "sub" }, [h("span", { "class": "badge badge-warn", text: t("bs_awaiting_card") })]) : null,
          cancelled ? h("span", { "class": "sub" }, [h("span", { "class": "badge badge-muted", "data-booking-status": "cancelled", text: t("bs_cancelled") })]) : null])]),
        h("td", { "class": "num", "data-label": t("col_price") }, [formatMoney(a.price)]),
        h("td", { "data-label": t("col_payment") }, [h("span", {}, [h("span", { "class": "badge " + (PAYMENT_BADGE[a.payment_status] || "badge-muted"),
          "data-payment-status": a.payment_status, text: t("ps_" + a.payment_status) }), moneyLine(a), paymentDetails(a)])]),
        h("td", { "data-label": t("col_actions") }, [h("div", {}, [h("div", { "class": "actions" }, actions), panel, status])])
      ]);
    });
    box.appendChild(h("table", { "class": "data" }, [
      h("caption", { "class": "visually-hidden", text: t("appts_title") }),
      h("thead", {}, [h("tr", {}, ["col_when", "col_patient", "col_service", "col_price", "col_payment", "col_actions"].map(function (k) { return h("th", { scope: "col", text: t(k) }); }))]),
      h("tbody", {}, rows)
    ]));
  }

  function channelNames(list) {
    return (list || []).map(function (c) { return t("ch_" + (typeof c === "string" ? c : c.channel)); }).join(" + ") || t("ch_email");
  }

  function sendLink(appointment, button, region) {
    busy(button, true);
    say(region, "info", t("sending"));
    api("POST", clinicPath("/appointments/" + encodeURIComponent(appointment.appointment_id) + "/payment-link/send"), { body: {} }).then(function (res) {
      busy(button, false);
      if (res.ok) {
        var sent = (res.data && (res.data.sent || res.data.channels)) || [];
        say(region, "ok", t("link_sent", { patient: (appointment.patient || {}).name, channels: channelNames(sent) }));
      } else {
        sayError(region, res);
        if (res.error && res.error.code === "already_paid") {
          appointment.payment_status = "paid";
          var badge = document.querySelector("tr[data-appointment='" + appointment.appointment_id + "'] [data-payment-status]");
          if (badge) { badge.textContent = t("ps_paid"); badge.className = "badge badge-ok"; badge.setAttribute("data-payment-status", "paid"); }
          button.remove();
        }
      }
    });
  }

  function apptPath(a, rest) { return clinicPath("/appointments/" + encodeURIComponent(a.appointment_id) + rest); }

  function sendBalanceLink(appointment, button, region) {
    busy(button, true);
    say(region, "info", t("sending"));
    var body = { purpose: "balance" };
    api("POST", apptPath(appointment, "/payment-link/send"), { body: body, idempotencyKey: stickyKey("balance-" + appointment.appointment_id, body) }).then(function (res) {
      busy(button, false);
      settleKey("balance-" + appointment.appointment_id, res);
      if (!res.ok) { sayError(region, res); return; }
      var sent = (res.data && res.data.sent) || [];
      say(region, "ok", t("balance_link_sent", { patient: (appointment.patient || {}).name, amount: formatMoney(appointment.balance_due), channels: channelNames(sent) }));
    });
  }

  // A small form under the row's buttons; one at a time per row.
  function openPanel(panel, title, fields, onSubmit) {
    clear(panel);
    var form = h("form", { "class": "row-form", novalidate: true }, [h("p", { "class": "row-form-title", text: title })].concat(fields));
    form.addEventListener("submit", function (event) { event.preventDefault(); onSubmit(form); });
    panel.appendChild(form);
    var first = form.querySelector("input, select");
    if (first) first.focus();
    return form;
  }

  function amountField(id, label, money) {
    return h("div", { "class": "field" }, [h("label", { "for": id, text: label }),
      h("input", { id: id, type: "text", inputmode: "decimal", autocomplete: "off", value: fromMinor(money), required: true })]);
  }

  function closeButton(panel) {
    return h("button", { type: "button", "class": "btn btn-small btn-secondary", onclick: function () { clear(panel); }, text: t("cancel") });
  }

  function openDeskForm(a, panel, region) {
    var patient = (a.patient || {}).name;
    var amountId = "desk-amount-" + a.appointment_id, noteId = "desk-note-" + a.appointment_id;
    openPanel(panel, t("desk_button"), [
      amountField(amountId, t("desk_amount", { currency: a.price.currency }), a.balance_due),
      h("div", { "class": "field" }, [h("label", { "for": noteId }, [t("desk_note"), " ", h("span", { "class": "opt", text: "(" + t("optional") + ")" })]),
        h("input", { id: noteId, type: "text", maxlength: "500", autocomplete: "off" })]),
      h("div", { "class": "actions" }, [h("button", { type: "submit", "class": "btn btn-small", text: t("desk_record") }), closeButton(panel)])
    ], function (form) {
      var input = $(amountId);
      var minor = toMinor(input.value, a.price.currency);
      fieldError(input, !minor);
      if (!minor) { say(region, "error", t("err_422")); input.focus(); return; }
      var body = { method: "desk", amount: { amount: minor, currency: a.price.currency } };
      if ($(noteId).value.trim()) body.note = $(noteId).value.trim();
      var button = form.querySelector("button[type=submit]");
      busy(button, true);
      api("POST", apptPath(a, "/payments"), { body: body, idempotencyKey: stickyKey("desk-" + a.appointment_id, body) }).then(function (res) {
        busy(button, false);
        settleKey("desk-" + a.appointment_id, res);
        if (!res.ok) { sayError(region, res); return; }
        clear(panel);
        say(region, "ok", t("desk_done", { patient: patient, amount: formatMoney(body.amount) }));
        reloadAppointment(a, region);
      });
    });
  }

  function openRefundForm(a, panel, region) {
    say(region, "info", t("loading"));
    api("GET", apptPath(a, "/payments")).then(function (res) {
      if (!res.ok) { sayError(region, res); return; }
      say(region, null);
      var payments = ((res.data && res.data.payments) || []).filter(function (p) { return amountOf(p.refundable) > 0; });
      if (!payments.length) { say(region, "info", t("code_nothing_to_refund")); return; }
      // The API's default: the latest online payment with something left, else the latest at the desk.
      var chosen = payments.filter(function (p) { return p.method === "online"; })[0] || payments[0];
      var selectId = "refund-payment-" + a.appointment_id, amountId = "refund-amount-" + a.appointment_id, reasonId = "refund-reason-" + a.appointment_id;
      var select = h("select", { id: selectId }, payments.map(function (p) {
        return h("option", { value: p.reference, selected: p === chosen, text: t("payment_option", {
          amount: formatMoney(p.amount), method: t("method_" + p.method), left: formatMoney(p.refundable) }) });
      }));
      var hint = h("p", { "class": "hint", id: "refund-hint-" + a.appointment_id });
      var form = openPanel(panel, t("refund_button"), [
        h("div", { "class": "field" }, [h("label", { "for": selectId, text: t("refund_payment") }), select]),
        amountField(amountId, t("refund_amount", { currency: a.price.currency }), chosen.refundable),
        h("div", { "class": "field" }, [h("label", { "for": reasonId }, [t("refund_reason"), " ", h("span", { "class": "opt", text: "(" + t("optional") + ")" })]),
          h("input", { id: reasonId, type: "text", maxlength: "500", autocomplete: "off" })]),
        hint,
        h("div", { "class": "actions" }, [h("button", { type: "submit", "class": "btn btn-small", text: t("refund_continue") }), closeButton(panel)])
      ], function () { confirmRefund(a, panel, region, payments, selectId, amountId, reasonId); });
      var payment = function () { return payments.filter(function (p) { return p.reference === select.value; })[0]; };
      var showHint = function () { hint.textContent = payment().method === "desk" ? t("refund_at_desk_hint") : ""; };
      select.addEventListener("change", function () { $(amountId).value = fromMinor(payment().refundable); showHint(); });
      showHint();
      return form;
    });
  }

  function confirmRefund(a, panel, region, payments, selectId, amountId, reasonId) {
    var payment = payments.filter(function (p) { return p.reference === $(selectId).value; })[0];
    var input = $(amountId);
    var minor = toMinor(input.value, a.price.currency);
    var bad = !minor || minor > amountOf(payment.refundable);
    fieldError(input, bad);
    if (bad) { say(region, "error", minor ? t("code_refund_exceeds_remaining") : t("err_422")); input.focus(); return; }
    say(region, null);
    var body = { amount: { amount: minor, currency: a.price.currency }, payment_reference: payment.reference };
    if ($(reasonId).value.trim()) body.reason = $(reasonId).value.trim();
    refundStep({ panel: panel, region: region, body: body, patient: (a.patient || {}).name,
                 path: apptPath(a, "/refunds"), scope: "refund-" + a.appointment_id,
                 provider: function (refund) { return PROVIDER_NAMES[refund.provider] || refund.provider; },
                 reload: function () { reloadAppointment(a, region); } });
  }

  // The refund's second step, for an appointment's payment or a card charge: it names the amount and
  // the patient, so a slip of the finger refunds nothing, then sends under a key kept until a
  // definitive answer (a click again after no answer is the same refund at the provider).
  function refundStep(o) {
    var shown = formatMoney(o.body.amount);
    say(o.region, null);
    clear(o.panel);
    var yes = h("button", { type: "button", "class": "btn btn-small btn-danger", "data-action": "confirm-refund", text: t("refund_confirm", { amount: shown }) });
    o.panel.appendChild(h("div", { "class": "row-form", role: "group", "aria-label": t("refund_button") }, [
      h("p", { "class": "row-form-title", text: t("refund_confirm_q", { amount: shown, patient: o.patient }) }),
      h("div", { "class": "actions" }, [yes, closeButton(o.panel)])]));
    yes.focus();
    yes.addEventListener("click", function () {
      busy(yes, true);
      say(o.region, "info", t("sending"));
      api("POST", o.path, { body: o.body, idempotencyKey: stickyKey(o.scope, o.body) }).then(function (res) {
        busy(yes, false);
        settleKey(o.scope, res);
        if (!res.ok) { sayError(o.region, res); return; }
        clear(o.panel);
        var refund = res.data || {};
        var provider = o.provider(refund);
        if (refund.status === "succeeded") say(o.region, "ok", t("refund_done_msg", { amount: shown, patient: o.patient }));
        else if (refund.status === "pending") say(o.region, "info", t("refund_pending_msg", { amount: shown, patient: o.patient, provider: provider }));
        else say(o.region, "error", t("refund_failed_msg", { provider: provider, code: refund.failure_code || "" }));
        o.reload();
      });
    });
  }

  // The row again, with its new amounts and buttons; what the row said stays.
  function reloadAppointment(a, region) {
    var said = region.firstChild ? region.firstChild.cloneNode(true) : null;
    api("GET", apptPath(a, "")).then(function (res) {
      if (!res.ok) return;
      state.appointments = state.appointments.map(function (x) { return x.appointment_id === a.appointment_id ? res.data : x; });
      renderAppointments();
      var fresh = $("row-status-" + a.appointment_id);
      if (fresh && said) { clear(fresh); fresh.appendChild(said); }
    });
  }

  function copyLink(url, region) {
    var done = function () { say(region, "ok", t("link_copied")); };
    if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(url).then(done, function () { say(region, "info", url); });
    else say(region, "info", url);
  }

  function slug(text) {
    return String(text || "").normalize("NFD").replace(/[\u0300-\u036f]/g, "").toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 40);
  }

  function createAppointment(event) {
    event.preventDefault();
    var form = $("new-appt");
    var button = form.querySelector("button[type=submit]");
    var name = $("na-name"), id = $("na-id"), email = $("na-email"), phone = $("na-phone"), when = $("na-when"), service = $("na-service");
    clearFieldErrors(form);
    var bad = [];
    var mark = function (input, kind) { if (bad.indexOf(input) < 0) { markField(NEW_APPT_FIELDS, input, kind); bad.push(input); } };
    [name, id, when, service].forEach(function (input) { if (!input.value.trim()) mark(input, "missing"); });
    if (id.value && !/^[A-Za-z0-9_\-.@]+$/.test(id.value)) mark(id, "pattern");
    if (email.value && !/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(email.value.trim())) mark(email, "pattern");
    var phoneValue = phone.value.replace(/[\s\-().]/g, "");
    if (phoneValue && !/^\+[1-9]\d{6,14}$/.test(phoneValue)) mark(phone, "pattern");
    if (bad.length) { say("new-appt-status", "error", t("err_fields", { n: bad.length })); bad[0].focus(); return; }
    var patient = { id: id.value.trim(), name: name.value.trim() };
    if (email.value.trim()) patient.email = email.value.trim();
    if (phoneValue) patient.phone = phoneValue;
    if ($("na-locale").value) patient.locale = $("na-locale").value;
    var body = { patient: patient, service_id: service.value, starts_at: zonedIso(when.value, timeZone()), booked_by: "staff" };
    busy(button, true);
    say("new-appt-status", "info", t("loading"));
    api("POST", clinicPath("/appointments"), { body: body, idempotencyKey: stickyKey("appointment", body) }).then(function (res) {
      busy(button, false);
      settleKey("appointment", res);
      if (!res.ok) { sayError("new-appt-status", res, NEW_APPT_FIELDS); return; }
      var created = res.data || {};
      var extra = [];
      if (created.payment_link) extra.push(linkBox(t("payment_link_is"), created.payment_link.url));
      if (created.next_action && created.next_action.url) extra.push(linkBox(t("card_link_is"), created.next_action.url));
      name.value = ""; id.value = ""; email.value = ""; phone.value = "";
      id.removeAttribute("data-touched");
      // Said once the list shows the new row, so nothing re-renders under what staff do next.
      return loadAppointments().then(function () {
        say("new-appt-status", "ok", t("appt_created", { patient: patient.name }), extra);
      });
    });
  }

  function linkBox(label, url) {
    return h("div", { "class": "link-box" }, [h("span", { text: label + ":" }), h("a", { href: url, target: "_blank", rel: "noopener", text: url })]);
  }

  // ------------------------------------------------------------------ patient cards
  function openCards(patientId, name) {
    state.cardsPatient = patientId;
    state.cardsPatientName = name || null;
    $("cards-patient").value = patientId;
    window.location.hash = "#cards";
  }

  function loadCardsView() {
    if (state.cardsPatient) loadCards();
  }

  function cardsPath(rest) { return clinicPath("/patients/" + encodeURIComponent(state.cardsPatient) + (rest || "")); }

  function loadCards() {
    say("cards-status", "info", t("loading"));
    return api("GET", cardsPath("/cards")).then(function (res) {
      $("cards-tools").hidden = false;
      if (!res.ok) { state.cards = []; clear($("cards-list")); sayError("cards-status", res, { patient_id: "cards-patient" }); return; }
      say("cards-status", null);
      state.cards = Array.isArray(res.data) ? res.data : ((res.data && res.data.cards) || []);
      renderCards();
      return loadCharges();
    });
  }

  // ------------------------------------------------------------------ the patient's card charges
  // Newest first, as the API lists them; each with something left to give back has a Refund button.
  function loadCharges() {
    return api("GET", cardsPath("/charges")).then(function (res) {
      if (!res.ok) { state.charges = []; clear($("charges-list")); sayError("cards-status", res); return; }
      state.charges = (res.data && res.data.charges) || [];
      renderCharges();
    });
  }

  // What a refund may still give back: a charge that succeeded, less what its refunds (pending ones
  // included) already give back. The API decides; this only spares staff a form that would be refused.
  function chargeRefundable(c) {
    var refundable = ["succeeded", "partially_refunded"].indexOf(c.status) >= 0;
    return refundable ? amountOf(c.amount) - amountOf(c.amount_refunded) : 0;
  }

  function chargeStatusText(c) {
    var key = { succeeded: "charge_st_succeeded", processing: "ps_pending", requires_action: "charge_st_requires_action",
                failed: "charge_st_failed", refunded: "ps_refunded", partially_refunded: "ps_partially_refunded" }[c.status];
    return key ? t(key) : c.status;
  }

  function renderCharges() {
    var box = clear($("charges-list"));
    box.appendChild(h("h2", { style: "margin-top:.75rem", text: t("charges_title") }));
    if (!state.charges.length) { box.appendChild(h("p", { "class": "hint", text: t("no_charges") })); return; }
    box.appendChild(h("ul", { "class": "cards-list charges-list", id: "charges" }, state.charges.map(function (c) {
      var status = h("div", { "class": "row-status", role: "status", "aria-live": "polite", id: "charge-status-" + c.charge_id });
      var panel = h("div", { "class": "row-panel" });
      var left = chargeRefundable(c);
      var badge = { succeeded: "badge-ok", refunded: "badge-muted", partially_refunded: "badge-muted", processing: "badge-info",
                    failed: "badge-err" }[c.status] || "badge-warn";
      var details = [formatWhen(c.created_at), t("reason_" + c.reason)];
      if (c.card && c.card.last4) details.push(t("card_line", { brand: brandName(c.card), last4: c.card.last4 }));
      if (amountOf(c.amount_refunded) > 0) details.push(t("amt_refunded", { amount: formatMoney(c.amount_refunded) }));
      var actions = [];
      if (left > 0) {
        actions.push(h("button", { type: "button", "class": "btn btn-small btn-secondary", "data-action": "refund-charge",
          onclick: function () { openChargeRefund(c, left, panel, status); }, text: t("refund_button") }));
      }
      return h("li", { "class": "charge-item", "data-charge": c.charge_id, "data-status": c.status }, [
        h("div", {}, [
          h("div", { "class": "what" }, [formatMoney(c.amount), " ", h("span", { "class": "badge " + badge, text: chargeStatusText(c) })]),
          h("div", { "class": "hint", text: details.join(" · ") }),
          chargeRefundList(c),
          panel, status
        ]),
        h("div", { "class": "actions" }, actions)
      ]);
    })));
  }

  // The charge's refunds under it, oldest first (the API lists them with the charges): what, when, how it went.
  function chargeRefundList(c) {
    var refunds = c.refunds || [];
    if (!refunds.length) return null;
    var st = { succeeded: "refund_st_succeeded", pending: "refund_st_pending", failed: "refund_st_failed" };
    return h("ul", { "class": "hint charge-refunds", "aria-label": t("charge_refunds") }, refunds.map(function (r) {
      var parts = [t("refund_line", { amount: formatMoney(r.amount), when: formatWhen(r.created_at) }), st[r.status] ? t(st[r.status]) : r.status];
      if (r.failure_code) parts.push(r.failure_code);
      if (r.reason) parts.push(r.reason);
      return h("li", { "data-refund": r.refund_id, "data-status": r.status, text: parts.join(" · ") });
    }));
  }

  function chargePath(c, rest) { return cardsPath("/charges/" + encodeURIComponent(c.charge_id) + (rest || "")); }

  function openChargeRefund(c, left, panel, region) {
    var amountId = "charge-refund-amount-" + c.charge_id, reasonId = "charge-refund-reason-" + c.charge_id;
    var cur = c.amount.currency;
    say(region, null);
    openPanel(panel, t("refund_button"), [
      amountField(amountId, t("refund_amount", { currency: cur }), { amount: left, currency: cur }),
      h("div", { "class": "field" }, [h("label", { "for": reasonId }, [t("refund_reason"), " ", h("span", { "class": "opt", text: "(" + t("optional") + ")" })]),
        h("input", { id: reasonId, type: "text", maxlength: "200", autocomplete: "off" })]),
      h("div", { "class": "actions" }, [h("button", { type: "submit", "class": "btn btn-small", text: t("refund_continue") }), closeButton(panel)])
    ], function () {
      var input = $(amountId);
      var minor = toMinor(input.value, cur);
      var bad = !minor || minor > left;
      fieldError(input, bad);
      if (bad) { say(region, "error", minor ? t("code_refund_exceeds_remaining") : t("err_422")); input.focus(); return; }
      var body = { amount: { amount: minor, currency: cur } };
      if ($(reasonId).value.trim()) body.reason = $(reasonId).value.trim();
      confirmChargeRefund(c, body, panel, region);
    });
  }

  function confirmChargeRefund(c, body, panel, region) {
    refundStep({ panel: panel, region: region, body: body, patient: state.cardsPatientName || state.cardsPatient,
                 path: chargePath(c, "/refunds"), scope: "charge-refund:" + state.cardsPatient + ":" + c.charge_id,
                 provider: function () { return PROVIDER_NAMES.stripe; },  // cards on file are Stripe's (tokenize)
                 reload: function () { reloadCharges(c, region); } });
  }

  // The list again, with the charge's new status; what its row said stays.
  function reloadCharges(c, region) {
    var said = region.firstChild ? region.firstChild.cloneNode(true) : null;
    loadCharges().then(function () {
      var fresh = $("charge-status-" + c.charge_id);
      if (fresh && said) { clear(fresh); fresh.appendChild(said); }
    });
  }

  function renderCards() {
    var box = clear($("cards-list"));
    var who = state.cardsPatientName ? state.cardsPatientName + " (" + state.cardsPatient + ")" : state.cardsPatient;
    box.appendChild(h("h2", { style: "margin-top:.75rem", text: t("cards_of", { patient: who }) }));
    if (!state.cards.length) box.appendChild(h("p", { "class": "hint", text: t("no_cards") }));
    else {
      box.appendChild(h("ul", { "class": "cards-list" }, state.cards.map(function (card) {
        var status = h("div", { "class": "row-status", role: "status", "aria-live": "polite" });
        var brand = brandName(card);
        var consent = card.consent && (card.consent.granted_at || card.consent.at);
        var actions = [];
        if (!card.is_default) actions.push(h("button", { type: "button", "class": "btn btn-small btn-secondary", text: t("set_default"), onclick: function (e) { setDefault(card, e.currentTarget, status); } }));
        var remove = h("button", { type: "button", "class": "btn btn-small btn-danger", text: t("remove") });
        remove.addEventListener("click", function () { confirmRemove(card, remove, status); });
        actions.push(remove);
        return h("li", { "class": "card-item", "data-card": card.card_id }, [
          h("div", {}, [
            h("div", { "class": "what" }, [t("card_line", { brand: brand, last4: card.last4 }), " ", card.is_default ? h("span", { "class": "badge badge-info", text: t("default_badge") }) : null]),
            h("div", { "class": "hint", text: t("expires", { date: pad(card.exp_month) + "/" + card.exp_year }) + (consent ? " · " + t("consent_on", { date: formatWhen(consent) }) : "") }),
            status
          ]),
          h("div", { "class": "actions" }, actions)
        ]);
      })));
    }
    var select = $("charge-card");
    clear(select);
    select.appendChild(h("option", { value: "", text: t("default_card") }));
    state.cards.forEach(function (card) { select.appendChild(h("option", { value: card.card_id, text: t("card_line", { brand: brandName(card), last4: card.last4 }) })); });
  }

  function setDefault(card, button, region) {
    busy(button, true);
    api("PUT", cardsPath("/cards/" + encodeURIComponent(card.card_id) + "/default"), { body: {} }).then(function (res) {
      busy(button, false);
      if (!res.ok) { sayError(region, res); return; }
      loadCards().then(function () { say("cards-status", "ok", t("default_set")); });
    });
  }

  // Two steps, inline (no window.confirm): the button asks, a second click removes.
  function confirmRemove(card, button, region) {
    if (!button.getAttribute("data-armed")) {
      button.setAttribute("data-armed", "1");
      say(region, "warn", t("remove_card_confirm"));
      button.textContent = t("remove") + " · " + t("yes");
      return;
    }
    busy(button, true);
    api("DELETE", cardsPath("/cards/" + encodeURIComponent(card.card_id))).then(function (res) {
      busy(button, false);
      if (!res.ok) { sayError(region, res); return; }
      loadCards().then(function () { say("cards-status", "ok", t("card_removed")); });
    });
  }

  function startCardSetup(withConsent) {
    var region = "add-card-status";
    if (!state.cardsPatient) return;
    if (withConsent && !$("add-card-consent").checked) {
      say(region, "error", t("consent_needed"));
      $("add-card-consent").focus();
      return;
    }
    var body = withConsent ? { consent: { granted: true, text_version: CONSENT_TEXT_VERSION, channel: "staff",
      granted_by: "staff page" } } : {};
    var button = withConsent ? $("add-card-go") : $("add-card-tablet");
    busy(button, true);
    say(region, "info", t("opening_card_page"));
    api("POST", cardsPath("/card-setup"), { body: body }).then(function (res) {
      busy(button, false);
      if (!res.ok) { sayError(region, res); return; }
      var url = res.data && (res.data.url || res.data.hosted_url);
      if (!url) { say(region, "error", t("err_500")); return; }
      var link = h("a", { "class": "btn", id: "card-page-link", href: url, target: "_blank", rel: "noopener", text: t("open_card_page") });
      say(region, "ok", t("card_page_ready"), [h("p", { style: "margin-top:.5rem" }, [link])]);
      link.focus();
    });
  }

  function charge(noShow) {
    var region = "charge-status";
    var amountText = $("charge-amount").value;
    var reason = noShow ? "no_show" : $("charge-reason").value;
    var body = { reason: reason };
    var minor = toMinor(amountText, currency());
    if (amountText && minor == null) { markField(CHARGE_FIELDS, $("charge-amount"), "type"); say(region, "error", t("err_fields", { n: 1 })); $("charge-amount").focus(); return; }
    fieldError($("charge-amount"), false);
    if (minor != null) body.amount = { amount: minor, currency: currency() };
    else if (reason !== "no_show") { fieldError($("charge-amount"), true); say(region, "error", t("required")); $("charge-amount").focus(); return; }
    if ($("charge-card").value) body.card_id = $("charge-card").value;
    if ($("charge-appt").value.trim()) body.appointment_id = $("charge-appt").value.trim();
    confirmCharge(body, region);
  }

  function brandName(card) { return String(card.brand || "").replace(/^./, function (c) { return c.toUpperCase(); }); }

  // The card to be charged, as its line reads ("Visa ending in 4242"): the chosen one, else the default.
  function chargedCardLine(cardId) {
    var card = state.cards.filter(function (c) { return cardId ? c.card_id === cardId : c.is_default; })[0];
    return card ? t("card_line", { brand: brandName(card), last4: card.last4 }) : t("default_card");
  }

  // A second step that names the amount, the card and the patient before any money moves, as the
  // refund does: a slip of the finger charges nobody. The answer replaces the question in place.
  function confirmCharge(body, region) {
    var panel = $("charge-confirm");
    var vars = { amount: body.amount ? formatMoney(body.amount) : "", card: chargedCardLine(body.card_id),
                 patient: state.cardsPatientName || state.cardsPatient };
    var fee = !body.amount;
    clear(panel);
    say(region, null);
    var yes = h("button", { type: "button", "class": "btn btn-small btn-danger", "data-action": "confirm-charge",
                            text: fee ? t("charge_confirm_yes_fee") : t("charge_confirm_yes", vars) });
    panel.appendChild(h("div", { "class": "row-form", role: "group", "aria-label": t("charge_title") }, [
      h("p", { "class": "row-form-title", text: t(fee ? "charge_confirm_q_fee" : "charge_confirm_q", vars) }),
      h("div", { "class": "actions" }, [yes, closeButton(panel)])]));
    yes.focus();
    yes.addEventListener("click", function () { clear(panel); sendCharge(body, region); });
  }

  function sendCharge(body, region) {
    var button = body.reason === "no_show" && !body.amount ? $("charge-no-show") : $("charge").querySelector("button[type=submit]");
    busy(button, true);
    say(region, "info", t("loading"));
    var scope = "charge:" + state.cardsPatient;
    api("POST", cardsPath("/charges"), { body: body, idempotencyKey: stickyKey(scope, body) }).then(function (res) {
      busy(button, false);
      settleKey(scope, res);
      var result = res.data || {};
      // The answer is announced once the list below shows it: a list that re-rendered after the
      // announcement would close a refund form staff had just opened on one of its rows.
      return loadCharges().then(function () { announceCharge(res, result, body, region); });
    });
  }

  function announceCharge(res, result, body, region) {
    if (!res.ok && !(result && result.status)) { sayError(region, res, CHARGE_FIELDS); return; }
    if (result.status === "succeeded") say(region, "ok", t("charge_succeeded", { amount: formatMoney(result.amount || body.amount) }));
    else if (result.status === "processing") say(region, "info", t("charge_processing"));
    else if (result.status === "requires_action") {
      say(region, "warn", t("charge_action"), [result.action_url ? linkBox(t("open_card_page"), result.action_url) : null]);
    } else {
      var code = result.failure_code || (res.error && res.error.code) || "unknown";
      var reasonText = TEXT.en["decline_" + code] ? t("decline_" + code) : t("decline_other", { code: code });
      say(region, "error", t("charge_failed", { reason: reasonText }), [res.error && res.error.message ? h("p", { "class": "detail", text: t("api_said") + ": " + res.error.message }) : null]);
    }
  }

  function sendCardRequest(event) {
    event.preventDefault();
    var channels = ["req-email", "req-sms"].filter(function (id) { return $(id).checked; }).map(function (id) { return $(id).value; });
    if (!channels.length) { say("request-status", "error", t("pick_channel")); return; }
    var button = $("card-request").querySelector("button[type=submit]");
    busy(button, true);
    api("POST", cardsPath("/card-requests"), { body: { channels: channels } }).then(function (res) {
      busy(button, false);
      if (!res.ok) { sayError("request-status", res); return; }
      var result = (res.data && res.data.card_request) || res.data || {};
      var sent = (result.sent || channels).map(function (x) { return typeof x === "string" ? x : x.channel; }).filter(Boolean);
      var skipped = (result.skipped || []).map(function (s) { return typeof s === "string" ? s : s.channel; }).filter(Boolean);
      if (!sent.length) { say("request-status", "error", t("request_none", { channels: channelNames(skipped) })); return; }
      say("request-status", "ok", t("request_sent", { channels: channelNames(sent) }),
        [skipped.length ? h("p", { "class": "detail", text: t("request_skipped", { channels: channelNames(skipped) }) }) : null]);
    });
  }

  // ------------------------------------------------------------------ QR registers, shift, report
  function loadQrView() {
    state.loaded.qr = true;
    loadShift();
    loadFiscalBy();
    loadRegisters().then(function () { return loadReport(); });
  }

  // Who makes the clinic's QR receipts (setting `fiscalization`), and the shift's schedule, if any.
  function loadFiscalBy() {
    return api("GET", clinicPath("/settings")).then(function (res) {
      if (!res.ok) return;
      state.settings = res.data;
      renderFiscalBy();
    });
  }

  function renderFiscalBy() {
    var s = state.settings || {};
    var who = s.fiscalization || "clinicpay";
    var line = $("fiscal-by");
    line.textContent = t("fiscal_by_" + who);
    line.setAttribute("data-fiscalization", who);
    var plan = s.fiscal_shift_schedule;
    $("shift-schedule").textContent = plan ? t("shift_schedule_line", { open: plan.open, close: plan.close }) : "";
  }

  function loadRegisters() {
    return api("GET", clinicPath("/qr-registers")).then(function (res) {
      if (!res.ok) { state.registers = []; renderRegisters(); sayError("qr-status", res); if (missingRoute(res)) clear($("qr-list")); return; }
      state.registers = Array.isArray(res.data) ? res.data : ((res.data && (res.data.registers || res.data.qr_registers)) || []);
      renderRegisters();
    });
  }

  function renderRegisters() {
    var box = clear($("qr-list"));
    var filter = $("rf-qr"), chosen = filter.value;
    clear(filter);
    filter.appendChild(h("option", { value: "", text: t("any_register") }));
    state.registers.forEach(function (r) { filter.appendChild(h("option", { value: r.qr_id, text: r.short_qr_id || r.qr_id })); });
    filter.value = chosen;
    if (!state.registers.length) { box.appendChild(h("p", { "class": "hint", text: t("no_registers") })); return; }
    box.appendChild(h("ul", { "class": "registers" }, state.registers.map(function (r) {
      var status = h("div", { "class": "row-status", role: "status", "aria-live": "polite" });
      var amountId = "qr-amount-" + r.qr_id, apptId = "qr-appt-" + r.qr_id;
      var form = h("form", { novalidate: true, onsubmit: function (e) { e.preventDefault(); putAmount(r, form, status); } }, [
        h("div", { "class": "field" }, [h("label", { "for": amountId, text: t("amount_in", { currency: currency() }) }), h("input", { id: amountId, type: "text", inputmode: "decimal", autocomplete: "off" })]),
        h("div", { "class": "field" }, [h("label", { "for": apptId }, [t("appointment_id"), " ", h("span", { "class": "opt", text: "(" + t("optional") + ")" })]), h("input", { id: apptId, type: "text", autocomplete: "off" })]),
        h("button", { type: "submit", "class": "btn btn-small", text: t("put_amount"), disabled: r.active === false })
      ]);
      var merchant = !r.amount_type || r.amount_type === "merchant";
      return h("li", { "class": "register", "data-qr": r.qr_id }, [
        h("div", { "class": "register-head" }, [
          h("strong", { text: t("register") + " " + (r.short_qr_id || r.qr_id) }),
          r.active === false ? h("span", { "class": "badge badge-muted", text: t("inactive") }) : null,
          h("span", { "class": "badge " + (r.current_amount ? "badge-info" : "badge-muted"), "data-on-display": "",
            text: r.current_amount ? t("on_display", { amount: formatMoney(r.current_amount) }) : t("no_amount") }),
          r.page_url ? h("a", { href: r.page_url, target: "_blank", rel: "noopener", text: t("open_qr_page") }) : null
        ]),
        merchant ? form : h("p", { "class": "hint", text: t("client_amount") }), status
      ]);
    })));
  }

  function syncRegisters() {
    var button = $("qr-sync");
    busy(button, true);
    say("qr-status", "info", t("loading"));
    api("POST", clinicPath("/qr-registers/sync"), { body: {} }).then(function (res) {
      busy(button, false);
      if (!res.ok) { sayError("qr-status", res); return; }
      var list = Array.isArray(res.data) ? res.data : ((res.data && (res.data.registers || res.data.qr_registers)) || null);
      if (list) { state.registers = list; renderRegisters(); renderReport(); say("qr-status", "ok", t("synced", { n: list.length })); }
      else loadRegisters().then(function () { say("qr-status", "ok", t("synced", { n: state.registers.length })); });
    });
  }

  function putAmount(register, form, region) {
    var amountInput = form.querySelector("input[id^='qr-amount-']");
    var minor = toMinor(amountInput.value, currency());
    if (!minor) { fieldError(amountInput, true); say(region, "error", t("err_422")); amountInput.focus(); return; }
    fieldError(amountInput, false);
    var body = { amount: { amount: minor, currency: currency() } };
    var appt = form.querySelector("input[id^='qr-appt-']").value.trim();
    if (appt) body.appointment_id = appt;
    var button = form.querySelector("button");
    busy(button, true);
    say(region, "info", t("loading"));
    api("POST", clinicPath("/qr-registers/" + encodeURIComponent(register.qr_id) + "/amount"), { body: body }).then(function (res) {
      busy(button, false);
      if (!res.ok) { sayError(region, res); return; }
      register.current_amount = body.amount;
      var shown = form.parentNode.querySelector("[data-on-display]");
      if (shown) { shown.textContent = t("on_display", { amount: formatMoney(body.amount) }); shown.className = "badge badge-info"; }
      say(region, "ok", t("amount_put", { amount: formatMoney(body.amount), qr: register.short_qr_id || register.qr_id }));
      amountInput.value = "";
    });
  }

  function loadShift() {
    return api("GET", clinicPath("/fiscal/shift")).then(function (res) {
      if (!res.ok) { state.shift = null; renderShift(); sayError("shift-status", res); return; }
      state.shift = res.data;
      renderShift();
    });
  }

  function renderShift() {
    var badge = $("shift-state");
    var shift = state.shift && (state.shift.shift || state.shift);
    var status = shift && shift.status;
    if (!status) { badge.textContent = "—"; badge.className = "badge badge-muted"; $("shift-open").disabled = true; $("shift-close").disabled = true; return; }
    badge.textContent = t("shift_" + status, { time: formatWhen(shift.opened_at) });
    badge.className = "badge " + (status === "OPENED" ? "badge-ok" : status === "CLOSED" || status === "NONE" ? "badge-muted" : "badge-info");
    badge.setAttribute("data-shift", status);
    $("shift-open").disabled = status === "OPENED" || status === "OPENING";
    $("shift-close").disabled = status !== "OPENED";
  }

  function shiftAction(action) {
    var button = $("shift-" + action);
    busy(button, true);
    say("shift-status", "info", t("loading"));
    api("POST", clinicPath("/fiscal/shift/" + action), { body: {} }).then(function (res) {
      busy(button, false);
      // No money moves at a shift: the register's trouble is said as what it is, not "nothing was charged".
      if (!res.ok && (res.network || res.status >= 500)) { say("shift-status", "warn", t("shift_unavailable")); return; }
      if (!res.ok) { sayError("shift-status", res); return; }
      state.shift = res.data;
      renderShift();
      var done = res.data && typeof res.data.fiscalized === "number" && res.data.fiscalized > 0;
      say("shift-status", "ok", done ? t("shift_fiscalized", { n: res.data.fiscalized }) : t("saved"));
      if (done) loadReport();
    });
  }

  function reportQuery() {
    var cur = currency();
    return { from: $("rf-from").value, to: $("rf-to").value, qr_id: $("rf-qr").value, fiscal_status: $("rf-fiscal").value,
      min_amount: toMinor($("rf-min").value, cur), max_amount: toMinor($("rf-max").value, cur) };
  }

  var REPORT_PAGE = 50;
  var reportLoad = { seq: 0, cursor: null, timer: null };

  // The first page for the filters, at least as many rows as were shown (a reload after a refund keeps
  // the row staff acted on in view); or (more = true) the next page after the last row shown.
  function loadReport(more) {
    var seq = ++reportLoad.seq;
    var query = reportQuery();
    query.limit = more === true ? REPORT_PAGE : Math.min(500, Math.max(REPORT_PAGE, state.report.length));
    if (more === true) query.cursor = reportLoad.cursor;
    if (more === true) busy($("report-more"), true); else say("report-status", "info", t("loading"));
    return api("GET", clinicPath("/reports/qr-payments"), { query: query }).then(function (res) {
      if (more === true) busy($("report-more"), false);
      if (seq !== reportLoad.seq) return;
      if (!res.ok) { state.report = []; reportLoad.cursor = null; clear($("report-list")); $("report-count").textContent = ""; $("report-more").hidden = true; sayError("report-status", res); return; }
      say("report-status", null);
      var data = res.data;
      var rows = Array.isArray(data) ? data : ((data && (data.rows || data.payments || data.items)) || []);
      state.report = more === true ? state.report.concat(rows) : rows;
      reportLoad.cursor = (data && data.next_cursor) || null;
      renderReport();
    });
  }

  function loadReportSoon() {
    window.clearTimeout(reportLoad.timer);
    reportLoad.timer = window.setTimeout(function () { loadReport(); }, 300);
  }

  // Why a receipt is still missing, in words; the register's own code stays visible in brackets, and
  // what Checkbox itself said ("fiscal_receipt_rejected: <its text>") only as a labelled detail.
  function fiscalReason(fiscal) {
    var code = fiscal && fiscal.last_error;
    if (!code) return "";
    var said = /^([a-z_]+): (.+)$/.exec(code);
    if (said) return fiscalReason({ last_error: said[1] }) + " · " + t("checkbox_said", { text: said[2] });
    var known = ["fiscal_shift_closed", "provider_unavailable", "fiscal_register_not_configured", "fiscal_register_busy",
      "waiting_for_sale_receipt"];
    var key = known.indexOf(code) >= 0 ? "why_" + code : /^receipt_error|^fiscal_receipt_rejected/.test(code) ? "why_receipt_error" : null;
    return key ? t(key) + " (" + code + ")" : t("register_said", { error: code });
  }

  var FISCAL_BADGE = { fiscalized: "badge-ok", pending: "badge-warn", failed: "badge-err", external: "badge-ok", not_required: "badge-muted" };

  // The payment's return receipts (one per refund that went through), each with its state.
  function returnDocuments(row) {
    return (row.fiscal_documents || []).filter(function (d) { return d.type === "return"; }).map(function (d) {
      var receipt = d.receipt || {};
      return h("span", { "class": "sub doc", "data-document": "return", "data-refund": d.refund_id || "", "data-fiscal-status": d.fiscal_status }, [
        t("doc_return", { amount: formatMoney(d.amount) }) + " · ",
        h("span", { "class": "badge " + (FISCAL_BADGE[d.fiscal_status] || "badge-muted"), text: t("fs_" + d.fiscal_status) }),
        receipt.url ? " " : null,
        receipt.url ? h("a", { href: receipt.url, target: "_blank", rel: "noopener", text: t("view_receipt") }) : null,
        d.fiscal_status === "pending" && d.last_error ? h("span", { "class": "sub", text: fiscalReason({ last_error: d.last_error }) }) : null
      ]);
    });
  }

  function refundLine(row) {
    var lines = [];
    if (row.amount_refunded && row.amount_refunded.amount > 0) {
      lines.push(h("span", { "class": "sub", "data-refund-status": row.refund_status,
        text: t(row.refund_status === "refunded" ? "refunded_amount" : "partly_refunded_amount", { amount: formatMoney(row.amount_refunded) }) }));
    } else if (row.refunded) lines.push(h("span", { "class": "sub", "data-refund-status": "refunded", text: t("refunded") }));
    if (row.refund_pending && row.refund_pending.amount > 0) {
      lines.push(h("span", { "class": "sub", "data-refund-pending": "", text: t("refund_pending_amount", { amount: formatMoney(row.refund_pending) }) }));
    }
    return lines;
  }

  function renderReport() {
    var box = clear($("report-list"));
    $("report-more").hidden = !reportLoad.cursor;
    $("report-count").textContent = t("count_payments", { n: state.report.length });
    if (!state.report.length) { box.appendChild(h("p", { "class": "hint", text: t("no_payments") })); return; }
    var rows = state.report.map(function (row) {
      var status = h("div", { "class": "row-status", role: "status", "aria-live": "polite" });
      var fiscal = row.fiscal_status;
      var receipt = row.receipt || {};
      var lastError = row.fiscal && row.fiscal.last_error;
      var fiscalCell = h("div", {}, [
        h("span", { "class": "badge " + (FISCAL_BADGE[fiscal] || "badge-muted"), "data-fiscal-status": fiscal, text: t("fs_" + fiscal) }),
        receipt.fiscal_code ? h("span", { "class": "sub", text: t("fiscal_code", { code: receipt.fiscal_code }) }) : null,
        receipt.url ? h("span", { "class": "sub" }, [h("a", { href: receipt.url, target: "_blank", rel: "noopener", text: t("view_receipt") })]) : null,
        fiscal !== "fiscalized" && lastError ? h("span", { "class": "sub", "data-fiscal-error": lastError, text: fiscalReason(row.fiscal) }) : null,
        fiscal !== "fiscalized" && row.fiscal && row.fiscal.next_attempt_at ? h("span", { "class": "sub", text: t("next_attempt", { time: formatWhen(row.fiscal.next_attempt_at) }) }) : null
      ]);
      fiscalCell.appendChild(h("span", {}, returnDocuments(row)));
      var actions = [];
      if (fiscal === "pending" || fiscal === "failed") {
        actions.push(h("button", { type: "button", "class": "btn btn-small", "data-action": "fiscalize", "data-payment": row.payment_id,
          title: t("fiscalize_hint", { id: row.payment_id }), "aria-label": t("fiscalize") + " · " + t("fiscalize_hint", { id: row.payment_id }), text: t("fiscalize"),
          onclick: function (e) { fiscalize(row, e.currentTarget, status); } }));
      }
      var confirmBox = h("div", { "class": "refund-confirm", hidden: true });
      if (row.refundable && row.refundable.amount > 0) {
        actions.push(h("button", { type: "button", "class": "btn btn-secondary btn-small", "data-action": "refund", "data-payment": row.payment_id,
          "aria-label": t("refund") + " · " + t("refund_hint", { id: row.payment_id }), text: t("refund"),
          onclick: function () { askRefund(row, confirmBox, status); } }));
      }
      return h("tr", { "data-payment": row.payment_id }, [
        h("td", { "data-label": t("col_paid_at") }, [h("span", {}, [h("span", { "class": "when", text: formatWhen(row.paid_at) }), h("span", { "class": "sub", text: row.payment_id })])]),
        h("td", { "class": "num", "data-label": t("col_amount") }, [h("span", {}, [formatMoney(row.amount)].concat(refundLine(row)))]),
        h("td", { "data-label": t("col_register") }, [h("span", {}, [registerName(row.qr_id), row.appointment_id ? h("span", { "class": "sub", text: row.appointment_id }) : null])]),
        h("td", { "data-label": t("col_card") }, [row.masked_pan || "—"]),
        h("td", { "data-label": t("fiscal_status") }, [fiscalCell]),
        h("td", { "data-label": t("col_actions") }, [h("div", {}, [h("div", { "class": "actions" }, actions), confirmBox, status])])
      ]);
    });
    box.appendChild(h("table", { "class": "data" }, [
      h("caption", { "class": "visually-hidden", text: t("report_title") }),
      h("thead", {}, [h("tr", {}, ["col_paid_at", "col_amount", "col_register", "col_card", "fiscal_status", "col_actions"].map(function (k) { return h("th", { scope: "col", text: t(k) }); }))]),
      h("tbody", {}, rows)
    ]));
  }

  function registerName(qrId) {
    var found = state.registers.filter(function (r) { return r.qr_id === qrId; })[0];
    return found && found.short_qr_id ? found.short_qr_id : (qrId || "—");
  }

  function rowStatus(paymentId) {
    return document.querySelector("tr[data-payment='" + paymentId + "'] .row-status") || $("report-status");
  }

  // A receipt that could not be made now. The patient has paid: the money is in, only the receipt
  // waits (and is retried), so never "nothing was charged"; the register's words only as a labelled detail.
  function sayFiscalError(region, res) {
    var error = res.error || {};
    var rejected = error.code === "fiscal_receipt_rejected";
    if (!rejected && !res.network && res.status < 500) { sayError(region, res); return; }
    var payment = ((error.details || []).filter(function (d) { return d && d.payment; })[0] || {}).payment || {};
    var lastError = (payment.fiscal && payment.fiscal.last_error) || "";
    var said = /^[a-z_]+: (.+)$/.exec(lastError);
    var extra = [];
    if (payment.fiscal && payment.fiscal.next_attempt_at) extra.push(h("p", { "class": "detail", text: t("next_attempt", { time: formatWhen(payment.fiscal.next_attempt_at) }) }));
    if (said || (rejected && error.message)) extra.push(h("p", { "class": "detail", "data-provider-said": "", text: t("checkbox_said", { text: said ? said[1] : error.message }) }));
    say(region, rejected ? "error" : "warn", t(rejected ? "fiscal_rejected_paid" : "fiscal_unavailable_paid"), extra);
  }

  function fiscalize(row, button, region) {
    busy(button, true);
    say(region, "info", t("loading"));
    api("POST", clinicPath("/qr-payments/" + encodeURIComponent(row.payment_id) + "/fiscalize"), { body: {} }).then(function (res) {
      busy(button, false);
      if (!res.ok) {
        // A conflict may mean the row changed meanwhile: show it fresh, with the reason on it.
        if (res.status === 409) loadReport().then(function () { sayError(rowStatus(row.payment_id), res); });
        else loadReport().then(function () { sayFiscalError(rowStatus(row.payment_id), res); });
        return;
      }
      var result = res.data || {};
      var after = result.fiscal_status || (result.payment && result.payment.fiscal_status) || "fiscalized";
      loadReport().then(function () {
        var target = rowStatus(row.payment_id);
        if (after === "fiscalized") say(target, "ok", t("fiscalized_now", { id: row.payment_id }));
        else say(target, "warn", t("fiscalize_later", { id: row.payment_id, reason: fiscalReason((result.payment || result).fiscal) || t("fs_" + after) }));
      });
    });
  }

  // Two steps, inline: "Refund" opens the amount (everything left, by default) and a confirmation;
  // only the second button gives money back. One Idempotency-Key per payment and amount until a
  // definitive answer, so a double click or a retry after no answer refunds once.
  function askRefund(row, box, region) {
    if (!box.hidden) { box.hidden = true; return; }
    var inputId = "refund-amount-" + row.payment_id;
    var input = h("input", { id: inputId, type: "text", inputmode: "decimal", autocomplete: "off", value: fromMinor(row.refundable) });
    var confirmButton = h("button", { type: "button", "class": "btn btn-danger btn-small", "data-action": "confirm-refund", text: t("qr_refund_confirm", { amount: formatMoney(row.refundable) }) });
    input.addEventListener("input", function () {
      var minor = toMinor(input.value, row.amount.currency);
      confirmButton.textContent = t("qr_refund_confirm", { amount: minor ? formatMoney({ amount: minor, currency: row.amount.currency }) : "—" });
    });
    confirmButton.addEventListener("click", function () { sendRefund(row, input, confirmButton, box, region); });
    clear(box).appendChild(h("div", { "class": "field" }, [h("label", { "for": inputId, text: t("qr_refund_amount", { currency: row.amount.currency }) }), input]));
    box.appendChild(h("p", { "class": "hint", text: t("refund_explain", { left: formatMoney(row.refundable) }) }));
    box.appendChild(h("div", { "class": "actions" }, [confirmButton,
      h("button", { type: "button", "class": "btn btn-link btn-small", text: t("refund_keep"), onclick: function () { box.hidden = true; } })]));
    box.hidden = false;
    input.focus();
  }

  function sendRefund(row, input, button, box, region) {
    var minor = toMinor(input.value, row.amount.currency);
    if (!minor || minor > row.refundable.amount) { fieldError(input, true); say(region, "error", t("refund_too_much", { left: formatMoney(row.refundable) })); input.focus(); return; }
    fieldError(input, false);
    var body = { amount: { amount: minor, currency: row.amount.currency } };
    var scope = "refund:" + row.payment_id;
    busy(button, true);
    say(region, "info", t("loading"));
    api("POST", clinicPath("/qr-payments/" + encodeURIComponent(row.payment_id) + "/refunds"), { body: body, idempotencyKey: stickyKey(scope, body) }).then(function (res) {
      settleKey(scope, res);
      busy(button, false);
      if (!res.ok) { sayError(region, res); return; }
      box.hidden = true;
      var done = res.status === 201;
      loadReport().then(function () {
        say(rowStatus(row.payment_id), done ? "ok" : "info", t(done ? "refund_done" : "refund_requested", { amount: formatMoney(body.amount) }));
      });
    });
  }

  function downloadCsv() {
    var button = $("report-csv");
    busy(button, true);
    api("GET", clinicPath("/reports/qr-payments"), { query: reportQuery(), accept: "text/csv" }).then(function (res) {
      busy(button, false);
      if (!res.ok) { sayError("report-status", res); return; }
      var blob = res.data instanceof Blob ? res.data : new Blob([String(res.data)], { type: "text/csv" });
      var url = URL.createObjectURL(blob);
      var a = h("a", { href: url, download: "qr-payments-" + state.clinicId + "-" + new Date().toISOString().slice(0, 10) + ".csv" });
      document.body.appendChild(a);
      a.click();
      a.remove();
      window.setTimeout(function () { URL.revokeObjectURL(url); }, 10000);
      say("report-status", "ok", t("csv_ready"));
    });
  }

  // ------------------------------------------------------------------ settings
  function loadSettingsView() {
    state.loaded.settings = true;
    // The form stays disabled until the stored values are in it, so nothing typed is overwritten.
    var fieldset = $("settings-form").querySelector("fieldset");
    fieldset.disabled = true;
    api("GET", clinicPath("/settings")).then(function (res) {
      if (!res.ok) { sayError("settings-status", res); return; }
      state.settings = res.data;
      renderSettings();
      fieldset.disabled = state.role !== "admin";
    });
    if (state.role === "admin") {
      if (state.gateways) renderGateways();
      api("GET", clinicPath("/gateways")).then(function (res) {
        if (!res.ok) { sayError("gateways-status", res); return; }
        var fresh = res.data.gateways || [];
        var changed = JSON.stringify(fresh) !== JSON.stringify(state.gateways);
        state.gateways = fresh;
        if (changed || !$("gateways").firstChild) renderGateways();
      });
    } else renderGateways();
    loadServices().then(renderServices);
  }

  function renderSettings() {
    var s = state.settings;
    if (!s) return;
    $("st-link").checked = !!s.show_payment_link_in_email;
    $("st-card").checked = !!s.card_required_for_online_booking;
    $("st-ttl").value = s.online_link_ttl_minutes == null ? "" : s.online_link_ttl_minutes;
    $("st-reminders").value = (s.reminder_hours_before || []).join(", ");
    $("st-gateway").value = s.default_gateway || "";
    $("st-fiscalization").value = s.fiscalization || "clinicpay";
    $("st-shift-open").value = (s.fiscal_shift_schedule && s.fiscal_shift_schedule.open) || "";
    $("st-shift-close").value = (s.fiscal_shift_schedule && s.fiscal_shift_schedule.close) || "";
  }

  function saveSettings(event) {
    event.preventDefault();
    var reminders = $("st-reminders").value.split(/[,;\s]+/).filter(Boolean);
    var hours = reminders.map(function (x) { return parseInt(x, 10); });
    if (hours.some(function (n, i) { return isNaN(n) || String(n) !== reminders[i]; })) { markField(SETTINGS_FIELDS, $("st-reminders"), "type"); say("settings-status", "error", t("err_fields", { n: 1 })); $("st-reminders").focus(); return; }
    fieldError($("st-reminders"), false);
    var ttl = $("st-ttl").value.trim();
    // Both times or neither: a schedule needs its open and its close.
    var opens = $("st-shift-open").value, closes = $("st-shift-close").value;
    var halfSchedule = !!opens !== !!closes;
    fieldError($("st-shift-open"), halfSchedule && !opens);
    fieldError($("st-shift-close"), halfSchedule && !closes);
    if (halfSchedule) { say("settings-status", "error", t("set_shift_both")); return; }
    var body = {
      show_payment_link_in_email: $("st-link").checked,
      card_required_for_online_booking: $("st-card").checked,
      online_link_ttl_minutes: ttl ? parseInt(ttl, 10) : null,
      reminder_hours_before: hours,
      default_gateway: $("st-gateway").value || null,
      fiscalization: $("st-fiscalization").value || "clinicpay",
      fiscal_shift_schedule: opens ? { open: opens, close: closes } : null
    };
    var button = $("settings-form").querySelector("button[type=submit]");
    busy(button, true);
    api("PATCH", clinicPath("/settings"), { body: body }).then(function (res) {
      busy(button, false);
      if (!res.ok) { sayError("settings-status", res, SETTINGS_FIELDS); return; }
      state.settings = res.data;
      renderSettings();
      say("settings-status", "ok", t("settings_saved"));
    });
  }

  function renderGateways() {
    var box = clear($("gateways"));
    if (state.role !== "admin") { box.appendChild(h("p", { "class": "hint", text: t("err_403") })); return; }
    var known = {};
    (state.gateways || []).forEach(function (g) { known[g.provider] = g; });
    Object.keys(PROVIDERS).forEach(function (provider) {
      var current = known[provider];
      var status = h("div", { "class": "row-status", role: "status", "aria-live": "polite" });
      var masked = current && (current.masked || current.values || {});
      var inputs = PROVIDERS[provider].map(function (field) {
        var id = "gw-" + provider + "-" + field;
        return h("div", { "class": "field" }, [
          h("label", { "for": id, text: t("f_" + field) }),
          h("input", { id: id, name: field, type: "password", autocomplete: "new-password", spellcheck: "false",
            "aria-describedby": masked && masked[field] ? id + "-now" : null }),
          masked && masked[field] ? h("span", { id: id + "-now", "class": "hint masked", text: masked[field] }) : null
        ]);
      });
      var form = h("form", { novalidate: true, onsubmit: function (e) { e.preventDefault(); saveGateway(provider, form, status); } }, [
        h("div", { "class": "row" }, inputs),
        h("div", { "class": "actions" }, [
          h("button", { type: "submit", "class": "btn btn-small", text: t("gw_save") }),
          current ? h("button", { type: "button", "class": "btn btn-small btn-danger", text: t("remove"),
            onclick: function (e) { removeGateway(provider, e.currentTarget, status); } }) : null
        ])
      ]);
      box.appendChild(h("section", { "class": "gateway", "data-provider": provider, "aria-label": PROVIDER_NAMES[provider] }, [
        h("div", { "class": "gateway-head" }, [
          h("h3", { text: PROVIDER_NAMES[provider] }),
          h("span", { "class": "badge " + (!current ? "badge-muted" : current.verified ? "badge-ok" : "badge-warn"),
            text: !current ? t("not_connected") : current.verified ? t("verified") : t("not_verified") })
        ]),
        current ? h("p", { "class": "hint", text: t("gw_replace") }) : null,
        form, status
      ]));
    });
  }

  function saveGateway(provider, form, region) {
    var body = {};
    var missing = null;
    PROVIDERS[provider].forEach(function (field) {
      var input = form.querySelector("input[name='" + field + "']");
      var value = input.value.trim();
      fieldError(input, !value, value ? null : t("ferr_missing"));
      if (!value && !missing) missing = input;
      body[field] = value;
    });
    if (missing) { say(region, "error", t("required")); missing.focus(); return; }
    var button = form.querySelector("button[type=submit]");
    busy(button, true);
    var fields = {};
    PROVIDERS[provider].forEach(function (field) { fields[field] = "gw-" + provider + "-" + field; });
    api("PUT", clinicPath("/gateways/" + provider), { body: body }).then(function (res) {
      busy(button, false);
      if (!res.ok) { sayError(region, res, fields); return; }
      var others = (state.gateways || []).filter(function (g) { return g.provider !== provider; });
      others.push({ provider: provider, masked: res.data.masked, verified: res.data.verified });
      state.gateways = others;
      renderGateways();
      say(document.querySelector(".gateway[data-provider='" + provider + "'] .row-status"), "ok", t("gw_saved", { provider: PROVIDER_NAMES[provider] }));
    });
  }

  function removeGateway(provider, button, region) {
    if (!button.getAttribute("data-armed")) {
      button.setAttribute("data-armed", "1");
      button.textContent = t("remove") + " · " + t("yes");
      say(region, "warn", t("gw_remove_confirm", { provider: PROVIDER_NAMES[provider] }));
      return;
    }
    busy(button, true);
    api("DELETE", clinicPath("/gateways/" + provider)).then(function (res) {
      busy(button, false);
      if (!res.ok) { sayError(region, res); return; }
      state.gateways = (state.gateways || []).filter(function (g) { return g.provider !== provider; });
      renderGateways();
      say("gateways-status", "ok", t("gw_removed", { provider: PROVIDER_NAMES[provider] }));
    });
  }

  function renderServices() {
    var box = clear($("services-list"));
    if (!state.services.length) { box.appendChild(h("p", { "class": "hint", text: t("no_services") })); return; }
    var yes = function (flag) { return h("span", { "class": "badge " + (flag ? "badge-info" : "badge-muted"), text: flag ? t("yes") : t("no") }); };
    box.appendChild(h("table", { "class": "data" }, [
      h("caption", { "class": "visually-hidden", text: t("services_title") }),
      h("thead", {}, [h("tr", {}, [t("svc_id"), t("svc_name"), t("col_price"), t("svc_online"), t("svc_card"), t("reason_no_show"), t("svc_deposit_col"), t("col_actions")].map(function (label) { return h("th", { scope: "col", text: label }); }))]),
      h("tbody", {}, state.services.map(function (s) {
        return h("tr", { "data-service": s.service_id }, [
          h("td", { "data-label": t("svc_id") }, [h("code", { text: s.service_id })]),
          h("td", { "data-label": t("svc_name") }, [s.name]),
          h("td", { "class": "num", "data-label": t("col_price") }, [formatMoney(s.price)]),
          h("td", { "data-label": t("svc_online") }, [yes(s.requires_online_payment)]),
          h("td", { "data-label": t("svc_card") }, [yes(s.requires_card_on_file)]),
          h("td", { "class": "num", "data-label": t("reason_no_show") }, [s.no_show_fee ? formatMoney(s.no_show_fee) : "—"]),
          h("td", { "class": "num", "data-label": t("svc_deposit_col") }, [!s.deposit ? "—" : s.deposit.type === "percent" ? s.deposit.percent + " %" : formatMoney(s.deposit.amount)]),
          h("td", { "data-label": t("col_actions") }, [state.role === "admin" ? h("button", { type: "button", "class": "btn btn-small btn-secondary",
            text: t("edit"), "aria-label": t("edit") + " " + s.name, onclick: function () { editService(s); } }) : null])
        ]);
      }))
    ]));
  }

  function editService(s) {
    $("sv-id").value = s.service_id;
    $("sv-name").value = s.name;
    $("sv-price").value = fromMinor(s.price);
    $("sv-noshow").value = s.no_show_fee ? fromMinor(s.no_show_fee) : "";
    $("sv-online").checked = !!s.requires_online_payment;
    $("sv-card").checked = !!s.requires_card_on_file;
    // A fixed deposit (set through the API) is kept as it is unless a percentage replaces it.
    state.fixedDeposit = s.deposit && s.deposit.type === "fixed" ? { id: s.service_id, deposit: s.deposit } : null;
    $("sv-deposit").value = s.deposit && s.deposit.type === "percent" ? String(s.deposit.percent) : "";
    $("sv-deposit").placeholder = state.fixedDeposit ? formatMoney(s.deposit.amount) : "";
    $("sv-name").focus();
  }

  // The deposit field: empty = none (or the fixed one the service has), else 1..100 %.
  function depositOf(serviceId, input) {
    var text = input.value.trim().replace(/\s*%$/, "");
    if (!text) return state.fixedDeposit && state.fixedDeposit.id === serviceId ? state.fixedDeposit.deposit : null;
    var percent = /^\d{1,3}$/.test(text) ? parseInt(text, 10) : NaN;
    return percent >= 1 && percent <= 100 ? { type: "percent", percent: percent } : undefined;
  }

  function saveService(event) {
    event.preventDefault();
    var cur = currency();
    var id = $("sv-id"), name = $("sv-name"), price = $("sv-price"), noShow = $("sv-noshow");
    var priceMinor = toMinor(price.value, cur), noShowMinor = toMinor(noShow.value, cur);
    var bad = [];
    var mark = function (input, kind) { markField(SERVICE_FIELDS, input, kind); bad.push(input); };
    clearFieldErrors($("service-form"));
    if (!/^[A-Za-z0-9_\-]{1,64}$/.test(id.value)) mark(id, id.value ? "pattern" : "missing");
    if (!name.value.trim()) mark(name, "missing");
    if (priceMinor == null) mark(price, price.value.trim() ? "type" : "missing");
    if (noShow.value && noShowMinor == null) mark(noShow, "type");
    var deposit = depositOf(id.value, $("sv-deposit"));
    if (deposit === undefined) mark($("sv-deposit"), "invalid");
    if (bad.length) { say("service-status", "error", t("err_fields", { n: bad.length })); bad[0].focus(); return; }
    var body = { name: name.value.trim(), price: { amount: priceMinor, currency: cur }, requires_online_payment: $("sv-online").checked,
      requires_card_on_file: $("sv-card").checked, no_show_fee: noShowMinor == null ? null : { amount: noShowMinor, currency: cur },
      deposit: deposit };
    var button = $("service-form").querySelector("button[type=submit]");
    busy(button, true);
    api("PUT", clinicPath("/services/" + encodeURIComponent(id.value)), { body: body }).then(function (res) {
      busy(button, false);
      if (!res.ok) { sayError("service-status", res, SERVICE_FIELDS); return; }
      say("service-status", "ok", t("svc_saved", { id: id.value }));
      loadServices().then(renderServices);
    });
  }

  function templatePath() {
    var scope = $("tpl-scope").value;
    var base = scope === "org" ? "/v1/orgs/" + encodeURIComponent(state.clinic.org_id) : clinicPath();
    return base + "/message-templates/" + $("tpl-kind").value + "/" + $("tpl-channel").value + "/" + $("tpl-locale").value;
  }

  function loadTemplate(event) {
    if (event) event.preventDefault();
    say("tpl-status", "info", t("loading"));
    api("GET", templatePath()).then(function (res) {
      if (!res.ok) { $("tpl-edit").hidden = true; sayError("tpl-status", res); return; }
      say("tpl-status", null);
      var tpl = res.data || {};
      $("tpl-edit").hidden = false;
      $("tpl-source").textContent = t("tpl_source", { source: t("src_" + (tpl.source || "builtin")) });
      $("tpl-subject-field").hidden = $("tpl-channel").value === "sms";
      $("tpl-subject").value = tpl.subject || "";
      $("tpl-body").value = tpl.body || "";
    });
  }

  function saveTemplate(event) {
    event.preventDefault();
    if (!$("tpl-body").value.trim()) { fieldError($("tpl-body"), true); say("tpl-status", "error", t("required")); $("tpl-body").focus(); return; }
    fieldError($("tpl-body"), false);
    var button = $("tpl-edit").querySelector("button[type=submit]");
    busy(button, true);
    api("PUT", templatePath(), { body: { subject: $("tpl-channel").value === "sms" ? "" : $("tpl-subject").value, body: $("tpl-body").value } }).then(function (res) {
      busy(button, false);
      if (!res.ok) { sayError("tpl-status", res, TEMPLATE_FIELDS); return; }
      $("tpl-source").textContent = t("tpl_source", { source: t("src_" + (res.data.source || "clinic")) });
      say("tpl-status", "ok", t("tpl_saved"));
    });
  }

  // ------------------------------------------------------------------ wiring
  function wire() {
    $("signin-form").addEventListener("submit", function (event) {
      event.preventDefault();
      var clinicId = $("signin-clinic").value.trim(), key = $("signin-key").value.trim();
      fieldError($("signin-clinic"), !clinicId);
      fieldError($("signin-key"), !key);
      if (!clinicId || !key) { say("signin-status", "error", t("required")); (clinicId ? $("signin-key") : $("signin-clinic")).focus(); return; }
      signIn(clinicId, key, false);
    });
    Array.prototype.forEach.call(document.querySelectorAll(".lang-picker"), function (select) {
      select.addEventListener("change", function () { var id = select.id; setLocale(select.value); $(id).focus(); });
    });
    $("sign-out").addEventListener("click", signOut);
    window.addEventListener("hashchange", route);
    $("tabs").querySelector("ul").addEventListener("scroll", tabCue, { passive: true });
    window.addEventListener("resize", tabCue);
    $("new-appt-toggle").addEventListener("click", function () { toggleNewAppointment(!$("new-appt-panel").classList.contains("open")); });
    $("appts-filters").addEventListener("submit", function (e) { e.preventDefault(); window.clearTimeout(apptsLoad.timer); loadAppointments(); });
    $("appts-q").addEventListener("input", loadAppointmentsSoon);
    ["appts-status", "appts-booking", "appts-from", "appts-to", "appts-sort"].forEach(function (id) { $(id).addEventListener("change", loadAppointmentsSoon); });
    $("appts-more").addEventListener("click", function () { loadAppointments(true); });
    $("appts-csv").addEventListener("click", downloadAppointmentsCsv);
    $("new-appt").addEventListener("submit", createAppointment);
    $("na-name").addEventListener("input", function () {
      var id = $("na-id");
      // A suggestion staff may overwrite with their own system's id; names in other scripts give "p-…".
      if (!id.getAttribute("data-touched")) id.value = $("na-name").value ? (slug($("na-name").value) || "p") + "-" + randomKey().slice(-6) : "";
    });
    $("na-id").addEventListener("input", function () { $("na-id").setAttribute("data-touched", "1"); });
    $("cards-find").addEventListener("submit", function (e) {
      e.preventDefault();
      var value = $("cards-patient").value.trim();
      fieldError($("cards-patient"), !value);
      if (!value) { say("cards-status", "error", t("required")); $("cards-patient").focus(); return; }
      if (value !== state.cardsPatient) state.cardsPatientName = null;
      state.cardsPatient = value;
      loadCards();
    });
    $("add-card").addEventListener("submit", function (e) { e.preventDefault(); startCardSetup(true); });
    $("add-card-tablet").addEventListener("click", function () { startCardSetup(false); });
    $("charge").addEventListener("submit", function (e) { e.preventDefault(); charge(false); });
    $("charge-no-show").addEventListener("click", function () { charge(true); });
    $("card-request").addEventListener("submit", sendCardRequest);
    $("qr-sync").addEventListener("click", syncRegisters);
    $("shift-refresh").addEventListener("click", loadShift);
    $("shift-open").addEventListener("click", function () { shiftAction("open"); });
    $("shift-close").addEventListener("click", function () { shiftAction("close"); });
    // "Show" also re-reads the registers: a paid amount leaves its register meanwhile.
    $("report-filters").addEventListener("submit", function (e) { e.preventDefault(); window.clearTimeout(reportLoad.timer); loadRegisters().then(function () { return loadReport(); }); });
    ["rf-from", "rf-to", "rf-qr", "rf-fiscal"].forEach(function (id) { $(id).addEventListener("change", loadReportSoon); });
    ["rf-min", "rf-max"].forEach(function (id) { $(id).addEventListener("input", loadReportSoon); });
    $("report-more").addEventListener("click", function () { loadReport(true); });
    $("report-csv").addEventListener("click", downloadCsv);
    $("settings-form").addEventListener("submit", saveSettings);
    $("service-form").addEventListener("submit", saveService);
    $("tpl-pick").addEventListener("submit", loadTemplate);
    $("tpl-edit").addEventListener("submit", saveTemplate);
  }

  function start() {
    state.locale = pickLocale(sessionStorage.getItem(LOCALE_KEY)) || pickLocale(navigator.language) || "es";
    wire();
    var saved = null;
    try { saved = JSON.parse(sessionStorage.getItem(SESSION) || "null"); } catch (e) { saved = null; }
    if (saved && saved.clinicId && saved.key) {
      applyTexts();
      signIn(saved.clinicId, saved.key, true);
    } else {
      showSignIn();
      // /staff?clinic=cl_... fills in the clinic id (never the key: keys do not belong in URLs).
      var clinic = new URLSearchParams(window.location.search).get("clinic");
      if (clinic) { $("signin-clinic").value = clinic; $("signin-key").focus(); }
    }
  }

  start();
})();

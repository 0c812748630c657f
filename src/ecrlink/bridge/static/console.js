/**
 * The bridge's web console: a cashier screen (pick the terminal, key the amount, pay,
 * watch the card wait, read the slip or the decline) and a manager screen (terminals,
 * today's payments and totals, in-doubt payments to resolve, void, settle,
 * reconciliation). Every call goes through `/v1/client.js`, the same module web
 * registers use, so the console is also its first user.
 *
 * Rules kept here:
 * - the API key lives in sessionStorage (this tab only) and in the Authorization
 *   header; never in a URL, never in localStorage;
 * - a sale that failed to send is sent again with the same Idempotency-Key when the
 *   cashier presses Pay on the same amount, invoice and terminal, so a network
 *   error never makes a second charge; a page reloaded during a sale follows the
 *   same payment instead of starting another;
 * - data from the bridge is put in the page as text (textContent), never as HTML.
 */

import { createClient, EcrlinkError, newIdempotencyKey } from "/v1/client.js";
import {
  clock, getLang, groupDigits, has, money, setLang, t, todayStart, translate, when,
} from "./i18n.js";

const KEY_STORE = "ecrlink.apiKey";
const SALE_STORE = "ecrlink.sale";
const TERMINAL_STORE = "ecrlink.terminal";
const MAX_DIGITS = 12;
const CATEGORIES = ["bank_only", "duplicate", "ecr_only", "amount_mismatch", "voided", "matched"];
const MAX_REPORT_ROWS = 200;

const $ = (id) => document.getElementById(id);

const app = {
  client: null,
  screen: "cashier",
  terminals: [],
  digits: "",
  sale: null, // {key, terminal, amount, invoice, allowDuplicate, id?}
  retry: null, // the key of a sale whose sending failed, kept for an identical retry
  timer: null,
  events: null,
  refreshTimer: null,
  resolving: null,
  xlsxUrl: null,
};

// ---------------------------------------------------------------- helpers

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v == null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(node.dataset, v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c != null) node.append(c);
  return node;
}

function show(node, visible) {
  node.hidden = !visible;
}

function storage(kind) {
  try {
    return kind === "session" ? window.sessionStorage : window.localStorage;
  } catch {
    return null;
  }
}

/** A one-line text for an error, in the console's language. */
function errorText(err) {
  const code = err?.code ?? "other";
  const known = has(`err_${code}`) ? t(`err_${code}`) : null;
  if (code === "bad_input" || !known) {
    const what = err?.message ?? String(err);
    return known ? `${known}: ${what}` : `${t("err_other")}: ${what}`;
  }
  return known;
}

function stateLabel(state) {
  return has(`st_${state}`) ? t(`st_${state}`) : state;
}

function commandLabel(cmd) {
  return has(`cmd_${cmd}`) ? t(`cmd_${cmd}`) : cmd;
}

function receiptOf(p) {
  return p.result?.transaction?.receipt_no ?? p.receipt_no ?? null;
}

function cardOf(p) {
  return p.result?.transaction?.card_no ?? null;
}

// ---------------------------------------------------------------- start, login

function boot() {
  translate();
  $("lang").addEventListener("click", switchLanguage);
  $("logout").addEventListener("click", logout);
  $("login-form").addEventListener("submit", onLogin);
  for (const tab of document.querySelectorAll(".tab")) {
    tab.addEventListener("click", () => showScreen(tab.dataset.screen));
  }
  wireCashier();
  wireManager();
  const key = storage("session")?.getItem(KEY_STORE);
  if (key) enter(key);
  else showLogin();
}

function showLogin(message = "") {
  for (const s of document.querySelectorAll(".screen")) show(s, false);
  show($("tabs"), false);
  show($("logout"), false);
  show($("live"), false);
  show($("login"), true);
  $("login-error").textContent = message;
  $("api-key").value = "";
  $("api-key").focus();
}

async function onLogin(event) {
  event.preventDefault();
  const key = $("api-key").value.trim();
  if (!key) {
    $("login-error").textContent = t("login_bad_key");
    return;
  }
  $("login-error").textContent = "";
  await enter(key, { fromLogin: true });
}

async function enter(key, { fromLogin = false } = {}) {
  app.client = createClient({ baseUrl: window.location.origin, apiKey: key, lang: getLang() });
  try {
    app.terminals = await app.client.terminals();
  } catch (err) {
    app.client = null;
    if (err.status === 401) {
      storage("session")?.removeItem(KEY_STORE);
      showLogin(t("login_bad_key"));
    } else {
      showLogin(err.code === "network_error" ? t("login_no_bridge") : errorText(err));
      if (!fromLogin) $("api-key").value = "";
    }
    return;
  }
  storage("session")?.setItem(KEY_STORE, key);
  show($("login"), false);
  show($("tabs"), true);
  show($("logout"), true);
  renderTerminalChoice();
  startEvents();
  showScreen(window.location.hash === "#manager" ? "manager" : "cashier");
  resumeSale();
}

function logout() {
  app.events?.abort();
  app.events = null;
  storage("session")?.removeItem(KEY_STORE);
  app.client = null;
  showLogin();
}

function switchLanguage() {
  setLang(getLang() === "vi" ? "en" : "vi");
  if (app.client) app.client.lang = getLang();
  translate();
  const live = $("live");
  if (live.classList.contains("on")) live.textContent = t("live_on");
  else if (live.classList.contains("off")) live.textContent = t("live_off");
  renderAmount();
  renderTerminalChoice();
  if (app.lastResult) {
    renderResult(app.lastResult, { focus: false });
    // The bridge's texts (reason, what to do next) again, in the new language.
    const id = app.lastResult.id;
    app.client?.status(id).then((p) => {
      if (app.lastResult?.id === id) renderResult(p, { focus: false });
    }).catch(() => {});
  }
  if (app.screen === "manager" && app.client) loadManager();
}

function showScreen(name) {
  app.screen = name;
  for (const s of ["cashier", "manager"]) show($(s), s === name);
  for (const tab of document.querySelectorAll(".tab")) {
    if (tab.dataset.screen === name) tab.setAttribute("aria-current", "page");
    else tab.removeAttribute("aria-current");
  }
  const hash = name === "manager" ? "#manager" : "#cashier";
  if (window.location.hash !== hash) window.history.replaceState(null, "", hash);
  if (name === "manager") loadManager();
  else $("amount").focus();
}

// ---------------------------------------------------------------- live events

function startEvents() {
  app.events?.abort();
  const ctl = new AbortController();
  app.events = ctl;
  const live = $("live");
  app.client.events({
    signal: ctl.signal,
    onOpen: () => {
      live.textContent = t("live_on");
      live.className = "live on";
      show(live, true);
    },
    onError: () => {
      live.textContent = t("live_off");
      live.className = "live off";
      show(live, true);
    },
    onEvent: (ev) => {
      if (ev.type === "terminal.updated" && ev.data?.name) {
        const i = app.terminals.findIndex((x) => x.name === ev.data.name);
        if (i >= 0) app.terminals[i] = { ...app.terminals[i], ...ev.data };
        else app.terminals.push(ev.data);
        renderTerminalState();
      }
      if (ev.type === "payment.updated" && app.sale?.id && ev.data?.id === app.sale.id) {
        updateWaiting(ev.data);
      }
      // The outcome on screen changes too: an in-doubt payment resolved by the manager
      // or by recovery, details that arrived after the state.
      if (ev.type === "payment.updated" && !app.sale && app.lastResult?.id === ev.data?.id
          && ev.data.updated_at >= app.lastResult.updated_at) {
        renderResult(ev.data, { focus: false });
      }
      if (app.screen === "manager") scheduleRefresh();
    },
  }).catch((err) => {
    if (err.status === 401) logout();
  });
}

function scheduleRefresh() {
  clearTimeout(app.refreshTimer);
  app.refreshTimer = setTimeout(loadManager, 400);
}

// ---------------------------------------------------------------- cashier

function wireCashier() {
  $("amount").addEventListener("input", () => {
    setDigits($("amount").value.replace(/\D/g, ""));
  });
  const onKey = (event) => {
    const key = event.target.closest("button")?.dataset.key;
    if (!key || app.sale) return;
    if (key === "clear") setDigits("");
    else if (key === "back") setDigits(app.digits.slice(0, -1));
    else setDigits(app.digits + key);
  };
  $("keypad").addEventListener("click", onKey);
  $("amount-clear").addEventListener("click", onKey);
  $("terminal").addEventListener("change", () => {
    storage("local")?.setItem(TERMINAL_STORE, $("terminal").value);
    renderTerminalState();
  });
  $("invoice").addEventListener("input", () => $("invoice").removeAttribute("aria-invalid"));
  $("sale-form").addEventListener("submit", (event) => {
    event.preventDefault();
    startSale({ allowDuplicate: false });
  });
  $("pay-dup").addEventListener("click", () => startSale({ allowDuplicate: true }));
  $("new-sale").addEventListener("click", newSale);
}

function setDigits(raw) {
  app.digits = raw.replace(/^0+/, "").slice(0, MAX_DIGITS);
  $("amount").removeAttribute("aria-invalid");
  show($("pay-dup"), false);
  renderAmount();
}

function renderAmount() {
  const input = $("amount");
  input.value = app.digits ? groupDigits(Number(app.digits)) : "";
  // The caret stays at the end, where the next digit goes.
  if (document.activeElement === input) input.setSelectionRange(input.value.length, input.value.length);
}

function renderTerminalChoice() {
  const select = $("terminal");
  const keep = select.value || storage("local")?.getItem(TERMINAL_STORE);
  select.replaceChildren();
  if (!app.terminals.length) {
    select.append(el("option", { value: "", text: t("no_terminals") }));
  }
  for (const term of app.terminals) {
    select.append(el("option", { value: term.name, text: term.name }));
  }
  if (keep && app.terminals.some((x) => x.name === keep)) select.value = keep;
  renderTerminalState();
}

function renderTerminalState() {
  const term = app.terminals.find((x) => x.name === $("terminal").value);
  const pill = $("terminal-state");
  if (!term) {
    pill.textContent = "";
    pill.className = "pill";
    return;
  }
  pill.textContent = has(`state_${term.state}`) ? t(`state_${term.state}`) : term.state;
  pill.className = `pill state-${term.state}`;
  if (app.screen === "manager") renderTerminals();
}

function saleError(message, field = null) {
  $("sale-error").textContent = message;
  for (const id of ["amount", "invoice", "terminal"]) $(id).removeAttribute("aria-invalid");
  const target = field === "amount" || field === "invoice" || field === "terminal" ? field : null;
  if (target) {
    $(target).setAttribute("aria-invalid", "true");
    $(target).focus();
  }
}

async function startSale({ allowDuplicate }) {
  if (app.sale || app.starting) return;
  app.starting = true; // a second tap while this one is being checked does nothing
  try {
    await startSaleOnce({ allowDuplicate });
  } finally {
    app.starting = false;
  }
}

async function startSaleOnce({ allowDuplicate }) {
  const terminal = $("terminal").value;
  const amount = Number(app.digits || "0");
  const invoice = $("invoice").value.trim();
  if (!terminal) return saleError(t("terminal_required"), "terminal");
  if (!Number.isSafeInteger(amount) || amount <= 0) return saleError(t("amount_required"), "amount");
  saleError("");
  show($("pay-dup"), false);
  setFormBusy(true);
  const doubt = await stillInDoubt(terminal);
  setFormBusy(false);
  if (doubt) return saleError(t("err_in_doubt"), "terminal");
  const same = app.retry && app.retry.terminal === terminal && app.retry.amount === amount
    && app.retry.invoice === invoice && app.retry.allowDuplicate === allowDuplicate;
  const key = same ? app.retry.key : newIdempotencyKey();
  app.sale = { key, terminal, amount, invoice, allowDuplicate, started: Date.now() };
  keepSale();
  await runSale((opts) => app.client.pay(terminal, { amount, invoice, allowDuplicate }, opts));
}

/** A terminal with a payment in doubt takes no sale (the bridge would refuse it with
 * `in_doubt`, but only after trying once more to learn the outcome): say so at once.
 * Asked afresh, since a manager may have resolved it meanwhile. */
async function stillInDoubt(terminal) {
  if (app.terminals.find((x) => x.name === terminal)?.state !== "in_doubt") return false;
  await refreshTerminals();
  return app.terminals.find((x) => x.name === terminal)?.state === "in_doubt";
}

/** Follow a sale that was running when the page was reloaded, by its payment id. */
function resumeSale() {
  let saved = null;
  try {
    saved = JSON.parse(storage("session")?.getItem(SALE_STORE) ?? "null");
  } catch { /* unreadable: nothing to resume */ }
  if (!saved || !app.client) return;
  if (!saved.id) {
    // The page went away before the bridge answered: keep the key so that pressing
    // Pay on the same sale asks for the same payment instead of a second one.
    app.retry = saved;
    storage("session")?.removeItem(SALE_STORE);
    setDigits(String(saved.amount));
    $("invoice").value = saved.invoice ?? "";
    return;
  }
  app.sale = saved;
  showScreen("cashier");
  runSale((opts) => app.client.follow(saved.id, opts));
}

function keepSale() {
  storage("session")?.setItem(SALE_STORE, JSON.stringify(app.sale));
}

async function runSale(start) {
  setFormBusy(true);
  app.lastResult = null;
  showWaiting();
  try {
    const payment = await start({
      idempotencyKey: app.sale.key,
      onUpdate: (p) => {
        if (!app.sale.id) {
          app.sale.id = p.id;
          keepSale();
        }
        updateWaiting(p);
      },
    });
    app.retry = null;
    renderResult(payment);
  } catch (err) {
    backToForm();
    if (err instanceof EcrlinkError && (err.code === "network_error" || err.status >= 500)) {
      // Not known whether the bridge got it: the same key goes with the next Pay.
      app.retry = { ...app.sale };
    } else {
      app.retry = null;
    }
    saleError(errorText(err), err.field);
    if (err.code === "duplicate_invoice") show($("pay-dup"), true);
    if (err.status === 401) logout();
  } finally {
    app.sale = null;
    storage("session")?.removeItem(SALE_STORE);
    stopTimer();
    setFormBusy(false);
  }
}

function setFormBusy(busy) {
  for (const node of $("sale-form").querySelectorAll("button, input, select")) node.disabled = busy;
}

function showWaiting() {
  show($("outcome-idle"), false);
  show($("outcome-result"), false);
  show($("outcome-waiting"), true);
  $("outcome").className = "card outcome waiting";
  $("waiting-text").textContent = t("sending");
  $("waiting-amount").textContent = money(app.sale.amount);
  const started = app.sale.started ?? Date.now();
  const tick = () => { $("timer").textContent = clock((Date.now() - started) / 1000); };
  tick();
  stopTimer();
  app.timer = setInterval(tick, 1000);
}

function updateWaiting(p) {
  // The console's own words (in its language) say it all while processing.
  if (p.state === "processing") $("waiting-text").textContent = t("waiting_card");
}

function stopTimer() {
  clearInterval(app.timer);
  app.timer = null;
}

function backToForm() {
  show($("outcome-waiting"), false);
  show($("outcome-result"), false);
  show($("outcome-idle"), true);
  $("outcome").className = "card outcome";
}

function renderResult(p, { focus = true } = {}) {
  app.lastResult = p;
  show($("outcome-waiting"), false);
  show($("outcome-idle"), false);
  const box = $("outcome-result");
  show(box, true);
  const tx = p.result?.transaction ?? null;
  const kind = { approved: "ok", in_doubt: "doubt", amount_mismatch: "doubt" }[p.state] ?? "bad";
  $("outcome").className = `card outcome ${kind}`;
  const titles = {
    approved: "approved_title", declined: "declined_title", canceled: "canceled_title",
    failed: "failed_title", amount_mismatch: "mismatch_title", in_doubt: "in_doubt_title",
  };
  $("result-title").textContent = t(titles[p.state] ?? "err_other");
  const charged = tx?.amount ?? null;
  $("result-amount").textContent = p.state === "amount_mismatch" && charged != null
    ? `${t("charged")}: ${money(charged)} (≠ ${money(p.amount)})`
    : money(p.amount);

  show($("receipt"), p.state === "approved" || p.state === "amount_mismatch");
  $("r-card").textContent = tx?.card_no ?? "";
  $("r-approval").textContent = tx?.approval_code ?? "";
  $("r-ref").textContent = tx?.ref_no ?? "";
  $("r-receipt").textContent = tx?.receipt_no ?? p.receipt_no ?? "";
  $("r-time").textContent = when(tx?.time ?? p.updated_at, { date: true });
  // A sale settled by the manager has only the receipt number: show what is known.
  for (const dd of $("receipt").querySelectorAll("dd")) show(dd.parentElement, dd.textContent !== "");

  const declined = ["declined", "canceled", "failed", "amount_mismatch"].includes(p.state);
  show($("decline"), declined);
  // The terminal's own answer explains the outcome only when it decided it; an
  // in-doubt payment settled later keeps the answer "unknown", which no longer holds.
  const answered = p.result != null && p.result.outcome === p.state;
  let reason = answered ? p.result.message : "";
  let advice = answered ? p.result.advice : "";
  if (p.state === "failed") reason = [t("failed_text"), p.result?.detail].filter(Boolean).join(" ");
  else if (!answered && p.state === "declined") {
    reason = t("settled_not_paid");
    advice = t("advice_ask_again");
  } else if (!answered) reason = p.message ?? "";
  $("decline-reason").textContent = reason ?? "";
  $("decline-advice").textContent = advice ?? "";
  show($("doubt"), p.state === "in_doubt");
  // The bridge's sentence adds to the console's own words only for a wrong amount.
  $("result-message").textContent = p.state === "amount_mismatch" ? (p.message ?? "") : "";
  if (focus) box.focus();
}

function newSale() {
  app.lastResult = null;
  backToForm();
  setDigits("");
  $("invoice").value = "";
  saleError("");
  refreshTerminals();
  $("amount").focus();
}

async function refreshTerminals() {
  try {
    app.terminals = await app.client.terminals();
    renderTerminalState();
  } catch { /* the live stream or the next sale will say */ }
}

// ---------------------------------------------------------------- manager

function wireManager() {
  $("refresh").addEventListener("click", loadManager);
  $("resolve-form").addEventListener("submit", onResolve);
  $("resolve-cancel").addEventListener("click", () => $("resolve-dialog").close());
  for (const r of document.querySelectorAll("input[name=outcome]")) {
    r.addEventListener("change", syncResolveForm);
  }
  $("reconcile-form").addEventListener("submit", onReconcile);
  $("reconcile-xlsx").addEventListener("click", onDownload);
}

function notice(message, kind = "") {
  const n = $("mgr-notice");
  n.textContent = message;
  n.className = `notice ${kind}`;
  show(n, Boolean(message));
}

async function loadManager() {
  if (!app.client) return;
  try {
    const [terminals, today, doubt] = await Promise.all([
      app.client.terminals(),
      app.client.allPayments({ since: todayStart() }),
      app.client.allPayments({ state: "in_doubt" }),
    ]);
    app.terminals = terminals;
    renderTerminals();
    renderTerminalState();
    renderDoubt(doubt);
    renderPayments(today);
  } catch (err) {
    notice(errorText(err), "bad");
    if (err.status === 401) logout();
  }
}

function renderTerminals() {
  const body = $("terminals-table").tBodies[0];
  body.replaceChildren(...app.terminals.map((term) => el("tr", {},
    el("th", { scope: "row", text: term.name }),
    el("td", {}, el("span", {
      class: `pill state-${term.state}`,
      text: has(`state_${term.state}`) ? t(`state_${term.state}`) : term.state,
    })),
    el("td", { text: term.tid ?? "" }),
    el("td", { text: when(term.last_seen) }),
    el("td", {}, el("button", {
      type: "button", class: "secondary", text: t("settle"),
      "aria-label": `${t("settle")} ${term.name}`,
      onclick: () => doSettle(term.name),
    })),
  )));
}

function renderDoubt(list) {
  show($("doubt-none"), list.length === 0);
  show($("doubt-table"), list.length > 0);
  $("doubt-table").tBodies[0].replaceChildren(...list.map((p) => el("tr", {},
    el("td", { text: when(p.created_at, { date: true }) }),
    el("td", { text: p.terminal }),
    el("td", { text: p.invoice ?? "" }),
    el("td", { class: "num", text: money(p.amount) }),
    el("td", {}, el("button", {
      type: "button", class: "primary", text: t("resolve"),
      "aria-label": `${t("resolve")} ${money(p.amount)} ${p.invoice ?? ""}`.trim(),
      onclick: () => openResolve(p),
    })),
  )));
}

function renderPayments(list) {
  // Receipts voided today, per terminal: their sales are shown as voided.
  const voided = new Set(list
    .filter((p) => p.command === "void" && p.state === "approved")
    .map((p) => `${p.terminal}|${p.receipt_no ?? receiptOf(p)}`));
  const sum = { approved: [0, 0], voided: [0, 0], declined: [0, 0], in_doubt: [0, 0] };
  const add = (k, amount) => { sum[k][0] += 1; sum[k][1] += amount ?? 0; };
  // A void names a receipt, not an amount: shown as the voided sale's, negative.
  const sales = new Map(list.filter((p) => p.command === "sale")
    .map((p) => [`${p.terminal}|${receiptOf(p)}`, p]));
  const amountText = (p) => {
    if (p.amount != null) return money(p.amount);
    const sale = p.command === "void" ? sales.get(`${p.terminal}|${p.receipt_no}`) : null;
    return sale ? `−${money(sale.amount)}` : "";
  };
  const rows = list.map((p) => {
    const receipt = receiptOf(p);
    const isSale = p.command === "sale";
    const wasVoided = isSale && p.state === "approved" && voided.has(`${p.terminal}|${receipt}`);
    if (isSale) {
      if (p.state === "approved" || p.state === "amount_mismatch") {
        // Money taken: at the amount the terminal charged.
        add("approved", p.result?.transaction?.amount ?? p.amount);
        if (wasVoided) add("voided", p.result?.transaction?.amount ?? p.amount);
      } else if (p.state === "in_doubt" || p.state === "processing") add("in_doubt", p.amount);
      else add("declined", p.amount);
    }
    const state = wasVoided ? "voided" : p.state;
    const canVoid = isSale && p.state === "approved" && !wasVoided && receipt;
    return el("tr", { class: `row-${state}` },
      el("td", { text: when(p.created_at) }),
      el("td", { class: "col-terminal", text: p.terminal }),
      el("td", { class: "nowrap", text: commandLabel(p.command) }),
      el("td", { text: p.invoice ?? "" }),
      el("td", { class: "num", text: amountText(p) }),
      el("td", { class: "mono", text: cardOf(p) ?? "" }),
      el("td", { class: "mono", text: p.command === "settle" ? "" : (receipt ?? "") }),
      el("td", {}, el("span", { class: `pill state-${state}`, text: stateLabel(state) })),
      el("td", {}, canVoid ? el("button", {
        type: "button", class: "secondary", text: t("void_short"),
        "aria-label": `${t("void")} ${receipt}`,
        onclick: () => doVoid(p, receipt),
      }) : null),
    );
  });
  $("payments-table").tBodies[0].replaceChildren(...rows);
  // One terminal: its name in every row says nothing and costs width.
  $("payments-table").classList.toggle("one-terminal", app.terminals.length <= 1);
  show($("no-payments"), list.length === 0);
  show($("payments-table"), list.length > 0);
  const item = (label, text, cls = "") => el("div", {},
    el("dt", { text: label }), el("dd", { class: cls, text }));
  const counted = (label, [count, amount], cls = "") =>
    item(label, t("count_amount", { count, amount: money(amount) }), cls);
  $("totals").replaceChildren(
    counted(t("total_approved"), sum.approved),
    counted(t("total_voided"), sum.voided),
    item(t("total_net"), money(sum.approved[1] - sum.voided[1]), "net"),
    counted(t("total_declined"), sum.declined),
    counted(t("total_in_doubt"), sum.in_doubt, sum.in_doubt[0] ? "doubt" : ""),
  );
}

function confirmDialog(text) {
  const dlg = $("confirm-dialog");
  $("confirm-text").textContent = text;
  dlg.returnValue = "";
  return new Promise((resolve) => {
    dlg.addEventListener("close", () => resolve(dlg.returnValue === "yes"), { once: true });
    dlg.showModal();
    $("confirm-no").focus();
  });
}

async function doVoid(p, receipt) {
  if (!(await confirmDialog(t("void_confirm", { amount: money(p.amount), receipt })))) return;
  notice(`${t("void")}… ${receipt}`);
  try {
    const v = await app.client.voidPayment(p.terminal, { receiptNo: receipt });
    if (v.state === "approved") notice(t("void_done", { receipt }), "ok");
    else notice(t("void_failed", { message: v.result?.message ?? v.message ?? stateLabel(v.state) }), "bad");
  } catch (err) {
    notice(t("void_failed", { message: errorText(err) }), "bad");
  }
  loadManager();
}

async function doSettle(terminal) {
  if (!(await confirmDialog(t("settle_confirm", { terminal })))) return;
  notice(`${t("settle")}… ${terminal}`);
  try {
    const s = await app.client.settle(terminal);
    if (s.state === "approved") notice(t("settle_done", { terminal }), "ok");
    else notice(t("settle_failed", { message: s.result?.message ?? s.message ?? stateLabel(s.state) }), "bad");
  } catch (err) {
    notice(t("settle_failed", { message: errorText(err) }), "bad");
  }
  loadManager();
}

function openResolve(p) {
  app.resolving = p;
  $("resolve-title").textContent = t("resolve_title", { amount: money(p.amount) });
  $("resolve-detail").textContent = [p.terminal, p.invoice, when(p.created_at, { date: true }), p.message]
    .filter(Boolean).join(" · ");
  $("resolve-approved").checked = true;
  $("resolve-receipt").value = "";
  $("resolve-note").value = "";
  $("resolve-error").textContent = "";
  syncResolveForm();
  $("resolve-dialog").showModal();
  $("resolve-receipt").focus();
}

function syncResolveForm() {
  const approved = $("resolve-approved").checked;
  show($("resolve-receipt-field"), approved);
  $("resolve-receipt").required = approved;
}

async function onResolve(event) {
  event.preventDefault();
  const p = app.resolving;
  const approved = $("resolve-approved").checked;
  const receipt = $("resolve-receipt").value.trim();
  const who = $("resolve-who").value.trim();
  const note = $("resolve-note").value.trim();
  const fail = (msg, id) => {
    $("resolve-error").textContent = msg;
    if (id) {
      $(id).setAttribute("aria-invalid", "true");
      $(id).focus();
    }
  };
  for (const id of ["resolve-receipt", "resolve-who"]) $(id).removeAttribute("aria-invalid");
  if (approved && !/^\d{1,6}$/.test(receipt)) return fail(t("receipt_required"), "resolve-receipt");
  if (!who) return fail(t("who_required"), "resolve-who");
  $("resolve-ok").disabled = true;
  try {
    await app.client.resolve(p.id, approved
      ? { approvedReceipt: receipt.padStart(6, "0"), who, note }
      : { notApproved: true, who, note });
    $("resolve-dialog").close();
    notice(t("resolve_done"), "ok");
    loadManager();
  } catch (err) {
    const field = err.field === "approved_receipt" ? "resolve-receipt"
      : err.field === "who" ? "resolve-who" : null;
    fail(errorText(err), field);
  } finally {
    $("resolve-ok").disabled = false;
  }
}

// ---------------------------------------------------------------- reconciliation

async function onReconcile(event) {
  event.preventDefault();
  const bank = $("bank-file").files[0];
  const invoices = $("invoices-file").files[0];
  $("reconcile-error").textContent = "";
  if (!bank) {
    $("reconcile-error").textContent = t("reconcile_need_file");
    $("bank-file").focus();
    return;
  }
  const button = $("reconcile-run");
  button.disabled = true;
  button.textContent = t("reconcile_running");
  try {
    const report = await app.client.reconcile({ bank, invoices });
    renderReport(report);
    loadManager(); // reconciliation may have resolved in-doubt payments
  } catch (err) {
    $("reconcile-error").textContent = errorText(err);
  } finally {
    button.disabled = false;
    button.textContent = t("reconcile_run");
  }
}

/** The report's XLSX: the bridge names its URL (the field's name is read loosely). */
function xlsxUrlOf(report) {
  for (const k of ["xlsx_url", "report_url", "xlsx", "download_url", "url"]) {
    if (typeof report?.[k] === "string") return report[k];
  }
  const links = report?.links ?? report?.report ?? null;
  if (links && typeof links === "object") {
    for (const v of Object.values(links)) if (typeof v === "string" && /xlsx/i.test(v)) return v;
  }
  return null;
}

function renderReport(report) {
  show($("reconcile-result"), true);
  const verdict = $("reconcile-verdict");
  verdict.textContent = report.needs_attention ? t("reconcile_attention") : t("reconcile_ok");
  verdict.className = `verdict ${report.needs_attention ? "bad" : "ok"}`;
  const summary = report.summary ?? {};
  $("reconcile-summary").tBodies[0].replaceChildren(...CATEGORIES.filter((c) => summary[c])
    .map((c) => el("tr", { class: summary[c].count ? `cat-${c}` : "zero" },
      el("th", { scope: "row", text: t(`cat_${c}`) }),
      el("td", { class: "num", text: groupDigits(summary[c].count) }),
      el("td", { class: "num", text: money(summary[c].amount) }),
    )));
  const rows = report.rows ?? [];
  const shown = rows.slice(0, MAX_REPORT_ROWS);
  $("reconcile-shown").textContent = rows.length > shown.length
    ? t("rows_shown", { shown: shown.length, total: rows.length }) : "";
  $("reconcile-rows").tBodies[0].replaceChildren(...shown.map((r) => {
    const side = r.bank ?? r.register ?? {};
    const reg = r.register ?? {};
    return el("tr", { class: `cat-${r.category}` },
      el("td", { text: has(`cat_${r.category}`) ? t(`cat_${r.category}`) : r.category }),
      el("td", { text: side.time ?? "" }),
      el("td", { class: "num", text: money(r.amount) }),
      el("td", { text: reg.invoice ?? side.invoice ?? "" }),
      el("td", { class: "mono", text: side.card ?? reg.card ?? "" }),
      el("td", { class: "mono", text: side.approval ?? reg.approval ?? "" }),
      el("td", { class: "mono", text: side.receipt ?? reg.receipt ?? "" }),
    );
  }));
  app.xlsxUrl = xlsxUrlOf(report);
  const link = $("reconcile-xlsx");
  show(link, Boolean(app.xlsxUrl));
  // The href is the bridge's URL (no key in it); the click fetches it with the key.
  if (app.xlsxUrl) link.href = new URL(app.xlsxUrl, window.location.origin).href;
}

async function onDownload(event) {
  event.preventDefault();
  if (!app.xlsxUrl) return;
  try {
    const blob = await app.client.download(app.xlsxUrl);
    const url = URL.createObjectURL(blob);
    const a = el("a", { href: url, download: "ecrlink-reconcile.xlsx" });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  } catch (err) {
    $("reconcile-error").textContent = errorText(err);
  }
}

boot();

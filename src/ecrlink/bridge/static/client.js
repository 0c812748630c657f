/**
 * ecrlink bridge client: take card payments from a web register.
 *
 * A small ES module with no dependencies, served by the bridge at `/v1/client.js`
 * (contract: bridge API v1). Load it from the bridge itself:
 *
 *     import { createClient } from "http://127.0.0.1:8765/v1/client.js";
 *     const bridge = createClient({ apiKey: "k_live_…" });
 *     const payment = await bridge.pay("lane1", { amount: 150000, invoice: "HD0001" }, {
 *       onUpdate: (p) => show(p.state, p.message),
 *     });
 *     if (payment.state === "approved") printReceipt(payment.result.transaction);
 *
 * How it keeps money safe:
 * - every payment, void and settlement carries an `Idempotency-Key` that this module
 *   makes (or that you pass, to survive a page reload) and keeps across its own
 *   retries: a request retried after a network error answers the same payment, it
 *   never charges twice;
 * - once created, a payment is followed with long-polls (`?wait=`) until it is no
 *   longer `processing`; a network error while following is retried, never reported
 *   as a decline. `in_doubt` is returned as it is: do not charge again.
 * - the API key travels in the `Authorization` header only, never in a URL.
 *
 * Errors are thrown as `EcrlinkError` with `code` (the contract's `error.code`, or
 * `network_error`, `aborted`, `bad_response`), `message`, `field` and `status`.
 *
 * @module ecrlink-client
 */

/** States after which a payment will not change by itself (`in_doubt` may, later). */
export const FINAL_STATES = Object.freeze([
  "approved", "declined", "canceled", "failed", "amount_mismatch",
]);

const RETRY_STATUSES = new Set([502, 503, 504]);
/** Final states that the terminal's own answer decides: they come with a `result`. */
const ANSWERED = new Set(["approved", "declined", "canceled", "amount_mismatch"]);
const DEFAULT_WAIT = 25;
const MAX_WAIT = 60;

/**
 * An error from the bridge (its `{"error": {...}}` body) or from the way to it.
 */
export class EcrlinkError extends Error {
  /**
   * @param {string} code `bad_input`, `terminal_busy`, `in_doubt`, `network_error`, …
   * @param {string} message one line, for people
   * @param {{field?: (string|null), status?: (number|null), payment?: (object|null),
   *          idempotencyKey?: (string|null), cause?: unknown, details?: object}} [extra]
   */
  constructor(code, message, extra = {}) {
    super(message, extra.cause === undefined ? undefined : { cause: extra.cause });
    this.name = "EcrlinkError";
    /** @type {string} */
    this.code = code;
    /** @type {string|null} the request field at fault, for `bad_input` */
    this.field = extra.field ?? null;
    /** @type {number|null} the HTTP status, when the bridge answered */
    this.status = extra.status ?? null;
    /** @type {object|null} the last known payment, when one exists (e.g. aborted while following) */
    this.payment = extra.payment ?? null;
    /** @type {string|null} the key of the request, to retry it safely later */
    this.idempotencyKey = extra.idempotencyKey ?? null;
    /** @type {object} the rest of the bridge's error object (e.g. the payment it names) */
    this.details = extra.details ?? {};
  }
}

/**
 * A new idempotency key: a UUID. `crypto.randomUUID` exists only on secure pages
 * (https, localhost); a register page on `http://192.168.x.x` has only
 * `getRandomValues`, so the UUID is made from it there.
 * @returns {string}
 */
export function newIdempotencyKey() {
  const c = globalThis.crypto;
  if (c && typeof c.randomUUID === "function") return c.randomUUID();
  const b = c.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** The bridge that served this module (so `createClient()` needs no URL there). */
function defaultBaseUrl() {
  try {
    return new URL("/", import.meta.url).href.replace(/\/$/, "");
  } catch {
    return "";
  }
}

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(aborted(signal));
    const t = setTimeout(done, ms);
    function done() {
      signal?.removeEventListener("abort", stop);
      resolve();
    }
    function stop() {
      clearTimeout(t);
      reject(aborted(signal));
    }
    signal?.addEventListener("abort", stop, { once: true });
  });
}

function aborted(signal, extra = {}) {
  return new EcrlinkError("aborted", "stopped by the caller", { cause: signal?.reason, ...extra });
}

function isRetryable(err) {
  return err instanceof EcrlinkError
    && (err.code === "network_error" || RETRY_STATUSES.has(err.status));
}

function backoff(attempt) {
  return Math.min(250 * 2 ** attempt, 4000);
}

function checkAmount(amount) {
  if (!Number.isSafeInteger(amount) || amount <= 0) {
    throw new EcrlinkError("bad_input", "amount: must be a whole number of dong greater than 0",
      { field: "amount" });
  }
}

/**
 * A client for one bridge.
 *
 * @param {object} [options]
 * @param {string} [options.baseUrl] the bridge, e.g. `http://127.0.0.1:8765`
 *   (default: the bridge this module was loaded from)
 * @param {string} [options.apiKey] sent as `Authorization: Bearer …`
 * @param {string} [options.lang] `vi` or `en`: asked of the bridge (`Accept-Language`)
 *   for the cashier texts in payments (`message`, `result.message`, `result.advice`)
 * @param {number} [options.retries] how many times a request that met a network error
 *   (or a 502/503/504) is sent again with the same key before giving up (default 5)
 * @param {typeof fetch} [options.fetch] a `fetch` to use instead of the global one
 * @returns {Client}
 */
export function createClient(options = {}) {
  return new Client(options);
}

/** A bridge client; see `createClient`. */
export class Client {
  /** @param {Parameters<typeof createClient>[0]} [options] */
  constructor({ baseUrl, apiKey, lang, retries = 5, fetch: fetchImpl } = {}) {
    this.baseUrl = (baseUrl ?? defaultBaseUrl()).replace(/\/+$/, "");
    this.apiKey = apiKey ?? null;
    this.lang = lang ?? null;
    this.retries = retries;
    this._fetch = fetchImpl ?? ((...a) => globalThis.fetch(...a));
  }

  /**
   * Start a sale and follow it until it is no longer `processing`.
   *
   * @param {string} terminal the terminal's name in the bridge's config
   * @param {{amount: number, invoice?: string, reference?: string,
   *          fields?: Object<string, string>, allowDuplicate?: boolean}} sale
   *   amount in VND (an integer); invoice is F3, reference F5
   * @param {{onUpdate?: (payment: object) => void, signal?: AbortSignal,
   *          idempotencyKey?: string, wait?: number}} [options]
   *   `onUpdate` gets the payment at creation and at every change; pass your own
   *   `idempotencyKey` (kept e.g. in sessionStorage) to resume safely after a reload
   * @returns {Promise<object>} the payment: `approved`, `declined`, `canceled`,
   *   `failed`, `amount_mismatch`, or `in_doubt` (do NOT charge again; a manager
   *   resolves it)
   * @throws {EcrlinkError} `bad_input` (nothing sent), `terminal_busy`, `in_doubt`,
   *   `duplicate_invoice`, `idempotency_conflict`, `network_error`, `aborted`, …
   */
  async pay(terminal, sale, options = {}) {
    const { amount, invoice, reference, fields, allowDuplicate } = sale ?? {};
    checkAmount(amount);
    const body = { amount };
    if (invoice != null && invoice !== "") body.invoice = String(invoice);
    if (reference != null && reference !== "") body.reference = String(reference);
    if (fields != null) body.fields = fields;
    if (allowDuplicate) body.allow_duplicate = true;
    return this._start(`/v1/terminals/${enc(terminal)}/payments`, body, options);
  }

  /**
   * Void (cancel) an approved sale by its receipt number, and follow it.
   *
   * @param {string} terminal
   * @param {{receiptNo: string}} what the receipt number printed on the sale's slip
   * @param {Parameters<Client["pay"]>[2]} [options]
   * @returns {Promise<object>} the void's payment object
   * @throws {EcrlinkError}
   */
  async voidPayment(terminal, what, options = {}) {
    const receiptNo = typeof what === "string" ? what : (what?.receiptNo ?? what?.receipt_no);
    if (typeof receiptNo !== "string" || receiptNo === "") {
      throw new EcrlinkError("bad_input", "receipt_no: the sale's receipt number is required",
        { field: "receipt_no" });
    }
    return this._start(`/v1/terminals/${enc(terminal)}/voids`, { receipt_no: receiptNo }, options);
  }

  /** The same as `voidPayment` (`void` is a keyword only as a bare name). */
  void(terminal, what, options = {}) {
    return this.voidPayment(terminal, what, options);
  }

  /**
   * Settle (close the batch of) a terminal, and follow it.
   *
   * @param {string} terminal
   * @param {Parameters<Client["pay"]>[2]} [options]
   * @returns {Promise<object>} the settlement's payment object
   * @throws {EcrlinkError}
   */
  async settle(terminal, options = {}) {
    return this._start(`/v1/terminals/${enc(terminal)}/settlements`, {}, options);
  }

  /**
   * A payment by id; with `wait`, held by the bridge until it is no longer
   * `processing` or the seconds are up.
   *
   * @param {string} id `pay_…`
   * @param {{wait?: number, signal?: AbortSignal}} [options]
   * @returns {Promise<object>} the payment
   * @throws {EcrlinkError} `not_found`, `network_error`, …
   */
  async status(id, { wait, signal } = {}) {
    let path = `/v1/payments/${enc(id)}`;
    if (wait) path += `?wait=${Math.max(0, Math.min(MAX_WAIT, Math.round(wait)))}`;
    return this.request("GET", path, { signal });
  }

  /**
   * Follow a payment until it is no longer `processing`, calling `onUpdate` on every
   * change. Network errors are retried for as long as it takes (until `signal`).
   *
   * @param {object|string} payment a payment object or its id
   * @param {{onUpdate?: (payment: object) => void, signal?: AbortSignal, wait?: number}} [options]
   * @returns {Promise<object>}
   */
  async follow(payment, { onUpdate, signal, wait = DEFAULT_WAIT } = {}) {
    let current = typeof payment === "string" ? null : payment;
    const id = typeof payment === "string" ? payment : payment.id;
    let failures = 0;
    while (current === null || current.state === "processing") {
      let next;
      try {
        next = await this.status(id, { wait, signal });
      } catch (err) {
        if (err.code === "aborted") throw aborted(signal, { payment: current });
        if (!isRetryable(err)) throw err;
        // The payment exists; not knowing its state is no answer. Ask again.
        await sleep(backoff(failures++), signal).catch(() => {
          throw aborted(signal, { payment: current });
        });
        continue;
      }
      failures = 0;
      if (current === null || next.state !== current.state
          || next.updated_at !== current.updated_at) {
        current = next;
        onUpdate?.(current);
      }
    }
    return this._withResult(current, { onUpdate, signal });
  }

  /**
   * A payment the terminal answered carries its `result` (the slip's data, the
   * decline's reason). Should the state arrive a moment before the result, ask again
   * briefly rather than hand back a slip without its card and approval code.
   */
  async _withResult(payment, { onUpdate, signal }) {
    let current = payment;
    for (let i = 0; i < 10 && current.result == null && ANSWERED.has(current.state); i++) {
      await sleep(200, signal).catch(() => {
        throw aborted(signal, { payment: current });
      });
      try {
        current = await this.status(current.id, { signal });
      } catch (err) {
        if (err.code === "aborted") throw aborted(signal, { payment: current });
        if (!isRetryable(err)) throw err;
        continue;
      }
      if (current.result != null) onUpdate?.(current);
    }
    return current;
  }

  /**
   * Terminals and their state (`idle`, `busy`, `in_doubt`, `unreachable`).
   * @param {{signal?: AbortSignal}} [options]
   * @returns {Promise<object[]>}
   */
  async terminals({ signal } = {}) {
    return this.request("GET", "/v1/terminals", { signal });
  }

  /**
   * The terminal's own `last trans`, as the bridge reads it.
   * @param {string} terminal
   * @returns {Promise<object>}
   */
  async lastTransaction(terminal, { signal } = {}) {
    return this.request("GET", `/v1/terminals/${enc(terminal)}/last-transaction`, { signal });
  }

  /**
   * One page of payments, newest first.
   *
   * @param {{terminal?: string, state?: string, since?: string, until?: string,
   *          invoice?: string, limit?: number, cursor?: string}} [filters]
   * @param {{signal?: AbortSignal}} [options]
   * @returns {Promise<{items: object[], nextCursor: (string|null)}>}
   */
  async payments(filters = {}, { signal } = {}) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(filters)) if (v != null && v !== "") q.set(k, String(v));
    const qs = q.toString();
    const data = await this.request("GET", `/v1/payments${qs ? `?${qs}` : ""}`, { signal });
    return pageOf(data);
  }

  /**
   * Every payment matching `filters`, following the cursor (at most `max`).
   * @param {Parameters<Client["payments"]>[0]} [filters]
   * @param {{max?: number, signal?: AbortSignal}} [options]
   * @returns {Promise<object[]>}
   */
  async allPayments(filters = {}, { max = 5000, signal } = {}) {
    const out = [];
    let cursor = null;
    do {
      const page = await this.payments({ limit: 500, ...filters, cursor }, { signal });
      out.push(...page.items);
      cursor = page.nextCursor;
    } while (cursor && out.length < max);
    return out;
  }

  /**
   * Manager: settle an `in_doubt` payment by what the terminal's printed receipt shows.
   *
   * @param {string} id
   * @param {{approvedReceipt?: string, notApproved?: boolean, who: string, note?: string}} how
   * @returns {Promise<object>} the payment, now `approved` or `declined`
   * @throws {EcrlinkError} `bad_input`, `forbidden` (403), …
   */
  async resolve(id, { approvedReceipt, notApproved, who, note } = {}) {
    const body = { who };
    if (notApproved) body.not_approved = true;
    else body.approved_receipt = approvedReceipt;
    if (note) body.note = note;
    return this.request("POST", `/v1/payments/${enc(id)}/resolve`, { body });
  }

  /**
   * Manager: reconcile the bank's statement (CSV/XLSX) against the journal, or
   * against the register's invoice list.
   *
   * @param {{bank: Blob, invoices?: Blob}} files
   * @returns {Promise<object>} the same JSON as `ecrlink reconcile --json`
   */
  async reconcile({ bank, invoices }, { signal } = {}) {
    const form = new FormData();
    form.append("bank", bank, bank.name ?? "bank.csv");
    if (invoices) form.append("invoices", invoices, invoices.name ?? "invoices.csv");
    return this.request("POST", "/v1/reconciliations", { form, signal });
  }

  /**
   * A file the bridge serves behind the API key (e.g. a reconciliation's XLSX), as a
   * Blob: a plain link could not carry the key, and the key never goes in a URL.
   *
   * @param {string} url absolute, or a path on the bridge
   * @returns {Promise<Blob>}
   */
  async download(url, { signal } = {}) {
    const res = await this._send("GET", url, { signal });
    if (!res.ok) await this._fail(res);
    return res.blob();
  }

  /**
   * Listen to the bridge's Server-Sent Events (`payment.updated`, `terminal.updated`),
   * reconnecting with `Last-Event-ID` after a break so that nothing is lost. Read
   * with `fetch`, not `EventSource`, so that the key stays in a header.
   *
   * @param {{onEvent: (event: {type: string, id: string, data: any}) => void,
   *          onOpen?: () => void, onError?: (err: Error) => void,
   *          lastEventId?: string, signal: AbortSignal}} options
   * @returns {Promise<string|null>} when `signal` aborts: the last event id seen
   */
  async events({ onEvent, onOpen, onError, lastEventId = null, signal }) {
    let retry = 1000;
    let last = lastEventId;
    while (!signal?.aborted) {
      try {
        const headers = { Accept: "text/event-stream" };
        if (last) headers["Last-Event-ID"] = last;
        const res = await this._send("GET", "/v1/events", { headers, signal });
        if (!res.ok) await this._fail(res);
        onOpen?.();
        const reader = new SseReader();
        const decoder = new TextDecoder();
        for await (const chunk of streamOf(res.body)) {
          for (const ev of reader.feed(decoder.decode(chunk, { stream: true }))) {
            if (ev.retry != null) retry = ev.retry;
            if (ev.id != null) last = ev.id;
            if (ev.data == null) continue;
            let data = ev.data;
            try { data = JSON.parse(data); } catch { /* left as text */ }
            onEvent({ type: ev.event || "message", id: last, data });
          }
        }
      } catch (err) {
        if (signal?.aborted) break;
        if (err instanceof EcrlinkError && (err.status === 401 || err.status === 403)) throw err;
        onError?.(err);
      }
      await sleep(retry, signal).catch(() => {});
    }
    return last;
  }

  /**
   * One request to the bridge with the key and the language; the JSON answer, or an
   * `EcrlinkError`. Not retried: see `pay` for requests that are.
   *
   * @param {string} method
   * @param {string} path
   * @param {{body?: object, form?: FormData, headers?: object, signal?: AbortSignal}} [options]
   * @returns {Promise<any>}
   */
  async request(method, path, options = {}) {
    const res = await this._send(method, path, options);
    if (!res.ok) await this._fail(res);
    if (res.status === 204) return null;
    try {
      return await res.json();
    } catch (err) {
      throw new EcrlinkError("bad_response", `the bridge answered ${res.status} without JSON`,
        { status: res.status, cause: err });
    }
  }

  async _start(path, body, { onUpdate, signal, idempotencyKey, wait } = {}) {
    const key = idempotencyKey ?? newIdempotencyKey();
    let payment;
    for (let attempt = 0; ; attempt++) {
      try {
        payment = await this.request("POST", path,
          { body, signal, headers: { "Idempotency-Key": key } });
        break;
      } catch (err) {
        err.idempotencyKey = key;
        if (err.code === "aborted" || !isRetryable(err) || attempt >= this.retries) throw err;
        // Same key again: if the first request did reach the bridge, this answers
        // the payment it created (200) instead of starting a second one.
        await sleep(backoff(attempt), signal).catch((e) => {
          e.idempotencyKey = key;
          throw e;
        });
      }
    }
    onUpdate?.(payment);
    return this.follow(payment, { onUpdate, signal, wait });
  }

  async _send(method, path, { body, form, headers = {}, signal } = {}) {
    const h = { ...headers };
    if (this.apiKey) h.Authorization = `Bearer ${this.apiKey}`;
    if (this.lang) h["Accept-Language"] = this.lang;
    let payload;
    if (form) payload = form;
    else if (body !== undefined) {
      h["Content-Type"] = "application/json";
      payload = JSON.stringify(body);
    }
    const url = /^https?:/i.test(path) ? path : this.baseUrl + path;
    if (signal?.aborted) throw aborted(signal);
    try {
      return await this._fetch(url, { method, headers: h, body: payload, signal, cache: "no-store" });
    } catch (err) {
      if (signal?.aborted || err?.name === "AbortError") throw aborted(signal);
      throw new EcrlinkError("network_error", `cannot reach the bridge at ${this.baseUrl || "this page"}`,
        { cause: err });
    }
  }

  async _fail(res) {
    let info = null;
    try {
      info = (await res.json())?.error ?? null;
    } catch { /* not JSON: a proxy's page, say */ }
    const code = info?.code ?? (res.status === 401 ? "unauthorized"
      : res.status === 403 ? "forbidden" : res.status === 404 ? "not_found" : `http_${res.status}`);
    const { code: _c, message, field, ...details } = info ?? {};
    throw new EcrlinkError(code, message ?? `HTTP ${res.status}`,
      { field: field ?? null, status: res.status, details });
  }
}

function enc(s) {
  if (typeof s !== "string" || s === "") {
    throw new EcrlinkError("bad_input", "terminal/id: a name is required", { field: "terminal" });
  }
  return encodeURIComponent(s);
}

function pageOf(data) {
  if (Array.isArray(data)) return { items: data, nextCursor: null };
  const items = data?.items ?? data?.payments ?? data?.data ?? [];
  const nextCursor = data?.next_cursor ?? data?.nextCursor ?? data?.cursor ?? null;
  return { items, nextCursor };
}

async function* streamOf(body) {
  const reader = body.getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      yield value;
    }
  } finally {
    reader.releaseLock?.();
  }
}

/**
 * Server-Sent Events parser, as the HTML standard has it: lines end in CRLF, LF or
 * CR; `data:` lines join with LF; a blank line dispatches; `id` with NUL is ignored.
 */
export class SseReader {
  constructor() {
    this._buf = "";
    this._afterCR = false;
    this._reset();
  }

  _reset() {
    this._event = "";
    this._data = null;
    this._id = null;
    this._retry = null;
  }

  /**
   * @param {string} text the next decoded piece of the stream
   * @returns {{event: string, data: (string|null), id: (string|null), retry: (number|null)}[]}
   */
  feed(text) {
    // A CR ends a line at once (the event must not wait for the next byte); an LF
    // right after it, even in the next piece, is the other half of CRLF.
    if (this._afterCR && text.startsWith("\n")) text = text.slice(1);
    if (text !== "") this._afterCR = false;
    this._buf += text;
    const out = [];
    for (;;) {
      const m = /\r\n|\r|\n/.exec(this._buf);
      if (!m) break;
      const line = this._buf.slice(0, m.index);
      this._buf = this._buf.slice(m.index + m[0].length);
      if (m[0] === "\r" && this._buf === "") this._afterCR = true;
      if (line === "") {
        if (this._data !== null || this._id !== null || this._retry !== null) {
          out.push({ event: this._event, data: this._data, id: this._id, retry: this._retry });
        }
        this._reset();
        continue;
      }
      if (line.startsWith(":")) continue;
      const i = line.indexOf(":");
      const name = i < 0 ? line : line.slice(0, i);
      let value = i < 0 ? "" : line.slice(i + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (name === "event") this._event = value;
      else if (name === "data") this._data = this._data === null ? value : `${this._data}\n${value}`;
      else if (name === "id" && !value.includes("\0")) this._id = value;
      else if (name === "retry" && /^\d+$/.test(value)) this._retry = Number(value);
    }
    return out;
  }
}

// Module-level functions over one default client, for the simplest registers:
//   import { configure, pay } from "/v1/client.js";
//   configure({ apiKey }); await pay("lane1", { amount: 150000 });
let defaultClient = null;

/**
 * Set the options of the module-level `pay`, `voidPayment`, `settle` and `status`.
 * @param {Parameters<typeof createClient>[0]} options
 * @returns {Client}
 */
export function configure(options) {
  defaultClient = new Client(options);
  return defaultClient;
}

function client() {
  return defaultClient ?? (defaultClient = new Client());
}

/** `Client.pay` on the configured client. @type {Client["pay"]} */
export const pay = (...a) => client().pay(...a);
/** `Client.voidPayment` on the configured client. @type {Client["voidPayment"]} */
export const voidPayment = (...a) => client().voidPayment(...a);
/** `Client.settle` on the configured client. @type {Client["settle"]} */
export const settle = (...a) => client().settle(...a);
/** `Client.status` on the configured client. @type {Client["status"]} */
export const status = (...a) => client().status(...a);

export { voidPayment as void };

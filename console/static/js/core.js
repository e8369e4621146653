// The console's core: the API client, the session (token and role), the
// live WebSocket, DOM helpers and formatting. Pages import from here only.

export const API = '/cloud-integration';
const ROLES = { viewer: 1, operator: 2, admin: 3 };

// ---- session: the token lives in memory, and in sessionStorage only when
// the user asks (never in a URL, never in localStorage).
export const session = { token: '', name: '', role: '', tokenId: '' };
const STORE_KEY = 'backupd.token';

export function savedToken() { return sessionStorage.getItem(STORE_KEY) || ''; }
export function remember(token) { sessionStorage.setItem(STORE_KEY, token); }
export function forget() {
  sessionStorage.removeItem(STORE_KEY);
  session.token = session.name = session.role = session.tokenId = '';
}
// can(role): the signed-in token has at least this role.
export function can(role) { return (ROLES[session.role] || 0) >= ROLES[role]; }

// ---- the API
export class ApiError extends Error {
  constructor(status, body) {
    super(body && body.message ? body.message : `HTTP ${status}`);
    this.status = status;
    this.code = (body && body.code) || '';
    this.actions = (body && body.suggested_actions) || [];
    this.details = (body && body.details) || {};
  }
}

let onUnauthorized = () => {};
export function setUnauthorizedHandler(fn) { onUnauthorized = fn; }

export async function api(method, path, body, opts = {}) {
  const headers = { Authorization: 'Bearer ' + (opts.token || session.token) };
  const init = { method, headers, cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(API + path, init);
  } catch (e) {
    throw new ApiError(0, { message: 'the server does not answer: is backupd running?', code: 'NETWORK' });
  }
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { data = { message: text }; }
  if (!res.ok) {
    const err = new ApiError(res.status, data);
    if (res.status === 401 && !opts.token) onUnauthorized(err);
    throw err;
  }
  return data;
}
export const get = (p, o) => api('GET', p, undefined, o);
export const post = (p, b) => api('POST', p, b === undefined ? {} : b);
export const del = (p) => api('DELETE', p);

// qs builds a query string from the set values of an object.
export function qs(o) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(o)) if (v !== undefined && v !== null && v !== '') p.set(k, v);
  const s = p.toString();
  return s ? '?' + s : '';
}

// ---- the live WebSocket: one socket, many listeners; reconnects with
// backoff. The token travels as the subprotocol pair "bearer, <token>"
// (browsers cannot set headers on a WebSocket; a URL would log it).
export const live = {
  ws: null, listeners: new Map(), retry: 0, timer: null, wanted: false, connected: false,
  start() { this.wanted = true; this.connect(); },
  stop() {
    this.wanted = false;
    clearTimeout(this.timer);
    if (this.ws) this.ws.close();
    this.ws = null;
  },
  connect() {
    if (!this.wanted || !session.token) return;
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(`${proto}//${location.host}${API}/ws/backup`, ['bearer', session.token]);
    this.ws = ws;
    ws.onopen = () => { this.retry = 0; this.setState(true); this.emit({ type: 'live_connected' }); };
    ws.onmessage = (ev) => {
      let m;
      try { m = JSON.parse(ev.data); } catch (e) { return; }
      this.emit(m);
    };
    ws.onclose = () => {
      this.setState(false);
      if (this.ws !== ws || !this.wanted) return;
      const wait = Math.min(30000, 500 * 2 ** this.retry++);
      this.timer = setTimeout(() => this.connect(), wait);
    };
  },
  setState(ok) {
    this.connected = ok;
    const el = document.getElementById('live');
    if (el) {
      el.classList.toggle('off', !ok);
      el.textContent = ok ? '● live' : '○ reconnecting';
    }
  },
  emit(m) {
    for (const fn of [...(this.listeners.get(m.type) || []), ...(this.listeners.get('*') || [])]) {
      try { fn(m); } catch (e) { console.error(e); }
    }
  },
  // on(type, fn) listens to one message type ('*': all); returns the
  // function that stops listening.
  on(type, fn) {
    if (!this.listeners.has(type)) this.listeners.set(type, new Set());
    this.listeners.get(type).add(fn);
    return () => this.listeners.get(type).delete(fn);
  },
};

// ---- DOM: elements are built, never parsed from strings, so no text
// from the server is ever interpreted as HTML.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'value') el.value = v;
    else if (k === 'checked') el.checked = !!v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  append(el, children);
  return el;
}
function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}
export function clear(el, ...children) { el.replaceChildren(); append(el, children); return el; }

// table(columns, rows): columns are {title, cell: row => node|text, class}.
export function table(columns, rows, opts = {}) {
  return h('table', { class: 'grid ' + (opts.class || ''), id: opts.id },
    h('thead', {}, h('tr', {}, columns.map((c) => h('th', { class: c.class }, c.title)))),
    h('tbody', {}, rows.length ? rows.map((r) => h('tr', { dataset: opts.rowData ? opts.rowData(r) : undefined },
      columns.map((c) => h('td', { class: c.class }, c.cell(r)))))
      : h('tr', {}, h('td', { colspan: columns.length, class: 'muted empty' }, opts.empty || 'nothing here'))));
}

export function bar(pct, opts = {}) {
  const p = Math.max(0, Math.min(100, Number(pct) || 0));
  const b = h('div', { class: 'bar ' + (opts.class || ''), role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': 100, 'aria-valuenow': p.toFixed(0) },
    h('div', { class: 'fill' }), h('span', { class: 'label' }, opts.label !== undefined ? opts.label : p.toFixed(0) + '%'));
  b.firstChild.style.width = p + '%'; // a style property set from script is not inline style for CSP
  return b;
}
export function setBar(b, pct, label) {
  const p = Math.max(0, Math.min(100, Number(pct) || 0));
  b.firstChild.style.width = p + '%';
  b.setAttribute('aria-valuenow', p.toFixed(0));
  b.lastChild.textContent = label !== undefined ? label : p.toFixed(0) + '%';
}

export function badge(text, kind) { return h('span', { class: 'badge ' + (kind || statusKind(text)) }, text); }
export function statusKind(s) {
  s = String(s || '').toLowerCase();
  if (['completed', 'success', 'healthy', 'passed', 'ok', 'compliant', 'enabled', 'active', 'keep', 'running_ok'].includes(s)) return 'ok';
  if (['failed', 'error', 'critical', 'unhealthy', 'corrupt', 'revoked', 'refused', 'delete', 'denied'].includes(s)) return 'bad';
  if (['partial', 'warning', 'degraded', 'paused', 'late', 'skipped', 'cancelled', 'disabled', 'non_compliant'].includes(s)) return 'warn';
  if (['running', 'in_progress', 'started', 'pending', 'queued'].includes(s)) return 'run';
  return 'plain';
}

// ---- feedback
export function toast(text, kind = 'info', ms = 6000) {
  const t = h('div', { class: 'toast ' + kind, role: kind === 'error' ? 'alert' : 'status' }, text);
  document.getElementById('toasts').append(t);
  setTimeout(() => t.remove(), ms);
  return t;
}
// errorBox shows an API error as the user should read it: code, message,
// and the suggested actions.
export function errorBox(err) {
  return h('div', { class: 'errorbox', role: 'alert' },
    h('strong', {}, err.code ? err.code + ': ' : ''), err.message,
    err.actions && err.actions.length ? h('ul', {}, err.actions.map((a) => h('li', {}, a))) : null);
}
export function showError(err) {
  toast((err.code ? err.code + ': ' : '') + err.message + (err.actions && err.actions[0] ? ' — ' + err.actions[0] : ''), 'error', 10000);
}

// confirmDialog asks before something that cannot be undone; extra is an
// optional node (a checkbox) shown under the question.
export function confirmDialog(text, okLabel = 'Confirm', extra = null) {
  const d = document.getElementById('confirm');
  document.getElementById('confirm-text').textContent = text;
  clear(document.getElementById('confirm-extra'), extra);
  document.getElementById('confirm-ok').textContent = okLabel;
  d.returnValue = '';
  d.showModal();
  return new Promise((resolve) => d.addEventListener('close', () => resolve(d.returnValue === 'ok'), { once: true }));
}

// ---- formatting
export function fmtBytes(n) {
  n = Number(n) || 0;
  const u = ['B', 'KB', 'MB', 'GB', 'TB', 'PB'];
  let i = 0;
  while (Math.abs(n) >= 1000 && i < u.length - 1) { n /= 1000; i++; }
  return (i ? n.toFixed(n < 10 ? 2 : n < 100 ? 1 : 0) : n) + ' ' + u[i];
}
export function fmtTime(s) {
  if (!s) return '—';
  const d = new Date(s);
  if (isNaN(d)) return s;
  return d.toLocaleString(undefined, { year: 'numeric', month: 'short', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit' });
}
export function fmtAge(s) {
  if (!s) return 'never';
  const sec = (Date.now() - new Date(s).getTime()) / 1000;
  return fmtSeconds(Math.abs(sec)) + (sec >= 0 ? ' ago' : ' from now');
}
export function fmtSeconds(sec) {
  sec = Math.round(Number(sec) || 0);
  if (sec < 60) return sec + 's';
  if (sec < 3600) return Math.floor(sec / 60) + 'm ' + (sec % 60) + 's';
  if (sec < 86400) return Math.floor(sec / 3600) + 'h ' + Math.floor((sec % 3600) / 60) + 'm';
  return Math.floor(sec / 86400) + 'd ' + Math.floor((sec % 86400) / 3600) + 'h';
}

// page header with a title and optional actions
export function header(title, ...actions) {
  return h('div', { class: 'pagehead' }, h('h1', {}, title), h('div', { class: 'actions' }, actions));
}
export function section(title, ...children) {
  return h('section', { class: 'card' }, title ? h('h2', {}, title) : null, children);
}
// loading placeholder; replaced by the page when its data arrives
export function loading(what) { return h('p', { class: 'muted loading' }, 'Loading ' + what + '…'); }

// temporalLink: the job's workflow in the Temporal Web UI
export function temporalLink(url, text = 'Temporal') {
  if (!/^https?:\/\//i.test(url || '')) return null; // a link from the server opens only a web page
  return url ? h('a', { href: url, target: '_blank', rel: 'noopener noreferrer', class: 'ext' }, text + ' ↗') : null;
}

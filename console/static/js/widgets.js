// Small helpers the schedules, storage, statistics, jobs, audit and tokens
// pages share (beside core.js): paging, async buttons, form rows, inline
// SVG, times shown in their own zone. Nothing here parses HTML.
import { h, clear, errorBox, showError, toast, get, live, ApiError } from './core.js';

// pager(pagination, go): "page x of y (n entries)" with previous/next;
// go(page) is called with the page asked for. id names the element.
export function pager(p, go, id) {
  const pages = Math.max(1, Number(p && p.total_pages) || 1);
  const page = Math.max(1, Number(p && p.page) || 1);
  const total = Number(p && p.total) || 0;
  return h('div', { class: 'pager', id },
    h('span', { class: 'muted' }, `page ${page} of ${pages} · ${total} ${total === 1 ? 'entry' : 'entries'}`),
    h('button', { type: 'button', class: 'small', 'data-page': 'prev', disabled: page <= 1, onclick: () => go(page - 1) }, '‹ Previous'),
    h('button', { type: 'button', class: 'small', 'data-page': 'next', disabled: page >= pages, onclick: () => go(page + 1) }, 'Next ›'));
}

// busyButton: a button whose click runs an async function; it is disabled
// while the function runs and an API error is shown as a toast (with its
// code and first suggested action) unless onError takes it.
export function busyButton(label, fn, attrs = {}, onError = showError) {
  const b = h('button', Object.assign({ type: 'button' }, attrs), label);
  b.addEventListener('click', async (ev) => {
    ev.preventDefault();
    if (b.disabled) return;
    b.disabled = true;
    try {
      await fn(ev);
    } catch (err) {
      onError(err);
    } finally {
      if (b.isConnected) b.disabled = false;
    }
  });
  return b;
}

// errorSlot: a place in a page for the latest API error (errorBox, with the
// code and every suggested action); show(err) fills it, show(null) empties.
export function errorSlot(id) {
  const el = h('div', { class: 'errorslot', id, 'aria-live': 'assertive' });
  el.show = (err) => {
    clear(el, err ? errorBox(err) : null);
    if (err) el.scrollIntoView({ block: 'nearest' });
  };
  return el;
}

// row: a label and its control for a .form grid, with an optional hint.
export function row(labelText, control, hint) {
  const id = control.id || (control.querySelector && (control.querySelector('input,select,textarea') || {}).id);
  return [h('label', { for: id || undefined }, labelText),
    h('div', { class: 'field' }, control, hint ? h('div', { class: 'hint muted' }, hint) : null)];
}

// select(id, options, value): options are strings or [value, label].
export function select(id, options, value, attrs = {}) {
  return h('select', Object.assign({ id, name: id }, attrs), options.map((o) => {
    const [v, l] = Array.isArray(o) ? o : [o, o];
    return h('option', { value: v, selected: String(v) === String(value) ? true : undefined }, l);
  }));
}

// checkbox with its label
export function check(id, labelText, checked, attrs = {}) {
  return h('label', { class: 'inline', for: id }, h('input', Object.assign({ type: 'checkbox', id, name: id, checked }, attrs)), labelText);
}

// copyButton copies text to the clipboard (falls back to selecting a node).
export function copyButton(text, selectNode, attrs = {}) {
  return h('button', Object.assign({ type: 'button', class: 'small' }, attrs, {
    onclick: async () => {
      try {
        await navigator.clipboard.writeText(text);
        toast('Copied to the clipboard', 'ok', 2500);
      } catch (e) {
        if (selectNode) {
          const r = document.createRange();
          r.selectNodeContents(selectNode);
          const s = getSelection();
          s.removeAllRanges();
          s.addRange(r);
        }
        toast('The browser refused the clipboard: the text is selected, copy it with Ctrl+C', 'warn', 6000);
      }
    },
  }), 'Copy');
}

// zoned shows an RFC 3339 time as written, in its own zone ("Thu 03 Dec
// 2026, 02:30 +01:00"): a schedule's runs are read in the schedule's zone,
// so a daylight saving change shows in the offset.
const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
export function zoned(s) {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2}))?(?:\.\d+)?(Z|[+-]\d{2}:\d{2})$/.exec(s || '');
  if (!m) return s || '—';
  const [, y, mo, d, hh, mi, , off] = m;
  const wd = DAYS[new Date(Date.UTC(+y, +mo - 1, +d)).getUTCDay()];
  return `${wd} ${d} ${MONTHS[+mo - 1]} ${y}, ${hh}:${mi} ${off === 'Z' ? 'UTC' : off}`;
}

// toISO turns a datetime-local input's value (local time) into RFC 3339.
export function toISO(v) {
  if (!v) return '';
  const d = new Date(v);
  return isNaN(d) ? '' : d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

// ---- inline SVG, built node by node
const SVGNS = 'http://www.w3.org/2000/svg';
export function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.setAttribute('class', v);
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// debounce: fn runs once, ms after the last call (live messages come in bursts).
export function debounce(fn, ms) {
  let t = null;
  const d = (...a) => { clearTimeout(t); t = setTimeout(() => fn(...a), ms); };
  d.cancel = () => clearTimeout(t);
  return d;
}

// fmtPct: a number as a percentage with at most one decimal.
export function fmtPct(n) {
  if (n === null || n === undefined || isNaN(n)) return '—';
  return (Math.round(n * 10) / 10) + '%';
}

// waitReport waits for a job's report (verification, cleanup): it asks
// at once, again on the job's job_complete, and every 2 s meanwhile (a
// socket can drop). An answer without "created" is the report still
// pending: onPending(it) sees each one, and one whose status is failed
// (the job ended without a report) ends the wait with it. signal (an
// AbortSignal) stops the wait when the page goes.
export function waitReport(path, jobId, { onPending, signal } = {}) {
  return new Promise((resolve, reject) => {
    let done = false, timer = null;
    const finish = (fn, v) => { if (!done) { done = true; off(); clearTimeout(timer); fn(v); } };
    const ask = async () => {
      if (done || (signal && signal.aborted)) return finish(reject, new DOMException('left the page', 'AbortError'));
      try {
        const r = await get(path);
        if ('created' in r || r.status === 'failed') return finish(resolve, r);
        if (onPending) onPending(r);
      } catch (e) {
        if (!(e instanceof ApiError) || e.status !== 404) return finish(reject, e);
      }
      clearTimeout(timer);
      if (!done) timer = setTimeout(ask, 2000);
    };
    const off = live.on('job_complete', (m) => { if (m.job_id === jobId) ask(); });
    if (signal) signal.addEventListener('abort', () => finish(reject, new DOMException('left the page', 'AbortError')), { once: true });
    ask();
  });
}

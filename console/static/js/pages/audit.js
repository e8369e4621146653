// Audit log (admin): every mutating call, download of backup contents and
// refused attempt (refusals aggregated per source and minute), filtered by
// actor, action, outcome and time, page by page.
import { get, h, clear, badge, fmtTime, header, loading, qs } from '../core.js';
import { busyButton, errorSlot, pager, select, toISO } from '../widgets.js';

const OUTCOMES = ['success', 'failure', 'denied', 'started'];
// the audited actions, as the server's route table names them
const ACTIONS = ['backup.create', 'backup.delete', 'backup.protect', 'backup.download', 'restore.start', 'restore.rollback',
  'verify.start', 'schedule.put', 'schedule.delete', 'schedule.trigger', 'storage.update', 'retention.update', 'cleanup.start',
  'job.cancel', 'job.pause', 'job.resume', 'repair.start', 'token.create', 'token.revoke', 'debug_bundle.download'];
const PAGE_SIZES = [50, 100, 200, 500];

export async function render(main) {
  const state = { actor: '', action: '', outcome: '', since: '', until: '', page: 1, limit: 50 };
  let data = null;

  const errs = errorSlot('audit-error');
  const body = h('div', { id: 'audit-body' }, loading('the audit log'));
  const actorIn = h('input', { type: 'text', id: 'audit-actor', list: 'audit-actors', placeholder: 'name (tok-…) or an address', autocomplete: 'off' });
  const actors = h('datalist', { id: 'audit-actors' });
  const actionIn = h('input', { type: 'text', id: 'audit-action', list: 'audit-actions', placeholder: 'backup.create', autocomplete: 'off' });
  const actions = h('datalist', { id: 'audit-actions' }, ACTIONS.map((a) => h('option', { value: a })));
  const outcomeSel = select('audit-outcome', [['', 'any outcome'], ...OUTCOMES], '');
  const sinceIn = h('input', { type: 'datetime-local', id: 'audit-since', step: 1 });
  const untilIn = h('input', { type: 'datetime-local', id: 'audit-until', step: 1 });
  const sizeSel = select('audit-limit', PAGE_SIZES.map(String), '50');
  const form = h('form', { class: 'filters', id: 'audit-filters' },
    h('div', {}, h('label', { for: 'audit-actor' }, 'Actor'), actorIn, actors),
    h('div', {}, h('label', { for: 'audit-action' }, 'Action'), actionIn, actions),
    h('div', {}, h('label', { for: 'audit-outcome' }, 'Outcome'), outcomeSel),
    h('div', {}, h('label', { for: 'audit-since' }, 'Since (your time)'), sinceIn),
    h('div', {}, h('label', { for: 'audit-until' }, 'Until (your time)'), untilIn),
    h('div', {}, h('label', { for: 'audit-limit' }, 'Per page'), sizeSel),
    h('div', {}, h('span', { class: 'label-spacer' }, ' '), h('div', { class: 'actions' },
      h('button', { type: 'submit', class: 'primary', id: 'audit-apply' }, 'Apply'),
      h('button', { type: 'button', id: 'audit-reset', onclick: () => { form.reset(); apply(); } }, 'Reset'))));
  form.addEventListener('submit', (ev) => { ev.preventDefault(); apply(); });
  outcomeSel.addEventListener('change', apply);
  sizeSel.addEventListener('change', apply);

  clear(main, header('Audit log', busyButton('Refresh', () => load(), { id: 'audit-refresh' })), errs,
    h('p', { class: 'muted small' }, 'The actor filter matches the whole actor as the log writes it: a token’s “name (id)”, or the address of a refused attempt. Click an actor or an action in the table to filter by it.'),
    form, body);

  function apply() {
    Object.assign(state, { actor: actorIn.value.trim(), action: actionIn.value.trim(), outcome: outcomeSel.value,
      since: toISO(sinceIn.value), until: toISO(untilIn.value), limit: Number(sizeSel.value), page: 1 });
    load();
  }

  // the tokens make the actor suggestions ("name (id)", as the log writes them)
  get('/backup/tokens').then((r) => clear(actors, (r.tokens || []).map((t) => h('option', { value: `${t.name} (${t.id})` }, t.role + (t.revoked ? ', revoked' : ''))))).catch(() => {});

  async function load() {
    try {
      data = await get('/backup/audit' + qs({ actor: state.actor, action: state.action, outcome: state.outcome, since: state.since, until: state.until, limit: state.limit, page: state.page }));
      errs.show(null);
      draw();
    } catch (err) {
      errs.show(err);
      if (!data) clear(body);
    }
  }

  const filterLink = (text, set) => h('a', { href: '#', class: 'filter-link', title: 'filter by this', onclick: (ev) => { ev.preventDefault(); set(); apply(); } }, text);

  function draw() {
    const rows = data.entries || [];
    const cols = [
      { title: 'Time', cell: (e) => h('time', { datetime: e.timestamp }, fmtTime(e.timestamp)) },
      { title: 'Actor', cell: (e) => [filterLink(e.actor, () => { actorIn.value = e.actor; }), e.role ? h('div', { class: 'muted small' }, e.role) : null] },
      { title: 'Action', cell: (e) => e.action ? filterLink(e.action, () => { actionIn.value = e.action; }) : h('span', { class: 'muted' }, '—') },
      { title: 'Target', class: 'wrap', cell: (e) => e.target ? h('span', { class: 'mono small' }, e.target) : '—' },
      { title: 'Outcome', cell: (e) => [badge(e.outcome, e.outcome === 'success' ? 'ok' : e.outcome === 'started' ? 'run' : 'bad'), e.status ? h('span', { class: 'muted small' }, ' ' + e.status) : null,
        e.count > 1 ? h('div', { class: 'small warn-text', title: 'refused attempts from one source in one minute' }, `×${e.count}`) : null] },
      { title: 'Request', class: 'wrap', cell: (e) => [h('div', { class: 'mono small', title: e.path }, `${e.method} ${e.path.replace(/^\/(v1\/)?cloud-integration/, '')}`), h('div', { class: 'muted small mono' }, e.request_id)] },
      { title: 'Detail', class: 'wrap', cell: (e) => e.detail || '' },
      { title: 'From', cell: (e) => h('span', { class: 'mono small' }, e.remote) },
    ];
    clear(body,
      h('div', { class: 'scroll-x' }, h('table', { class: 'grid', id: 'audit-table' },
        h('thead', {}, h('tr', {}, cols.map((c) => h('th', { class: c.class }, c.title)))),
        h('tbody', {}, rows.length ? rows.map((e) => h('tr', { dataset: { auditId: e.id, outcome: e.outcome } }, cols.map((c) => h('td', { class: c.class }, c.cell(e)))))
          : h('tr', {}, h('td', { colspan: cols.length, class: 'muted empty' }, 'No entries match the filter.'))))),
      pager(data.pagination, (p) => { state.page = p; load(); }, 'audit-pager'));
  }

  await load();
}

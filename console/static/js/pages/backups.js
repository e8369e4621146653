// Backups: the list with the spec's filters and paging; one backup's
// details with verify, protect, delete and download.
import { pager, toISO, waitReport } from '../widgets.js';
import { get, post, del, qs, session, can, live, h, clear, table, badge, header, section, fmtTime, fmtAge, fmtBytes, errorBox, showError, toast, confirmDialog, loading, temporalLink, ApiError, API } from '../core.js';

export async function render(main, params) {
  if (params[0]) return details(main, params[0]);
  return list(main);
}

const TYPES = ['', 'full', 'incremental', 'differential', 'snapshot'];
const STATUSES = ['', 'completed', 'partial', 'failed', 'in_progress', 'cancelled'];

async function list(main) {
  const f = { type: '', status: '', since: '', until: '', schedule_id: '', page: 1, limit: 25 };
  const sel = (name, values) => h('select', { id: 'filter-' + name, onchange: (e) => { f[name] = e.target.value; f.page = 1; load(); } },
    values.map((v) => h('option', { value: v }, v || 'any')));
  const date = (name) => h('input', { type: 'datetime-local', id: 'filter-' + name, onchange: (e) => { f[name] = toISO(e.target.value); f.page = 1; load(); } });
  const filters = h('div', { class: 'filters' },
    h('label', {}, 'Type', sel('type', TYPES)), h('label', {}, 'Status', sel('status', STATUSES)),
    h('label', {}, 'Since', date('since')), h('label', {}, 'Until', date('until')),
    h('label', {}, 'Schedule', h('input', { type: 'text', id: 'filter-schedule', placeholder: 'schedule id', onchange: (e) => { f.schedule_id = e.target.value.trim(); f.page = 1; load(); } })));
  const out = h('div', {}, loading('backups'));
  const totals = h('p', { class: 'muted', id: 'backup-totals' });
  clear(main, header('Backups', can('operator') ? h('a', { href: '#/new' }, h('button', { class: 'primary', type: 'button' }, 'New backup')) : null), filters, totals, out);

  async function load() {
    let l;
    try {
      l = await get('/backup/list' + qs({ type: f.type, status: f.status, since: f.since, until: f.until, schedule_id: f.schedule_id, page: f.page, limit: f.limit }));
    } catch (e) {
      clear(out, errorBox(e));
      return;
    }
    const s = l.summary;
    totals.textContent = `${l.pagination.total} backups (${s.full_backups} full, ${s.incremental_backups} incremental, ${s.differential_backups} differential) · ${s.total_size} of content, ${s.compressed_size} stored`;
    clear(out, table([
      { title: 'Backup', cell: (b) => h('a', { href: '#/backups/' + encodeURIComponent(b.id) }, b.id) },
      { title: 'Name', cell: (b) => b.name },
      { title: 'Taken', cell: (b) => h('span', { title: fmtTime(b.timestamp_rfc3339) }, fmtAge(b.timestamp_rfc3339)) },
      { title: 'Type', cell: (b) => b.type },
      { title: 'Status', cell: (b) => [badge(b.status), b.protected ? [' ', badge('protected', 'plain')] : null] },
      { title: 'Components', cell: (b) => Object.keys(b.components).filter((k) => b.components[k]).join(', ') },
      { title: 'Size', class: 'num', cell: (b) => b.size },
      { title: 'Stored', class: 'num', cell: (b) => b.compressed_size },
      { title: 'Added', class: 'num', cell: (b) => b.added_size || '' },
      { title: 'Locations', cell: (b) => [b.storage_locations.join(', '), b.missing_from && b.missing_from.length ? h('span', { class: 'error' }, ' (missing from ' + b.missing_from.join(', ') + ')') : null] },
      { title: 'Integrity', cell: (b) => badge(b.integrity_check) },
    ], l.backups, { id: 'backups-table', empty: 'No backup matches.', rowData: (b) => ({ backupId: b.id }) }),
    pager(l.pagination, (p) => { f.page = p; load(); }));
  }
  const off = live.on('job_complete', (m) => { if (m.operation === 'backup') load(); });
  await load();
  return off;
}

async function details(main, id) {
  clear(main, loading('backup ' + id));
  let d;
  try {
    d = await get('/backup/details/' + encodeURIComponent(id));
  } catch (e) {
    clear(main, header('Backup ' + id), errorBox(e), h('a', { href: '#/backups' }, '← all backups'));
    return;
  }
  const verifyOut = h('div', { id: 'verify-result' });
  const actions = [];
  if (can('admin')) actions.push(h('a', { href: '#/restore/' + encodeURIComponent(id) }, h('button', { type: 'button', class: 'primary', id: 'restore-this' }, 'Restore…')));
  if (can('operator') && d.status !== 'in_progress') actions.push(h('button', { type: 'button', id: 'verify', onclick: () => verify(d, verifyOut) }, 'Verify'));
  if (can('admin')) {
    actions.push(h('button', { type: 'button', id: 'protect', onclick: () => protect(d, () => details(main, id)) }, d.protected ? 'Unprotect' : 'Protect'));
    actions.push(h('button', { type: 'button', id: 'download', onclick: () => download(d) }, 'Download .tar.gz'));
    actions.push(h('button', { type: 'button', class: 'danger', id: 'delete', onclick: () => remove(d) }, 'Delete…'));
  }
  const kv = (pairs) => h('dl', { class: 'kv' }, pairs.filter(([, v]) => v !== undefined && v !== null && v !== '').map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
  const sd = d.size_details;
  clear(main, h('p', {}, h('a', { href: '#/backups' }, '← all backups')),
    header(d.name || d.id, ...actions),
    d.error ? errorBox({ code: d.error_code, message: d.error }) : null,
    h('div', { class: 'cols', id: 'backup-details' },
      section('Backup', kv([['Id', h('code', {}, d.id)], ['Status', [badge(d.status), d.protected ? [' ', badge('protected', 'plain')] : null]], ['Type', d.type],
        ['Taken', fmtTime(d.timestamp)], ['Duration', d.duration.total_seconds.toFixed(1) + ' s'], ['Description', d.description],
        ['Created by', d.metadata.created_by], ['Schedule', d.metadata.schedule_id], ['Host', d.metadata.host], ['Retention', d.metadata.retention_days ? d.metadata.retention_days + ' days' : ''],
        ['Job', d.job_id], ['Warnings', d.metadata.warnings ? String(d.metadata.warnings) : '']])),
      section('Sizes', kv([['Content', sd.raw_size], ['Stored (compressed, encrypted)', sd.compressed_size], ['Compression ratio', sd.compression_ratio],
        ['Added (after deduplication)', sd.added_size], ['Deduplication ratio', sd.deduplication_ratio], ['Files', String(sd.files)],
        ...Object.entries(sd.components_size).map(([c, s]) => ['· ' + c, s])]))),
    h('div', { class: 'cols' },
      section('Copies', table([
        { title: 'Location', cell: (l) => h('strong', {}, l.type) },
        { title: 'Where', cell: (l) => l.url || '' },
        { title: 'Size', class: 'num', cell: (l) => l.size },
        { title: 'Manifest', cell: (l) => l.manifest_error ? h('span', { class: 'error' }, l.manifest_error) : h('code', {}, (l.checksum || '').slice(0, 23) + '…') },
        { title: 'Verified', cell: (l) => l.verified ? badge('passed') : badge(l.last_verified ? 'failed' : 'not_run', l.last_verified ? 'bad' : 'plain') },
      ], d.storage.locations, { id: 'copies' })),
      section('Integrity and encryption', kv([['Integrity', badge(d.integrity.status || (d.integrity.verified ? 'passed' : 'not_run'))],
        ['Last verified', fmtTime(d.integrity.verification_timestamp)], ['Manifest signature', `${d.integrity.signature} (${d.integrity.signature_algorithm || ''})`],
        ['Encryption', `${d.encryption.algorithm}, key ${d.encryption.key_id} ${d.encryption.key_version}`],
        ['Parent', d.dependencies.parent_backup ? h('a', { href: '#/backups/' + encodeURIComponent(d.dependencies.parent_backup) }, d.dependencies.parent_backup) : ''],
        ['Children', d.dependencies.child_backups.length ? String(d.dependencies.child_backups.length) : '']]), verifyOut)));
}

async function verify(d, out) {
  try {
    const v = await post('/backup/verify', { backup_id: d.id });
    clear(out, h('p', { class: 'notice' }, `Verification ${v.verification_id} started on ${v.storage_location}…`));
    const report = await waitReport('/backup/verify/report/' + encodeURIComponent(v.verification_id), v.job_id);
    const errs = report.check && report.check.errors ? report.check.errors : [];
    clear(out, h('div', { class: report.passed ? 'notice' : 'errorbox', id: 'verify-report', dataset: { passed: String(!!report.passed) } },
      h('strong', {}, report.passed ? 'Verification passed' : 'Verification failed'), report.location ? ` on ${report.location}` : '',
      report.check ? h('div', { class: 'muted' }, `${report.check.packs_read} of ${report.check.packs} packs read, ${report.check.blobs} blobs, ${report.check.trees} trees checked`) : null,
      errs.length ? h('ul', {}, errs.slice(0, 20).map((e) => h('li', {}, `${e.kind} ${e.object}: ${e.message}`))) : null,
      report.error ? h('div', {}, (report.error_code ? report.error_code + ': ' : '') + report.error) : null,
      report.message && !report.passed ? h('div', {}, report.message) : null));
  } catch (e) {
    clear(out, errorBox(e));
  }
}

async function protect(d, reload) {
  try {
    await post(`/backup/${encodeURIComponent(d.id)}/protect`, { protected: !d.protected });
    toast(d.protected ? 'Protection lifted' : 'Backup protected from cleanup', 'ok');
    reload();
  } catch (e) { showError(e); }
}

async function remove(d) {
  const force = h('input', { type: 'checkbox', id: 'delete-force' });
  const extra = h('label', { class: 'inline' }, force, ' force: delete even if protected or kept by the retention policy');
  if (!await confirmDialog(`Delete backup ${d.id} from ${d.storage.locations.map((l) => l.type).join(', ')}? This cannot be undone.`, 'Delete', extra)) return;
  try {
    const r = await del(`/backup/${encodeURIComponent(d.id)}` + qs({ force: force.checked ? 'true' : '' }));
    toast(r.message || `Backup ${d.id}: ${r.status}`, 'ok');
    location.hash = '#/backups';
  } catch (e) { showError(e); }
}

// download fetches with the token in a header (never in a URL) and hands
// the archive to the browser as a file.
async function download(d) {
  const t = toast('Preparing the download…', 'info', 60000);
  try {
    const res = await fetch(API + '/backup/download/' + encodeURIComponent(d.id) + '?format=tar.gz', { headers: { Authorization: 'Bearer ' + session.token } });
    if (!res.ok) throw new ApiError(res.status, await res.json().catch(() => null));
    const blob = await res.blob();
    const a = h('a', { href: URL.createObjectURL(blob), download: d.id + '.tar.gz' });
    document.body.append(a);
    a.click();
    setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 10000);
  } catch (e) { showError(e); } finally { t.remove(); }
}

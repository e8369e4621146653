// Jobs: every job (backups, restores, verifications, cleanups, repairs)
// with filters and paging; running jobs show a progress bar the live
// backup_progress / restore_progress messages move; operators cancel,
// pause and resume; each job links to its workflow in the Temporal Web UI.
import { get, post, can, live, h, clear, badge, bar, setBar, toast, confirmDialog, fmtTime, fmtSeconds,
  header, loading, temporalLink, qs } from '../core.js';
import { busyButton, errorSlot, pager, select, debounce } from '../widgets.js';

const STATUSES = ['running', 'queued', 'paused', 'completed', 'partial', 'failed', 'cancelled', 'skipped'];
const TYPES = ['backup', 'restore', 'verify', 'cleanup', 'repair'];
const PAGE_SIZES = [20, 50, 100];

export async function render(main) {
  const operator = can('operator');
  const state = { status: '', type: '', page: 1, limit: 20 };
  let data = null;
  const bars = new Map(); // job id -> its progress bar
  const offs = [];
  let poll = null;

  const errs = errorSlot('jobs-error');
  const summary = h('div', { class: 'cards compact', id: 'jobs-summary' });
  const body = h('div', { id: 'jobs-body' }, loading('jobs'));
  const statusSel = select('jobs-status', [['', 'any status'], ...STATUSES], '');
  const typeSel = select('jobs-type', [['', 'any type'], ...TYPES], '');
  const sizeSel = select('jobs-limit', PAGE_SIZES.map(String), '20');
  for (const [el, key] of [[statusSel, 'status'], [typeSel, 'type'], [sizeSel, 'limit']]) {
    el.addEventListener('change', () => { state[key] = key === 'limit' ? Number(el.value) : el.value; state.page = 1; load(); });
  }
  const filters = h('div', { class: 'filters', id: 'jobs-filters' },
    h('div', {}, h('label', { for: 'jobs-status' }, 'Status'), statusSel),
    h('div', {}, h('label', { for: 'jobs-type' }, 'Type'), typeSel),
    h('div', {}, h('label', { for: 'jobs-limit' }, 'Per page'), sizeSel));

  clear(main, header('Jobs', busyButton('Refresh', () => load(), { id: 'jobs-refresh' })), errs, summary, filters, body);

  async function load() {
    try {
      data = await get('/backup/jobs' + qs({ status: state.status, type: state.type, limit: state.limit, page: state.page }));
      errs.show(null);
      draw();
    } catch (err) {
      errs.show(err);
      if (!data) clear(body);
    }
  }

  function draw() {
    const s = data.summary || {};
    clear(summary,
      stat('Running', s.running, 'run', 'running'), stat('Paused', s.paused, s.paused ? 'warn' : '', 'paused'), stat('Queued', s.queued, '', 'queued'),
      stat('Completed today', s.completed_today, 'ok', 'completed'), stat('Failed today', s.failed_today, s.failed_today ? 'bad' : '', 'failed'),
      stat('Cancelled today', s.cancelled_today, '', 'cancelled'));
    bars.clear();
    const cols = [
      { title: 'Job', cell: (j) => [h('div', { class: 'mono' }, j.id), j.name ? h('div', {}, j.name) : null, h('div', { class: 'muted small' }, `${j.type} · ${j.subtype}`)] },
      { title: 'Status', cell: statusCell },
      { title: 'Progress', cell: progressCell },
      { title: 'Started', cell: (j) => [h('div', {}, fmtTime(j.started_rfc3339 || j.started)), h('div', { class: 'muted small' }, 'by ' + j.user)] },
      { title: 'Took', cell: (j) => j.duration ? [j.duration, j.size && j.type === 'backup' ? h('div', { class: 'muted small' }, j.size) : null]
        : j.estimated_completion ? h('span', { class: 'muted small' }, 'done by ' + j.estimated_completion + ' UTC') : '—' },
      { title: 'Concerns', cell: refsCell },
      { title: 'Workflow', cell: (j) => workflowCell(j) },
    ];
    if (operator) cols.push({ title: 'Actions', class: 'actions-cell', cell: actionsCell });
    const rows = data.jobs || [];
    clear(body,
      h('table', { class: 'grid', id: 'jobs-table' },
        h('thead', {}, h('tr', {}, cols.map((c) => h('th', { class: c.class }, c.title)))),
        h('tbody', {}, rows.length ? rows.map((j) => h('tr', { dataset: { jobId: j.id, status: j.status, type: j.type } },
          cols.map((c) => h('td', { class: c.class }, c.cell(j)))))
          : h('tr', {}, h('td', { colspan: cols.length, class: 'muted empty' }, 'No jobs match.')))),
      pager(data.pagination, (p) => { state.page = p; load(); }, 'jobs-pager'));
    // without the live socket, running jobs are polled
    clearInterval(poll);
    poll = rows.some((j) => !j.completed) ? setInterval(() => { if (!live.connected) load(); }, 5000) : null;
  }

  function stat(label, value, kind, status) {
    return h('button', { type: 'button', class: 'card stat link ' + (kind || ''), 'data-status': status, title: `show ${status} jobs`,
      onclick: () => { state.status = status; statusSel.value = status; state.page = 1; load(); } },
    h('div', { class: 'label' }, label), h('div', { class: 'big' }, value === undefined ? '—' : value));
  }

  function statusCell(j) {
    const e = j.error;
    return [badge(j.status),
      e ? h('div', { class: 'job-error' }, h('strong', {}, e.code + ': '), e.message,
        (e.suggested_actions || []).length ? h('ul', {}, e.suggested_actions.map((a) => h('li', {}, a))) : null) : null];
  }

  function progressCell(j) {
    if (j.completed) return h('span', { class: 'muted' }, j.status === 'completed' ? '100%' : `${j.progress}%`);
    const b = bar(j.progress, { class: j.status === 'paused' ? 'warn' : '', label: `${j.progress}%` + (j.status === 'paused' ? ' · paused' : '') });
    b.id = 'job-bar-' + j.id;
    bars.set(j.id, b);
    return [b, h('div', { class: 'muted small job-op', id: 'job-op-' + j.id }, j.estimated_size ? 'about ' + j.estimated_size : '')];
  }

  function refsCell(j) {
    const out = [];
    if (j.backup_id) out.push(h('div', {}, 'backup ', h('a', { href: '#/backups/' + encodeURIComponent(j.backup_id), class: 'mono small' }, j.backup_id)));
    if (j.schedule_id) out.push(h('div', {}, 'schedule ', h('a', { href: '#/schedules', class: 'mono small' }, j.schedule_id)));
    if (j.restore_id) out.push(h('div', { class: 'small' }, 'restore ', h('span', { class: 'mono' }, j.restore_id)));
    if (j.verification_id) out.push(h('div', { class: 'small' }, 'verification ', h('span', { class: 'mono' }, j.verification_id)));
    if (j.cleanup_id) out.push(h('div', { class: 'small' }, 'cleanup ', h('a', { href: '#/storage/cleanup/' + encodeURIComponent(j.cleanup_id), class: 'mono', title: 'the cleanup report' }, j.cleanup_id)));
    if (j.repair_id) out.push(h('div', { class: 'small' }, 'repair ', h('span', { class: 'mono' }, j.repair_id)));
    return out.length ? out : '—';
  }

  function workflowCell(j) {
    return h('span', { class: 'wf', id: 'job-wf-' + j.id }, j.temporal_ui_url ? temporalLink(j.temporal_ui_url, 'Temporal') : h('span', { class: 'muted small' }, '—'));
  }

  function actionsCell(j) {
    if (j.completed) return null;
    const running = j.status === 'running' || j.status === 'in_progress';
    return h('div', { class: 'actions' },
      j.pausable && running ? busyButton('Pause', async () => {
        const r = await post('/backup/jobs/pause', { job_id: j.id });
        toast(r.message || `Job ${j.id} paused`, 'ok');
        load();
      }, { class: 'small', 'data-action': 'pause' }) : null,
      j.status === 'paused' ? busyButton('Resume', async () => {
        const r = await post('/backup/jobs/resume', { job_id: j.id });
        toast(r.message || `Job ${j.id} resumed`, 'ok');
        load();
      }, { class: 'small', 'data-action': 'resume' }) : null,
      j.cancelable ? busyButton('Cancel', async () => {
        const reason = h('input', { type: 'text', id: 'cancel-reason', maxlength: 2000, placeholder: 'reason (optional, kept in the audit log)' });
        const ok = await confirmDialog(`Cancel job ${j.id} (${j.type}${j.name ? ' “' + j.name + '”' : ''})? Its partial data is removed; the job cannot be resumed.`,
          'Cancel job', h('label', { for: 'cancel-reason' }, 'Reason', reason));
        if (!ok) return;
        const r = await post('/backup/jobs/cancel', { job_id: j.id, reason: reason.value.trim() || undefined });
        toast(r.message || `Job ${j.id}: ${r.status}`, r.status === 'cancelled' ? 'ok' : 'warn', 8000);
        if (r.restart_info && r.restart_info.recommendation) toast(r.restart_info.recommendation, 'info', 10000);
        load();
      }, { class: 'small danger', 'data-action': 'cancel' }) : null);
  }

  // ---- live progress
  function onProgress(m) {
    const b = bars.get(m.job_id);
    if (!b) {
      // a job this page does not show yet: a new one, when the filter shows it
      if (state.page === 1 && (!state.status || state.status === 'running') && (!state.type || m.type.startsWith(state.type))) refresh();
      return;
    }
    const paused = m.status === 'paused';
    b.classList.toggle('warn', paused);
    setBar(b, m.progress, `${Number(m.progress).toFixed(1)}%` + (paused ? ' · paused' : ''));
    const d = m.details || {};
    const op = document.getElementById('job-op-' + m.job_id);
    if (op) {
      op.textContent = [m.current_operation && m.current_operation.replace(/_/g, ' '), m.current_component,
        d.bytes_processed && d.bytes_total ? `${d.bytes_processed} of ${d.bytes_total}` : d.files_total ? `${d.files_restored} of ${d.files_total} files` : '',
        d.speed, m.eta_seconds ? 'ETA ' + fmtSeconds(m.eta_seconds) : '', m.waiting ? 'waiting: ' + m.waiting : ''].filter(Boolean).join(' · ');
    }
    const tr = b.closest('tr');
    if (tr && m.status && paused !== (tr.dataset.status === 'paused')) refresh(); // paused or resumed: its actions change
  }
  const refresh = debounce(load, 500);
  offs.push(live.on('backup_progress', onProgress), live.on('restore_progress', onProgress),
    live.on('job_complete', (m) => {
      if (bars.has(m.job_id)) toast(`Job ${m.job_id}: ${m.message}`, m.status === 'success' ? 'ok' : m.status === 'failed' ? 'error' : 'warn', 6000);
      refresh();
    }),
    live.on('live_connected', () => refresh()));

  await load();
  return () => { for (const off of offs) off(); refresh.cancel(); clearInterval(poll); };
}

// Overview: status and health, each component's freshness against its own
// schedules, 3-2-1 compliance, each location's usage, running jobs with
// live progress, recent failures and storage alerts.
import { get, live, h, clear, bar, setBar, badge, header, section, table, fmtAge, fmtTime, fmtBytes, fmtSeconds, errorBox, temporalLink, can } from '../core.js';

export async function render(main) {
  const running = h('div', { id: 'running-jobs' });
  const body = h('div', { id: 'overview' }, h('p', { class: 'muted' }, 'Loading…'));
  clear(main, header('Overview', can('operator') ? h('a', { href: '#/new' }, h('button', { class: 'primary', type: 'button' }, 'New backup')) : null), body);

  const bars = new Map(); // job id → {bar, meta}
  async function load() {
    const [status, health, comps, failed, jobs, storage] = await Promise.allSettled([
      get('/backup/status'), get('/backup/health'), get('/backup/components'),
      get('/backup/jobs?status=failed&limit=5'), get('/backup/jobs?status=running&limit=50'), get('/backup/storage'),
    ]);
    const parts = [];
    if (status.status === 'fulfilled' && health.status === 'fulfilled') parts.push(summary(status.value, health.value));
    else parts.push(errorBox(status.reason || health.reason));
    parts.push(section('Running jobs', running));
    if (comps.status === 'fulfilled') parts.push(freshness(comps.value));
    else parts.push(section('Components', errorBox(comps.reason)));
    if (status.status === 'fulfilled') parts.push(h('div', { class: 'cols' }, locations(status.value, storage.status === 'fulfilled' ? storage.value.storage_config : {}), replication(status.value)));
    if (health.status === 'fulfilled') parts.push(alerts(health.value));
    parts.push(failed.status === 'fulfilled' ? failures(failed.value) : section('Recent failures', errorBox(failed.reason)));
    clear(body, parts);
    if (jobs.status === 'fulfilled') showRunning(jobs.value.jobs);
  }

  function showRunning(list) {
    bars.clear();
    clear(running, list.length ? list.map((j) => jobCard(j)) : h('p', { class: 'muted', id: 'no-running' }, 'No job is running.'));
  }
  function jobCard(j) {
    const b = bar(j.progress);
    const meta = h('div', { class: 'meta' }, h('span', {}, j.type), h('span', {}, 'started ' + fmtAge(j.started_rfc3339)),
      j.backup_id ? h('a', { href: '#/backups/' + encodeURIComponent(j.backup_id) }, j.backup_id) : null, temporalLink(j.temporal_ui_url));
    const card = h('div', { class: 'job', dataset: { jobId: j.id } }, h('strong', {}, j.name || j.id), ' ', badge(j.status), b, meta);
    bars.set(j.id, { bar: b, meta, card });
    return card;
  }
  function onProgress(m) {
    let e = bars.get(m.job_id);
    if (!e) {
      document.getElementById('no-running')?.remove();
      running.append(jobCard({ id: m.job_id, name: m.backup_id || m.restore_id, status: 'running', type: m.type.replace('_progress', ''), progress: m.progress, backup_id: m.backup_id }));
      e = bars.get(m.job_id);
    }
    const d = m.details || {};
    setBar(e.bar, m.progress, `${Math.round(m.progress)}% · ${m.current_component || ''} ${m.current_operation || ''}`.trim());
    const extra = e.meta.querySelector('.live-figures') || e.meta.appendChild(h('span', { class: 'live-figures' }));
    extra.textContent = [d.bytes_processed && d.bytes_total ? `${d.bytes_processed} of ${d.bytes_total}` : '', d.speed, m.eta ? 'ETA ' + m.eta : ''].filter(Boolean).join(' · ');
  }
  const offs = [live.on('backup_progress', onProgress), live.on('restore_progress', onProgress),
    live.on('job_complete', () => { clearTimeout(reload); reload = setTimeout(load, 500); })];
  let reload = null;
  const timer = setInterval(load, 60000);
  try { await load(); } catch (e) { clear(body, errorBox(e)); }
  return () => { offs.forEach((f) => f()); clearInterval(timer); clearTimeout(reload); };
}

function summary(status, health) {
  const c = status.backup_system.components;
  const st = status.backup_statistics;
  const card = (label, value, sub) => h('div', { class: 'card stat' }, h('div', { class: 'label' }, label), h('div', { class: 'big' }, value), sub ? h('div', { class: 'muted' }, sub) : null);
  return h('div', { class: 'cards', id: 'summary' },
    card('System', badge(status.status), `${status.backup_system.id} · ${status.backup_system.version}`),
    card('Health', badge(health.overall_health), `scheduler ${c.scheduler} · ${c.workers} worker poller(s)`),
    card('Backups', String(st.total_backups), `success rate ${st.success_rate} · ${st.failed} failed`),
    card('Last success', st.last_success ? fmtAge(st.last_success) : 'never', st.last_failure ? 'last failure ' + fmtAge(st.last_failure) : 'no failure'),
    card('Success (24h / 7d)', `${health.backup_health.success_rate_24h} / ${health.backup_health.success_rate_7d}`, health.backup_health.failure_reason || ''),
    card('Temporal', status.backup_system.temporal_ui_url ? temporalLink(status.backup_system.temporal_ui_url, 'Web UI') : '—', status.backup_system.task_queue));
}

function freshness(f) {
  return section('Components: last successful backup, against their own schedules', table([
    { title: 'Component', cell: (c) => h('strong', {}, c.component) },
    { title: 'State', cell: (c) => badge(c.state, c.state === 'ok' ? 'ok' : c.state === 'late' ? 'bad' : c.state === 'waiting' ? 'run' : 'warn') },
    { title: 'Last success', cell: (c) => c.last_success ? h('span', { title: fmtTime(c.last_success) }, fmtAge(c.last_success)) : 'never' },
    { title: 'Expected every', cell: (c) => c.expected_interval_seconds ? fmtSeconds(c.expected_interval_seconds) : '—' },
    { title: 'Schedules', cell: (c) => c.schedules.join(', ') || '—' },
    { title: 'Stored in', cell: (c) => c.locations.join(', ') || '—' },
    { title: 'Backup', cell: (c) => c.last_backup_id ? h('a', { href: '#/backups/' + encodeURIComponent(c.last_backup_id) }, c.last_backup_id) : '' },
    { title: '', cell: (c) => h('span', { class: 'muted' }, c.message) },
  ], f.components, { id: 'freshness', rowData: (c) => ({ component: c.component, state: c.state }) }));
}

function locations(status, config) {
  const rows = Object.entries(status.storage).sort(([a], [b]) => a.localeCompare(b));
  return section('Storage locations', h('div', { id: 'locations' }, rows.map(([name, l]) => {
    const pct = l.utilization_percent;
    const kind = pct === undefined ? '' : pct >= 90 ? 'bad' : pct >= 75 ? 'warn' : 'ok';
    return h('div', { class: 'job', dataset: { location: name } },
      h('strong', {}, name), ' ', h('span', { class: 'muted' }, `${l.type}${l.bucket ? ' · ' + l.bucket : ''}${l.path ? ' · ' + l.path : ''}`), ' ', badge(l.health, l.health === 'good' ? 'ok' : 'bad'),
      l.health === 'good' ? [
        bar(pct || 0, { class: kind, label: pct === undefined ? `${fmtBytes(l.repository_bytes)} (no quota or total to measure on)` : `${pct.toFixed(1)}% of ${l.total} · ${l.used} used` }),
        h('div', { class: 'meta' }, h('span', {}, 'repository ' + fmtBytes(l.repository_bytes)), h('span', {}, 'available ' + l.available),
          h('span', { class: 'quota' }, config[name] ? (config[name].quota_bytes ? 'quota ' + config[name].quota : 'no quota') : ''),
          h('span', {}, 'measured on ' + (l.utilization_basis || 'none'))),
      ] : h('div', { class: 'error' }, l.error || 'unreachable'));
  })));
}

function replication(status) {
  const r = status.replication;
  if (!r) return section('3-2-1 compliance', h('p', { class: 'muted' }, 'not reported'));
  return section('3-2-1 compliance', h('div', { id: 'replication' },
    h('p', {}, badge(r.short === 0 ? 'compliant' : 'non_compliant', r.short === 0 ? 'ok' : 'warn'), ' ',
      `${r.compliant} of ${r.backups_checked} backups meet ${r.policy} (${r.required.copies} copies, ${r.required.media} media, ${r.required.offsite} offsite)`,
      r.enabled ? '' : ' — the policy is off'),
    r.short_backups.length ? table([
      { title: 'Backup', cell: (s) => h('a', { href: '#/backups/' + encodeURIComponent(s.backup_id) }, s.backup_id) },
      { title: 'Copies', class: 'num', cell: (s) => String(s.copies) },
      { title: 'Missing', cell: (s) => s.missing_locations.join(', ') },
      { title: 'Why', cell: (s) => s.reasons.join('; ') },
    ], r.short_backups.slice(0, 5)) : null,
    r.repair ? h('p', { class: 'muted' }, r.repair) : null));
}

function alerts(health) {
  const list = health.alerts || [];
  return section('Alerts', h('div', { id: 'alerts' }, list.length ? table([
    { title: 'Level', cell: (a) => badge(a.level, a.level === 'critical' ? 'bad' : a.level === 'warning' ? 'warn' : 'plain') },
    { title: 'Part', cell: (a) => a.component },
    { title: 'Message', cell: (a) => a.message },
    { title: 'Suggestion', cell: (a) => a.suggestion },
  ], list) : h('p', { class: 'muted' }, 'No alerts.'),
  (health.recommendations || []).length ? h('ul', {}, health.recommendations.map((r) => h('li', {}, r))) : null));
}

function failures(jobs) {
  return section('Recent failures', h('div', { id: 'failures' }, table([
    { title: 'Job', cell: (j) => j.name || j.id },
    { title: 'Type', cell: (j) => j.type },
    { title: 'When', cell: (j) => fmtAge(j.completed_rfc3339 || j.started_rfc3339) },
    { title: 'Error', cell: (j) => j.error ? [h('strong', {}, j.error.code), ' ', j.error.message] : '' },
    { title: 'Suggested actions', cell: (j) => j.error && j.error.suggested_actions ? h('ul', {}, j.error.suggested_actions.map((a) => h('li', {}, a))) : '' },
    { title: '', cell: (j) => temporalLink(j.temporal_ui_url) },
  ], jobs.jobs, { empty: 'No failed job.' })));
}

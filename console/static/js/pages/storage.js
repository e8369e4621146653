// Storage, retention and cleanup: each location's health and usage (a bar
// against its quota or its filesystem), the retention policy and cleanup
// rules (admins edit them), and a cleanup dry run shown as a table of
// every backup with its decision and reason before an admin starts the
// real cleanup. #/storage/cleanup/<id> shows one cleanup's report.
import { get, post, can, live, h, clear, badge, bar, toast, confirmDialog, fmtBytes, fmtTime, fmtAge,
  header, section, loading, table } from '../core.js';
import { busyButton, errorSlot, row, select, check, debounce, waitReport } from '../widgets.js';

const STRATEGIES = ['oldest_first', 'largest_first'];
const CLEANUP_SCHEDULES = ['daily', 'weekly', 'disabled'];

export async function render(main, params = []) {
  const admin = can('admin');
  let storage = null;
  let health = null;
  let retention = null;
  const offs = [];

  const errs = errorSlot('storage-error');
  const policies = h('div', { id: 'storage-policies' });
  const locations = h('div', { class: 'locations', id: 'storage-locations' }, loading('storage locations'));
  const retCard = h('div', { id: 'retention-card' });
  const cleanCard = h('div', { id: 'cleanup-card' });

  clear(main,
    header('Storage & retention', busyButton('Refresh', () => load(), { id: 'storage-refresh' })),
    errs, locations, policies, retCard, cleanCard);

  async function load() {
    const [s, hl, r] = await Promise.allSettled([get('/backup/storage'), get('/backup/health'), get('/backup/retention')]);
    const failed = [s, hl, r].find((x) => x.status === 'rejected');
    errs.show(failed ? failed.reason : null);
    if (s.status === 'fulfilled') storage = s.value;
    if (hl.status === 'fulfilled') health = hl.value;
    if (r.status === 'fulfilled') retention = r.value;
    drawLocations();
    drawRetention();
    drawCleanup();
  }

  // ---- locations
  function drawLocations() {
    if (!storage) { clear(locations); return; }
    const mon = storage.monitoring || {};
    const names = Object.keys(storage.storage_config || {}).sort((a, b) => (a === storage.primary ? -1 : b === storage.primary ? 1 : a.localeCompare(b)));
    clear(locations, names.map((n) => locationCard(n, storage.storage_config[n], health && health.components ? health.components['storage_' + n] : null, mon)));
    const p = storage.policies || {};
    const rp = p.replication || {};
    clear(policies, section('Policies',
      h('dl', { class: 'kv small', id: 'storage-policy-list' },
        h('dt', {}, 'Replication'), h('dd', {}, rp.enabled ? `${rp.strategy}: ${rp.copies} copies on ${rp.locations} media, ${rp.offsite} offsite` +
          (rp.auto_replicate ? '; backups go to every enabled location unless told otherwise' : '') : 'off'),
        h('dt', {}, 'Encryption'), h('dd', {}, `${(p.encryption || {}).default_algorithm}, key rotation every ${(p.encryption || {}).key_rotation_days} days (${(p.encryption || {}).key_management})`),
        h('dt', {}, 'Compression'), h('dd', {}, `${(p.compression || {}).default_algorithm} level ${(p.compression || {}).level}`),
        h('dt', {}, 'Usage alerts'), h('dd', {}, mon.usage_alerts ? `warning at ${mon.threshold_warning}%, critical at ${mon.threshold_critical}% (checked ${mon.health_checks})` : 'off',
          mon.auto_cleanup ? ' · emergency cleanup on' : ''))));
  }

  function locationCard(name, loc, hs, mon) {
    const status = hs ? hs.status : (loc.health === 'good' ? 'healthy' : loc.health || 'unknown');
    const pct = loc.utilization_percent;
    const kind = pct === undefined ? '' : pct >= (mon.threshold_critical || 95) ? 'bad' : pct >= (mon.threshold_warning || 80) ? 'warn' : 'ok';
    const card = h('section', { class: 'card location', dataset: { location: name } },
      h('div', { class: 'loc-head' }, h('h2', {}, name), badge(status),
        name === storage.primary ? badge('primary', 'plain') : null,
        loc.offsite ? badge('offsite', 'plain') : null,
        badge(loc.storage_type, 'plain'),
        loc.enabled ? null : badge('disabled')),
      h('div', { class: 'mono small muted wrap' }, loc.url),
      loc.error || (hs && hs.error) ? h('div', { class: 'errorbox small' }, h('strong', {}, 'unreachable: '), loc.error || hs.error) : null,
      usageBlock(loc, kind),
      quotaBlock(loc),
      h('dl', { class: 'kv small' },
        h('dt', {}, 'Repository'), h('dd', {}, loc.current_usage || fmtBytes(loc.repository_bytes)),
        loc.filesystem_total_bytes ? [h('dt', {}, 'Filesystem'), h('dd', {}, `${fmtBytes(loc.filesystem_used_bytes)} used of ${fmtBytes(loc.filesystem_total_bytes)}, ${loc.available || fmtBytes(loc.available_bytes)} free`)] : null,
        h('dt', {}, 'Measured on'), h('dd', {}, loc.utilization_basis || '—'),
        h('dt', {}, 'Keeps'), h('dd', {}, loc.retention_policy === 'unlimited' ? 'what the retention policy keeps' : loc.retention_policy),
        h('dt', {}, 'Checked'), h('dd', { title: fmtTime(loc.last_check) }, fmtAge(loc.last_check)),
        loc.pending_changes ? [h('dt', {}, 'Pending'), h('dd', {}, Object.entries(loc.pending_changes).map(([k, v]) => `${k} → ${v}`).join('; '), ' (after a restart)')] : null));
    if (admin) {
      const slot = h('div', { class: 'loc-edit' });
      card.append(h('div', { class: 'actions' }, h('button', { type: 'button', class: 'small', 'data-action': 'edit-location', onclick: () => editLocation(name, loc, slot) }, 'Edit quota, retention…')), slot);
    }
    return card;
  }

  function usageBlock(loc, kind) {
    if (loc.utilization_percent === undefined) {
      return h('div', { class: 'loc-usage' }, h('div', { class: 'cap' }, h('span', {}, 'usage'), h('span', {}, 'nothing to measure it on: no quota, no filesystem total')),
        bar(0, { label: loc.current_usage || fmtBytes(loc.repository_bytes) }));
    }
    const label = loc.utilization_basis && loc.utilization_basis.startsWith('repository')
      ? `${fmtBytes(loc.repository_bytes)} of ${fmtBytes(loc.quota_bytes)} quota`
      : `${fmtBytes(loc.filesystem_used_bytes)} of ${fmtBytes(loc.filesystem_total_bytes)} filesystem`;
    return h('div', { class: 'loc-usage', 'data-usage': loc.utilization_percent },
      h('div', { class: 'cap' }, h('span', {}, 'utilization'), h('span', {}, label)),
      bar(loc.utilization_percent, { class: kind, label: loc.utilization_percent.toFixed(1) + '%' }));
  }

  function quotaBlock(loc) {
    if (!loc.quota_bytes) return h('div', { class: 'muted small' }, 'quota: unlimited');
    const pct = 100 * loc.repository_bytes / loc.quota_bytes;
    if (loc.utilization_basis && loc.utilization_basis.startsWith('repository')) return h('div', { class: 'muted small' }, `quota: ${loc.quota}`);
    return h('div', { class: 'loc-usage' }, h('div', { class: 'cap' }, h('span', {}, 'quota'), h('span', {}, `${fmtBytes(loc.repository_bytes)} of ${loc.quota}`)),
      bar(pct, { label: pct.toFixed(1) + '%' }));
  }

  function editLocation(name, loc, slot) {
    if (slot.firstChild) { clear(slot); return; }
    const ferr = errorSlot();
    const quotaIn = h('input', { type: 'text', id: `loc-${name}-quota`, value: loc.quota_bytes ? loc.quota : 'unlimited', placeholder: '2TB or unlimited' });
    const retIn = h('input', { type: 'number', id: `loc-${name}-retention`, min: 1, max: 36500, value: loc.retention_days || '', placeholder: 'unchanged' });
    const enIn = check(`loc-${name}-enabled`, 'enabled', loc.enabled, { disabled: name === storage.primary || undefined });
    const form = h('form', { class: 'form', dataset: { location: name } },
      row('Quota', quotaIn, 'a size like 500GB or 2TB, or unlimited'),
      row('Keep (days)', retIn, 'backups older than this leave this location at the next cleanup'),
      h('span', {}), h('div', {}, enIn, name === storage.primary ? h('div', { class: 'hint muted' }, 'the primary location cannot be disabled') : null),
      h('div', { class: 'full actions' }, h('button', { type: 'submit', class: 'primary' }, 'Save'), h('button', { type: 'button', onclick: () => clear(slot) }, 'Cancel')));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const change = {};
      const q = quotaIn.value.trim();
      if (q && q !== (loc.quota_bytes ? loc.quota : 'unlimited')) change.quota = q;
      if (retIn.value && Number(retIn.value) !== loc.retention_days) change.retention_policy = `${Number(retIn.value)} days`;
      const en = form.querySelector(`#loc-${name}-enabled`).checked;
      if (en !== loc.enabled) change.enabled = en;
      if (!Object.keys(change).length) { clear(slot); return; }
      if (change.enabled === false && !await confirmDialog(`Disable location ${name}? New backups stop going there; the backups it holds stay.`, 'Disable')) return;
      try {
        const r = await post('/backup/storage/update', { [name]: change });
        toast(r.message || 'Storage updated', 'ok');
        for (const [k, v] of Object.entries(r.not_applied || {})) toast(`${k}: ${v}`, 'warn', 10000);
        if (r.restart_required) toast(r.restart_instructions || 'A restart is needed for the change to take effect', 'warn', 12000);
        clear(slot);
        load();
      } catch (err) {
        ferr.show(err);
      }
    });
    clear(slot, ferr, form);
  }

  // ---- retention policy and cleanup rules
  function drawRetention() {
    if (!retention) { clear(retCard); return; }
    const p = retention.retention_policies;
    const r = retention.cleanup_rules;
    const dis = admin ? undefined : true;
    const num = (id, v, max) => h('input', { type: 'number', id, min: 0, max, value: v || 0, disabled: dis });
    const win = (key, title) => {
      const w = p[key] || {};
      return h('fieldset', { dataset: { window: key } }, h('legend', {}, title),
        h('label', {}, 'keep all for (days)', num(`rp-${key}-all`, w.keep_all_for_days, 36500)),
        h('label', {}, 'then daily for (weeks)', num(`rp-${key}-daily`, w.keep_daily_for_weeks, 5200)),
        h('label', {}, 'then weekly for (months)', num(`rp-${key}-weekly`, w.keep_weekly_for_months, 1200)));
    };
    const f = p.full_backups || {};
    const ferr = errorSlot('retention-error');
    const form = h('form', { id: 'retention-form' },
      h('div', { class: 'policy-grid' },
        h('fieldset', { dataset: { window: 'full_backups' } }, h('legend', {}, 'Full backups: keep the newest of each'),
          h('label', {}, 'day, for (days)', num('rp-full-daily', f.daily, 10000)),
          h('label', {}, 'week, for (weeks)', num('rp-full-weekly', f.weekly, 10000)),
          h('label', {}, 'month, for (months)', num('rp-full-monthly', f.monthly, 10000)),
          h('label', {}, 'year, for (years)', num('rp-full-yearly', f.yearly, 10000))),
        win('incremental_backups', 'Incremental backups'),
        win('differential_backups', 'Differential backups'),
        win('snapshots', 'Snapshots'),
        h('fieldset', { id: 'cleanup-rules' }, h('legend', {}, 'Cleanup rules'),
          h('label', { for: 'cr-auto' }, 'automatic cleanup', h('input', { type: 'checkbox', id: 'cr-auto', checked: r.auto_cleanup, disabled: dis })),
          h('label', {}, 'runs', select('cr-schedule', CLEANUP_SCHEDULES, r.cleanup_schedule, { disabled: dis })),
          h('label', {}, 'at (UTC)', h('input', { type: 'time', id: 'cr-time', value: r.cleanup_time, disabled: dis })),
          h('label', {}, 'strategy', select('cr-strategy', STRATEGIES, r.cleanup_strategy, { disabled: dis })),
          h('label', {}, 'minimum free space', h('input', { type: 'text', id: 'cr-minfree', value: r.minimum_free_space, disabled: dis })),
          h('label', {}, 'emergency below', h('input', { type: 'text', id: 'cr-emergency', value: r.emergency_cleanup_threshold, disabled: dis })))),
      h('p', { class: 'muted small' },
        `Next cleanup: ${retention.next_cleanup ? fmtTime(retention.next_cleanup) : 'none scheduled'}. `,
        retention.last_cleanup ? `Last cleanup: ${fmtTime(retention.last_cleanup.timestamp)}${retention.last_cleanup.dry_run ? ' (dry run)' : ''}, ` +
          `${retention.last_cleanup.backups_removed} backups removed, ${retention.last_cleanup.space_freed} freed` +
          (retention.last_cleanup.status ? ` (${retention.last_cleanup.status})` : '') + '. ' : 'No cleanup has run yet. ',
        retention.last_cleanup && retention.last_cleanup.cleanup_id
          ? h('a', { href: '#', id: 'cleanup-last-report', onclick: (ev) => { ev.preventDefault(); showReport(retention.last_cleanup.cleanup_id); } }, 'Show its report') : null),
      (retention.protected_backups || []).length
        ? h('p', { class: 'small', id: 'protected-backups' }, h('strong', {}, `Protected from cleanup (${retention.protected_backups.length}): `),
          retention.protected_backups.map((id, i) => [i ? ', ' : '', h('a', { href: '#/backups/' + encodeURIComponent(id), class: 'mono' }, id)]))
        : h('p', { class: 'small muted' }, 'No backup is protected from cleanup.'),
      admin ? h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary', id: 'retention-save' }, 'Save retention policy'),
        h('span', { class: 'muted small' }, 'Run a cleanup dry run below to see what a policy keeps before the next cleanup applies it.'))
        : h('p', { class: 'muted small' }, 'Only an admin can change the retention policy.'));
    if (admin) {
      form.addEventListener('submit', async (ev) => {
        ev.preventDefault();
        const n = (id) => Number(form.querySelector('#' + id).value) || 0;
        const winOf = (key) => ({ keep_all_for_days: n(`rp-${key}-all`), keep_daily_for_weeks: n(`rp-${key}-daily`), keep_weekly_for_months: n(`rp-${key}-weekly`) });
        const body = {
          retention_policies: {
            full_backups: { daily: n('rp-full-daily'), weekly: n('rp-full-weekly'), monthly: n('rp-full-monthly'), yearly: n('rp-full-yearly') },
            incremental_backups: winOf('incremental_backups'), differential_backups: winOf('differential_backups'), snapshots: winOf('snapshots'),
          },
          cleanup_rules: {
            auto_cleanup: form.querySelector('#cr-auto').checked, cleanup_schedule: form.querySelector('#cr-schedule').value,
            cleanup_time: form.querySelector('#cr-time').value, cleanup_strategy: form.querySelector('#cr-strategy').value,
            minimum_free_space: form.querySelector('#cr-minfree').value.trim(), emergency_cleanup_threshold: form.querySelector('#cr-emergency').value.trim(),
          },
        };
        if (!await confirmDialog('Save the retention policy? The next cleanup removes the backups it no longer keeps (protected backups stay). A dry run shows which first.', 'Save policy')) return;
        const btn = form.querySelector('#retention-save');
        btn.disabled = true;
        try {
          const res = await post('/backup/retention', body);
          ferr.show(null);
          toast('Retention policy saved' + (res.next_cleanup ? ' · next cleanup ' + fmtTime(res.next_cleanup) : ''), 'ok');
          load();
        } catch (err) {
          ferr.show(err);
        } finally {
          btn.disabled = false;
        }
      });
    }
    clear(retCard, section('Retention policy', ferr, form));
  }

  // ---- cleanup: a dry run's table, then the real run
  let cleanupView = null; // the node that shows the current report

  function drawCleanup() {
    if (cleanupView && cleanupView.isConnected) return; // keep a report on screen across refreshes
    cleanupView = h('div', { id: 'cleanup-result' });
    if (!admin) {
      clear(cleanCard, section('Cleanup', h('p', { class: 'muted' }, 'Only an admin can run a cleanup; its reports show here.'), cleanupView));
      return;
    }
    const locs = storage ? Object.keys(storage.storage_config || {}).sort() : [];
    const ferr = errorSlot('cleanup-error');
    const targets = h('div', { class: 'checks', id: 'cleanup-targets' }, locs.map((l) => check('cl-loc-' + l, l, true, { value: l })));
    const strat = select('cleanup-strategy', STRATEGIES, retention ? retention.cleanup_rules.cleanup_strategy : 'oldest_first');
    const maxIn = h('input', { type: 'number', id: 'cleanup-max', min: 1, max: 100000, placeholder: 'no limit' });
    const force = check('cleanup-force', 'remove even below the policy’s minimum copies (force_cleanup)', false);
    const reason = h('input', { type: 'text', id: 'cleanup-reason', maxlength: 2000, placeholder: 'why (recorded in the audit log)' });
    const request = () => {
      const body = { cleanup_strategy: strat.value };
      const t = [...targets.querySelectorAll('input:checked')].map((i) => i.value);
      if (t.length && t.length < locs.length) body.target_storage = t;
      if (maxIn.value) body.max_backups_to_remove = Number(maxIn.value);
      if (force.querySelector('input').checked) body.force_cleanup = true;
      if (reason.value.trim()) body.reason = reason.value.trim();
      return body;
    };
    const dry = busyButton('Dry run: show what would be removed', async () => {
      ferr.show(null);
      const body = request();
      const r = await post('/backup/cleanup', Object.assign({}, body, { dry_run: true }));
      follow(r, body);
    }, { class: 'primary', id: 'cleanup-dryrun' }, (err) => ferr.show(err));
    clear(cleanCard, section('Cleanup',
      h('p', { class: 'muted small' }, 'A dry run lists every backup with the retention decision and its reason; nothing is removed. From its table you can start the real cleanup.'),
      ferr,
      h('div', { class: 'form' },
        row('Locations', targets),
        row('Strategy', strat, 'which candidates go first when a limit is set'),
        row('At most', maxIn, 'backups to remove'),
        h('span', {}), force,
        row('Reason', reason),
        h('div', { class: 'full actions' }, dry)),
      cleanupView));
  }

  // follow shows a started cleanup's estimate, then polls its report (and
  // listens for its job_complete) until the report is written.
  function follow(started, body) {
    const status = h('div', { class: 'notice', id: 'cleanup-status' },
      h('strong', {}, started.dry_run ? 'Dry run ' : 'Cleanup '), h('span', { class: 'mono' }, started.cleanup_id), ' started: ',
      `${started.backups_analyzed} backups analyzed, ${started.backups_candidate_for_removal} candidates for removal` +
      (started.protected_backups_excluded ? `, ${started.protected_backups_excluded} protected excluded` : '') +
      `, about ${started.estimated_space_to_free} to free. `, h('span', { class: 'muted', id: 'cleanup-progress' }, 'waiting for the report…'));
    clear(cleanupView, status);
    const ac = new AbortController();
    offs.push(() => ac.abort());
    const progress = (rep) => {
      const pr = status.querySelector('#cleanup-progress');
      if (pr) pr.textContent = `running, ${Math.round(rep.progress || 0)}%…`;
    };
    waitReport('/backup/cleanup/report/' + encodeURIComponent(started.cleanup_id), started.job_id, { onPending: progress, signal: ac.signal })
      .then((rep) => {
        if (!('created' in rep)) { // the job ended without a report
          clear(cleanupView, h('div', { class: 'errorbox' }, h('strong', {}, (rep.error && rep.error.code ? rep.error.code + ': ' : '') + 'the cleanup failed without a report. '),
            rep.error ? rep.error.message : rep.message, rep.error ? h('ul', {}, (rep.error.suggested_actions || []).map((a) => h('li', {}, a))) : null));
          return;
        }
        showReportData(rep, body);
        if (!rep.dry_run) load();
      }, (err) => {
        if (err.name === 'AbortError') return;
        clear(cleanupView, status, errorSlot());
        cleanupView.lastChild.show(err);
      });
  }

  async function showReport(id) {
    clear(cleanupView, loading('the cleanup report'));
    try {
      const rep = await get('/backup/cleanup/report/' + encodeURIComponent(id));
      if ('created' in rep) showReportData(rep, null);
      else clear(cleanupView, h('p', { class: 'notice' }, `Cleanup ${id}: ${rep.status}, ${rep.message}`));
      cleanupView.scrollIntoView({ block: 'start' });
    } catch (err) {
      clear(cleanupView, errorSlot());
      cleanupView.lastChild.show(err);
    }
  }

  function showReportData(rep, body) {
    const decisions = rep.decisions || [];
    const count = (d) => decisions.filter((x) => x.decision === d).length;
    const removing = decisions.filter((x) => x.decision === 'would_remove' || x.decision === 'remove');
    const leaving = decisions.filter((x) => (x.remove_from || []).length);
    const removed = rep.outcome && rep.outcome.removed ? rep.outcome.removed : {};
    const gc = rep.outcome && rep.outcome.gc ? rep.outcome.gc : {};
    const rows = [...decisions].sort((a, b) => (a.timestamp < b.timestamp ? 1 : -1));
    const tbl = table([
      { title: 'Backup', cell: (d) => h('a', { href: '#/backups/' + encodeURIComponent(d.backup_id), class: 'mono' }, d.backup_id) },
      { title: 'Type', cell: (d) => d.type },
      { title: 'Taken', cell: (d) => h('span', { title: fmtTime(d.timestamp) }, fmtTime(d.timestamp)) },
      { title: 'Decision', cell: (d) => badge(d.decision.replace('_', ' '), d.decision === 'keep' ? 'ok' : d.decision === 'skipped' ? 'warn' : 'bad') },
      { title: 'Reason', cell: (d) => [d.reason, (d.remove_from || []).length ? h('div', { class: 'small warn-text' }, 'leaves ' + d.remove_from.join(', ') + ' (older than their retention)') : null] },
      { title: 'Added', class: 'num', cell: (d) => fmtBytes(d.bytes) },
      { title: 'Locations', cell: (d) => (d.locations || []).join(', ') },
    ], rows, {
      id: 'cleanup-table', empty: 'No backups to decide on.',
      rowData: (d) => ({ backupId: d.backup_id, decision: d.decision }),
    });
    for (const tr of tbl.querySelectorAll('tbody tr[data-decision]')) tr.classList.add('decision-' + tr.dataset.decision);
    const freed = rep.dry_run ? rep.unreferenced_bytes : rep.space_freed_bytes;
    const canRun = admin && rep.dry_run && rep.status === 'completed' && body && removing.length + leaving.length > 0;
    clear(cleanupView,
      h('h3', { id: 'cleanup-report-title' }, rep.dry_run ? 'Dry run ' : 'Cleanup ', h('span', { class: 'mono' }, rep.cleanup_id || rep.id), ' ', badge(rep.status), ' ',
        h('span', { class: 'muted small' }, fmtTime(rep.created))),
      rep.error ? h('div', { class: 'errorbox' }, rep.error) : null,
      h('div', { class: 'totals', id: 'cleanup-totals' },
        h('span', {}, h('strong', {}, decisions.length), ' backups decided'),
        h('span', {}, h('strong', {}, count('keep')), ' kept'),
        h('span', {}, h('strong', {}, removing.length), rep.dry_run ? ' would be removed' : ' removed'),
        leaving.length ? h('span', {}, h('strong', {}, leaving.length), ' leave some locations') : null,
        count('skipped') ? h('span', {}, h('strong', {}, count('skipped')), ' skipped') : null,
        h('span', {}, h('strong', {}, fmtBytes(freed)), rep.dry_run ? ' would be freed (now or after the safety window)' : ' freed'),
        h('span', { class: 'muted' }, 'locations: ' + (rep.locations || []).join(', '))),
      !rep.dry_run && Object.keys(removed).length ? h('p', { class: 'small' }, 'Removed: ', Object.entries(removed).map(([l, ids]) => `${l}: ${ids.length}`).join(' · ')) : null,
      Object.keys(gc).length ? h('p', { class: 'small muted' }, 'Garbage collection: ', Object.entries(gc).map(([l, g]) =>
        `${l} ${g.deleted}/${g.packs} packs deleted, ${fmtBytes(g.bytes_freed)} freed${g.condemned ? `, ${g.condemned} condemned` : ''}`).join(' · ')) : null,
      tbl,
      canRun ? h('div', { class: 'actions', id: 'cleanup-run-bar' },
        busyButton(`Run this cleanup: remove ${removing.length} backup${removing.length === 1 ? '' : 's'}`, async () => {
          const ok = await confirmDialog(`Remove ${removing.length} backup${removing.length === 1 ? '' : 's'}` +
            (leaving.length ? ` and take ${leaving.length} out of some locations` : '') +
            ` from ${(rep.locations || []).join(', ')}? This cannot be undone. The plan is made again when the cleanup runs, so backups taken since the dry run can change it.`, 'Remove backups');
          if (!ok) return;
          const r = await post('/backup/cleanup', Object.assign({}, body, { dry_run: false }));
          toast(`Cleanup ${r.cleanup_id} started`, 'ok');
          follow(r, body);
        }, { class: 'danger', id: 'cleanup-run' }))
        : rep.dry_run && !removing.length && !leaving.length ? h('p', { class: 'muted' }, 'Nothing to remove: the policy keeps every backup.') : null);
  }

  // storage alerts change the usage: reload the locations
  const refresh = debounce(load, 1000);
  offs.push(live.on('storage_alert', refresh));

  await load();
  // #/storage/cleanup/<id> opens that cleanup's report (the jobs page links here)
  if (params[0] === 'cleanup' && params[1]) showReport(params[1]);
  return () => { for (const off of offs) off(); refresh.cancel(); };
}

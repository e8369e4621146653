// Schedules: the list with each schedule's next runs (Temporal's, in the
// schedule's own zone, so a daylight saving change shows in the offsets),
// its last backup and Temporal's recent runs; create, edit, enable or
// disable, delete and run now (operator and above).
import { get, post, del, can, live, h, clear, badge, toast, confirmDialog, fmtTime, fmtAge, fmtSeconds,
  header, section, loading, temporalLink } from '../core.js';
import { busyButton, errorSlot, row, select, check, zoned, debounce } from '../widgets.js';

// A schedule is late on its own interval: no backup for 1.5 intervals of
// its frequency (the alert rule BackupdScheduledBackupLate's measure; a
// month counts 31 days, as the server's backupd_schedule_interval_seconds).
const INTERVAL = { hourly: 3600, daily: 86400, weekly: 7 * 86400, monthly: 31 * 86400 };
const LATE_FACTOR = 1.5;

const TYPES = ['full', 'incremental', 'differential', 'snapshot'];
const FREQUENCIES = ['hourly', 'daily', 'weekly', 'monthly'];
const WEEKDAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];
const COMPRESSIONS = ['zstd', 'gzip', 'bzip2', 'lz4', 'none'];
const NOTIFICATIONS = [['on_success', 'on success'], ['on_failure', 'on failure'], ['on_warning', 'on warning (partial)']];

// lateBy: how long past its due a schedule's last backup is (seconds), or 0.
export function lateBy(sc, now = Date.now()) {
  const iv = INTERVAL[sc.frequency];
  if (!sc.enabled || !iv || !sc.last_execution || sc.last_execution.status === 'running') return 0;
  const age = (now - Date.parse(sc.last_execution.timestamp)) / 1000;
  return age > iv * LATE_FACTOR ? age - iv : 0;
}

function when(sc) {
  const t = sc.time || '00:00';
  const tz = sc.timezone || 'UTC';
  switch (sc.frequency) {
    case 'hourly': return `hourly at minute ${t.slice(3)} (${tz})`;
    case 'daily': return `daily at ${t} ${tz}`;
    case 'weekly': return `weekly on ${sc.day} at ${t} ${tz}`;
    case 'monthly': return `monthly on day ${sc.day} at ${t} ${tz}`;
  }
  return sc.frequency;
}

const on = (m) => Object.keys(m || {}).filter((k) => m[k]).sort();

export async function render(main) {
  const operator = can('operator');
  let data = null;
  let formFor = undefined; // undefined: no form; null: a new schedule; else the schedule edited
  let options = null; // components and locations for the form

  const errs = errorSlot('schedules-error');
  const lastEvent = h('p', { class: 'muted live-line', id: 'schedules-last-event' });
  const summary = h('div', { class: 'cards compact', id: 'schedules-summary' });
  const body = h('div', { id: 'schedules-body' }, loading('schedules'));
  const formCard = h('div', { id: 'schedule-form-card' });

  clear(main,
    header('Schedules',
      operator ? h('button', { type: 'button', class: 'primary', id: 'schedule-new', onclick: () => openForm(null) }, 'New schedule') : null,
      busyButton('Refresh', () => load(), { id: 'schedules-refresh' })),
    errs, formCard, summary, lastEvent, body);

  async function load() {
    try {
      data = await get('/backup/schedules');
      errs.show(null);
      draw();
    } catch (err) {
      errs.show(err);
      if (!data) clear(body);
    }
  }

  function draw() {
    if (!data) return;
    const s = data.summary || {};
    const late = data.schedules.filter((x) => lateBy(x) > 0).length;
    clear(summary,
      stat('Schedules', s.total_schedules, 'schedules-total'),
      stat('Enabled', s.enabled),
      stat('Disabled', s.disabled),
      stat('Late', late, 'schedules-late', late ? 'bad' : ''),
      stat('By frequency', FREQUENCIES.map((f) => `${(s.by_frequency || {})[f] || 0} ${f}`).join(' · '), 'schedules-by-frequency', 'text'));
    const cols = [
      { title: 'Schedule', cell: (x) => [h('strong', {}, x.name), h('div', { class: 'mono muted' }, x.id),
        x.description ? h('div', { class: 'muted small' }, x.description) : null,
        x.temporal_error ? h('div', { class: 'error small', title: x.temporal_error }, 'Temporal cannot describe it: ' + x.temporal_error) : null] },
      { title: 'State', cell: stateCell },
      { title: 'When', cell: (x) => [h('div', {}, when(x)), h('div', { class: 'muted small' },
        `${x.type} · ${on(x.components).join(', ') || 'no components'}`),
        h('div', { class: 'muted small' }, `→ ${(x.storage_locations || []).join(', ')}` +
          (x.retention_days ? ` · keep ${x.retention_days} days` : '') + (x.compression ? ` · ${x.compression}` : ''))] },
      { title: 'Last backup', cell: lastCell },
      { title: 'Next runs (schedule’s zone)', cell: nextCell },
      { title: 'Runs', cell: runsCell },
    ];
    if (operator) cols.push({ title: 'Actions', class: 'actions-cell', cell: actionsCell });
    // a redraw keeps the recent runs a user opened
    const open = new Set([...body.querySelectorAll('details[open]')].map((d) => d.closest('tr').dataset.scheduleId));
    clear(body, h('table', { class: 'grid', id: 'schedules-table' },
      h('thead', {}, h('tr', {}, cols.map((c) => h('th', { class: c.class }, c.title)))),
      h('tbody', {}, data.schedules.length ? data.schedules.map((x) =>
        h('tr', { dataset: { scheduleId: x.id, late: lateBy(x) > 0 ? 'true' : 'false' }, class: x.enabled ? '' : 'dim' },
          cols.map((c) => h('td', { class: c.class }, c.cell(x)))))
        : h('tr', {}, h('td', { colspan: cols.length, class: 'muted empty' },
          operator ? 'No schedules yet: create one with “New schedule”.' : 'No schedules yet.')))));
    for (const tr of body.querySelectorAll('tr[data-schedule-id]')) {
      const d = tr.querySelector('details');
      if (d && open.has(tr.dataset.scheduleId)) d.open = true;
    }
  }

  function stat(label, value, id, kind) {
    return h('div', { class: 'card stat ' + (kind || ''), id }, h('div', { class: 'label' }, label), h('div', { class: 'big' }, value === undefined ? '—' : value));
  }

  function stateCell(x) {
    const late = lateBy(x);
    return [badge(x.enabled ? 'enabled' : 'disabled'),
      late ? [' ', h('span', { class: 'badge bad late', title: `no backup for ${fmtSeconds((Date.now() - Date.parse(x.last_execution.timestamp)) / 1000)}; a ${x.frequency} schedule is late after ${LATE_FACTOR}× its interval` }, 'late')] : null,
      late ? h('div', { class: 'small error' }, `overdue by ${fmtSeconds(late)}`) : null];
  }

  function lastCell(x) {
    const le = x.last_execution;
    if (!le) return h('span', { class: 'muted' }, 'never');
    return [badge(le.status), ' ', h('span', { title: fmtTime(le.timestamp) }, fmtAge(le.timestamp)),
      h('div', { class: 'small' }, h('a', { href: '#/backups/' + encodeURIComponent(le.backup_id), class: 'mono' }, le.backup_id)),
      h('div', { class: 'muted small' }, [le.size, le.duration].filter(Boolean).join(' · '))];
  }

  function nextCell(x) {
    if (!x.enabled) return h('span', { class: 'muted' }, 'none: disabled');
    const list = x.next_executions || [];
    if (!list.length) return h('span', { class: 'muted' }, x.next_execution ? fmtTime(x.next_execution) : '—');
    return [h('ol', { class: 'runs', 'aria-label': 'next runs in ' + x.timezone },
      list.map((t, i) => h('li', { class: i ? 'muted' : '' }, h('time', { datetime: t, title: fmtTime(t) + ' (your time)' }, zoned(t))))),
    h('div', { class: 'muted small' }, 'in ' + x.timezone)];
  }

  function runsCell(x) {
    if (x.executions === undefined) return h('span', { class: 'muted' }, '—');
    const recent = x.recent_executions || [];
    return [h('div', {}, `${x.executions} started`),
      x.skipped_overlap ? h('div', {}, h('span', { class: 'badge warn', title: 'runs skipped because the previous backup was still running' }, `${x.skipped_overlap} skipped (overlap)`)) : null,
      x.missed_catchup_window ? h('div', {}, h('span', { class: 'badge warn', title: 'runs missed while Temporal or every worker was down longer than the catch-up window' }, `${x.missed_catchup_window} missed`)) : null,
      recent.length ? h('details', { class: 'recent' }, h('summary', {}, `last ${recent.length} run${recent.length > 1 ? 's' : ''}`),
        h('ul', { class: 'runs' }, recent.map((r) => {
          const delay = (Date.parse(r.started_at) - Date.parse(r.scheduled_at)) / 1000;
          return h('li', {}, h('time', { datetime: r.scheduled_at, title: 'scheduled ' + fmtTime(r.scheduled_at) }, zoned(r.scheduled_at)),
            delay >= 60 ? h('span', { class: 'muted small' }, ` started ${fmtSeconds(delay)} late`) : null, ' ',
            temporalLink(r.temporal_ui_url, 'workflow') || h('span', { class: 'mono small muted' }, r.workflow_id));
        }))) : null];
  }

  function actionsCell(x) {
    return h('div', { class: 'actions' },
      busyButton('Run now', async () => {
        const r = await post(`/backup/schedules/${encodeURIComponent(x.id)}/trigger`);
        toast(r.message || `Schedule ${x.id} triggered`, 'ok');
        load();
      }, { class: 'small', 'data-action': 'trigger', disabled: !!x.temporal_error }),
      busyButton(x.enabled ? 'Disable' : 'Enable', async () => {
        const r = await post('/backup/schedules', { id: x.id, enabled: !x.enabled });
        toast(`${x.name}: ${r.enabled ? 'enabled' : 'disabled'}`, 'ok');
        load();
      }, { class: 'small', 'data-action': x.enabled ? 'disable' : 'enable' }),
      h('button', { type: 'button', class: 'small', 'data-action': 'edit', onclick: () => openForm(x) }, 'Edit'),
      busyButton('Delete', async () => {
        if (!await confirmDialog(`Delete schedule “${x.name}” (${x.id})? Its future runs stop; the backups it took stay.`, 'Delete schedule')) return;
        const r = await del(`/backup/schedules/${encodeURIComponent(x.id)}`);
        toast(r.message || `Schedule ${x.id} deleted`, 'ok');
        if (formFor && formFor.id === x.id) closeForm();
        load();
      }, { class: 'small danger', 'data-action': 'delete' }));
  }

  // ---- the form
  async function formOptions() {
    if (options) return options;
    const [storage, comps] = await Promise.all([
      get('/backup/storage').catch(() => null),
      get('/backup/components').then((c) => c.components.map((x) => x.component)).catch(() => []),
    ]);
    options = {
      components: comps.sort(),
      locations: storage ? Object.keys(storage.storage_config || {}).sort() : [],
      primary: storage ? storage.primary : '',
    };
    return options;
  }

  function closeForm() {
    formFor = undefined;
    clear(formCard);
  }

  async function openForm(sc) {
    formFor = sc;
    clear(formCard, section(null, loading('the form')));
    let opt;
    try {
      opt = await formOptions();
    } catch (err) {
      clear(formCard, section(null, errorSlot()));
      formCard.querySelector('.errorslot').show(err);
      return;
    }
    const editing = !!sc;
    const v = sc || { enabled: true, type: 'full', frequency: 'daily', time: '02:00', timezone: 'UTC', components: {},
      storage_locations: [], notifications: { on_success: false, on_failure: true, on_warning: true } };
    const ferr = errorSlot('schedule-form-error');
    const idIn = h('input', { type: 'text', id: 'sf-id', required: true, pattern: '[A-Za-z0-9][A-Za-z0-9._\\-]{0,119}', value: v.id || '',
      readonly: editing || undefined, placeholder: 'nightly-full', autocomplete: 'off' });
    const nameIn = h('input', { type: 'text', id: 'sf-name', maxlength: 200, value: v.name || '', placeholder: 'Nightly full backup' });
    const enabledIn = check('sf-enabled', 'enabled (runs on its schedule)', v.enabled);
    const typeIn = select('sf-type', TYPES, v.type);
    const freqIn = select('sf-frequency', FREQUENCIES, v.frequency);
    const timeIn = h('input', { type: 'time', id: 'sf-time', value: v.frequency === 'hourly' ? '02:00' : (v.time || '02:00'), step: 60 });
    const minuteIn = h('input', { type: 'number', id: 'sf-minute', min: 0, max: 59, value: v.frequency === 'hourly' ? Number((v.time || '00:00').slice(3)) : 0 });
    const weekdayIn = select('sf-weekday', WEEKDAYS, v.frequency === 'weekly' ? v.day : 'Sunday');
    const mdayIn = h('input', { type: 'number', id: 'sf-monthday', min: 1, max: 31, value: v.frequency === 'monthly' ? v.day : 1 });
    const zones = (Intl.supportedValuesOf ? Intl.supportedValuesOf('timeZone') : []);
    const tzIn = h('input', { type: 'text', id: 'sf-timezone', list: 'sf-zones', value: v.timezone || 'UTC', placeholder: 'UTC, Europe/Berlin …', autocomplete: 'off' });
    const tzList = h('datalist', { id: 'sf-zones' }, ['UTC', ...zones].map((z) => h('option', { value: z })));
    const compBox = h('div', { class: 'checks', id: 'sf-components' },
      opt.components.map((c) => check('sf-comp-' + c, c, !!(v.components || {})[c], { value: c, 'data-component': c })));
    const locBox = h('div', { class: 'checks', id: 'sf-locations' },
      opt.locations.map((l) => check('sf-loc-' + l, l + (l === opt.primary ? ' (primary)' : ''), (v.storage_locations || []).includes(l), { value: l, 'data-location': l })));
    const retIn = h('input', { type: 'number', id: 'sf-retention', min: 1, max: 36500, value: v.retention_days || '', placeholder: 'the retention policy decides' });
    const compIn = select('sf-compression', [['', 'policy default'], ...COMPRESSIONS], editing ? v.compression : '');
    const notifBox = h('div', { class: 'checks', id: 'sf-notifications' },
      NOTIFICATIONS.map(([k, l]) => check('sf-notify-' + k, l, !!(v.notifications || {})[k], { value: k })));
    const descIn = h('textarea', { id: 'sf-description', rows: 2, maxlength: 2000 }, v.description || '');

    const timeRow = row('Time', timeIn, 'HH:MM in the schedule’s time zone');
    const minuteRow = row('Minute', minuteIn, 'minute of every hour');
    const weekdayRow = row('Weekday', weekdayIn);
    const mdayRow = row('Day of month', mdayIn, 'a month without this day skips it (Temporal’s calendar)');
    const showFreq = () => {
      const f = freqIn.value;
      for (const n of timeRow) n.hidden = f === 'hourly';
      for (const n of minuteRow) n.hidden = f !== 'hourly';
      for (const n of weekdayRow) n.hidden = f !== 'weekly';
      for (const n of mdayRow) n.hidden = f !== 'monthly';
    };
    freqIn.addEventListener('change', showFreq);

    const form = h('form', { id: 'schedule-form', class: 'form', novalidate: true },
      row('Id', idIn, editing ? 'an id cannot change' : 'letters, digits, . _ -; a new id creates a schedule'),
      row('Name', nameIn),
      h('span', {}), enabledIn,
      row('Backup type', typeIn),
      row('Frequency', freqIn),
      timeRow, minuteRow, weekdayRow, mdayRow,
      row('Time zone', h('div', {}, tzIn, tzList), 'an IANA zone: runs follow its daylight saving time'),
      row('Components', compBox),
      row('Storage locations', locBox, 'none ticked: the primary, or every enabled location with auto-replication'),
      row('Keep at least (days)', retIn),
      row('Compression', compIn),
      row('Notify', notifBox),
      row('Description', descIn),
      h('div', { class: 'full actions' },
        h('button', { type: 'submit', class: 'primary', id: 'schedule-save' }, editing ? 'Save changes' : 'Create schedule'),
        h('button', { type: 'button', id: 'schedule-cancel', onclick: closeForm }, 'Cancel')));
    showFreq();

    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const btn = form.querySelector('#schedule-save');
      const f = freqIn.value;
      const body = {
        id: idIn.value.trim(),
        name: nameIn.value.trim(),
        enabled: form.querySelector('#sf-enabled').checked,
        type: typeIn.value,
        frequency: f,
        time: f === 'hourly' ? '00:' + String(Math.max(0, Math.min(59, Number(minuteIn.value) || 0))).padStart(2, '0') : timeIn.value,
        day: f === 'weekly' ? weekdayIn.value : f === 'monthly' ? String(mdayIn.value) : '',
        timezone: tzIn.value.trim() || 'UTC',
        components: [...compBox.querySelectorAll('input:checked')].map((i) => i.value),
        notifications: Object.fromEntries(NOTIFICATIONS.map(([k]) => [k, form.querySelector('#sf-notify-' + k).checked])),
        description: descIn.value,
      };
      if (!body.name) delete body.name;
      const locs = [...locBox.querySelectorAll('input:checked')].map((i) => i.value);
      if (locs.length) body.storage_locations = locs;
      if (retIn.value) body.retention_days = Number(retIn.value);
      if (compIn.value) body.compression = compIn.value;
      btn.disabled = true;
      ferr.show(null);
      try {
        const r = await post('/backup/schedules', body);
        toast(`${r.message}${r.next_execution ? ' · next run ' + fmtTime(r.next_execution) : ''}`, 'ok');
        for (const w of r.warnings || []) toast('Warning: ' + w, 'warn', 12000);
        closeForm();
        load();
      } catch (err) {
        ferr.show(err);
        const field = err.details && err.details.field;
        const target = field && form.querySelector({ id: '#sf-id', name: '#sf-name', type: '#sf-type', frequency: '#sf-frequency',
          time: f === 'hourly' ? '#sf-minute' : '#sf-time', day: f === 'weekly' ? '#sf-weekday' : '#sf-monthday', timezone: '#sf-timezone',
          components: '#sf-components input', storage_locations: '#sf-locations input', retention_days: '#sf-retention',
          compression: '#sf-compression', description: '#sf-description' }[field] || 'none');
        if (target) target.focus();
      } finally {
        btn.disabled = false;
      }
    });
    clear(formCard, section(editing ? `Edit schedule ${sc.id}` : 'New schedule', ferr, form));
    (editing ? nameIn : idIn).focus();
  }

  // ---- live: Temporal's runs and the catalog change with schedule events
  const refresh = debounce(load, 400);
  const offEvent = live.on('schedule_event', (m) => {
    lastEvent.textContent = `${fmtTime(m.timestamp)} · ${m.schedule_id}: ${m.message || m.event}`;
    if (m.event === 'backup_failed') toast(`Schedule ${m.schedule_id}: ${m.message}`, 'error', 10000);
    else if (m.event === 'backup_skipped') toast(`Schedule ${m.schedule_id}: ${m.message}`, 'warn', 8000);
    refresh();
  });
  const offDone = live.on('job_complete', (m) => { if (m.operation === 'backup') refresh(); });
  // ages and lateness move with the clock: redraw each half minute
  const tick = setInterval(() => { if (!formFor) draw(); }, 30000);

  await load();
  return () => { offEvent(); offDone(); refresh.cancel(); clearInterval(tick); };
}

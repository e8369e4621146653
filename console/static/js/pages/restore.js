// Restore: pick a backup, browse its file tree per component (directories
// expand lazily), search by name, select files and directories, choose
// the target and options, then follow the restore live; a restore to the
// original location with a pre-restore snapshot offers its rollback.
import { get, post, qs, can, h, clear, table, badge, header, section, fmtAge, fmtTime, fmtBytes, errorBox, showError, toast, confirmDialog, loading } from '../core.js';
import { followJob } from '../follow.js';
import { pager } from '../widgets.js';

export async function render(main, params) {
  if (!params[0]) return pick(main);
  return browse(main, params[0]);
}

// ---- step 1: pick a backup
async function pick(main, page = 1) {
  const out = h('div', {}, loading('backups'));
  const find = h('input', { type: 'search', id: 'backup-id', placeholder: 'or type a backup id and press Enter' });
  find.addEventListener('keydown', (e) => { if (e.key === 'Enter' && find.value.trim()) location.hash = '#/restore/' + encodeURIComponent(find.value.trim()); });
  clear(main, header('Restore: pick a backup', find), out);
  const l = await get('/backup/list' + qs({ status: 'completed', page, limit: 20 }));
  clear(out, table([
    { title: 'Backup', cell: (b) => h('a', { href: '#/restore/' + encodeURIComponent(b.id), class: 'pick' }, b.id) },
    { title: 'Taken', cell: (b) => h('span', { title: fmtTime(b.timestamp_rfc3339) }, fmtAge(b.timestamp_rfc3339)) },
    { title: 'Type', cell: (b) => b.type },
    { title: 'Status', cell: (b) => badge(b.status) },
    { title: 'Components', cell: (b) => Object.keys(b.components).filter((k) => b.components[k]).join(', ') },
    { title: 'Size', class: 'num', cell: (b) => b.size },
    { title: 'Locations', cell: (b) => b.storage_locations.join(', ') },
  ], l.backups, { id: 'restore-pick', empty: 'No completed backup yet.' }), pager(l.pagination, (p) => pick(main, p)));
}

// ---- step 2: browse, select, restore
async function browse(main, id) {
  clear(main, loading('backup ' + id));
  let d;
  try {
    d = await get('/backup/details/' + encodeURIComponent(id));
  } catch (e) {
    clear(main, header('Restore'), errorBox(e), h('a', { href: '#/restore' }, '← pick another backup'));
    return;
  }
  const comps = Object.keys(d.size_details.components_size).sort();
  // selection: key "component\0path" → {component, path, type}; a
  // component's root "/" selects the whole component
  const selected = new Map();
  const selList = h('ul', { class: 'selection', id: 'selection' });
  const selCount = h('span', { class: 'muted', id: 'selection-count' });
  const checkboxes = new Map(); // key → [checkbox elements] (tree and search show the same entry)
  function keyOf(c, p) { return c + '\0' + p; }
  function setSelected(c, p, type, on) {
    const k = keyOf(c, p);
    if (on) selected.set(k, { component: c, path: p, type }); else selected.delete(k);
    for (const cb of checkboxes.get(k) || []) cb.checked = on;
    drawSelection();
  }
  function checkbox(c, p, type) {
    const k = keyOf(c, p);
    const cb = h('input', { type: 'checkbox', class: 'sel', dataset: { path: p, component: c }, checked: selected.has(k), 'aria-label': 'select ' + p,
      onchange: (e) => setSelected(c, p, type, e.target.checked) });
    if (!checkboxes.has(k)) checkboxes.set(k, new Set());
    checkboxes.get(k).add(cb);
    return cb;
  }
  function drawSelection() {
    const items = [...selected.values()];
    selCount.textContent = items.length ? `${items.length} selected` : 'nothing selected: the whole backup is restored';
    clear(selList, items.map((s) => h('li', {}, h('span', {}, h('code', {}, s.component), ' ', s.path === '/' ? '(whole component)' : s.path),
      h('button', { type: 'button', class: 'small', onclick: () => setSelected(s.component, s.path, s.type, false) }, '✕'))));
  }

  // the tree: one list per component, directories loaded when opened
  function entryNode(c, e) {
    const isDir = e.type === 'dir';
    const kids = h('ul', { class: 'tree', hidden: true });
    let loaded = false;
    const twist = h('button', { type: 'button', class: 'twist', 'aria-label': 'open ' + e.path, 'aria-expanded': 'false' }, isDir ? '▸' : '');
    const li = h('li', { dataset: { path: e.path, type: e.type } },
      h('div', { class: 'node' }, twist, checkbox(c, e.path, e.type), h('span', { class: 'ico ' + (isDir ? 'dir' : e.type === 'symlink' ? 'link' : e.type === 'file' ? 'file' : 'other'), title: e.type }),
        h('span', { class: 'name' }, e.name), e.type === 'symlink' ? h('span', { class: 'muted' }, ' → ' + e.link_target) : null,
        h('span', { class: 'size', title: `${e.mode} ${e.user || e.uid}:${e.group || e.gid} · modified ${fmtTime(e.modified)}` }, isDir ? '' : fmtBytes(e.size))),
      kids);
    if (isDir) {
      const toggle = async () => {
        const open = kids.hidden;
        kids.hidden = !open;
        twist.textContent = open ? '▾' : '▸';
        twist.setAttribute('aria-expanded', String(open));
        if (open && !loaded) {
          loaded = true;
          await listInto(c, e.path, kids);
        }
      };
      twist.addEventListener('click', toggle);
      li.querySelector('.name').addEventListener('dblclick', toggle);
      li.openDir = toggle;
    }
    return li;
  }
  async function listInto(c, path, ul, page = 1) {
    const wait = h('li', { class: 'muted' }, 'loading…');
    ul.append(wait);
    try {
      const l = await get(`/backup/tree/${encodeURIComponent(id)}` + qs({ component: c, path, page, limit: 200 }));
      wait.remove();
      const items = l.entries.map((e) => entryNode(c, e));
      ul.append(...items);
      if (!l.entries.length && page === 1) ul.append(h('li', { class: 'muted' }, '(empty)'));
      if (l.pagination.page < l.pagination.total_pages) {
        const more = h('li', {}, h('button', { type: 'button', class: 'small', onclick: () => { more.remove(); listInto(c, path, ul, page + 1); } },
          `show more (${l.pagination.total - page * l.pagination.page_size} left)`));
        ul.append(more);
      }
      // a single directory on its own is opened at once: the way down to
      // a component's paths (/srv/app/data) takes no clicks
      if (page === 1 && l.entries.length === 1 && l.entries[0].type === 'dir') await items[0].openDir();
    } catch (e) {
      wait.remove();
      ul.append(h('li', {}, errorBox(e)));
    }
  }

  const trees = h('div', { id: 'trees' }, comps.map((c) => {
    const ul = h('ul', { class: 'tree rootlist' });
    const box = h('div', { class: 'component', dataset: { component: c } },
      h('h2', {}, h('label', { class: 'inline' }, checkbox(c, '/', 'component'), c), h('span', { class: 'muted' }, ' ' + d.size_details.components_size[c])), ul);
    listInto(c, '/', ul);
    return box;
  }));

  // search
  const q = h('input', { type: 'search', id: 'search', placeholder: 'search names (part of a name, or *.conf)' });
  const results = h('div', { id: 'search-results' });
  async function search(page = 1) {
    if (!q.value.trim()) { clear(results); return; }
    clear(results, loading('matches'));
    try {
      const s = await get(`/backup/search/${encodeURIComponent(id)}` + qs({ q: q.value.trim(), page, limit: 50 }));
      clear(results, h('p', { class: 'muted' }, `${s.pagination.total} match(es) among ${s.visited} entries${s.truncated ? ' (stopped early: narrow the search)' : ''}`),
        table([
          { title: '', cell: (e) => checkbox(e.component, e.path, e.type) },
          { title: 'Component', cell: (e) => e.component },
          { title: 'Path', cell: (e) => h('code', {}, e.path) },
          { title: 'Type', cell: (e) => e.type },
          { title: 'Size', class: 'num', cell: (e) => e.type === 'dir' ? '' : fmtBytes(e.size) },
          { title: 'Modified', cell: (e) => fmtTime(e.modified) },
        ], s.matches, { id: 'search-table', empty: 'No name matches.' }), pager(s.pagination, search));
    } catch (e) { clear(results, errorBox(e)); }
  }
  q.addEventListener('keydown', (e) => { if (e.key === 'Enter') search(); });

  // target and options
  const locations = d.storage.locations.map((l) => l.type);
  const target = h('div', { class: 'checks', id: 'target-kind' },
    h('label', {}, h('input', { type: 'radio', name: 'target', value: 'directory', checked: true }), 'into a directory'),
    h('label', {}, h('input', { type: 'radio', name: 'target', value: 'original' }), 'to the original paths'));
  const dir = h('input', { type: 'text', id: 'target-dir', placeholder: '/var/tmp/restore (absolute; files land in <dir>/<component>/…)' });
  const snapshot = h('input', { type: 'checkbox', id: 'snapshot', checked: true });
  const overwrite = h('input', { type: 'checkbox', id: 'overwrite' });
  const verifyAfter = h('input', { type: 'checkbox', id: 'verify-after', checked: true });
  const from = h('select', { id: 'from-location' }, h('option', { value: '' }, 'the first healthy copy'), locations.map((l) => h('option', { value: l }, l)));
  const errors = h('div', { id: 'restore-errors' });
  const progress = h('div', { id: 'restore-progress' });
  const go = h('button', { type: 'button', class: 'primary', id: 'start-restore', onclick: start }, 'Restore');
  const snapRow = h('label', { class: 'inline' }, snapshot, 'take a pre-restore snapshot first (offers a rollback)');
  const syncTarget = () => {
    const orig = target.querySelector('input:checked').value === 'original';
    dir.disabled = orig;
    snapRow.hidden = !orig;
  };
  target.addEventListener('change', syncTarget);
  syncTarget();
  const panel = section('Restore', h('p', {}, selCount), selList,
    h('div', { class: 'form' }, h('label', {}, 'Target'), target, h('label', { for: 'target-dir' }, 'Directory'), dir,
      h('label', {}, 'Options'), h('div', {}, snapRow, h('label', { class: 'inline' }, overwrite, 'overwrite files in a non-empty target'),
        h('label', { class: 'inline' }, verifyAfter, 'compare the restored files with the backup')),
      h('label', { for: 'from-location' }, 'Read from'), from),
    h('p', {}, can('admin') ? go : h('span', { class: 'muted', id: 'restore-needs-admin' }, 'Restoring needs the admin role: this token is ' + (can('operator') ? 'operator' : 'viewer') + '.')),
    errors, progress);
  drawSelection();

  clear(main, h('p', {}, h('a', { href: '#/restore' }, '← pick another backup')),
    header(`Restore from ${d.id}`), h('p', { class: 'muted' }, `${d.type} backup taken ${fmtTime(d.timestamp)} · ${d.size_details.raw_size} in ${d.size_details.files} files · ${locations.join(', ')}`),
    h('div', { class: 'browser' }, h('div', {}, section('Search', q, results), section('Files', trees)), h('div', {}, panel)));

  const stops = [];
  async function start() {
    clear(errors);
    const orig = target.querySelector('input:checked').value === 'original';
    if (!orig && !dir.value.trim().startsWith('/')) {
      clear(errors, errorBox({ code: 'VALIDATION', message: 'Give the target directory as an absolute path (like /var/tmp/restore).' }));
      return;
    }
    const items = [...selected.values()];
    const whole = [...new Set(items.filter((s) => s.path === '/').map((s) => s.component))];
    const parts = items.filter((s) => s.path !== '/' && !whole.includes(s.component));
    // a restore's paths apply to each of its components: whole components
    // and chosen paths go in separate requests
    const reqs = [];
    const base = { backup_id: d.id, target_location: orig ? 'original' : dir.value.trim(), overwrite: overwrite.checked,
      verify_after_restore: verifyAfter.checked, storage_location: from.value || undefined, create_pre_restore_snapshot: orig && snapshot.checked };
    if (!items.length) reqs.push({ ...base, restore_type: 'full' });
    if (whole.length) reqs.push({ ...base, restore_type: 'partial', components: whole });
    if (parts.length) reqs.push({ ...base, restore_type: 'partial', components: [...new Set(parts.map((s) => s.component))], paths: [...new Set(parts.map((s) => s.path))] });
    const what = items.length ? `${items.length} selected item(s)` : 'the whole backup';
    if (orig && !await confirmDialog(`Restore ${what} over the original paths on the host? Files there are replaced${snapshot.checked ? ' (a snapshot is taken first, for a rollback)' : ''}.`, 'Restore')) return;
    go.disabled = true;
    try {
      for (const req of reqs) {
        const r = await post('/backup/restore', req);
        const f = followJob(r.job_id, 'restore', (status) => afterRestore(r, status, box));
        const box = h('div', { class: 'restore-job', dataset: { restoreId: r.restore_id } },
          h('p', {}, `Restore ${r.restore_id}: ${r.components.join(', ')} → ${r.target_location}; estimated ${r.estimated_size} in ${r.estimated_duration}.`,
            r.warning ? h('span', { class: 'muted' }, ' ' + r.warning) : null), f.el);
        progress.append(box);
        stops.push(f.stop);
      }
    } catch (e) {
      clear(errors, errorBox(e));
    } finally {
      go.disabled = false;
    }
  }
  async function afterRestore(r, status, box) {
    if (!r.snapshot_id) return;
    const rb = h('button', { type: 'button', class: 'danger', id: 'rollback-' + r.restore_id, onclick: async () => {
      if (!await confirmDialog(`Undo restore ${r.restore_id}: put back what the snapshot ${r.snapshot_id} holds over the original paths?`, 'Roll back')) return;
      try {
        const x = await post('/backup/restore/rollback', { restore_id: r.restore_id });
        const f = followJob(x.job_id, 'restore');
        box.append(h('p', {}, `Rollback ${x.restore_id} started.`), f.el);
        stops.push(f.stop);
        rb.disabled = true;
      } catch (e) { showError(e); }
    } }, 'Roll back this restore');
    box.append(h('p', {}, `Pre-restore snapshot ${r.snapshot_id} holds what was there before. `, rb));
    if (status !== 'success') toast('The restore did not complete: the rollback puts back what was there before.', 'warn', 12000);
  }
  return () => stops.forEach((s) => s());
}

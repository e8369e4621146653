// New backup: the spec's dashboard form (components, type, locations,
// compression, encryption, description); after submit, the job's live
// progress and its job_complete.
import { get, post, h, clear, header, section, errorBox, loading } from '../core.js';
import { followJob } from '../follow.js';

const TYPES = ['full', 'incremental', 'differential', 'snapshot'];
const COMPRESSIONS = ['zstd', 'gzip', 'bzip2', 'lz4', 'none'];
const PRIORITIES = ['normal', 'high', 'critical', 'low'];

export async function render(main) {
  clear(main, header('New backup'), loading('components and locations'));
  const [comps, storage] = await Promise.all([get('/backup/components'), get('/backup/storage')]);
  const locNames = Object.keys(storage.storage_config).filter((n) => storage.storage_config[n].enabled).sort();
  const primary = storage.primary || locNames[0];
  const checks = (name, values, checked) => h('div', { class: 'checks', id: name }, values.map((v) =>
    h('label', {}, h('input', { type: 'checkbox', name, value: v, checked: checked(v) }), v)));
  const select = (id, values, value) => h('select', { id, name: id }, values.map((v) => h('option', { value: v, selected: v === value }, v)));
  const errors = h('div', { id: 'form-errors' });
  const jobs = h('div', { id: 'started-jobs' });
  const form = h('form', { class: 'form', id: 'new-backup-form', onsubmit: submit },
    h('label', {}, 'Components'), checks('components', comps.components.map((c) => c.component), () => true),
    h('label', { for: 'type' }, 'Type'), select('type', TYPES, 'full'),
    h('label', {}, 'Storage locations'), checks('locations', locNames, (v) => v === primary),
    h('label', { for: 'compression' }, 'Compression'), select('compression', COMPRESSIONS, 'zstd'),
    h('label', {}, 'Encryption'), h('label', { class: 'inline' }, h('input', { type: 'checkbox', id: 'encryption', checked: true, disabled: true }), 'AES-256-GCM (backupd always encrypts)'),
    h('label', { for: 'priority' }, 'Priority'), select('priority', PRIORITIES, 'normal'),
    h('label', { for: 'name' }, 'Name'), h('input', { type: 'text', id: 'name', placeholder: 'default: <type>-manual-<time>', maxlength: 200 }),
    h('label', { for: 'description' }, 'Description'), h('textarea', { id: 'description', rows: 2, maxlength: 2000 }),
    h('label', {}, 'Afterwards'), h('label', { class: 'inline' }, h('input', { type: 'checkbox', id: 'verify_after' }), 'verify the backup when it completes'),
    h('div', { class: 'full' }, h('button', { type: 'submit', class: 'primary', id: 'start-backup' }, 'Start backup')));
  clear(main, header('New backup'), section('', form, errors), section('Progress', jobs));

  async function submit(ev) {
    ev.preventDefault();
    clear(errors);
    const picked = (name) => [...form.querySelectorAll(`input[name=${name}]:checked`)].map((i) => i.value);
    const req = {
      components: picked('components'), type: form.querySelector('#type').value, storage_locations: picked('locations'),
      compression: form.querySelector('#compression').value, priority: form.querySelector('#priority').value, encryption: true,
      name: form.querySelector('#name').value.trim() || undefined, description: form.querySelector('#description').value.trim() || undefined,
      verify_after_completion: form.querySelector('#verify_after').checked,
    };
    if (!req.components.length) { clear(errors, errorBox({ code: 'VALIDATION', message: 'Pick at least one component.' })); return; }
    const btn = form.querySelector('#start-backup');
    btn.disabled = true;
    try {
      const r = await post('/backup/create', req);
      const f = followJob(r.job_id, 'backup');
      jobs.prepend(h('div', { class: 'started' }, h('p', {}, 'Backup ', h('a', { href: '#/backups/' + encodeURIComponent(r.backup_id) }, r.backup_id),
        ` started: ${r.components.join(', ')} → ${r.storage_locations.join(', ')}; estimated ${r.estimated_size} in ${r.estimated_duration}.`), f.el));
      stops.push(f.stop);
    } catch (e) {
      clear(errors, errorBox(e));
    } finally {
      btn.disabled = false;
    }
  }
  const stops = [];
  return () => stops.forEach((s) => s());
}

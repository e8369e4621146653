// Tokens (admin): the API tokens (never their secrets), a new token's
// secret shown once with a copy button, and revocation after a
// confirmation — with an extra warning for the token this console is
// signed in with.
import { get, post, del, session, h, clear, badge, toast, confirmDialog, fmtTime, fmtAge, header, section, loading } from '../core.js';
import { busyButton, errorSlot, row, select, check, copyButton } from '../widgets.js';

const ROLES = ['viewer', 'operator', 'admin'];
const EXPIRIES = [['', 'never'], ['24', '1 day'], ['168', '7 days'], ['720', '30 days'], ['2160', '90 days'], ['8760', '1 year'], ['custom', 'custom…']];

export async function render(main) {
  let data = null;
  const errs = errorSlot('tokens-error');
  const secretCard = h('div', { id: 'token-secret-card' });
  const body = h('div', { id: 'tokens-body' }, loading('tokens'));
  const showRevoked = check('tokens-show-revoked', 'show revoked and expired tokens', true);
  showRevoked.querySelector('input').addEventListener('change', () => draw());

  // ---- create
  const ferr = errorSlot('token-form-error');
  const nameIn = h('input', { type: 'text', id: 'token-name', required: true, maxlength: 200, placeholder: 'nightly-report', autocomplete: 'off' });
  const roleSel = select('token-role', ROLES, 'viewer');
  const expSel = select('token-expiry', EXPIRIES, '720');
  const hoursIn = h('input', { type: 'number', id: 'token-hours', min: 1, max: 87600, placeholder: 'hours', hidden: true });
  expSel.addEventListener('change', () => { hoursIn.hidden = expSel.value !== 'custom'; if (!hoursIn.hidden) hoursIn.focus(); });
  const form = h('form', { class: 'form', id: 'token-form' },
    row('Name', nameIn, 'who or what uses the token'),
    row('Role', roleSel, 'viewer reads; operator also backs up, schedules and controls jobs; admin also restores, deletes and manages'),
    row('Expires', h('div', { class: 'actions' }, expSel, hoursIn)),
    h('div', { class: 'full actions' }, h('button', { type: 'submit', class: 'primary', id: 'token-create' }, 'Create token')));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const body = { name: nameIn.value.trim(), role: roleSel.value };
    const hours = expSel.value === 'custom' ? Number(hoursIn.value) : Number(expSel.value);
    if (hours) body.expires_in_hours = hours;
    const btn = form.querySelector('#token-create');
    btn.disabled = true;
    ferr.show(null);
    try {
      const t = await post('/backup/tokens', body);
      showSecret(t);
      form.reset();
      hoursIn.hidden = true;
      load();
    } catch (err) {
      ferr.show(err);
      if (err.details && err.details.field === 'name') nameIn.focus();
    } finally {
      btn.disabled = false;
    }
  });

  clear(main, header('API tokens', busyButton('Refresh', () => load(), { id: 'tokens-refresh' })), errs, secretCard,
    section('New token', ferr, form), section('Tokens', showRevoked, body));

  // the secret is in the page until the admin dismisses it or leaves
  function showSecret(t) {
    const code = h('code', { id: 'token-secret' }, t.token);
    clear(secretCard, h('section', { class: 'card', role: 'alert' },
      h('h2', {}, `Token “${t.name}” created (${t.role}${t.expires ? ', expires ' + fmtTime(t.expires) : ', never expires'})`),
      h('div', { class: 'warnbox' }, h('strong', {}, 'Copy the token now: it is not shown again. '),
        'backupd keeps only its hash; a lost token cannot be recovered, only revoked and replaced.'),
      h('div', { class: 'secret' }, code, copyButton(t.token, code, { id: 'token-copy' }),
        h('button', { type: 'button', class: 'small', id: 'token-secret-done', onclick: () => clear(secretCard) }, 'I have stored it')),
      h('p', { class: 'muted small' }, 'Use it as ', h('code', {}, 'Authorization: Bearer <token>'), ', or sign in to this console with it.')));
    secretCard.scrollIntoView({ block: 'start' });
  }

  async function load() {
    try {
      data = await get('/backup/tokens');
      errs.show(null);
      draw();
    } catch (err) {
      errs.show(err);
      if (!data) clear(body);
    }
  }

  const expired = (t) => t.expires && Date.parse(t.expires) <= Date.now();

  function draw() {
    if (!data) return;
    const all = data.tokens || [];
    const shown = showRevoked.querySelector('input').checked ? all : all.filter((t) => !t.revoked && !expired(t));
    const rows = [...shown].sort((a, b) => (a.revoked - b.revoked) || (a.created < b.created ? 1 : -1));
    const cols = [
      { title: 'Name', cell: (t) => [h('strong', {}, t.name), t.id === session.tokenId ? [' ', badge('this session', 'run')] : null, h('div', { class: 'mono small muted' }, t.id)] },
      { title: 'Role', cell: (t) => badge(t.role, 'plain') },
      { title: 'State', cell: (t) => t.revoked ? badge('revoked') : expired(t) ? badge('expired', 'warn') : badge('active', 'ok') },
      { title: 'Created', cell: (t) => [fmtTime(t.created), h('div', { class: 'muted small' }, 'by ' + t.created_by)] },
      { title: 'Expires', cell: (t) => t.expires ? h('span', { title: fmtTime(t.expires) }, (expired(t) ? 'expired ' : '') + fmtAge(t.expires)) : h('span', { class: 'muted' }, 'never') },
      { title: 'Last used', cell: (t) => t.last_used ? h('span', { title: fmtTime(t.last_used) }, fmtAge(t.last_used)) : h('span', { class: 'muted' }, 'never') },
      { title: '', class: 'actions-cell', cell: (t) => (t.revoked ? null : busyButton('Revoke', () => revoke(t), { class: 'small danger', 'data-action': 'revoke' })) },
    ];
    clear(body, h('table', { class: 'grid', id: 'tokens-table' },
      h('thead', {}, h('tr', {}, cols.map((c) => h('th', { class: c.class }, c.title)))),
      h('tbody', {}, rows.length ? rows.map((t) => h('tr', { dataset: { tokenId: t.id, revoked: t.revoked ? 'true' : 'false' }, class: t.revoked || expired(t) ? 'dim' : '' },
        cols.map((c) => h('td', { class: c.class }, c.cell(t)))))
        : h('tr', {}, h('td', { colspan: cols.length, class: 'muted empty' }, 'No tokens.')))));
  }

  async function revoke(t) {
    const own = t.id === session.tokenId;
    let extra = null;
    if (own) {
      extra = h('div', { class: 'warnbox' }, h('strong', {}, 'This is the token this console is signed in with. '),
        'Revoking it signs you out at once; you need another admin token to come back.',
        check('revoke-own-ack', 'I understand: revoke my own token', false, { required: true }));
    }
    const okBtn = document.getElementById('confirm-ok');
    let ack = null;
    if (own) {
      ack = extra.querySelector('#revoke-own-ack');
      okBtn.disabled = true;
      ack.addEventListener('change', () => { okBtn.disabled = !ack.checked; });
    }
    let ok;
    try {
      ok = await confirmDialog(`Revoke token “${t.name}” (${t.role}, ${t.id})? Every client using it is refused from now on. This cannot be undone.`,
        own ? 'Revoke my token' : 'Revoke token', extra);
    } finally {
      okBtn.disabled = false;
    }
    if (!ok || (own && !ack.checked)) return;
    const r = await del('/backup/tokens/' + encodeURIComponent(t.id));
    toast(`Token ${r.id} revoked`, 'ok');
    if (own) {
      // the next call is refused: the shell signs out
      get('/backup/whoami').catch(() => {});
      return;
    }
    load();
  }

  await load();
}

// The console's shell: sign-in, navigation and the hash router. Each page
// is a module under pages/ exporting render(main, params), which returns
// a function that tears the page down (its live listeners, its timers).
import { session, savedToken, remember, forget, get, live, h, clear, can, setUnauthorizedHandler, errorBox, toast } from './core.js';

// The pages, in the navigation's order; role: the least role that sees it.
const PAGES = [
  { path: 'overview', title: 'Overview', role: 'viewer', load: () => import('./pages/overview.js') },
  { path: 'backups', title: 'Backups', role: 'viewer', load: () => import('./pages/backups.js') },
  { path: 'new', title: 'New backup', role: 'operator', load: () => import('./pages/newbackup.js') },
  { path: 'restore', title: 'Restore', role: 'operator', load: () => import('./pages/restore.js') },
  { path: 'schedules', title: 'Schedules', role: 'viewer', load: () => import('./pages/schedules.js') },
  { path: 'storage', title: 'Storage & retention', role: 'viewer', load: () => import('./pages/storage.js') },
  { path: 'statistics', title: 'Statistics', role: 'viewer', load: () => import('./pages/statistics.js') },
  { path: 'jobs', title: 'Jobs', role: 'viewer', load: () => import('./pages/jobs.js') },
  { path: 'audit', title: 'Audit log', role: 'admin', load: () => import('./pages/audit.js') },
  { path: 'tokens', title: 'Tokens', role: 'admin', load: () => import('./pages/tokens.js') },
];

let teardown = null;
// routes counts navigations: a page still loading when the next one starts
// must not draw over it (it draws into its own box, no longer shown)
let routes = 0;

async function signIn(token, keep) {
  const me = await get('/backup/whoami', { token });
  Object.assign(session, { token, name: me.name, role: me.role, tokenId: me.token_id });
  if (keep) remember(token);
  showShell();
}

function signOut(reason) {
  live.stop();
  forget();
  if (teardown) { teardown(); teardown = null; }
  document.getElementById('shell').hidden = true;
  document.getElementById('signin').hidden = false;
  const e = document.getElementById('signin-error');
  e.hidden = !reason;
  e.textContent = reason || '';
  document.getElementById('token').value = '';
  document.getElementById('token').focus();
}

function showShell() {
  document.getElementById('signin').hidden = true;
  document.getElementById('shell').hidden = false;
  clear(document.getElementById('who'), h('span', { class: 'badge plain', id: 'role' }, session.role), ' ', session.name);
  clear(document.getElementById('nav'), PAGES.filter((p) => can(p.role)).map((p) =>
    h('a', { href: '#/' + p.path, dataset: { page: p.path } }, p.title)));
  live.start();
  route();
}

async function route() {
  if (!session.token) return;
  const parts = location.hash.replace(/^#\/?/, '').split('/').map((p) => {
    try { return decodeURIComponent(p); } catch (e) { return p; } // a mistyped %-escape stays as typed
  });
  let page = PAGES.find((p) => p.path === parts[0]);
  if (!page) {
    location.replace('#/overview');
    return;
  }
  for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('current', a.dataset.page === page.path);
  if (teardown) { teardown(); teardown = null; }
  const main = document.getElementById('page');
  main.dataset.page = page.path;
  const gen = ++routes;
  if (!can(page.role)) {
    clear(main, errorBox({ code: 'FORBIDDEN', message: `${page.title} needs the ${page.role} role; this token is ${session.role}.`, actions: ['sign in with a token of that role'] }));
    return;
  }
  document.title = page.title + ' · backupd';
  const view = h('div', { class: 'view' });
  clear(main, view);
  try {
    const mod = await page.load();
    if (gen !== routes) return;
    const done = await mod.render(view, parts.slice(1));
    if (gen !== routes) {
      if (typeof done === 'function') done();
      return;
    }
    teardown = typeof done === 'function' ? done : null;
  } catch (err) {
    if (gen === routes) clear(view, errorBox(err));
  }
}

function init() {
  setUnauthorizedHandler(() => signOut('The token is no longer accepted (expired or revoked): sign in again.'));
  document.getElementById('signin-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const token = document.getElementById('token').value.trim();
    const keep = document.getElementById('remember').checked;
    const e = document.getElementById('signin-error');
    e.hidden = true;
    try {
      await signIn(token, keep);
    } catch (err) {
      e.hidden = false;
      e.textContent = err.status === 401 ? 'This token is not accepted: it is mistyped, expired or revoked.' :
        err.status === 429 ? 'Too many attempts from this address: wait a few seconds.' : err.message;
    }
  });
  document.getElementById('signout').addEventListener('click', () => signOut(''));
  window.addEventListener('hashchange', route);
  live.on('storage_alert', (m) => toast(`Storage ${m.storage}: ${m.message}`, m.level === 'critical' ? 'error' : 'warn', 15000));
  const t = savedToken();
  if (t) signIn(t, true).catch(() => signOut('The saved token is no longer accepted: sign in again.'));
  else signOut('');
}

init();

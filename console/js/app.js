// app.js - the console's shell: sign-in, the navigation each role is allowed, and the hash router
// that hands the main region to one view at a time.
import { onSessionChange, currentUser, hasRole, signIn, signOut } from './api.js';
import { h, clear, errorBox, field, notice } from './dom.js';
import * as dashboard from './views/dashboard.js';
import * as events from './views/events.js';
import * as definitions from './views/definitions.js';
import * as reviews from './views/reviews.js';
import * as players from './views/players.js';
import * as batches from './views/batches.js';
import * as ledger from './views/ledger.js';
import * as audit from './views/audit.js';
import * as admin from './views/admin.js';
import * as webhooks from './views/webhooks.js';

const STAFF = ['OPERATOR', 'AUDITOR', 'ADMIN'];
const AUDIT = ['AUDITOR', 'ADMIN'];

// path pattern, view, the roles that may open it, nav label (null: not in the nav)
const ROUTES = [
  ['', dashboard.render, STAFF, 'Dashboard'],
  ['events', events.renderList, STAFF, 'Events'],
  ['events/new', events.renderForm, ['OPERATOR', 'ADMIN'], null],
  ['events/:id/edit', events.renderForm, ['OPERATOR', 'ADMIN'], null],
  ['definitions', definitions.renderList, STAFF, 'Reward definitions'],
  ['definitions/new', definitions.renderForm, ['OPERATOR', 'ADMIN'], null],
  ['definitions/:id/edit', definitions.renderForm, ['OPERATOR', 'ADMIN'], null],
  ['reviews', reviews.render, STAFF, 'Review queue'],
  ['players', players.render, STAFF, 'Players'],
  ['players/:id', players.render, STAFF, null],
  ['batches', batches.renderList, STAFF, 'Batch grants'],
  ['batches/:id', batches.renderOne, STAFF, null],
  ...webhooks.ROUTES,
  ['ledger', ledger.render, AUDIT, 'Ledger'],
  ['audit', audit.render, AUDIT, 'Audit logs'],
  ['admin', admin.render, ['ADMIN'], 'Admin'],
];

const app = document.getElementById('app');
let flash = null;

function match(hash) {
  const path = hash.replace(/^#\/?/, '').replace(/\?.*$/, '').replace(/\/$/, '');
  const parts = path ? path.split('/') : [];
  for (const r of ROUTES) {
    const pat = r[0] ? r[0].split('/') : [];
    if (pat.length !== parts.length) continue;
    const params = {};
    let ok = true;
    pat.forEach((p, i) => {
      if (p.startsWith(':')) params[p.slice(1)] = decodeURIComponent(parts[i]);
      else if (p !== parts[i]) ok = false;
    });
    if (ok) return { route: r, params };
  }
  return null;
}

export function queryOf() {
  const i = location.hash.indexOf('?');
  return new URLSearchParams(i >= 0 ? location.hash.slice(i + 1) : '');
}

function signInView(message) {
  const user = h('input', { name: 'username', autocomplete: 'username', required: true });
  const pass = h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const out = h('div', { 'aria-live': 'polite' }, message || null);
  const btn = h('button', { type: 'submit', class: 'primary' }, 'Sign in');
  const form = h('form', { class: 'signin', 'aria-labelledby': 'signin-title', novalidate: true },
    h('h1', { id: 'signin-title' }, 'Reward platform console'),
    h('p', null, 'For operators, auditors and administrators.'),
    field('Username or email', user), field('Password', pass), out, h('div', { class: 'actions' }, btn));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    btn.disabled = true;
    clear(out);
    try {
      await signIn(user.value.trim(), pass.value, (u) => u.roles.some((r) => STAFF.includes(r)));
    } catch (err) {
      clear(out, errorBox(err));
      btn.disabled = false;
      pass.value = '';
      pass.focus();
    }
  });
  clear(app, h('main', { id: 'main' }, form));
  user.focus();
}

function shell() {
  const u = currentUser();
  const nav = h('nav', { 'aria-label': 'Sections' },
    h('ul', null, ROUTES.filter((r) => r[3] && hasRole(...r[2])).map((r) =>
      h('li', null, h('a', { href: `#/${r[0]}`, 'data-route': r[0] }, r[3])))));
  const out = h('button', { type: 'button', id: 'signout' }, 'Sign out');
  out.addEventListener('click', () => signOut());
  const main = h('main', { id: 'main', tabindex: '-1' });
  clear(app,
    h('a', { href: '#main', class: 'skip' }, 'Skip to content'),
    h('header', null,
      h('span', { class: 'brand' }, 'Reward console'),
      h('span', { class: 'who' }, h('span', { id: 'who-name' }, u.username), ' ',
        h('span', { class: 'roles', id: 'who-roles' }, u.roles.join(', '))),
      out),
    nav, main);
  return main;
}

let main = null;
let generation = 0;

async function route() {
  if (!currentUser()) return;
  if (!main || !main.isConnected) main = shell();
  const m = match(location.hash || '#/');
  for (const a of document.querySelectorAll('nav a')) {
    const on = m && a.dataset.route === m.route[0].split('/')[0] && (m.route[3] || a.dataset.route !== '');
    if (on) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  generation += 1;
  const section = h('section', { 'data-generation': generation });
  clear(main, flash ? notice(flash) : null, section);
  flash = null;
  if (!m) {
    append404(section);
    return;
  }
  if (!hasRole(...m.route[2])) {
    clear(section, h('h1', null, 'Not allowed'), h('p', null, 'Your roles do not allow this page.'));
    return;
  }
  try {
    await m.route[1](section, m.params, queryOf());
  } catch (err) {
    section.append(errorBox(err));
  }
  const h1 = section.querySelector('h1');
  if (h1 && document.activeElement === document.body) {
    h1.setAttribute('tabindex', '-1');
    h1.focus();
  }
}

function append404(section) {
  clear(section, h('h1', null, 'Not found'), h('p', null, 'No such page. ', h('a', { href: '#/' }, 'Dashboard')));
}

// Shows text on the next page (after a save that navigates).
export function flashNext(text) {
  flash = text;
}

export function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

let shownRoles = '';

onSessionChange((s, why, detail) => {
  if (!s) {
    main = null;
    shownRoles = '';
    const msg = {
      'not-staff': h('div', { class: 'error', role: 'alert', id: 'not-staff' },
        h('p', null, 'This console is for staff: operators, auditors and administrators. ',
          'Your account holds none of those roles, so nothing here is open to it.')),
      expired: h('div', { id: 'session-ended' }, notice('Your session has ended; sign in again.', 'warn'),
        detail ? errorBox(detail) : null),
      signout: notice('Signed out.'),
    }[why];
    signInView(msg);
  } else if (why === 'signin' || s.user.roles.join() !== shownRoles) {
    // a refresh carries the account's current roles: the navigation follows them
    main = null;
    route();
  }
  if (s) shownRoles = s.user.roles.join();
});

window.addEventListener('hashchange', route);
signInView();

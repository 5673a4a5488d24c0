// admin.js - accounts and roles, and service accounts (service_accounts.js) (ADMIN); webhooks get
// their place here as their API lands.
import { get, put } from '../api.js';
import { h, clear, fmtTime, notice, confirmDialog, field } from '../dom.js';
import { pagedTable, act } from './common.js';
import * as serviceAccounts from './service_accounts.js';

const ROLES = ['USER', 'GAME_SERVER', 'OPERATOR', 'AUDITOR', 'ADMIN'];

export async function render(root) {
  const out = h('div', { 'aria-live': 'polite' });
  const list = pagedTable(['Username', 'Email', 'Roles', 'Status', 'Created', 'Actions'],
    (cursor) => get('/auth/users', { cursor, limit: 100 }),
    (u) => h('tr', { 'data-id': u.id }, h('td', null, u.username), h('td', null, u.email),
      h('td', null, u.roles.join(', ')), h('td', null, u.disabled ? `disabled${u.disabledReason ? `: ${u.disabledReason}` : ''}` : 'enabled'),
      h('td', null, fmtTime(u.createdAt)),
      h('td', { class: 'row-actions' }, rolesButton(u, out, () => list.reload()), statusButton(u, out, () => list.reload()))),
    'Accounts');
  const services = h('div', { id: 'admin-service-accounts' });
  clear(root, h('h1', null, 'Admin'),
    h('h2', null, 'Accounts and roles'), out, list.el,
    h('h2', null, 'Service accounts'), services,
    h('h2', null, 'Webhooks'),
    h('p', { id: 'admin-webhooks' }, 'Signed HTTP notifications of grants to game servers: endpoints, their secrets and ',
      'deliveries are on the ', h('a', { href: '#/webhooks' }, 'Webhooks'), ' page.'));
  await Promise.all([list.reload(), serviceAccounts.render(services)]);
}

function rolesButton(u, out, reload) {
  const b = h('button', { type: 'button', 'aria-label': `Roles of ${u.username}` }, 'Roles…');
  b.addEventListener('click', () => act(b, out, async () => {
    const boxes = ROLES.map((r) => h('input', { type: 'checkbox', id: `role-${r}`, value: r, checked: u.roles.includes(r) }));
    const set = h('fieldset', null, h('legend', null, 'Roles'),
      boxes.map((c) => h('div', { class: 'check' }, c, h('label', { for: c.id }, c.value))));
    if (!await confirmDialog(`Roles of ${u.username}`, 'A change ends the account’s sessions (it signs in again).', 'Save roles', set)) return;
    const roles = boxes.filter((c) => c.checked).map((c) => c.value);
    await put(`/auth/users/${u.id}/roles`, { roles });
    clear(out, notice(`${u.username}: roles now ${roles.join(', ') || '(none)'}.`));
    await reload();
  }));
  return b;
}

function statusButton(u, out, reload) {
  const b = h('button', { type: 'button', class: u.disabled ? '' : 'danger', 'aria-label': `${u.disabled ? 'Enable' : 'Disable'} ${u.username}` },
    u.disabled ? 'Enable' : 'Disable');
  b.addEventListener('click', () => act(b, out, async () => {
    const reason = h('input', { maxlength: 500 });
    if (!await confirmDialog(`${u.disabled ? 'Enable' : 'Disable'} ${u.username}?`,
      u.disabled ? 'The account may sign in again.' : 'The account can no longer sign in; its tokens stop working.',
      u.disabled ? 'Enable' : 'Disable', u.disabled ? null : field('Reason', reason))) return;
    const body = { disabled: !u.disabled };
    if (!u.disabled && reason.value) body.reason = reason.value;
    await put(`/auth/users/${u.id}/status`, body);
    clear(out, notice(`${u.username} ${u.disabled ? 'enabled' : 'disabled'}.`));
    await reload();
  }));
  return b;
}

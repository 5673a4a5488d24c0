// audit.js - the two audit logs: operator changes to definitions and events, and account and
// role changes; filters, paging and CSV.
import { get } from '../api.js';
import { h, clear, field, fmtTime, json, errorBox, notice, select } from '../dom.js';
import { pagedTable, act } from './common.js';
import { toCsv, saveCsv } from '../csv.js';
import { go } from '../app.js';

const HEX24 = /^[0-9a-fA-F]{24}$/;
const LOGS = {
  events: { path: '/events/audit-log', label: 'Definitions and events' },
  accounts: { path: '/auth/audit-log', label: 'Accounts and roles' },
};

export async function render(root, params, q) {
  const which = LOGS[q.get('log')] ? q.get('log') : 'events';
  const log = LOGS[which];
  const filters = { actorId: q.get('actorId') || '', targetId: q.get('targetId') || '' };
  const logSel = select(Object.entries(LOGS).map(([k, v]) => [k, v.label]), which, { name: 'log' });
  const actor = h('input', { name: 'actorId', value: filters.actorId, autocomplete: 'off' });
  const target = h('input', { name: 'targetId', value: filters.targetId, autocomplete: 'off' });
  const out = h('div', { 'aria-live': 'polite' });
  const form = h('form', { class: 'filters', role: 'search' }, field('Log', logSel), field('Actor id', actor), field('Target id', target),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Show')));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const p = new URLSearchParams({ log: logSel.value });
    for (const [k, el] of [['actorId', actor], ['targetId', target]]) {
      const v = el.value.trim();
      if (v && !HEX24.test(v)) {
        clear(out, errorBox({ code: 'VALIDATION_FAILED', message: `${k} must be a 24-character hex id` }));
        return;
      }
      if (v) p.set(k, v);
    }
    go(`#/audit?${p}`);
  });
  const list = pagedTable(['At', 'Actor', 'Action', 'Target', 'Before', 'After'],
    (cursor) => get(log.path, { ...filters, cursor, limit: 50 }),
    (a) => h('tr', null, h('td', null, fmtTime(a.at)), h('td', null, a.actor ? a.actor.username || a.actor.id : '–'),
      h('td', null, a.action), h('td', null, a.target ? `${a.target.type} ${a.target.id}` : '–'),
      h('td', null, h('code', { class: 'clip' }, json(a.before))), h('td', null, h('code', { class: 'clip' }, json(a.after)))),
    log.label);
  const csvBtn = h('button', { type: 'button' }, 'Export CSV');
  csvBtn.addEventListener('click', () => act(csvBtn, out, async () => {
    const rows = [];
    let cursor = null;
    for (;;) {
      const p = await get(log.path, { ...filters, cursor, limit: 100 });
      rows.push(...p.items.map((a) => ({ at: a.at, actorId: a.actor && a.actor.id, actor: a.actor && a.actor.username,
        action: a.action, targetType: a.target && a.target.type, targetId: a.target && a.target.id, before: a.before, after: a.after })));
      if (!p.nextCursor || rows.length >= 100000) break;
      cursor = p.nextCursor;
    }
    saveCsv(toCsv(['at', 'actorId', 'actor', 'action', 'targetType', 'targetId', 'before', 'after'], rows), `audit-${which}.csv`);
    clear(out, notice(`Saved ${rows.length} entries as audit-${which}.csv.`));
  }));
  clear(root, h('h1', null, 'Audit logs'), form, h('div', { class: 'toolbar' }, csvBtn), out, list.el);
  await list.reload();
}

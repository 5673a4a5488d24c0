// ledger.js - the append-only grant ledger with filters and paging, its CSV, and the server's
// streamed export of the reward requests.
import { get, api } from '../api.js';
import { h, clear, field, fmtTime, errorBox, notice, select } from '../dom.js';
import { pagedTable, act } from './common.js';
import { toCsv, saveCsv, saveBlob } from '../csv.js';
import { go } from '../app.js';

const HEX24 = /^[0-9a-fA-F]{24}$/;
const COLUMNS = ['seq', 'at', 'entryType', 'userId', 'eventId', 'requestId', 'rewardIndex', 'rewardDefinitionId', 'quantity', 'processorId'];
const EXPORT_MAX_ROWS = 100000;

export async function render(root, params, q) {
  const filters = { userId: q.get('userId') || '', eventId: q.get('eventId') || '' };
  const user = h('input', { name: 'userId', value: filters.userId, autocomplete: 'off' });
  const event = h('input', { name: 'eventId', value: filters.eventId, autocomplete: 'off' });
  const out = h('div', { 'aria-live': 'polite' });
  const form = h('form', { class: 'filters', role: 'search' }, field('Player id', user, '/userId'), field('Event id', event, '/eventId'),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Filter')));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const p = new URLSearchParams();
    for (const [k, el] of [['userId', user], ['eventId', event]]) {
      const v = el.value.trim();
      if (v && !HEX24.test(v)) {
        clear(out, errorBox({ code: 'VALIDATION_FAILED', message: `${k} must be a 24-character hex id` }));
        return;
      }
      if (v) p.set(k, v);
    }
    go(`#/ledger${p.toString() ? `?${p}` : ''}`);
  });
  const list = pagedTable(['Seq', 'At', 'Entry', 'Player', 'Event', 'Request', 'Reward', 'Quantity'],
    (cursor) => get('/events/ledger', { ...filters, after: cursor, limit: 100 }),
    (e) => h('tr', { 'data-entry': e.entryType, 'data-request': e.requestId },
      h('td', null, String(e.seq)), h('td', null, fmtTime(e.at)), h('td', null, e.entryType),
      h('td', null, h('a', { href: `#/players/${e.userId}` }, h('code', null, e.userId))), h('td', null, h('code', null, e.eventId)),
      h('td', null, h('code', null, e.requestId)), h('td', null, h('code', null, e.rewardDefinitionId)), h('td', { class: 'num' }, String(e.quantity))),
    'Ledger entries, oldest first');
  const csvBtn = h('button', { type: 'button' }, 'Export ledger CSV');
  csvBtn.addEventListener('click', () => act(csvBtn, out, async () => {
    const rows = [];
    let after = null;
    for (;;) {
      const p = await get('/events/ledger', { ...filters, after, limit: 100 });
      rows.push(...p.items);
      if (!p.hasMore || rows.length >= EXPORT_MAX_ROWS) break;
      after = p.nextCursor;
    }
    saveCsv(toCsv(COLUMNS, rows), 'ledger.csv');
    clear(out, notice(`Saved ${rows.length} ledger entries as ledger.csv.`));
  }));
  const fmt = select(['csv', 'ndjson'], 'csv', { name: 'format' });
  const reqBtn = h('button', { type: 'button' }, 'Export reward requests');
  reqBtn.addEventListener('click', () => act(reqBtn, out, async () => {
    const res = await api('GET', '/events/reward-requests/export', { params: { ...filters, format: fmt.value }, raw: true });
    const blob = await res.blob();
    saveBlob(blob, `reward-requests.${fmt.value}`);
    clear(out, notice(`Saved reward-requests.${fmt.value} (${blob.size} bytes).`));
  }));
  clear(root, h('h1', null, 'Ledger'), form,
    h('div', { class: 'toolbar' }, csvBtn, field('Request export format', fmt), reqBtn), out, list.el);
  await list.reload();
}

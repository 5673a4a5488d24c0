// batches.js - batch grants: a CSV of player ids pasted or uploaded, a dry run, the start, and a
// live progress bar with counts per status and failure reason, then the failed items.
import { get, api } from '../api.js';
import { h, clear, field, select, fmtTime, errorBox, notice } from '../dom.js';
import { canWrite, pagedTable, act } from './common.js';
import { go } from '../app.js';

const HEX24 = /^[0-9a-fA-F]{24}$/;
const POLL_MS = 1000;

// Player ids from CSV text: every cell that is a 24-hex id (a header row or other columns are
// skipped and counted).
export function parseIds(text) {
  const ids = [];
  let skipped = 0;
  for (const cell of text.split(/[\s,;"]+/)) {
    if (!cell) continue;
    if (HEX24.test(cell)) ids.push(cell.toLowerCase());
    else skipped += 1;
  }
  return { ids, skipped };
}

function randomKey() {
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
}

export async function renderList(root) {
  const events = await get('/events', { limit: 100 });
  const titles = new Map(events.items.map((e) => [e.id, e.title]));
  const list = pagedTable(['Created', 'Event', 'Players', 'Reason', 'By', ''],
    (cursor) => get('/events/batches', { cursor, limit: 20 }),
    (b) => h('tr', { 'data-id': b.id }, h('td', null, fmtTime(b.createdAt)), h('td', null, titles.get(b.eventId) || b.eventId),
      h('td', null, String(b.total)), h('td', null, b.reason), h('td', null, h('code', null, b.createdBy)),
      h('td', null, h('a', { href: `#/batches/${b.id}` }, 'Progress'))),
    'Batches, newest first');
  clear(root, h('h1', null, 'Batch grants'), canWrite() ? newBatchForm(events.items) : null,
    h('h2', null, 'Batches'), list.el);
  await list.reload();
}

function newBatchForm(events) {
  const open = events.filter((e) => e.status === 'ACTIVE' || e.status === 'UPCOMING');
  const ev = select([['', 'Choose an event…'], ...open.map((e) => [e.id, `${e.title} (${e.status})`])], '', { name: 'event' });
  const ids = h('textarea', { name: 'userIds', rows: 4, class: 'mono', placeholder: 'one player id per line, or a CSV' });
  const file = h('input', { type: 'file', accept: '.csv,text/csv,text/plain', name: 'csv' });
  const reason = h('input', { name: 'reason', maxlength: 500 });
  const summary = h('p', { class: 'muted', 'aria-live': 'polite', id: 'batch-ids-summary' });
  const out = h('div', { 'aria-live': 'polite' });
  const dry = h('button', { type: 'button' }, 'Dry run');
  const start = h('button', { type: 'submit', class: 'primary' }, 'Start batch');
  let fromFile = null;
  let key = randomKey();
  const current = () => {
    const p = parseIds(fromFile !== null ? fromFile : ids.value);
    summary.textContent = `${p.ids.length} player id(s)${p.skipped ? `, ${p.skipped} other cell(s) skipped` : ''}${fromFile !== null ? ' from the file' : ''}.`;
    return p;
  };
  ids.addEventListener('input', () => {
    fromFile = null;
    key = randomKey();
    current();
  });
  file.addEventListener('change', async () => {
    fromFile = file.files.length ? await file.files[0].text() : null;
    key = randomKey();
    current();
  });
  const body = () => {
    const p = current();
    if (!ev.value) throw { code: 'NO_EVENT', message: 'choose an event' };
    if (!p.ids.length) throw { code: 'NO_PLAYERS', message: 'paste or upload at least one player id' };
    if (!reason.value.trim()) throw { code: 'NO_REASON', message: 'give a reason (it becomes every grant’s notes)' };
    return { userIds: p.ids, reason: reason.value.trim() };
  };
  dry.addEventListener('click', () => act(dry, out, async () => {
    const r = await api('POST', `/events/${ev.value}/batch-grants`, { body: body(), params: { dryRun: 'true' } });
    clear(out, h('div', { class: 'notice ok', id: 'dry-run-result', role: 'status' },
      h('p', null, `Dry run: ${r.items} player(s) would give:`),
      h('ul', null, Object.entries(r.expected).map(([k, v]) => h('li', null, `${k}: ${v}`)))));
  }));
  const form = h('form', { novalidate: true, class: 'panel', 'aria-labelledby': 'new-batch' },
    h('h2', { id: 'new-batch' }, 'New batch'),
    field('Event', ev), field('Player ids (paste)', ids), field('…or upload a CSV file', file), summary,
    field('Reason', reason), out, h('div', { class: 'actions' }, dry, start));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    act(start, out, async () => {
      const r = await api('POST', `/events/${ev.value}/batch-grants`, { body: body(), headers: { 'Idempotency-Key': key } });
      go(`#/batches/${r.id}`);
    });
  });
  return form;
}

export async function renderOne(root, params) {
  const bar = h('progress', { max: 1, value: 0, id: 'batch-progress', 'aria-labelledby': 'batch-progress-label' });
  const label = h('p', { id: 'batch-progress-label' }, 'Progress');
  const counts = h('div', { 'aria-live': 'polite' });
  const failed = h('div');
  const errs = h('div');
  clear(root, h('h1', null, 'Batch ', h('code', null, params.id)), errs, label, bar, counts, h('h2', null, 'Failed items'), failed,
    h('p', null, h('a', { href: '#/batches' }, 'All batches')));
  let b = await get(`/events/batches/${params.id}`);
  let ev = null;
  try {
    ev = await get(`/events/${b.eventId}`);
  } catch (e) {
    ev = null;
  }
  const show = () => {
    const settled = b.counts.SUCCESS + b.counts.FAILED;
    const pct = b.total ? Math.floor((settled * 100) / b.total) : 100;
    bar.max = b.total || 1;
    bar.value = settled;
    bar.textContent = `${pct} %`;
    label.textContent = `${ev ? ev.title : b.eventId}: ${settled} of ${b.total} settled (${pct} %) · ${b.status}`;
    label.dataset.percent = String(pct);
    label.dataset.status = b.status;
    clear(counts, h('dl', { class: 'facts' },
      ['QUEUED', 'SUCCESS', 'FAILED'].map((k) => [h('dt', null, k), h('dd', { 'data-count': k }, String(b.counts[k]))]),
      Object.entries(b.failures).map(([k, v]) => [h('dt', null, `failed: ${k}`), h('dd', { 'data-failure': k }, String(v))])),
    h('p', { class: 'muted' }, `Reason: ${b.reason} · created ${fmtTime(b.createdAt)} · last settled ${fmtTime(b.lastSettledAt)}`
      + (b.duplicates ? ` · ${b.duplicates} repeated id(s) dropped` : '')));
  };
  show();
  while (b.status === 'RUNNING' && root.isConnected) {
    await new Promise((r) => setTimeout(r, POLL_MS));
    if (!root.isConnected) return;
    try {
      b = await get(`/events/batches/${params.id}`);
      clear(errs);
    } catch (err) {
      clear(errs, errorBox(err));
    }
    show();
  }
  if (!root.isConnected) return;
  const list = pagedTable(['#', 'Player', 'Reason', 'Request', 'Attempts', 'Settled'],
    (cursor) => get(`/events/batches/${params.id}/items`, { status: 'FAILED', cursor, limit: 100 }),
    (it) => h('tr', null, h('td', null, String(it.seq)), h('td', null, h('a', { href: `#/players/${it.userId}` }, h('code', null, it.userId))),
      h('td', null, it.failureReason), h('td', null, it.requestId ? h('code', null, it.requestId) : '–'),
      h('td', null, String(it.attempts)), h('td', null, fmtTime(it.settledAt))),
    'Failed items');
  clear(failed, list.el);
  await list.reload();
  root.prepend(notice(`Batch ${b.status.toLowerCase()}.`));
}

// players.js - player lookup by id (or, for admins, by username): progress, claim history,
// eligibility for an event, and revoking a SUCCESS with a reason.
import { get, post, hasRole } from '../api.js';
import { h, clear, field, select, fmtTime, errorBox, notice, confirmDialog, table } from '../dom.js';
import { badge, canWrite, act } from './common.js';
import { go } from '../app.js';

const HEX24 = /^[0-9a-fA-F]{24}$/;

async function findByUsername(name) {
  const want = name.toLowerCase();
  let cursor = null;
  for (let i = 0; i < 50; i++) {
    const p = await get('/auth/users', { cursor, limit: 100 });
    const u = p.items.find((x) => x.username.toLowerCase() === want || (x.email || '').toLowerCase() === want);
    if (u) return u;
    if (!p.nextCursor) break;
    cursor = p.nextCursor;
  }
  return null;
}

export async function render(root, params) {
  const q = h('input', { name: 'player', value: params.id || '', autocomplete: 'off' });
  const out = h('div', { 'aria-live': 'polite' });
  const form = h('form', { class: 'filters', role: 'search' },
    field(hasRole('ADMIN') ? 'Player id or username' : 'Player id', q, null,
      hasRole('ADMIN') ? null : 'Usernames are searchable by admins only; the id is in requests and the ledger.'),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Look up')));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const v = q.value.trim();
    clear(out);
    if (HEX24.test(v)) {
      go(`#/players/${v.toLowerCase()}`);
      return;
    }
    if (!hasRole('ADMIN')) {
      clear(out, errorBox({ code: 'INVALID_PLAYER_ID', message: 'enter the player’s 24-character id' }));
      return;
    }
    try {
      const u = await findByUsername(v);
      if (u) go(`#/players/${u.id}`);
      else clear(out, errorBox({ code: 'USER_NOT_FOUND', message: `no account is named "${v}"` }));
    } catch (err) {
      clear(out, errorBox(err));
    }
  });
  clear(root, h('h1', null, 'Players'), form, out);
  if (params.id) await showPlayer(root, params.id);
  else q.focus();
}

async function showPlayer(root, id) {
  const box = h('div', { id: 'player' });
  root.append(box);
  const [progress, events] = await Promise.all([
    get(`/events/progress/${id}`).catch((err) => ({ error: err })),
    get('/events', { limit: 100 }).catch(() => ({ items: [] })),
  ]);
  const titles = new Map(events.items.map((e) => [e.id, e.title]));
  box.append(h('h2', null, 'Player ', h('code', null, id)));
  if (progress.error) box.append(errorBox(progress.error));
  else {
    box.append(h('dl', { class: 'facts' },
      h('dt', null, 'Highest level'), h('dd', null, String(progress.maxLevel)),
      h('dt', null, 'Login days'), h('dd', null, String(progress.loginDays)),
      h('dt', null, 'Last login'), h('dd', null, fmtTime(progress.lastLoginAt)),
      h('dt', null, 'Friends invited'), h('dd', null, String(progress.invites)),
      h('dt', null, 'Quests'), h('dd', null, progress.questsCompleted.join(', ') || '–'),
      h('dt', null, 'Counters'), h('dd', null, Object.entries(progress.counters).map(([k, v]) => `${k}: ${v}`).join(', ') || '–')));
  }
  // eligibility
  const open = events.items.filter((e) => e.status === 'ACTIVE' || e.status === 'UPCOMING');
  const pick = select([['', 'Choose an event…'], ...open.map((e) => [e.id, `${e.title} (${e.status})`])], '', { id: 'elig-event' });
  const eligOut = h('div', { 'aria-live': 'polite' });
  const check = h('button', { type: 'button' }, 'Check eligibility');
  check.addEventListener('click', () => act(check, eligOut, async () => {
    if (!pick.value) throw { code: 'NO_EVENT', message: 'choose an event first' };
    const r = await get(`/events/${pick.value}/eligibility`, { userId: id });
    clear(eligOut, h('p', { class: r.eligible ? 'notice ok' : 'notice warn', id: 'elig-result' },
      r.eligible ? 'Eligible: a claim would succeed now.' : `Not eligible: ${r.reason}`,
      r.stockLeft !== null ? ` · stock left ${r.stockLeft}` : '',
      r.existingRequestId ? ` · existing request ${r.existingRequestId}` : ''),
    r.unmet && r.unmet.length ? h('ul', null, r.unmet.map((u) =>
      h('li', null, `${u.type}: required ${JSON.stringify(u.required)}, current ${JSON.stringify(u.current)}`))) : null);
  }));
  box.append(h('h3', null, 'Eligibility'), h('div', { class: 'filters' }, field('Event', pick), h('div', { class: 'actions' }, check)), eligOut);
  // history
  const histOut = h('div', { 'aria-live': 'polite' });
  const hist = h('div');
  box.append(h('h3', null, 'Claim history'), histOut, hist);
  const load = async () => {
    const page = await get('/events/reward-requests', { userId: id, limit: 100 });
    clear(hist, table(['Requested', 'Event', 'Status', 'Rewards', 'Source', 'Reason / notes', canWrite() ? 'Actions' : null].filter(Boolean),
      page.items.map((r) => h('tr', { 'data-id': r.id },
        h('td', null, fmtTime(r.requestedAt)), h('td', null, titles.get(r.eventId) || r.eventId), h('td', null, badge(r.status)),
        h('td', null, r.claimedRewards.map((c) => `${c.quantity} × ${c.name}`).join(', ')), h('td', null, r.source),
        h('td', null, [r.failureReason, r.notes].filter(Boolean).join(' · ') || '–'),
        canWrite() ? h('td', null, r.status === 'SUCCESS' ? revokeButton(r, titles, histOut, load) : null) : null)),
      'Requests, newest first'));
  };
  await load();
}

function revokeButton(r, titles, out, reload) {
  const b = h('button', { type: 'button', class: 'danger', 'aria-label': `Revoke request ${r.id}` }, 'Revoke');
  b.addEventListener('click', () => act(b, out, async () => {
    const reason = h('input', { maxlength: 1000, required: true, id: 'revoke-reason' });
    const what = h('div', null,
      h('p', null, `This reverses request ${r.id} of "${titles.get(r.eventId) || r.eventId}":`),
      h('ul', null, r.claimedRewards.map((c) => h('li', null, `−${c.quantity} × ${c.name} (${c.type})`))),
      h('p', null, 'Reversal entries go to the ledger, the stock returns and game servers get reward.revoked.'));
    let ok = false;
    while (!ok) {
      if (!await confirmDialog('Revoke this grant?', what, 'Revoke', field('Reason (required)', reason))) return;
      ok = reason.value.trim() !== '';
    }
    const done = await post(`/events/reward-requests/${r.id}/revoke`, { reason: reason.value.trim() });
    clear(out, notice(`Revoked request ${done.id}: now ${done.status}.`));
    await reload();
  }));
  return b;
}

// reviews.js - the review queue: AWAITING_REVIEW requests with the player's progress beside the
// event's conditions, approved or rejected with notes.
import { get, post } from '../api.js';
import { h, clear, field, fmtTime, json, errorBox, notice } from '../dom.js';
import { canWrite, badge } from './common.js';

// The player's standing on one condition, from GET /events/progress/{userId}.
export function progressOf(cond, p) {
  if (!p) return { current: '–', met: null };
  switch (cond.type) {
    case 'LEVEL_ACHIEVE': return { current: p.maxLevel, met: p.maxLevel >= cond.value };
    case 'LOGIN_DAYS': return { current: p.loginDays, met: p.loginDays >= cond.value };
    case 'LOGIN_STREAK':
      return p.loginStreak === undefined ? { current: `${p.loginDays} login day(s)`, met: null }
        : { current: p.loginStreak, met: p.loginStreak >= cond.value };
    case 'INVITE_FRIENDS': return { current: p.invites, met: p.invites >= cond.value };
    case 'QUEST_COMPLETE': {
      const done = (p.questsCompleted || []).includes(cond.value);
      return { current: done ? 'completed' : 'not completed', met: done };
    }
    case 'COUNTER': {
      const v = (p.counters || {})[cond.value && cond.value.key] || 0;
      return { current: v, met: v >= (cond.value && cond.value.min) };
    }
    default: return { current: '–', met: null };
  }
}

export function conditionsTable(ev, progress) {
  if (!ev.conditions.length) return h('p', { class: 'muted' }, 'This event has no conditions.');
  return h('table', { class: 'compact' },
    h('caption', null, `Conditions (${ev.conditionLogic === 'ANY' ? 'any one' : 'all'} must hold)`),
    h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Condition'), h('th', { scope: 'col' }, 'Required'),
      h('th', { scope: 'col' }, 'Player'), h('th', { scope: 'col' }, 'Met'))),
    h('tbody', null, ev.conditions.map((c) => {
      const s = progressOf(c, progress);
      return h('tr', null, h('td', null, c.description || c.type), h('td', null, typeof c.value === 'object' ? json(c.value) : String(c.value)),
        h('td', null, String(s.current)), h('td', null, s.met === null ? '?' : s.met ? 'yes' : 'no'));
    })));
}

export async function render(root) {
  const out = h('div', { 'aria-live': 'polite' });
  const list = h('div', { class: 'cards' });
  clear(root, h('h1', null, 'Review queue'),
    h('p', { class: 'muted' }, 'Claims of events that need an operator’s approval, oldest first.'), out, list);
  const page = await get('/events/reward-requests', { status: 'AWAITING_REVIEW', limit: 50 });
  const items = page.items.slice().sort((a, b) => a.requestedAt.localeCompare(b.requestedAt));
  const events = new Map();
  await Promise.all([...new Set(items.map((r) => r.eventId))].map(async (id) => {
    try {
      events.set(id, await get(`/events/${id}`));
    } catch (e) {
      events.set(id, null);
    }
  }));
  const progress = new Map();
  await Promise.all([...new Set(items.map((r) => r.userId))].map(async (id) => {
    try {
      progress.set(id, await get(`/events/progress/${id}`));
    } catch (e) {
      progress.set(id, null);
    }
  }));
  if (!items.length) list.append(h('p', { id: 'queue-empty' }, 'No request is waiting for review.'));
  for (const r of items) list.append(card(r, events.get(r.eventId), progress.get(r.userId), out));
  if (page.nextCursor) list.append(h('p', { class: 'muted' }, 'More requests are waiting; decide these first.'));
}

function card(r, ev, progress, out) {
  const cardOut = h('div', { 'aria-live': 'polite' });
  const notes = h('input', { maxlength: 1000, name: 'notes' });
  const decide = async (verb, btn) => {
    btn.disabled = true;
    clear(cardOut);
    try {
      const done = await post(`/events/reward-requests/${r.id}/${verb}`, notes.value ? { notes: notes.value } : {});
      art.remove();
      clear(out, notice(`Request ${r.id} ${verb === 'approve' ? 'approved' : 'rejected'}: now ${done.status}${done.failureReason ? ` (${done.failureReason})` : ''}.`));
    } catch (err) {
      clear(cardOut, errorBox(err));
      btn.disabled = false;
    }
  };
  const approve = h('button', { type: 'button', class: 'primary' }, 'Approve');
  const reject = h('button', { type: 'button', class: 'danger' }, 'Reject');
  approve.addEventListener('click', () => decide('approve', approve));
  reject.addEventListener('click', () => decide('reject', reject));
  const titleId = `req-${r.id}`;
  const art = h('article', { class: 'card', 'data-id': r.id, 'aria-labelledby': titleId },
    h('h2', { id: titleId }, ev ? ev.title : r.eventId, ' ', badge(r.status)),
    h('p', null, 'Player ', h('a', { href: `#/players/${r.userId}` }, h('code', null, r.userId)),
      ` · requested ${fmtTime(r.requestedAt)} · rewards: `,
      r.claimedRewards.map((c) => `${c.quantity} × ${c.name}`).join(', ')),
    ev ? conditionsTable(ev, progress) : h('p', { class: 'muted' }, 'The event could not be read.'),
    canWrite() ? h('div', { class: 'decide' }, field('Notes', notes), h('div', { class: 'actions' }, approve, reject)) : null,
    cardOut);
  return art;
}

// events.js - the events list (status filter, start/end/clone/cancel) and the create/edit form.
import { get, post, patch } from '../api.js';
import { h, clear, errorBox, field, select, fmtTime, confirmDialog, clearFieldErrors, showFieldErrors, notice }
  from '../dom.js';
import { CONDITION_TYPES, validateEvent, intOrBlank } from '../validate.js';
import { badge, canWrite, pagedTable, act } from './common.js';
import { go, flashNext } from '../app.js';

const STATUSES = ['UPCOMING', 'ACTIVE', 'FINISHED', 'CANCELED'];

export async function renderList(root, params, q) {
  const status = q.get('status') || '';
  const filter = select([['', 'All'], ...STATUSES], status, { id: 'event-status-filter' });
  filter.addEventListener('change', () => go(filter.value ? `#/events?status=${filter.value}` : '#/events'));
  const out = h('div', { 'aria-live': 'polite' });
  const list = pagedTable(['Title', 'Status', 'Starts', 'Ends', 'Rewards', 'Approval', canWrite() ? 'Actions' : null]
    .filter(Boolean),
  (cursor) => get('/events', { status, cursor, limit: 50 }),
  (ev) => h('tr', { 'data-id': ev.id },
    h('td', null, ev.title), h('td', null, badge(ev.status)),
    h('td', null, fmtTime(ev.startDate)), h('td', null, fmtTime(ev.endDate)),
    h('td', null, ev.rewards.map((r) => `${r.quantity} × ${r.name}${r.stock !== null ? ` (${r.stockLeft}/${r.stock} left)` : ''}`)
      .join(', ')),
    h('td', null, ev.requiresApproval ? 'review' : 'automatic'),
    canWrite() ? h('td', { class: 'row-actions' }, actions(ev, out, () => list.reload())) : null),
  'Events');
  clear(root,
    h('div', { class: 'title-row' }, h('h1', null, 'Events'),
      canWrite() ? h('a', { href: '#/events/new', class: 'button primary' }, 'New event') : null),
    h('div', { class: 'filters' }, field('Status', filter)),
    out, list.el);
  await list.reload();
}

function actions(ev, out, reload) {
  const btns = [h('a', { href: `#/events/${ev.id}/edit`, class: 'button' }, 'Edit')];
  const add = (label, fn, cls) => {
    const b = h('button', { type: 'button', class: cls, 'aria-label': `${label} ${ev.title}` }, label);
    b.addEventListener('click', () => act(b, out, async () => {
      if (await fn()) await reload();
    }));
    btns.push(b);
  };
  if (ev.status === 'UPCOMING') add('Start', async () => {
    if (!await confirmDialog('Start now?', `"${ev.title}" opens for claims at once.`, 'Start')) return false;
    await post(`/events/${ev.id}/start`);
    clear(out, notice(`Started "${ev.title}".`));
    return true;
  });
  if (ev.status === 'ACTIVE') add('End', async () => {
    if (!await confirmDialog('End now?', `"${ev.title}" stops taking claims at once.`, 'End')) return false;
    await post(`/events/${ev.id}/end`);
    clear(out, notice(`Ended "${ev.title}".`));
    return true;
  });
  add('Clone', () => cloneDialog(ev, out));
  if (ev.status === 'UPCOMING' || ev.status === 'ACTIVE') add('Cancel', async () => {
    const reason = h('input', { maxlength: 500 });
    if (!await confirmDialog('Cancel event?',
      `"${ev.title}" will be canceled for good; requests awaiting review fail with EVENT_CANCELED.`,
      'Cancel event', field('Reason (optional)', reason))) return false;
    const r = await post(`/events/${ev.id}/cancel`, reason.value ? { reason: reason.value } : {});
    clear(out, notice(`Canceled "${ev.title}"; ${r.settledRequests || 0} pending request(s) settled.`));
    return true;
  }, 'danger');
  return btns;
}

async function cloneDialog(ev, out) {
  const span = Date.parse(ev.endDate) - Date.parse(ev.startDate);
  const start = new Date(Math.max(Date.now(), Date.parse(ev.endDate)));
  const title = h('input', { value: `${ev.title} (copy)`.slice(0, 200) });
  const s = h('input', { value: isoSeconds(start) });
  const e = h('input', { value: isoSeconds(new Date(start.getTime() + span)) });
  const form = h('div', null, field('Title', title, '/title'), field('Starts (UTC, ISO 8601)', s, '/startDate'),
    field('Ends (UTC, ISO 8601)', e, '/endDate'));
  if (!await confirmDialog('Clone event', `A new event with the conditions and rewards of "${ev.title}".`,
    'Clone', form)) return false;
  const made = await post(`/events/${ev.id}/clone`, { title: title.value, startDate: s.value, endDate: e.value });
  clear(out, notice(`Cloned as "${made.title}" (${made.status}).`));
  return true;
}

export function isoSeconds(d) {
  return d.toISOString().replace(/\.\d+Z$/, 'Z');
}

function conditionRow(c, remove) {
  const type = select(CONDITION_TYPES, c.type || 'LEVEL_ACHIEVE', { class: 'c-type' });
  const value = h('input', { class: 'c-value', value: c.value === undefined ? '' : (typeof c.value === 'object' ? JSON.stringify(c.value) : String(c.value)) });
  const desc = h('input', { class: 'c-desc', value: c.description || '', maxlength: 500 });
  const rm = h('button', { type: 'button', class: 'small' }, 'Remove condition');
  const row = h('fieldset', { class: 'row' }, h('legend', null, 'Condition'),
    field('Type', type, ''), field('Value', value, '', 'a level, a number of days or friends, a quest id, or {"key": …, "min": …}'),
    field('Description', desc, ''), rm);
  rm.addEventListener('click', () => remove(row));
  return row;
}

function rewardRow(r, defs, remove) {
  const opts = [['', 'Choose…'], ...defs.map((d) => [d.id, `${d.name} (${d.type})${d.isActive ? '' : ' – inactive'}`])];
  const def = select(opts, r.rewardDefinitionId || '', { class: 'r-def' });
  const qty = h('input', { class: 'r-qty', inputmode: 'numeric', value: r.quantity === undefined ? '1' : String(r.quantity) });
  const stock = h('input', { class: 'r-stock', inputmode: 'numeric', value: r.stock === null || r.stock === undefined ? '' : String(r.stock) });
  const rm = h('button', { type: 'button', class: 'small' }, 'Remove reward');
  const row = h('fieldset', { class: 'row' }, h('legend', null, 'Reward'),
    field('Definition', def, ''), field('Quantity', qty, ''), field('Stock (blank: unlimited)', stock, ''), rm);
  rm.addEventListener('click', () => remove(row));
  return row;
}

function conditionValue(type, text) {
  const t = text.trim();
  if (type === 'QUEST_COMPLETE') return t;
  if (type === 'COUNTER') {
    try {
      return JSON.parse(t);
    } catch (e) {
      return t;
    }
  }
  return /^-?\d+$/.test(t) ? Number(t) : t;
}

export async function renderForm(root, params) {
  const editing = !!params.id;
  const [ev, defsPage] = await Promise.all([
    editing ? get(`/events/${params.id}`) : null,
    get('/events/reward-definitions', { limit: 100 }),
  ]);
  const defs = defsPage.items.filter((d) => d.isActive || (ev && ev.rewards.some((r) => r.rewardDefinitionId === d.id)));
  const now = new Date();
  const e = ev || {
    title: '', description: '', startDate: isoSeconds(now), endDate: isoSeconds(new Date(now.getTime() + 7 * 86400000)),
    conditions: [], conditionLogic: 'ALL', rewards: [{ quantity: 1 }], claimPeriod: 'ONCE', maxClaims: null,
    requiresApproval: false,
  };
  const title = h('input', { name: 'title', value: e.title, maxlength: 200, required: true });
  const desc = h('textarea', { name: 'description', rows: 3 }, e.description || '');
  const start = h('input', { name: 'startDate', value: e.startDate });
  const end = h('input', { name: 'endDate', value: e.endDate });
  const logic = select(['ALL', 'ANY'], e.conditionLogic, { name: 'conditionLogic' });
  const period = select(['ONCE', 'DAILY', 'WEEKLY'], e.claimPeriod, { name: 'claimPeriod' });
  const maxClaims = h('input', { name: 'maxClaims', inputmode: 'numeric', value: e.maxClaims === null ? '' : String(e.maxClaims) });
  const offset = h('input', { name: 'dayOffsetMinutes', inputmode: 'numeric', value: e.dayOffsetMinutes === undefined ? '' : String(e.dayOffsetMinutes) });
  const approval = h('input', { type: 'checkbox', name: 'requiresApproval', checked: !!e.requiresApproval });
  const conds = h('div', { class: 'rows' });
  const rewards = h('div', { class: 'rows' });
  const renumber = () => {
    [...conds.children].forEach((row, i) => {
      const [t, v, d] = row.querySelectorAll('.field');
      t.dataset.field = `/conditions/${i}/type`;
      v.dataset.field = `/conditions/${i}/value`;
      d.dataset.field = `/conditions/${i}/description`;
      row.querySelector('legend').textContent = `Condition ${i + 1}`;
    });
    [...rewards.children].forEach((row, i) => {
      const [d, q, s] = row.querySelectorAll('.field');
      d.dataset.field = `/rewards/${i}/rewardDefinitionId`;
      q.dataset.field = `/rewards/${i}/quantity`;
      s.dataset.field = `/rewards/${i}/stock`;
      row.querySelector('legend').textContent = `Reward ${i + 1}`;
    });
  };
  const removeRow = (row) => {
    row.remove();
    renumber();
  };
  for (const c of e.conditions) conds.append(conditionRow(c, removeRow));
  for (const r of e.rewards) rewards.append(rewardRow(r, defs, removeRow));
  const addCond = h('button', { type: 'button' }, 'Add condition');
  addCond.addEventListener('click', () => {
    conds.append(conditionRow({}, removeRow));
    renumber();
    conds.lastElementChild.querySelector('select').focus();
  });
  const addReward = h('button', { type: 'button' }, 'Add reward');
  addReward.addEventListener('click', () => {
    rewards.append(rewardRow({}, defs, removeRow));
    renumber();
    rewards.lastElementChild.querySelector('select').focus();
  });
  renumber();
  const out = h('div', { 'aria-live': 'polite' });
  const save = h('button', { type: 'submit', class: 'primary' }, editing ? 'Save changes' : 'Create event');
  const form = h('form', { novalidate: true, 'aria-labelledby': 'event-form-title' },
    field('Title', title, '/title'),
    field('Description', desc, '/description'),
    h('div', { class: 'two' },
      field('Starts (UTC, ISO 8601)', start, '/startDate', 'e.g. 2026-12-24T18:00:00Z'),
      field('Ends (UTC, ISO 8601)', end, '/endDate')),
    h('fieldset', { class: 'group' }, h('legend', null, 'Conditions'),
      h('div', { class: 'field', 'data-field': '/conditions' }, h('p', { class: 'field-error' })),
      field('Conditions that must hold', logic, '/conditionLogic'), conds, addCond),
    h('fieldset', { class: 'group' }, h('legend', null, 'Rewards'),
      h('div', { class: 'field', 'data-field': '/rewards' }, h('p', { class: 'field-error' })), rewards, addReward),
    h('div', { class: 'two' },
      field('Claim period', period, '/claimPeriod'),
      field('Max claims (blank: unlimited)', maxClaims, '/maxClaims'),
      field('Day offset, minutes (blank: default)', offset, '/dayOffsetMinutes')),
    h('div', { class: 'field check', 'data-field': '/requiresApproval' },
      approval, h('label', { for: approval.id || (approval.id = 'f-approval') }, 'Claims need an operator’s approval'),
      h('p', { class: 'field-error' })),
    out,
    h('div', { class: 'actions' }, save, h('a', { href: '#/events', class: 'button' }, 'Back to events')));
  form.addEventListener('submit', async (evt) => {
    evt.preventDefault();
    clearFieldErrors(form);
    clear(out);
    const body = {
      title: title.value,
      description: desc.value,
      startDate: start.value.trim(),
      endDate: end.value.trim(),
      conditionLogic: logic.value,
      conditions: [...conds.children].map((row) => {
        const type = row.querySelector('.c-type').value;
        const c = { type, value: conditionValue(type, row.querySelector('.c-value').value) };
        const d = row.querySelector('.c-desc').value;
        if (d) c.description = d;
        return c;
      }),
      rewards: [...rewards.children].map((row) => {
        const stock = intOrBlank(row.querySelector('.r-stock').value);
        return {
          rewardDefinitionId: row.querySelector('.r-def').value,
          quantity: intOrBlank(row.querySelector('.r-qty').value),
          stock: stock === undefined ? null : stock,
        };
      }),
      claimPeriod: period.value,
      maxClaims: intOrBlank(maxClaims.value) === undefined ? null : intOrBlank(maxClaims.value),
      requiresApproval: approval.checked,
    };
    const off = intOrBlank(offset.value);
    if (off !== undefined) body.dayOffsetMinutes = off;
    const problems = validateEvent(body);
    if (problems.length) {
      const left = showFieldErrors(form, problems);
      clear(out, h('p', { class: 'error', role: 'alert' }, 'Please correct the marked fields.'),
        left.length ? errorBox({ code: 'INVALID', message: '', details: left }) : null);
      return;
    }
    save.disabled = true;
    try {
      const saved = editing ? await patch(`/events/${ev.id}`, body) : await post('/events', body);
      flashNext(`${editing ? 'Saved' : 'Created'} event "${saved.title}" (${saved.status}).`);
      go('#/events');
    } catch (err) {
      const left = showFieldErrors(form, err.details);
      clear(out, errorBox({ ...err, details: left.length ? left : err.details, code: err.code, message: err.message, requestId: err.requestId }));
    } finally {
      save.disabled = false;
    }
  });
  clear(root, h('h1', { id: 'event-form-title' }, editing ? `Edit event: ${ev.title}` : 'New event'),
    editing ? h('p', { class: 'muted' }, 'Status: ', badge(ev.status), ' · id ', h('code', null, ev.id)) : null, form);
  title.focus();
}

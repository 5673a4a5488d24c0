// definitions.js - reward definitions: list, create, edit, deactivate.
import { get, post, patch } from '../api.js';
import { h, clear, field, select, fmtTime, json, confirmDialog, clearFieldErrors, showFieldErrors, errorBox, notice }
  from '../dom.js';
import { DEFINITION_TYPES, validateDefinition } from '../validate.js';
import { canWrite, pagedTable, act } from './common.js';
import { go, flashNext } from '../app.js';

export async function renderList(root) {
  const out = h('div', { 'aria-live': 'polite' });
  const list = pagedTable(['Name', 'Type', 'Value', 'Active', 'Updated', canWrite() ? 'Actions' : null].filter(Boolean),
    (cursor) => get('/events/reward-definitions', { cursor, limit: 50 }),
    (d) => h('tr', { 'data-id': d.id },
      h('td', null, d.name), h('td', null, d.type), h('td', null, h('code', null, json(d.value))),
      h('td', null, d.isActive ? 'yes' : 'no'), h('td', null, fmtTime(d.updatedAt)),
      canWrite() ? h('td', { class: 'row-actions' }, h('a', { href: `#/definitions/${d.id}/edit`, class: 'button' }, 'Edit'),
        d.isActive ? deactivate(d, out, () => list.reload()) : null) : null),
    'Reward definitions');
  clear(root,
    h('div', { class: 'title-row' }, h('h1', null, 'Reward definitions'),
      canWrite() ? h('a', { href: '#/definitions/new', class: 'button primary' }, 'New definition') : null),
    out, list.el);
  await list.reload();
}

function deactivate(d, out, reload) {
  const b = h('button', { type: 'button', class: 'danger', 'aria-label': `Deactivate ${d.name}` }, 'Deactivate');
  b.addEventListener('click', () => act(b, out, async () => {
    if (!await confirmDialog('Deactivate definition?',
      `"${d.name}" can no longer be added to new rewards; events that already use it keep it.`,
      'Deactivate')) return;
    await patch(`/events/reward-definitions/${d.id}`, { isActive: false });
    clear(out, notice(`Deactivated "${d.name}".`));
    await reload();
  }));
  return b;
}

export async function renderForm(root, params) {
  const editing = !!params.id;
  const d = editing ? await get(`/events/reward-definitions/${params.id}`)
    : { name: '', type: 'CURRENCY', value: { amount: 100 }, description: '', isActive: true };
  const name = h('input', { name: 'name', value: d.name, maxlength: 100 });
  const type = select(DEFINITION_TYPES, d.type, { name: 'type' });
  const value = h('textarea', { name: 'value', rows: 3, class: 'mono' }, JSON.stringify(d.value));
  const desc = h('textarea', { name: 'description', rows: 2 }, d.description || '');
  const active = h('input', { type: 'checkbox', id: 'def-active', checked: d.isActive });
  const out = h('div', { 'aria-live': 'polite' });
  const save = h('button', { type: 'submit', class: 'primary' }, editing ? 'Save changes' : 'Create definition');
  const form = h('form', { novalidate: true },
    field('Name', name, '/name'), field('Type', type, '/type'),
    field('Value (JSON)', value, '/value', 'any JSON: an amount, an item id, an object'),
    field('Description', desc, '/description'),
    h('div', { class: 'field check', 'data-field': '/isActive' }, active, h('label', { for: 'def-active' }, 'Active'),
      h('p', { class: 'field-error' })),
    out, h('div', { class: 'actions' }, save, h('a', { href: '#/definitions', class: 'button' }, 'Back to definitions')));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearFieldErrors(form);
    clear(out);
    const body = { name: name.value, type: type.value, description: desc.value, isActive: active.checked };
    const problems = [];
    try {
      body.value = JSON.parse(value.value);
    } catch (err) {
      problems.push({ field: '/value', reason: 'must be valid JSON' });
    }
    problems.push(...validateDefinition(body).filter((p) => p.field !== '/value' || !problems.length));
    if (problems.length) {
      showFieldErrors(form, problems);
      clear(out, h('p', { class: 'error', role: 'alert' }, 'Please correct the marked fields.'));
      return;
    }
    save.disabled = true;
    try {
      const saved = editing ? await patch(`/events/reward-definitions/${d.id}`, body)
        : await post('/events/reward-definitions', body);
      flashNext(`${editing ? 'Saved' : 'Created'} definition "${saved.name}".`);
      go('#/definitions');
    } catch (err) {
      showFieldErrors(form, err.details);
      clear(out, errorBox(err));
    } finally {
      save.disabled = false;
    }
  });
  clear(root, h('h1', null, editing ? `Edit definition: ${d.name}` : 'New reward definition'), form);
  name.focus();
}

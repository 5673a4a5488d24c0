// service_accounts.js - the Admin page's service accounts (ADMIN): the list with each account's
// live keys, create, rotate (with an optional grace period), revoke one key, delete an account.
//
// A new key (the 201 of create and rotate) is the only secret the console ever shows. It goes
// from the API's answer straight into one read-only field of a modal dialog and nowhere else:
// never into a URL, storage, a notice or the console log. Closing the dialog empties the field,
// removes the dialog and drops the last reference, so nothing of the page can show it again.
import { get, post, del, hasRole } from '../api.js';
import { h, clear, field, select, fmtTime, notice, errorBox, confirmDialog, nextId, table, clearFieldErrors,
  showFieldErrors } from '../dom.js';
import { pagedTable, act } from './common.js';

export const SERVICE_ROLES = ['GAME_SERVER', 'OPERATOR', 'AUDITOR'];
const GRACE_UNITS = [['60', 'minutes'], ['3600', 'hours'], ['86400', 'days'], ['1', 'seconds']];
const GRACE_MAX_S = 7 * 86400;

// Fills root (the Admin page's #admin-service-accounts) and loads the list; nothing for an
// account that is not ADMIN (the page itself is ADMIN-only too).
export async function render(root) {
  if (!hasRole('ADMIN')) {
    clear(root);
    return;
  }
  const out = h('div', { 'aria-live': 'polite', id: 'sa-out' });
  const list = pagedTable(['Name', 'Roles', 'Created', 'Live keys', 'Actions'],
    (cursor) => get('/auth/service-accounts', { cursor, limit: 100 }),
    (sa) => row(sa, out, () => list.reload()),
    'Service accounts');
  clear(root,
    h('p', { class: 'muted' }, 'Game servers and tools sign in with an API key of a service account ',
      '(Authorization: Bearer rpk_…). A key is shown once, when it is made; the platform keeps only a keyed hash.'),
    createForm(out, () => list.reload()), out, list.el);
  await list.reload();
}

function row(sa, out, reload) {
  const keys = sa.keys.length
    ? h('div', { class: 'keys' }, table(['Key id', 'Created', 'Expires', 'Last used', ''],
      sa.keys.map((k) => h('tr', { 'data-key': k.keyId },
        h('td', null, h('code', null, k.keyId)), h('td', null, fmtTime(k.createdAt)),
        h('td', null, k.expiresAt ? fmtTime(k.expiresAt) : 'never'), h('td', null, fmtTime(k.lastUsedAt)),
        h('td', null, revokeButton(sa, k, out, reload))))))
    : h('span', { class: 'muted' }, 'No live key: rotate to issue one.');
  return h('tr', { 'data-id': sa.id, 'data-name': sa.name },
    h('td', null, sa.name), h('td', null, sa.roles.join(', ')), h('td', null, fmtTime(sa.createdAt)),
    h('td', null, keys),
    h('td', { class: 'row-actions' }, rotateButton(sa, out, reload), deleteButton(sa, out, reload)));
}

function createForm(out, reload) {
  const name = h('input', { name: 'sa-name', maxlength: 32, autocomplete: 'off', spellcheck: 'false' });
  const boxes = SERVICE_ROLES.map((r) => h('input', { type: 'checkbox', id: nextId('sa-role'), value: r,
    checked: r === 'GAME_SERVER' }));
  const roles = h('fieldset', { class: 'field', 'data-field': '/roles' }, h('legend', null, 'Roles'),
    boxes.map((c) => h('div', { class: 'check' }, c, h('label', { for: c.id }, c.value))),
    h('p', { class: 'field-error' }));
  const status = h('div', { 'aria-live': 'polite' });
  const save = h('button', { type: 'submit', class: 'primary' }, 'Create service account');
  const form = h('form', { class: 'panel', id: 'sa-create', novalidate: true, 'aria-labelledby': 'sa-create-title' },
    h('h3', { id: 'sa-create-title' }, 'New service account'),
    field('Name', name, '/name', '3 to 32 letters, digits or underscores; unique among service accounts'),
    roles, status, h('div', { class: 'actions' }, save));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearFieldErrors(form);
    clear(status);
    clear(out);
    save.disabled = true;
    const body = { name: name.value.trim(), roles: boxes.filter((c) => c.checked).map((c) => c.value) };
    let made = null;
    try {
      made = await post('/auth/service-accounts', body);
    } catch (err) {
      // a taken name is the name field's fault, though the server names no field for it
      const details = err.code === 'NAME_TAKEN' ? [{ field: '/name', reason: err.message }] : err.details;
      showFieldErrors(form, details);
      clear(status, errorBox(err));
    } finally {
      save.disabled = false;
    }
    if (!made) return;
    name.value = '';
    const what = `${made.name} (${made.roles.join(', ')})`;
    await showKey(made, 'Service account created');
    clear(out, notice(`Created service account ${what}.`));
    await reload();
  });
  return form;
}

function rotateButton(sa, out, reload) {
  const b = h('button', { type: 'button', 'aria-label': `Rotate key of ${sa.name}` }, 'Rotate key…');
  b.addEventListener('click', () => act(b, out, async () => {
    const amount = h('input', { type: 'number', min: 0, step: 'any', inputmode: 'decimal', class: 'grace' });
    const unit = select(GRACE_UNITS, '3600', { class: 'grace-unit' });
    const live = sa.keys.length;
    let grace = 0;
    const made = await formDialog(`Rotate the key of ${sa.name}?`,
      h('p', null, `A new key is made and shown once. The ${live} live key(s) stop working now, or after the grace `,
        'period, so the game servers can switch over without downtime.'),
      h('div', { class: 'grace-row' },
        field('Grace period (optional)', amount, '/graceSeconds', 'empty or 0: the old keys stop now; at most 7 days'),
        field('Unit', unit)),
      'Rotate key',
      () => {
        const body = {};
        if (amount.validity.badInput) throw fieldError('/graceSeconds', 'must be a number');
        if (amount.value !== '') {
          const seconds = Math.round(Number(amount.value) * Number(unit.value));
          if (seconds > GRACE_MAX_S) throw fieldError('/graceSeconds', 'must be at most 7 days (604800 seconds)');
          body.graceSeconds = seconds;
        }
        grace = body.graceSeconds || 0;
        return post(`/auth/service-accounts/${sa.id}/keys`, body);
      });
    if (!made) return;
    await showKey(made, 'Key rotated');
    clear(out, notice(`Rotated the key of ${sa.name}: the old key(s) ${grace ? 'keep working for the grace period' : 'stop working now'}.`));
    await reload();
  }));
  return b;
}

function revokeButton(sa, k, out, reload) {
  const b = h('button', { type: 'button', class: 'danger small', 'aria-label': `Revoke key ${k.keyId} of ${sa.name}` },
    'Revoke');
  b.addEventListener('click', () => act(b, out, async () => {
    if (!await confirmDialog('Revoke this key?',
      h('p', null, 'Key ', h('code', null, k.keyId), ` of ${sa.name} stops working on every api process within about `,
        'a second. This cannot be undone; the account’s other keys keep working.'),
      'Revoke key')) return;
    await del(`/auth/service-accounts/${sa.id}/keys/${k.keyId}`);
    clear(out, notice(`Revoked key ${k.keyId} of ${sa.name}.`));
    await reload();
  }));
  return b;
}

function deleteButton(sa, out, reload) {
  const b = h('button', { type: 'button', class: 'danger', 'aria-label': `Delete ${sa.name}` }, 'Delete…');
  b.addEventListener('click', () => act(b, out, async () => {
    if (!await confirmDialog(`Delete service account ${sa.name}?`,
      `The account is removed and its ${sa.keys.length} live key(s) stop working on every api process within about `
      + 'a second. This cannot be undone.', 'Delete account')) return;
    await del(`/auth/service-accounts/${sa.id}`);
    clear(out, notice(`Deleted service account ${sa.name}.`));
    await reload();
  }));
  return b;
}

function fieldError(pointer, reason) {
  return { code: 'VALIDATION_FAILED', message: 'please correct the marked field', details: [{ field: pointer, reason }] };
}

// A modal form: submit() is called on the confirm button and may throw an ApiError (or the same
// shape); its field details are shown next to the dialog's fields and the dialog stays open.
// Resolves with what submit() resolved, or null when cancelled (Cancel or Escape).
function formDialog(title, intro, fields, confirmLabel, submit) {
  return new Promise((resolve) => {
    const titleId = nextId('dlg');
    const ok = h('button', { type: 'button', class: 'danger' }, confirmLabel);
    const cancel = h('button', { type: 'button' }, 'Cancel');
    const errs = h('div', { 'aria-live': 'polite' });
    const dlg = h('dialog', { 'aria-labelledby': titleId },
      h('h2', { id: titleId }, title), intro, fields, errs, h('div', { class: 'actions' }, ok, cancel));
    let busy = false;
    const done = (v) => {
      dlg.close();
      dlg.remove();
      resolve(v);
    };
    ok.addEventListener('click', async () => {
      if (busy) return;
      busy = true;
      ok.disabled = true;
      clearFieldErrors(dlg);
      clear(errs);
      try {
        done(await submit());
      } catch (err) {
        const left = showFieldErrors(dlg, err.details);
        const rest = { code: err.code, message: err.message, details: left, requestId: err.requestId };
        clear(errs, left.length || !(err.details || []).length ? errorBox(rest) : null);
        ok.disabled = false;
        busy = false;
      }
    });
    cancel.addEventListener('click', () => {
      if (!busy) done(null);
    });
    dlg.addEventListener('cancel', (e) => {
      e.preventDefault();
      if (!busy) done(null);
    });
    document.body.append(dlg);
    dlg.showModal();
    cancel.focus();
  });
}

// Shows made.key (a 201 of create or rotate) once, in a modal dialog with a copy button. The key
// is taken out of made first, so the caller's object no longer holds it; closing the dialog
// empties its field and drops it. Resolves when the dialog has closed.
function showKey(made, heading) {
  let key = made.key;
  delete made.key;
  return new Promise((resolve) => {
    const titleId = nextId('dlg');
    const input = h('input', { id: 'new-key', class: 'mono api-key', readonly: true, autocomplete: 'off',
      spellcheck: 'false', value: key });
    const copied = h('p', { class: 'muted', 'aria-live': 'polite', id: 'new-key-status' });
    const copy = h('button', { type: 'button', class: 'primary', id: 'copy-key' }, 'Copy key');
    const close = h('button', { type: 'button', id: 'close-key' }, 'I have stored the key: close');
    const dlg = h('dialog', { 'aria-labelledby': titleId, 'aria-describedby': `${titleId}-once`, class: 'key-dialog' },
      h('h2', { id: titleId }, `${heading}: ${made.name}`),
      h('p', { id: `${titleId}-once`, class: 'notice warn' },
        h('strong', null, 'This key is shown only now. '),
        'The platform keeps only a keyed hash of it, so it cannot be shown again once this dialog closes. ',
        'Store it where the game server or tool reads its configuration; if it is lost, rotate to make a new one.'),
      field('API key', input),
      h('p', null, 'Key id ', h('code', null, made.keyId), ' (the list names the key by it; it is not the key)'),
      copied, h('div', { class: 'actions' }, copy, close));
    copy.addEventListener('click', async () => {
      copied.textContent = '';
      try {
        if (!navigator.clipboard || !key) throw new Error('no clipboard');
        await navigator.clipboard.writeText(key);
        copied.textContent = 'Copied to the clipboard.';
      } catch (e) {
        // no clipboard outside a secure context (HTTPS or localhost), or the browser said no
        input.focus();
        input.select();
        copied.textContent = 'The browser did not allow copying: the key is selected, copy it with Ctrl+C.';
      }
    });
    const done = () => {
      input.value = '';
      key = null;
      dlg.close();
      dlg.remove();
      resolve();
    };
    close.addEventListener('click', done);
    dlg.addEventListener('cancel', (e) => {
      e.preventDefault();
      done();
    });
    document.body.append(dlg);
    dlg.showModal();
    copy.focus();
  });
}

// webhooks.js - the Webhooks page: signed HTTP endpoints (list, create with the signing secret
// shown once, edit, delete, ping) and, for OPERATOR and ADMIN, each endpoint's deliveries with
// every attempt and a redeliver button. An AUDITOR reads the endpoints only: the delivery log
// (GET /events/webhooks/{id}/deliveries) is not open to that role, so it is never asked for.
import { get, post, patch, del } from '../api.js';
import { h, clear, field, select, fmtTime, errorBox, notice, confirmDialog, clearFieldErrors, showFieldErrors, nextId }
  from '../dom.js';
import { badge, canWrite, pagedTable, act } from './common.js';
import { go, flashNext } from '../app.js';

// the types of schemas/webhook.create.json, with what sends each (DESIGN section 10)
export const TYPES = [
  ['reward.granted', 'a claim or batch item paid'],
  ['reward.revoked', 'a grant revoked'],
  ['reward.awaiting_review', 'a claim waiting for an operator'],
  ['batch.completed', 'a batch grant settled'],
  ['event.canceled', 'an event canceled'],
  ['event.ended', 'an event ended'],
  ['webhook.ping', 'a test message (Ping sends one whatever the types)'],
];
const TYPE_NAMES = TYPES.map((t) => t[0]);
const DELIVERY_STATUSES = ['PENDING', 'DELIVERED', 'FAILED'];
const DISABLED_WHY = {
  GONE: 'GONE: the receiver answered 410 Gone',
  FAILING: 'FAILING: every delivery failed for WEBHOOK_DISABLE_AFTER',
};
const PAGE = 20;
const POLL_MS = 1000;

const STAFF = ['OPERATOR', 'AUDITOR', 'ADMIN'];
const WRITERS = ['OPERATOR', 'ADMIN'];
// the console's routes of this page (app.js takes them as they are): pattern, view, roles, nav label
export const ROUTES = [
  ['webhooks', renderList, STAFF, 'Webhooks'],
  ['webhooks/new', renderForm, WRITERS, null],
  ['webhooks/:id', renderOne, STAFF, null],
  ['webhooks/:id/edit', renderForm, WRITERS, null],
];

function hasHost(url) {
  try {
    return new URL(url).hostname !== '';
  } catch (e) {
    return false;
  }
}

// The checks the server makes on a create (creating) or PATCH body: schemas/webhook.*.json and
// read_fields() of workers/reward/webhooks.c, with the same field pointers. The server stays the
// judge of what only it knows: whether http:// is allowed here (WEBHOOK_ALLOW_HTTP) and what its
// URL parser (libcurl's) accepts as a host; those refusals come back as field errors too.
export function validateWebhook(body, creating) {
  const d = [];
  const add = (f, reason) => d.push({ field: f, reason });
  if (creating || body.url !== undefined) {
    const u = body.url;
    const chars = typeof u === 'string' ? [...u].length : 0;
    if (typeof u !== 'string') add('/url', 'must be a string');
    else if (chars < 8) add('/url', 'must be at least 8 characters');
    else if (chars > 2048) add('/url', 'must be at most 2048 characters');
    else if (!/^https?:\/\//i.test(u)) add('/url', 'must be an http:// or https:// URL');
    else if (new TextEncoder().encode(u).length > 2048) add('/url', 'must be a URL of at most 2048 bytes');
    else if (!hasHost(u)) add('/url', 'must be an absolute URL with a host');
  }
  if (creating || body.types !== undefined) {
    if (!Array.isArray(body.types) || body.types.length < 1) add('/types', 'must list at least one type');
    else {
      body.types.forEach((t, i) => {
        if (!TYPE_NAMES.includes(t)) add(`/types/${i}`, 'is not a webhook type');
      });
      if (new Set(body.types).size !== body.types.length) add('/types', 'must not contain duplicate items');
    }
  }
  return d;
}

function enabledText(ep) {
  if (ep.enabled) return 'yes';
  return ep.disabledReason ? 'no (disabled by the platform)' : 'no';
}

function pingButton(ep, out, after) {
  const b = h('button', { type: 'button', 'aria-label': `Ping ${ep.url}` }, 'Ping');
  b.addEventListener('click', () => act(b, out, async () => {
    const d = await post(`/events/webhooks/${ep.id}/ping`);
    clear(out, notice(`Ping queued for ${ep.url} (webhook-id ${d.webhookId}); its attempts show in the deliveries.`));
    if (after) await after();
  }));
  return b;
}

function deleteButton(ep, out, after) {
  const b = h('button', { type: 'button', class: 'danger', 'aria-label': `Delete ${ep.url}` }, 'Delete');
  b.addEventListener('click', () => act(b, out, async () => {
    if (!await confirmDialog('Delete endpoint?',
      h('div', null, h('p', { class: 'wh-url' }, ep.url),
        h('p', null, 'It gets no more messages, and its delivery log is deleted with it. The deletion is audited.')),
      'Delete endpoint')) return;
    await del(`/events/webhooks/${ep.id}`);
    await after();
  }));
  return b;
}

export async function renderList(root) {
  const out = h('div', { 'aria-live': 'polite' });
  const list = pagedTable(['URL', 'Types', 'Enabled', 'Disabled reason', 'Failing since', 'Created',
    canWrite() ? 'Actions' : null].filter(Boolean),
  (cursor) => get('/events/webhooks', { cursor, limit: 50 }),
  (ep) => h('tr', { 'data-id': ep.id },
    h('td', { class: 'wh-url' }, h('a', { href: `#/webhooks/${ep.id}` }, ep.url)),
    h('td', null, ep.types.join(', ')),
    h('td', { 'data-enabled': String(ep.enabled) }, enabledText(ep)),
    h('td', null, ep.disabledReason ? DISABLED_WHY[ep.disabledReason] || ep.disabledReason : '–'),
    h('td', null, fmtTime(ep.failingSince)), h('td', null, fmtTime(ep.createdAt)),
    canWrite() ? h('td', { class: 'row-actions' },
      h('a', { href: `#/webhooks/${ep.id}`, class: 'button' }, 'Deliveries'),
      h('a', { href: `#/webhooks/${ep.id}/edit`, class: 'button', 'aria-label': `Edit ${ep.url}` }, 'Edit'),
      ep.enabled ? pingButton(ep, out) : null,
      deleteButton(ep, out, async () => {
        clear(out, notice(`Deleted the endpoint ${ep.url}.`));
        await list.reload();
      })) : null),
  'Webhook endpoints');
  clear(root,
    h('div', { class: 'title-row' }, h('h1', null, 'Webhooks'),
      canWrite() ? h('a', { href: '#/webhooks/new', class: 'button primary' }, 'New endpoint') : null),
    h('p', { class: 'muted' }, 'Signed HTTP POSTs (Standard Webhooks) of grants, revocations, reviews, batches and ',
      'event ends to your game servers, retried until a 2xx answer.'),
    canWrite() ? null : deliveriesNeedOperator(),
    out, list.el);
  await list.reload();
}

function deliveriesNeedOperator() {
  return h('p', { class: 'notice warn', id: 'deliveries-need-operator' },
    'The delivery log (each message, its attempts, redelivery) needs the OPERATOR or ADMIN role: ',
    'with your roles this page shows the endpoints only.');
}

// The signing secret of a new endpoint, in a modal that says it is shown this once. The secret
// lives only in this dialog (never in the URL, storage or a log); however the dialog closes, it is
// emptied and removed. Escape is refused so that a stray key cannot lose the secret (Chromium
// still lets a second Escape with no click between close it: that is the same drop).
function secretDialog(url, secret) {
  return new Promise((resolve) => {
    const titleId = nextId('dlg');
    const input = h('input', { id: 'webhook-secret', readonly: true, class: 'mono', value: secret, autocomplete: 'off',
      spellcheck: 'false' });
    const status = h('p', { class: 'muted', 'aria-live': 'polite', id: 'webhook-secret-status' });
    const copy = h('button', { type: 'button', class: 'primary' }, 'Copy secret');
    const done = h('button', { type: 'button' }, 'Done, I have stored it');
    const dlg = h('dialog', { 'aria-labelledby': titleId, id: 'webhook-secret-dialog', class: 'wh-secret' },
      h('h2', { id: titleId }, 'Signing secret'),
      h('p', { class: 'notice warn' }, 'This secret is shown this once and never again: store it now in the receiver’s ',
        'configuration. The receiver checks every message’s webhook-signature with it.'),
      h('p', { class: 'wh-url' }, 'Endpoint: ', url),
      field('Signing secret', input, null, 'HMAC-SHA256 key: the base64-decoded part after whsec_'),
      status, h('div', { class: 'actions' }, copy, done));
    copy.addEventListener('click', async () => {
      try {
        if (!navigator.clipboard) throw new Error('no clipboard');
        await navigator.clipboard.writeText(input.value);
        status.textContent = 'Copied to the clipboard.';
      } catch (e) {
        input.focus();
        input.select();
        let ok = false;
        try {
          ok = document.execCommand('copy');
        } catch (e2) {
          ok = false;
        }
        status.textContent = ok ? 'Copied to the clipboard.'
          : 'The browser refused to copy: the secret is selected, copy it with Ctrl+C.';
      }
    });
    dlg.addEventListener('close', () => {
      input.value = '';
      dlg.remove();
      resolve();
    });
    done.addEventListener('click', () => dlg.close());
    dlg.addEventListener('cancel', (e) => e.preventDefault());
    document.body.append(dlg);
    dlg.showModal();
    copy.focus();
  });
}

export async function renderForm(root, params) {
  const editing = !!params.id;
  const ep = editing ? await get(`/events/webhooks/${params.id}`) : { url: '', types: ['reward.granted'], enabled: true };
  const url = h('input', { name: 'url', value: ep.url, inputmode: 'url', autocomplete: 'off', spellcheck: 'false',
    placeholder: 'https://game.example.com/rewards-hook' });
  const boxes = TYPES.map(([t]) => h('input', { type: 'checkbox', id: nextId('type'), value: t, checked: ep.types.includes(t) }));
  const types = h('fieldset', { class: 'field wh-types', 'data-field': '/types' }, h('legend', null, 'Message types'),
    boxes.map((c, i) => h('div', { class: 'check' }, c, h('label', { for: c.id }, c.value),
      h('span', { class: 'muted' }, TYPES[i][1]))),
    h('p', { class: 'field-error' }));
  const enabled = h('input', { type: 'checkbox', id: 'webhook-enabled', checked: ep.enabled });
  const out = h('div', { 'aria-live': 'polite' });
  const save = h('button', { type: 'submit', class: 'primary' }, editing ? 'Save changes' : 'Create endpoint');
  const back = editing ? `#/webhooks/${ep.id}` : '#/webhooks';
  const form = h('form', { novalidate: true, 'aria-labelledby': 'webhook-form-title' },
    field('Receiver URL', url, '/url', 'https:// (http:// only where the platform allows it); it must answer 2xx quickly'),
    types,
    editing ? h('div', { class: 'field check', 'data-field': '/enabled' }, enabled,
      h('label', { for: enabled.id }, 'Enabled: messages are sent to it'),
      ep.disabledReason ? h('p', { class: 'hint' }, `The platform disabled it (${DISABLED_WHY[ep.disabledReason] || ep.disabledReason}); `
        + 'enabling it again clears that.') : null,
      h('p', { class: 'field-error' })) : null,
    out, h('div', { class: 'actions' }, save, h('a', { href: back, class: 'button' }, 'Back')));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearFieldErrors(form);
    clear(out);
    const body = { url: url.value.trim(), types: boxes.filter((c) => c.checked).map((c) => c.value) };
    if (editing) body.enabled = enabled.checked;
    const problems = validateWebhook(body, !editing);
    if (problems.length) {
      const left = showFieldErrors(form, problems);
      clear(out, h('p', { class: 'error', role: 'alert' }, 'Please correct the marked fields.'),
        left.length ? errorBox({ code: 'INVALID', message: '', details: left }) : null);
      return;
    }
    save.disabled = true;
    try {
      if (editing) {
        const saved = await patch(`/events/webhooks/${ep.id}`, body);
        flashNext(`Saved the endpoint ${saved.url}.`);
        go(`#/webhooks/${saved.id}`);
      } else {
        const { secret, ...made } = await post('/events/webhooks', body);
        await secretDialog(made.url, secret);
        flashNext(`Created the endpoint ${made.url}. Its secret is not shown again.`);
        go(`#/webhooks/${made.id}`);
      }
    } catch (err) {
      showFieldErrors(form, err.details);
      clear(out, errorBox(err));
    } finally {
      save.disabled = false;
    }
  });
  clear(root, h('h1', { id: 'webhook-form-title' }, editing ? 'Edit webhook endpoint' : 'New webhook endpoint'),
    editing ? null : h('p', { class: 'muted' }, 'After creation the platform shows the endpoint’s signing secret once.'),
    form);
  url.focus();
}

function endpointFacts(ep) {
  return [
    h('dt', null, 'URL'), h('dd', { class: 'wh-url' }, ep.url),
    h('dt', null, 'Types'), h('dd', null, ep.types.join(', ')),
    h('dt', null, 'Enabled'), h('dd', { 'data-enabled': String(ep.enabled) }, enabledText(ep)),
    h('dt', null, 'Disabled reason'), h('dd', null, ep.disabledReason ? DISABLED_WHY[ep.disabledReason] || ep.disabledReason : '–'),
    h('dt', null, 'Failing since'), h('dd', { 'data-failing-since': ep.failingSince || '' }, fmtTime(ep.failingSince)),
    h('dt', null, 'Created'), h('dd', null, fmtTime(ep.createdAt), ep.createdBy ? [' by ', h('code', null, ep.createdBy)] : null),
    h('dt', null, 'Updated'), h('dd', null, fmtTime(ep.updatedAt)),
    h('dt', null, 'Id'), h('dd', null, h('code', null, ep.id)),
  ];
}

export async function renderOne(root, params, q) {
  const ep = await get(`/events/webhooks/${params.id}`);
  const out = h('div', { 'aria-live': 'polite' });
  const facts = h('dl', { class: 'facts', id: 'webhook-facts' }, endpointFacts(ep));
  const writer = canWrite();
  // the endpoint's failure clock moves with its deliveries: read it again with them
  const reread = async () => {
    try {
      clear(facts, endpointFacts(await get(`/events/webhooks/${ep.id}`)));
    } catch (err) {
      /* the deliveries' own error box says what is wrong */
    }
  };
  const deliveries = writer ? deliveryLog(root, ep, q.get('status') || '', out, reread) : null;
  clear(root,
    h('h1', null, 'Webhook endpoint'), facts,
    writer ? h('div', { class: 'actions' },
      h('a', { href: `#/webhooks/${ep.id}/edit`, class: 'button' }, 'Edit'),
      ep.enabled ? pingButton(ep, out, () => deliveries.refresh()) : null,
      deleteButton(ep, out, async () => {
        flashNext(`Deleted the endpoint ${ep.url}.`);
        go('#/webhooks');
      })) : null,
    out,
    h('h2', null, 'Deliveries'),
    writer ? deliveries.el : deliveriesNeedOperator(),
    h('p', null, h('a', { href: '#/webhooks' }, 'All endpoints')));
  if (deliveries) await deliveries.refresh(false);
}

// The endpoint's deliveries, newest first, a page at a time, with a status filter; while one
// shown is PENDING the shown pages are read again every POLL_MS, so attempts appear as they
// are made, and each time after(), unless refresh(false) says the caller has just read. Returns
// {el, refresh}.
function deliveryLog(root, ep, status, out, after) {
  const filter = select([['', 'All'], ...DELIVERY_STATUSES], status, { id: 'delivery-status-filter' });
  filter.addEventListener('change', () => go(`#/webhooks/${ep.id}${filter.value ? `?status=${filter.value}` : ''}`));
  const refreshBtn = h('button', { type: 'button' }, 'Refresh');
  const errs = h('div');
  const cards = h('div', { class: 'cards', id: 'deliveries' });
  const info = h('p', { class: 'muted', 'aria-live': 'polite', id: 'deliveries-info' });
  const more = h('button', { type: 'button', hidden: true }, 'Load more');
  let items = [];
  let cursor = null;
  let shown = '';
  let polling = false;

  const show = () => {
    const now = JSON.stringify(items);
    if (now !== shown) { // unchanged data keeps the DOM (and the focus) as it is
      shown = now;
      clear(cards, items.length ? items.map((d) => deliveryCard(ep, d, out, refresh))
        : h('p', { class: 'muted' }, status ? `No ${status} deliveries.` : 'No deliveries yet.'));
    }
    more.hidden = cursor === null;
    const pending = items.filter((d) => d.status === 'PENDING').length;
    info.textContent = `${items.length} shown${cursor !== null ? ', more available' : ''}`
      + `${pending ? `; ${pending} pending, updating as attempts are made` : ''}.`;
  };
  // reads the pages again, as many rows as are shown (at least one page)
  async function refresh(again = true) {
    const want = Math.max(items.length, PAGE);
    const got = [];
    let next = null;
    try {
      do {
        const p = await get(`/events/webhooks/${ep.id}/deliveries`, { status, cursor: next, limit: PAGE });
        got.push(...p.items);
        next = p.nextCursor;
      } while (next !== null && got.length < want);
      items = got;
      cursor = next;
      clear(errs);
    } catch (err) {
      clear(errs, errorBox(err));
    }
    show();
    if (again) await after();
    poll();
  }
  async function poll() {
    if (polling || !items.some((d) => d.status === 'PENDING')) return;
    polling = true;
    await new Promise((r) => setTimeout(r, POLL_MS));
    polling = false;
    if (cards.isConnected && root.isConnected) await refresh();
  }
  more.addEventListener('click', () => act(more, errs, async () => {
    const p = await get(`/events/webhooks/${ep.id}/deliveries`, { status, cursor, limit: PAGE });
    items = items.concat(p.items);
    cursor = p.nextCursor;
    show();
  }));
  refreshBtn.addEventListener('click', () => act(refreshBtn, errs, () => refresh()));
  const el = h('div', null,
    h('div', { class: 'toolbar' }, field('Status', filter), refreshBtn),
    errs, info, cards, more);
  return { el, refresh };
}

function attemptsTable(d) {
  if (!d.attempts.length) return h('p', { class: 'muted' }, 'No attempt yet.');
  const first = d.attemptCount - d.attempts.length + 1; // the log keeps the newest 64
  return h('div', { class: 'table-wrap' }, h('table', { class: 'attempts' },
    h('caption', null, 'Attempts'),
    h('thead', null, h('tr', null, ['#', 'Time', 'Result', 'Latency', 'Response excerpt'].map((x) => h('th', { scope: 'col' }, x)))),
    h('tbody', null, d.attempts.map((a, i) => h('tr', { 'data-http': a.status === null ? '' : String(a.status) },
      h('td', { class: 'num' }, String(first + i)), h('td', null, fmtTime(a.at)),
      h('td', null, a.status !== null ? `HTTP ${a.status}` : a.error || 'no answer'),
      h('td', { class: 'num' }, `${a.latencyMs} ms`),
      h('td', null, a.responseExcerpt ? h('code', { class: 'clip' }, a.responseExcerpt) : '–'))))));
}

function deliveryCard(ep, d, out, refresh) {
  let redeliver = null;
  if (canWrite() && d.status !== 'PENDING') {
    redeliver = h('button', { type: 'button', 'aria-label': `Redeliver ${d.type} ${d.webhookId}` }, 'Redeliver');
    redeliver.addEventListener('click', () => act(redeliver, out, async () => {
      await post(`/events/webhooks/${ep.id}/deliveries/${d.id}/redeliver`);
      clear(out, notice(`Redelivery of ${d.type} ${d.webhookId} queued; the receiver gets the same webhook-id again.`));
      await refresh();
    }));
  }
  return h('article', { class: 'card delivery', 'data-id': d.id, 'data-status': d.status, 'data-type': d.type },
    h('h3', null, d.type, ' ', badge(d.status)),
    h('dl', { class: 'facts' },
      h('dt', null, 'webhook-id'), h('dd', null, h('code', null, d.webhookId)),
      h('dt', null, 'Created'), h('dd', null, fmtTime(d.createdAt)),
      h('dt', null, 'Attempts'), h('dd', null, String(d.attemptCount)),
      d.status === 'PENDING' ? [h('dt', null, 'Next attempt'), h('dd', null, fmtTime(d.nextAttemptAt))]
        : [h('dt', null, 'Settled'), h('dd', null, fmtTime(d.settledAt))]),
    attemptsTable(d),
    h('details', null, h('summary', null, 'Message body'), h('pre', { class: 'mono wh-body' }, JSON.stringify(d.payload, null, 2))),
    redeliver ? h('div', { class: 'actions' }, redeliver) : null);
}

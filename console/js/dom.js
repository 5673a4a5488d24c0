// dom.js - building the page without HTML strings: every text goes in as a text node, so nothing
// the API returns can become markup (and the CSP forbids inline code anyway).

let uid = 0;
export function nextId(prefix) {
  uid += 1;
  return `${prefix}-${uid}`;
}

// h('button', {class: 'x', onclick: fn}, 'text', child, [more]) -> a new element.
// Attributes that are false, null or undefined are left out; `value` and `checked` are set as
// properties after the children (a <select>'s value needs its options first).
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  const late = {};
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'value' || k === 'checked') late[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  for (const [k, v] of Object.entries(late)) el[k] = v;
  return el;
}

export function append(el, children) {
  for (const c of [children].flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function clear(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

const SVG = 'http://www.w3.org/2000/svg';
export function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  return append(el, children);
}

export function fmtTime(iso) {
  if (!iso) return '–';
  return iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

export function json(v) {
  return v === undefined ? '' : JSON.stringify(v);
}

// The box every failed call shows: the API's code and message, its field details, and the
// request id to quote to whoever reads the logs.
export function errorBox(err) {
  const details = (err.details || []).map((d) =>
    h('li', null, d.field !== undefined ? `${d.field || '(body)'}: ${d.reason}` : json(d)));
  return h('div', { class: 'error', role: 'alert' },
    h('p', null, h('strong', { class: 'code' }, err.code || 'ERROR'), ' ', err.message || ''),
    details.length ? h('ul', null, details) : null,
    h('p', { class: 'reqid' }, 'Request id: ', h('code', null, err.requestId || '–')));
}

export function notice(text, kind = 'ok') {
  return h('p', { class: `notice ${kind}`, role: 'status' }, text);
}

// A labelled control: <div class=field data-field=pointer><label/>control<p class=field-error/></div>.
// pointer is the JSON pointer the server names in its field errors.
export function field(label, control, pointer, hint) {
  if (!control.id) control.id = nextId('f');
  const err = h('p', { class: 'field-error', id: `${control.id}-err` });
  const hintEl = hint ? h('p', { class: 'hint', id: `${control.id}-hint` }, hint) : null;
  if (hintEl) control.setAttribute('aria-describedby', hintEl.id);
  return h('div', { class: 'field', 'data-field': pointer || '' },
    h('label', { for: control.id }, label), control, hintEl, err);
}

export function clearFieldErrors(root) {
  for (const f of root.querySelectorAll('.field')) {
    f.classList.remove('invalid');
    const c = f.querySelector('input, select, textarea');
    if (c) c.removeAttribute('aria-invalid');
    f.querySelector('.field-error').textContent = '';
  }
}

// Shows each {field, reason} next to the field whose pointer is the longest prefix of it;
// returns the ones no field took (to be shown in the form's error box).
export function showFieldErrors(root, details) {
  const fields = [...root.querySelectorAll('.field[data-field]')].filter((f) => f.dataset.field);
  const left = [];
  let first = null;
  for (const d of details || []) {
    const ptr = d.field || '';
    let best = null;
    for (const f of fields) {
      const p = f.dataset.field;
      if ((ptr === p || ptr.startsWith(`${p}/`)) && (!best || p.length > best.dataset.field.length)) best = f;
    }
    if (!best) {
      left.push(d);
      continue;
    }
    best.classList.add('invalid');
    const c = best.querySelector('input, select, textarea');
    if (c) {
      c.setAttribute('aria-invalid', 'true');
      c.setAttribute('aria-describedby', `${c.id}-err`);
      first = first || c;
    }
    const e = best.querySelector('.field-error');
    e.textContent = e.textContent ? `${e.textContent}; ${d.reason}` : d.reason;
  }
  if (first) first.focus();
  return left;
}

// A modal confirmation (<dialog>): resolves true when confirmed. body is a node or text.
export function confirmDialog(title, body, confirmLabel = 'Confirm', extra = null) {
  return new Promise((resolve) => {
    const titleId = nextId('dlg');
    const ok = h('button', { type: 'button', class: 'danger' }, confirmLabel);
    const cancel = h('button', { type: 'button' }, 'Cancel');
    const dlg = h('dialog', { 'aria-labelledby': titleId },
      h('h2', { id: titleId }, title), h('div', null, body), extra,
      h('div', { class: 'actions' }, ok, cancel));
    const done = (v) => {
      dlg.close();
      dlg.remove();
      resolve(v);
    };
    ok.addEventListener('click', () => done(true));
    cancel.addEventListener('click', () => done(false));
    dlg.addEventListener('cancel', (e) => {
      e.preventDefault();
      done(false);
    });
    document.body.append(dlg);
    dlg.showModal();
    cancel.focus();
  });
}

export function table(headers, rows, caption) {
  return h('div', { class: 'table-wrap' },
    h('table', null,
      caption ? h('caption', null, caption) : null,
      h('thead', null, h('tr', null, headers.map((x) => h('th', { scope: 'col' }, x)))),
      h('tbody', null, rows.length ? rows : h('tr', null, h('td', { colspan: headers.length }, 'Nothing to show.')))));
}

export function select(options, value, attrs) {
  const s = h('select', attrs,
    options.map((o) => (Array.isArray(o) ? h('option', { value: o[0] }, o[1]) : h('option', { value: o }, o))));
  if (value !== undefined && value !== null) s.value = String(value);
  return s;
}

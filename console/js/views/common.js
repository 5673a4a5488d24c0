// common.js - pieces the views share: cursor-paged tables, status badges, the role checks.
import { hasRole } from '../api.js';
import { h, clear, errorBox, table } from '../dom.js';

export const canWrite = () => hasRole('OPERATOR', 'ADMIN');
export const canAudit = () => hasRole('AUDITOR', 'ADMIN');

export function badge(status) {
  return h('span', { class: `badge s-${String(status || '').toLowerCase()}` }, status || '–');
}

// A table filled a page at a time: load(cursor) resolves {items, nextCursor[, hasMore]}; row(item)
// makes a <tr>. Returns {el, reload}.
export function pagedTable(headers, load, row, caption) {
  const body = h('div');
  const status = h('p', { class: 'muted', 'aria-live': 'polite' });
  const more = h('button', { type: 'button', hidden: true }, 'Load more');
  const errs = h('div');
  let cursor = null;
  let rows = [];
  async function page(first) {
    more.disabled = true;
    clear(errs);
    try {
      const p = await load(first ? null : cursor);
      if (first) rows = [];
      rows.push(...p.items.map(row));
      cursor = p.nextCursor;
      const hasMore = 'hasMore' in p ? p.hasMore : p.nextCursor !== null && p.nextCursor !== undefined;
      more.hidden = !hasMore;
      clear(body, table(headers, rows, caption));
      status.textContent = `${rows.length} shown${hasMore ? ', more available' : ''}.`;
    } catch (err) {
      clear(errs, errorBox(err));
    }
    more.disabled = false;
  }
  more.addEventListener('click', () => page(false));
  return { el: h('div', null, errs, body, status, more), reload: () => page(true) };
}

// Wraps an action button's work: disables it meanwhile, shows an API error in out.
export async function act(button, out, work) {
  button.disabled = true;
  clear(out);
  try {
    await work();
  } catch (err) {
    clear(out, errorBox(err));
  } finally {
    button.disabled = false;
  }
}

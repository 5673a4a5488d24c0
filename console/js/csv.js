// csv.js - CSV text as the platform's own export writes it (RFC 4180 quoting, CRLF, a text cell
// that a spreadsheet would run prefixed with '), and saving text or a response as a file.

function cell(v) {
  if (typeof v === 'number') return String(v); // a number is never a formula
  let s = v === null || v === undefined ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v);
  if (/^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function toCsv(columns, rows) {
  const lines = [columns.map(cell).join(',')];
  for (const r of rows) lines.push(columns.map((c) => cell(r[c])).join(','));
  return `${lines.join('\r\n')}\r\n`;
}

export function saveBlob(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

export function saveCsv(text, name) {
  saveBlob(new Blob([text], { type: 'text/csv' }), name);
}

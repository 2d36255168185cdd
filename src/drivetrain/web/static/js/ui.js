// Small DOM helpers. Text always goes in as text nodes (never innerHTML), so values that
// come from vehicles or users cannot inject markup.

/** h('a', {href: '#/x', class: 'y', onclick: fn}, 'text', child, [more]) */
export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') element.addEventListener(key.slice(2), value);
    else if (key === 'class') element.className = value;
    else if (value === true) element.setAttribute(key, '');
    else element.setAttribute(key, String(value));
  }
  append(element, children);
  return element;
}

function append(parent, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(parent, child);
    else parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function replace(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

/** A section with a heading. */
export function section(title, ...children) {
  return h('section', { 'aria-label': title }, h('h2', {}, title), ...children);
}

/** A table; columns are {label, value: row => node|text, num?: true}. */
export function table(columns, rows, { empty = 'Nothing to show.', caption, label } = {}) {
  if (!rows.length) return h('p', { class: 'muted empty' }, empty);
  return h('div', { class: 'table-wrap' },
    h('table', { 'aria-label': label || caption || null },
      caption ? h('caption', {}, caption) : null,
      h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col', class: c.num ? 'num' : null }, c.label)))),
      h('tbody', {}, rows.map((row) => h('tr', {}, columns.map((c) => h('td', { class: c.num ? 'num' : null }, c.value(row))))))));
}

/** Label/value pairs as a definition list. */
export function facts(pairs) {
  return h('dl', { class: 'facts' }, pairs.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v ?? '—')]));
}

/** Count tiles: [[label, number, extra class]]. */
export function tiles(entries) {
  return h('ul', { class: 'tiles' }, entries.map(([label, count, cls]) =>
    h('li', { class: `tile ${cls || ''}` }, h('span', { class: 'count' }, String(count)), h('span', { class: 'label' }, label))));
}

export function errorBox(error) {
  return h('p', { class: 'error', role: 'alert' }, error.message || String(error));
}

export function fmtTime(iso) {
  if (!iso) return '—';
  const date = new Date(iso);
  const pad = (n) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

export function ago(iso) {
  if (!iso) return 'never';
  const s = Math.round((Date.now() - new Date(iso).getTime()) / 1000);
  if (s < 60) return `${Math.max(0, s)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

export function fmtValue(value) {
  if (value === null || value === undefined) return '—';
  if (typeof value === 'number' && !Number.isInteger(value)) return String(Number(value.toPrecision(6)));
  return String(value);
}

/** A status pill. */
export function pill(text, kind = text) {
  return h('span', { class: `pill pill-${String(kind).replace(/[^a-z_-]/gi, '')}` }, text);
}

/**
 * A button that runs `action` once per click: disabled while it runs; the outcome (or the
 * API's problem detail) is announced in `status` (an aria-live element).
 */
export function actionButton(label, action, { status, disabled = false, title, cls = '' } = {}) {
  const button = h('button', { type: 'button', class: cls, disabled, title });
  button.textContent = label;
  button.addEventListener('click', async () => {
    button.disabled = true;
    try {
      const message = await action();
      if (status && message) replace(status, h('span', { class: 'ok' }, message));
    } catch (error) {
      if (status) replace(status, errorBox(error));
    } finally {
      button.disabled = false;
    }
  });
  return button;
}

/** An aria-live region for action outcomes. */
export function statusLine() {
  return h('div', { class: 'status-line', role: 'status', 'aria-live': 'polite' });
}

/** Run `fn` at most once per `ms`, the last call winning. */
export function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

/** Offer `text` as a file download (the console's CSV exports). */
export function download(filename, text, type = 'text/csv') {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const link = h('a', { href: url, download: filename });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/**
 * A select of the purposes a read of vehicle data may name (GET /v1/privacy/purposes), each
 * with its legal basis and categories; `fleet_operations` first chosen.
 */
export async function purposeSelect(id, api) {
  const purposes = await api('/v1/privacy/purposes');
  return h('select', { id }, purposes.map((p) => h('option', {
    value: p.name, selected: p.name === 'fleet_operations', title: p.meaning,
  }, `${p.name} (${p.basis.replace('_', ' ')}: ${p.categories.join(', ')})`)));
}

/**
 * What a twin read left out: one line per withheld privacy category with the API's reason
 * (GET /v1/twins/{vin} lists them under `withheld` when the purpose does not cover them).
 */
export function withheldNote(twin) {
  const entries = Object.entries(twin.withheld || {});
  if (!entries.length) return null;
  return h('ul', { class: 'withheld muted', 'aria-label': 'Withheld' },
    entries.map(([category, why]) => h('li', {}, h('strong', {}, category), `: ${why}`)));
}

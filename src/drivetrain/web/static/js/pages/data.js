// Data: pick vehicles and signals, plot them over a time range (down-sampled by the lake),
// download what is plotted as CSV, or the same query as an Arrow IPC stream. Where a vehicle
// has no samples, its consent and ingestion's not-consented count say why, when the role may
// read them.
import { api, query } from '../api.js';
import { lineChart } from '../chart.js';
import { download, errorBox, h, purposeSelect, replace, section, statusLine } from '../ui.js';

const ARROW = 'application/vnd.apache.arrow.stream';
const POINTS = 300;
const SOC = 'Vehicle.Powertrain.TractionBattery.StateOfCharge.Current'; // about this many points per series, whatever the range

function localInput(date) {
  const pad = (n) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

function everyFor(seconds) {
  const step = Math.max(1, Math.round(seconds / POINTS));
  return step >= 3600 ? `${Math.round(step / 3600)}h` : step >= 60 ? `${Math.round(step / 60)}m` : `${step}s`;
}

function selected(select) {
  return [...select.selectedOptions].map((o) => o.value);
}

async function whyMissing(ctx, vin) {
  const reasons = [];
  if (ctx.can('privacy:read')) {
    const consent = await api(`/v1/privacy/vehicles/${encodeURIComponent(vin)}/consent`);
    reasons.push(`its consent allows ${consent.categories.join(', ') || 'nothing'} (from ${consent.source})`);
  }
  const stats = await api(`/v1/ingest/stats${query({ vin })}`);
  const dropped = stats.totals.find((t) => t.outcome === 'not_consented');
  if (dropped) reasons.push(`ingestion dropped ${dropped.samples.toLocaleString()} of its samples as not consented`);
  if (!stats.totals.length) reasons.push('it has sent no data yet');
  return reasons.length ? reasons.join('; ') : 'no reason on record (your role may not read its consent)';
}

export async function render(root, ctx) {
  const twins = (await api(`/v1/twins${query({ limit: 500 })}`)).twins;
  const vinSelect = h('select', { id: 'data-vins', multiple: true, size: 6 },
    twins.map((t, i) => h('option', { value: t.vin, selected: i === 0 }, `${t.vin} (${t.model}, ${t.region})`)));
  // Every read of vehicle data names its purpose; the API checks it against consent and audits it.
  const purpose = await purposeSelect('data-purpose', api);
  // Signals: the numeric ones the first vehicles report (the lake holds what they sent) and
  // that the chosen purpose may see.
  const paths = new Set();
  for (const twin of await Promise.all(twins.slice(0, 5).map((t) => api(`/v1/twins/${encodeURIComponent(t.vin)}${query({ purpose: purpose.value })}`)))) {
    for (const [path, r] of Object.entries(twin.reported)) if (typeof r.value === 'number') paths.add(path);
  }
  const pathSelect = h('select', { id: 'data-paths', multiple: true, size: 6 },
    [...paths].sort().map((p) => h('option', { value: p, selected: p === SOC }, p)));
  const now = new Date();
  const startInput = h('input', { id: 'data-start', type: 'datetime-local', value: localInput(new Date(now.getTime() - 3600000)) });
  const endInput = h('input', { id: 'data-end', type: 'datetime-local', value: localInput(new Date(now.getTime() + 60000)) });
  const aggSelect = h('select', { id: 'data-agg' }, ['mean', 'min', 'max', 'last'].map((a) => h('option', { value: a }, a)));
  const status = statusLine();
  const charts = h('div');
  const missing = h('ul', { class: 'missing' });
  let rows = [];
  let request = null;

  async function plot() {
    const vins = selected(vinSelect);
    const chosen = selected(pathSelect);
    const start = new Date(startInput.value);
    const end = new Date(endInput.value);
    if (!vins.length || !chosen.length) { replace(status, errorBox(new Error('Pick at least one vehicle and one signal.'))); return; }
    if (!(end > start)) { replace(status, errorBox(new Error('The end must be after the start.'))); return; }
    replace(status, h('span', { class: 'muted' }, 'Querying the lake…'));
    const every = everyFor((end - start) / 1000);
    request = { start: start.toISOString(), end: end.toISOString(), path: chosen, every, agg: aggSelect.value, purpose: purpose.value };
    try {
      // One query per vehicle: the lake answers with the tenant's pseudonyms, the page labels by VIN.
      const tables = await Promise.all(vins.map((vin) => api(`/v1/telemetry/signals${query({ ...request, vin })}`).then((t) => [vin, t])));
      rows = tables.flatMap(([vin, table]) => table.data.map((row) => ({ vin, ...row })));
      replace(charts, chosen.map((path) => {
        const series = tables.map(([vin, table]) => ({
          name: vin,
          points: table.data.filter((r) => r.path === path).map((r) => ({ t: new Date(r.ts).getTime(), v: r.value })),
        }));
        return h('div', { class: 'chart-box' }, h('h3', {}, path), lineChart(series, { label: path }));
      }));
      const empty = tables.filter(([, table]) => !table.rows).map(([vin]) => vin);
      replace(missing, await Promise.all(empty.map(async (vin) => h('li', {}, `${vin}: no samples in this range — `, await whyMissing(ctx, vin).catch((e) => e.message)))));
      replace(status, h('span', { class: 'ok' }, `${rows.length.toLocaleString()} points (${aggSelect.value} per ${every}) from the lake.`));
    } catch (error) {
      replace(status, errorBox(error));
    }
  }

  const form = h('form', { class: 'data-form', 'aria-label': 'Plot signals' },
    h('div', {}, h('label', { for: 'data-vins' }, 'Vehicles'), vinSelect),
    h('div', {}, h('label', { for: 'data-paths' }, 'Signals'), pathSelect),
    h('div', { class: 'inline-form' },
      h('label', { for: 'data-start' }, 'From'), startInput, h('label', { for: 'data-end' }, 'to'), endInput,
      h('label', { for: 'data-agg' }, 'Aggregate'), aggSelect,
      h('label', { for: 'data-purpose' }, 'Purpose'), purpose,
      h('button', { type: 'submit' }, 'Plot')));
  form.addEventListener('submit', (event) => { event.preventDefault(); plot(); });
  const csv = h('button', { type: 'button' }, 'Download CSV');
  csv.addEventListener('click', () => {
    const quote = (v) => (v === null || v === undefined ? '' : /[",\n]/.test(String(v)) ? `"${String(v).replace(/"/g, '""')}"` : String(v));
    download('drivetrain-signals.csv', `${['vin,path,ts,value', ...rows.map((r) => [r.vin, r.path, r.ts, r.value].map(quote).join(','))].join('\n')}\n`);
  });
  const arrow = h('button', { type: 'button' }, 'Download Arrow');
  arrow.addEventListener('click', async () => {
    if (!request) return;
    try {
      const response = await api(`/v1/telemetry/signals${query({ ...request, vin: selected(vinSelect) })}`, { headers: { Accept: ARROW }, raw: true });
      const url = URL.createObjectURL(await response.blob());
      const link = h('a', { href: url, download: 'drivetrain-signals.arrows' });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 1000);
    } catch (error) {
      replace(status, errorBox(error));
    }
  });
  root.append(h('h1', {}, 'Data'),
    section('Query', twins.length ? form : h('p', { class: 'muted empty' }, 'No vehicles in this tenant yet.'), status),
    section('Signals over time', h('div', { class: 'actions' }, csv, arrow),
      h('p', { class: 'muted' }, 'CSV: what is plotted, by VIN. Arrow: the same query as an Arrow IPC stream (vehicles by their pseudonym, as the lake stores them; pyarrow, DuckDB and polars read it).'),
      charts, missing));
  if (twins.length && pathSelect.value) await plot();
}

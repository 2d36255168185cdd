// Vehicle: one twin — metadata and state, reported values, desired state with convergence
// (and a form to set a desired value), ECUs and software, and any signal's history from
// the lake as a chart (down-sampled by the lake, downloadable as CSV). Live via the twins'
// change feed.
import { api, follow, query } from '../api.js';
import { lineChart } from '../chart.js';
import { PATHS, lastSeen, reported, vehicleState } from '../fleet-state.js';
import {
  actionButton, ago, debounce, download, errorBox, facts, fmtTime, fmtValue, h, pill,
  purposeSelect, replace, section, statusLine, table, withheldNote,
} from '../ui.js';

// Long values (an entitlement's signed token) are shortened in tables; the whole value stays
// in the cell's tooltip and in the API.
const LONG = 48;
const shortText = (text) => (text.length > LONG ? `${text.slice(0, 24)}…${text.slice(-8)}` : text);
const shortValue = (value) => {
  const text = fmtValue(value);
  return text.length > LONG ? h('span', { title: text }, shortText(text)) : text;
};

const RANGES = [['15 min', 900], ['1 h', 3600], ['6 h', 21600], ['24 h', 86400], ['7 d', 604800]];

/** A typed value from the form's text: true/false, a number, or the text itself. */
export function parseValue(text) {
  const trimmed = text.trim();
  if (trimmed === 'true' || trimmed === 'false') return trimmed === 'true';
  if (trimmed !== '' && Number.isFinite(Number(trimmed))) return Number(trimmed);
  return text;
}

// Down-sampling step for a range: about 200 points whatever the range.
function everyFor(seconds) {
  const step = Math.max(1, Math.round(seconds / 200));
  return step >= 60 ? `${Math.round(step / 60)}m` : `${step}s`;
}

async function pickVehicle(root) {
  const page = await api(`/v1/twins${query({ limit: 100 })}`);
  root.append(h('h1', {}, 'Vehicle'), h('p', {}, 'Pick a vehicle (or click one on the fleet map).'),
    table([
      { label: 'VIN', value: (t) => h('a', { href: `#/vehicle/${encodeURIComponent(t.vin)}` }, t.vin) },
      { label: 'Model', value: (t) => t.model },
      { label: 'Region', value: (t) => t.region },
    ], page.twins, { label: 'Vehicles', empty: 'No vehicles in this tenant yet.' }));
}

export async function render(root, ctx, vin) {
  if (!vin) return pickVehicle(root);
  const controller = new AbortController();
  const url = `/v1/twins/${encodeURIComponent(vin)}`;
  const head = h('div');
  const reportedBox = h('div');
  const desiredBox = h('div');
  const ecuBox = h('div');
  const chartBox = h('div', { class: 'chart-box' });
  const formStatus = statusLine();
  // Every read of vehicle data names its purpose; the API checks it against consent, withholds
  // what it does not cover (listed under the reported values) and audits it.
  const purpose = await purposeSelect('history-purpose', api);
  const stateUrl = () => `${url}${query({ purpose: purpose.value })}`;
  let twin = await api(stateUrl(), { signal: controller.signal });
  let actuators = [];
  if (ctx.can('campaigns:read')) {
    try {
      actuators = (await api('/v1/catalogs/current')).signals.filter((s) => s.node_type === 'actuator');
    } catch { /* the free-text path still works; the API validates it */ }
  }

  const pathInput = h('input', { id: 'desired-path', list: 'actuators', required: true, spellcheck: 'false', size: 48,
    value: 'Vehicle.Powertrain.TractionBattery.Charging.ChargeLimit' });
  const valueInput = h('input', { id: 'desired-value', required: true, size: 12, value: '80' });
  const form = h('form', { class: 'inline-form', 'aria-label': 'Set a desired value' },
    h('label', { for: 'desired-path' }, 'Actuator path'), pathInput,
    h('datalist', { id: 'actuators' }, actuators.map((s) => h('option', { value: s.path }, `${s.datatype}${s.unit ? `, ${s.unit}` : ''}`))),
    h('label', { for: 'desired-value' }, 'Value'), valueInput,
    h('button', { type: 'submit', disabled: !ctx.can('fleet:write'), title: ctx.can('fleet:write') ? null : 'needs fleet:write' }, 'Set desired value'),
    formStatus);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      // If-Match: the version this page shows, so a concurrent change is a conflict, not lost.
      const written = await api(`${url}/desired`, {
        method: 'PATCH', headers: { 'If-Match': `"${twin.version}"` },
        body: { values: { [pathInput.value.trim()]: parseValue(valueInput.value) } },
      });
      // the write's answer withholds personal values; read the state again for the purpose
      twin = await api(stateUrl(), { signal: controller.signal }).catch(() => written);
      replace(formStatus, h('span', { class: 'ok' }, `Desired version ${written.version} set; waiting for the vehicle to converge.`));
      draw();
    } catch (error) {
      replace(formStatus, errorBox(error));
      if (error.status === 409) { twin = await api(stateUrl()); draw(); }
    }
  });

  const numeric = () => Object.entries(twin.reported).filter(([, r]) => typeof r.value === 'number').map(([p]) => p).sort();
  const signalSelect = h('select', { id: 'history-path' });
  const rangeSelect = h('select', { id: 'history-range' }, RANGES.map(([label, s]) => h('option', { value: s }, label)));
  const chartStatus = statusLine();
  let lastSeries = null;
  const fillSignals = () => {
    const chosen = signalSelect.value;
    replace(signalSelect, numeric().map((p) => h('option', { value: p, selected: p === chosen }, p)));
    // State of charge first: a technical signal that the contract purposes may read.
    const preferred = [PATHS.soc, PATHS.speed].find((p) => numeric().includes(p));
    if (!chosen && preferred) signalSelect.value = preferred;
  };
  async function plot() {
    if (!signalSelect.value) { replace(chartBox, h('p', { class: 'muted empty' }, 'This vehicle has reported no numeric signal yet.')); return; }
    const seconds = Number(rangeSelect.value);
    const end = new Date();
    const start = new Date(end.getTime() - seconds * 1000);
    try {
      const history = await api(`${url}/history${query({ path: signalSelect.value, start: start.toISOString(), end: end.toISOString(), every: everyFor(seconds), agg: 'mean', purpose: purpose.value })}`, { signal: controller.signal });
      lastSeries = history;
      replace(chartBox, lineChart([{ name: history.path, points: history.points.map((p) => ({ t: new Date(p.ts).getTime(), v: p.value })) }],
        { label: `${history.path} of ${vin}` }),
        h('p', { class: 'muted' }, `${history.points.length} points, mean per ${history.every || 'sample'}, from the lake.`));
      replace(chartStatus);
    } catch (error) {
      if (!controller.signal.aborted) replace(chartStatus, errorBox(error));
    }
  }
  signalSelect.addEventListener('change', plot);
  rangeSelect.addEventListener('change', plot);
  purpose.addEventListener('change', async () => {
    try { twin = await api(stateUrl(), { signal: controller.signal }); draw(); } catch (error) { replace(chartStatus, errorBox(error)); }
    plot();
  });
  const csvButton = h('button', { type: 'button' }, 'Download CSV');
  csvButton.addEventListener('click', () => {
    if (!lastSeries) return;
    const lines = ['ts,vin,path,value,samples', ...lastSeries.points.map((p) => `${p.ts},${vin},${lastSeries.path},${p.value ?? ''},${p.samples ?? ''}`)];
    download(`${vin}-${lastSeries.path}.csv`, `${lines.join('\n')}\n`);
  });

  const reportedFilter = h('input', { id: 'reported-filter', type: 'search', placeholder: 'e.g. battery', spellcheck: 'false' });
  reportedFilter.addEventListener('input', () => draw());

  function draw() {
    const state = vehicleState(twin);
    replace(head, h('h1', {}, `Vehicle ${twin.vin} `, pill(state, state.replace(' ', '-'))),
      facts([
        ['Model', twin.model], ['Region', twin.region], ['Owner', twin.owner],
        ['Last seen', `${ago(lastSeen(twin))} (${fmtTime(lastSeen(twin))})`],
        ['Desired version', String(twin.version)],
        ['Delivered', twin.delivery.sent_version ? `v${twin.delivery.sent_version} at ${fmtTime(twin.delivery.sent_at)}` : 'nothing sent yet'],
        ['Acknowledged', twin.delivery.acked_version ? `v${twin.delivery.acked_version} at ${fmtTime(twin.delivery.acked_at)}` : 'no acknowledgement yet'],
        ['Position', reported(twin, PATHS.lat) !== null ? `${fmtValue(reported(twin, PATHS.lat))}, ${fmtValue(reported(twin, PATHS.lon))}` : null],
      ]));
    replace(desiredBox,
      h('p', {}, pill(`${twin.counts.pending} pending`, 'pending'), ' ', pill(`${twin.counts.converged} converged`, 'converged'), ' ', pill(`${twin.counts.failed} failed`, 'failed'),
        Object.keys(twin.delta.values).length ? h('span', { class: 'muted' }, ` delta still to apply: ${Object.entries(twin.delta.values).map(([p, v]) => `${p} = ${shortText(fmtValue(v))}`).join(', ')}`) : ''),
      table([
        { label: 'Path', value: (i) => h('code', {}, i.path) },
        { label: 'Desired', num: true, value: (i) => shortValue(i.value) },
        { label: 'Reported', num: true, value: (i) => shortValue(i.reported) },
        { label: 'Status', value: (i) => pill(i.status) },
        { label: 'In sync', value: (i) => (i.in_sync ? 'yes' : 'no') },
        { label: 'Converged in', num: true, value: (i) => (i.time_to_converge_s !== null ? `${fmtValue(i.time_to_converge_s)} s` : '—') },
        { label: 'Set by', value: (i) => `${i.set_by} at ${fmtTime(i.set_at)}` },
        { label: 'Reason', value: (i) => i.reason || '' },
      ], twin.items, { label: 'Desired state', empty: 'No desired value set.' }));
    const filter = reportedFilter.value.trim().toLowerCase();
    replace(reportedBox, table([
      { label: 'Signal', value: ([p]) => h('code', {}, p) },
      { label: 'Value', num: true, value: ([, r]) => fmtValue(r.value) },
      { label: 'Measured', value: ([, r]) => fmtTime(r.ts) },
    ], Object.entries(twin.reported).filter(([p]) => p.toLowerCase().includes(filter)).sort(([a], [b]) => a.localeCompare(b)),
    { label: 'Reported state', empty: filter ? `No reported signal matches '${filter}'.` : 'This vehicle has reported nothing yet.' }),
    withheldNote(twin));
    replace(ecuBox, table([
      { label: 'ECU', value: (e) => e.name },
      { label: 'Software', value: (e) => e.software_version || '—' },
      { label: 'Hardware', value: (e) => e.hardware_id || '—' },
      { label: 'Source', value: (e) => e.source },
      { label: 'Updated', value: (e) => fmtTime(e.updated_at) },
    ], twin.ecus, { label: 'ECUs', empty: 'No ECU inventory reported.' }));
    fillSignals();
  }

  root.append(head,
    section('Desired state', desiredBox, form),
    section('Signal history', h('div', { class: 'inline-form' },
      h('label', { for: 'history-path' }, 'Signal'), signalSelect,
      h('label', { for: 'history-range' }, 'Range'), rangeSelect,
      h('label', { for: 'history-purpose' }, 'Purpose'), purpose, csvButton,
      actionButton('Refresh', async () => { await plot(); return null; })), chartStatus, chartBox),
    h('div', { class: 'columns' }, section('Reported state', h('div', { class: 'inline-form' }, h('label', { for: 'reported-filter' }, 'Filter'), reportedFilter),
      h('div', { class: 'scroll' }, reportedBox)), section('ECUs and software', ecuBox)));
  draw();
  await plot();

  const refresh = debounce(async () => {
    try { twin = await api(stateUrl(), { signal: controller.signal }); draw(); } catch { /* next change retries */ }
  }, 1000);
  // The chart follows too: new samples of the plotted signal redraw it (at most every 5 s).
  const replot = debounce(() => plot(), 5000);
  follow(`/v1/twins/changes${query({ query: `vin == "${vin}"`, purpose: purpose.value })}`, (kind, change) => {
    if (change.vin !== vin) return;
    refresh();
    if ((change.paths || []).includes(signalSelect.value)) replot();
  }, { signal: controller.signal });
  return () => controller.abort();
}

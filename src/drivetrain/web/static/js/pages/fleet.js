// Fleet: every vehicle's last position and state on a map (under incident while a security
// incident of it is unresolved, for a client with security:read), counts by state, model,
// region and software, the vehicle list, and the twins' change feed live.
import { api, follow, query } from '../api.js';
import { countryRings } from '../basemap.js';
import { fleetMap } from '../map.js';
import { PATHS, STATES, lastSeen, reported, softwareOf, vehicleState } from '../fleet-state.js';
import { ago, debounce, errorBox, fmtTime, fmtValue, h, pill, replace, section, table, tiles } from '../ui.js';

// The map and list show at most this many twins (one GET per twin for its state).
const SHOWN = 200;
// Every read of twin state names its purpose: running the fleet. Positions and speeds show
// where the fleet account consented to it; the API withholds them elsewhere and says so.
const PURPOSE = 'fleet_operations';
const ACTIVITY = 25;

function countBy(items, key) {
  const counts = new Map();
  for (const item of items) counts.set(key(item), (counts.get(key(item)) || 0) + 1);
  return [...counts.entries()].sort((a, b) => b[1] - a[1] || String(a[0]).localeCompare(String(b[0])));
}

async function inBatches(items, size, fn) {
  const out = [];
  for (let i = 0; i < items.length; i += size) out.push(...await Promise.all(items.slice(i, i + size).map(fn)));
  return out;
}

export async function render(root, ctx) {
  const controller = new AbortController();
  const twins = new Map();
  const activity = [];
  let total = 0;
  let incidentVins = new Set();
  const summary = h('div');
  const map = h('div', { class: 'map-wrap' });
  const withheld = h('p', { class: 'muted withheld' });
  const list = h('div');
  const feed = h('ol', { class: 'activity', 'aria-live': 'polite' });
  const live = h('span', { class: 'live muted' }, 'connecting…');
  root.append(h('h1', {}, 'Fleet'), summary,
    h('div', { class: 'columns' },
      section('Map', map, withheld, h('p', { class: 'legend-states' }, STATES.map((state) => [pill(state, state.replace(' ', '-')), ' ']))),
      section('Activity', live, feed)),
    section('Vehicles', list));

  const openVehicle = (vin) => ctx.go(`#/vehicle/${encodeURIComponent(vin)}`);
  const rings = await countryRings();

  function draw() {
    const all = [...twins.values()];
    const now = Date.now();
    const rows = all.map((twin) => ({ twin, state: vehicleState(twin, now, incidentVins) }));
    const byState = countBy(rows, (r) => r.state);
    replace(summary,
      tiles([[total === 1 ? 'vehicle' : 'vehicles', total, 'total'], ...STATES.map((state) =>
        [state, (byState.find(([k]) => k === state) || [null, 0])[1], `state-${state.replace(' ', '-')}`])]),
      h('div', { class: 'breakdowns' },
        breakdown('By model', countBy(all, (t) => t.model)),
        breakdown('By region', countBy(all, (t) => t.region)),
        softwareBreakdown(all)),
      total > all.length ? h('p', { class: 'muted' }, `Showing the first ${all.length} of ${total} vehicles.`) : null);
    const hidden = all.filter((t) => t.withheld && t.withheld.location).length;
    replace(withheld, hidden ? `${hidden} of ${all.length} vehicles' location withheld: no consent covers purpose ${PURPOSE} for them.` : '');
    replace(map, fleetMap(rows.map((r) => ({
      vin: r.twin.vin, state: r.state.replace(' ', '-'),
      lat: reported(r.twin, PATHS.lat), lon: reported(r.twin, PATHS.lon),
    })), { onSelect: openVehicle, rings }));
    replace(list, table([
      { label: 'VIN', value: (r) => h('a', { href: `#/vehicle/${encodeURIComponent(r.twin.vin)}` }, r.twin.vin) },
      { label: 'State', value: (r) => pill(r.state, r.state.replace(' ', '-')) },
      { label: 'Model', value: (r) => r.twin.model },
      { label: 'Region', value: (r) => r.twin.region },
      { label: 'Speed km/h', num: true, value: (r) => fmtValue(reported(r.twin, PATHS.speed)) },
      { label: 'SoC %', num: true, value: (r) => fmtValue(reported(r.twin, PATHS.soc)) },
      { label: 'Desired pending', num: true, value: (r) => String(r.twin.counts.pending) },
      { label: 'ECUs', num: true, value: (r) => h('span', { title: softwareOf(r.twin).map(([e, v]) => `${e} ${v}`).join(', ') }, String(softwareOf(r.twin).length)) },
      { label: 'Last seen', value: (r) => h('span', { title: fmtTime(lastSeen(r.twin)) }, ago(lastSeen(r.twin))) },
    ], rows, { label: 'Vehicles', empty: 'No vehicles in this tenant yet: provision some with `drivetrain fleet provision`, or run `drivetrain demo --serve`.' }));
  }

  function breakdown(title, entries) {
    return h('div', { class: 'breakdown' }, h('h3', {}, title),
      entries.length ? h('ul', {}, entries.map(([k, n]) => h('li', {}, h('span', {}, k), ' ', h('strong', {}, String(n))))) : h('p', { class: 'muted' }, '—'));
  }

  // Software by ECU: "BMS 2.3.1 ×5, 2.4.0 ×6" (the versions campaigns and rollouts target).
  function softwareBreakdown(all) {
    const byEcu = new Map();
    for (const twin of all) {
      for (const [ecu, version] of softwareOf(twin)) {
        if (!byEcu.has(ecu)) byEcu.set(ecu, []);
        byEcu.get(ecu).push(version);
      }
    }
    const rows = [...byEcu.entries()].sort(([a], [b]) => a.localeCompare(b));
    return h('div', { class: 'breakdown software' }, h('h3', {}, 'By software'),
      rows.length ? h('ul', {}, rows.map(([ecu, versions]) => h('li', {}, h('span', { class: 'ecu' }, ecu), ' ',
        countBy(versions, (v) => v).map(([v, n]) => `${v} ×${n}`).join(', ')))) : h('p', { class: 'muted' }, 'No ECU inventory reported.'));
  }

  const getTwin = (vin) => api(`/v1/twins/${encodeURIComponent(vin)}${query({ purpose: PURPOSE })}`, { signal: controller.signal });
  // Vehicles under incident: the unresolved incidents (most recently updated first).
  async function loadIncidents() {
    if (!ctx.can('security:read')) return;
    const found = await Promise.all(['open', 'acknowledged'].map((status) =>
      api(`/v1/security/incidents${query({ status, limit: 1000 })}`, { signal: controller.signal })));
    incidentVins = new Set(found.flat().map((i) => i.vin));
  }
  const [page] = await Promise.all([api(`/v1/twins${query({ limit: SHOWN })}`, { signal: controller.signal }), loadIncidents()]);
  total = page.total;
  for (const twin of await inBatches(page.twins.map((t) => t.vin), 8, getTwin)) twins.set(twin.vin, twin);
  draw();

  // Live: refetch the twins the change feed names, redraw at most once a second.
  const stale = new Set();
  const refresh = debounce(async () => {
    const vins = [...stale];
    stale.clear();
    try {
      for (const twin of await inBatches(vins, 8, getTwin)) twins.set(twin.vin, twin);
      if (vins.some((vin) => !twins.has(vin))) total = (await api(`/v1/twins${query({ limit: 1 })}`)).total;
      draw();
    } catch (error) {
      if (!controller.signal.aborted) replace(live, errorBox(error));
    }
  }, 1000);
  follow(`/v1/twins/changes${query({ purpose: PURPOSE })}`, (kind, change) => {
    if (kind === 'overflow') return;
    activity.unshift({ kind, change });
    activity.length = Math.min(activity.length, ACTIVITY);
    replace(feed, activity.map(({ kind: k, change: c }) => h('li', {},
      h('time', {}, fmtTime(c.at)), ' ', pill(k), ' ',
      h('a', { href: `#/vehicle/${encodeURIComponent(c.vin)}` }, c.vin), ' ',
      h('span', { class: 'muted' }, (c.paths || []).slice(0, 3).join(', ') + ((c.paths || []).length > 3 ? ` +${c.paths.length - 3}` : '')))));
    if (twins.has(change.vin) || twins.size < SHOWN) {
      stale.add(change.vin);
      refresh();
    }
  }, { signal: controller.signal, onState: (state) => replace(live, state === 'live' ? 'live: changes appear as they happen' : state) });
  // "last seen", offline age and incidents with the clock
  const ticker = setInterval(() => loadIncidents().catch(() => {}).then(draw), 15000);
  return () => { controller.abort(); clearInterval(ticker); };
}

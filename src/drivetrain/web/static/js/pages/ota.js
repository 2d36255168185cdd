// Updates (OTA): the images the Image repository signs, the tenant's rollouts (a paused one
// with its health gate's evidence: each KPI of the updated group against the control group),
// and what the Director's signed metadata tells one vehicle to install (#/ota/VIN).
// Read-only: publishing images, signing assignments and steering rollouts stay with
// `drivetrain ota`, which holds the signing keys.
import { api, query } from '../api.js';
import { fmtTime, fmtValue, h, pill, replace, section, table } from '../ui.js';

const NO_IMAGES = 'The Image repository signs no image: its repositories are created with '
  + 'drivetrain ota init, and images are published with drivetrain ota image add.';

function bytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 ** 2).toFixed(1)} MiB`;
}

const NO_ROLLOUTS = 'No rollout yet: rollouts are created with drivetrain ota rollout create '
  + '(POST /v1/ota/rollouts) and approved by another person.';

const KPI_LABELS = {
  energy_kwh_per_100km: 'Energy, kWh/100 km',
  dtc_per_vehicle_hour: 'Error DTCs per vehicle-hour',
  security_events_per_vehicle_hour: 'Security events per vehicle-hour',
};

function counts(r) {
  return Object.entries(r.counts).filter(([, n]) => n).map(([state, n]) => `${n} ${state}`).join(', ') || '—';
}

// The gate's evidence of one rollout: a row per KPI, the failed ones marked.
function evidence(r) {
  const rows = Object.entries(r.evidence).map(([kpi, e]) => ({ kpi, ...e }));
  return h('div', { class: 'gate-evidence' },
    h('h3', {}, `Health gate evidence: ${r.name} (paused after wave ${r.wave})`),
    table([
      { label: 'KPI', value: (e) => KPI_LABELS[e.kpi] || e.kpi },
      { label: 'Updated', num: true, value: (e) => fmtValue(e.updated) },
      { label: 'Control', num: true, value: (e) => fmtValue(e.control) },
      { label: 'Limit', num: true, value: (e) => fmtValue(e.limit) },
      { label: 'Margin', num: true, value: (e) => `${fmtValue(Math.round(e.margin * 1000) / 10)} %` },
      { label: 'Vehicles (updated / control)', num: true, value: (e) => `${e.updated_vehicles} / ${e.control_vehicles}` },
      { label: 'Verdict', value: (e) => (e.failed ? pill('worse than control', 'failed') : pill('within margin', 'passed')) },
    ], rows, { label: `Health gate evidence of ${r.name}`, empty: 'The gate has not judged a wave yet.' }));
}

export async function render(root, ctx, arg) {
  const vin = arg || '';
  const imagesBox = h('div');
  const assignmentsBox = h('div');
  const rolloutsBox = h('div');
  const [images, twins, rollouts] = await Promise.all([
    api('/v1/ota/images'),
    api(`/v1/twins${query({ limit: 500 })}`),
    api(`/v1/ota/rollouts${query({ limit: 100 })}`),
  ]);
  replace(rolloutsBox, table([
    { label: 'Rollout', value: (r) => r.name },
    { label: 'ECU', value: (r) => r.ecu },
    { label: 'Version', value: (r) => r.version },
    { label: 'Status', value: (r) => pill(r.status) },
    { label: 'Wave', num: true, value: (r) => `${r.wave} of ${r.waves.length}` },
    { label: 'Vehicles', value: counts },
    { label: 'Reason', value: (r) => r.reason || '—' },
    { label: 'Last change', value: (r) => fmtTime(r.updated_at) },
  ], rollouts, { label: 'Rollouts', empty: NO_ROLLOUTS }),
  rollouts.filter((r) => r.status === 'paused' && Object.keys(r.evidence).length).map(evidence));
  replace(imagesBox, table([
    { label: 'Image', value: (i) => h('code', {}, i.name) },
    { label: 'Version', value: (i) => i.version },
    { label: 'Hardware', value: (i) => i.hardware_id },
    { label: 'Kind', value: (i) => i.kind },
    { label: 'Release counter', num: true, value: (i) => i.release_counter },
    { label: 'Size', num: true, value: (i) => bytes(i.length) },
    { label: 'SHA-256', value: (i) => h('code', { title: i.sha256 }, `${i.sha256.slice(0, 12)}…`) },
  ], images, { label: 'Images', empty: NO_IMAGES }));

  const picker = h('select', { id: 'ota-vin' },
    h('option', { value: '' }, '— choose a vehicle —'),
    twins.twins.map((t) => h('option', { value: t.vin, selected: t.vin === vin }, t.vin)));
  picker.addEventListener('change', () => ctx.go(`#/ota/${encodeURIComponent(picker.value)}`));

  if (!vin) {
    replace(assignmentsBox, h('p', { class: 'muted empty' }, 'Choose a vehicle to see what the Director tells it to install.'));
  } else {
    const [assignments, twin] = await Promise.all([
      api(`/v1/ota/vehicles/${encodeURIComponent(vin)}/assignments`),
      api(`/v1/twins/${encodeURIComponent(vin)}`),
    ]);
    // What the ECU last reported running, beside what it is told to install.
    const running = new Map(twin.ecus.map((e) => [e.name, e.software_version]));
    const signedVersion = new Map(images.map((i) => [i.name, i.version]));
    replace(assignmentsBox, table([
      { label: 'ECU', value: (a) => a.ecu_serial },
      { label: 'Hardware', value: (a) => a.hardware_id },
      { label: 'Image to install', value: (a) => h('code', {}, a.image) },
      { label: 'Its version', value: (a) => signedVersion.get(a.image) || '—' },
      { label: 'Reported running', value: (a) => running.get(a.ecu_serial) || 'nothing reported' },
    ], assignments, {
      label: 'Assignments',
      empty: `The Director has signed no assignment for ${vin} yet (drivetrain ota director assign): it is told to install nothing.`,
    }));
  }

  root.append(h('h1', {}, 'Updates (OTA)'),
    section('Images', imagesBox),
    section('Rollouts', rolloutsBox),
    section('Vehicle assignments', h('form', { class: 'inline-form', 'aria-label': 'Choose a vehicle' },
      h('label', { for: 'ota-vin' }, 'Vehicle'), picker), assignmentsBox));
}

// Insights: the latest scoring run's maintenance alerts (vehicle, component, predicted window,
// confidence), service appointments with accept and move, and each trained model's card.
// Empty lists show the API's own reason (no model trained, no scoring run yet).
import { api, query } from '../api.js';
import { actionButton, errorBox, facts, fmtTime, h, pill, replace, section, statusLine, table } from '../ui.js';

const NO_APPOINTMENT = 'No appointment yet: alerted vehicles get one when they are booked into a service centre '
  + '(drivetrain insights book, or POST /v1/insights/appointments/book).';

function vehicleLink(vin, fallback) {
  return vin ? h('a', { href: `#/vehicle/${encodeURIComponent(vin)}` }, vin) : h('span', { title: 'pseudonym in the lake; not in the registry' }, fallback);
}

function percent(probability) {
  return `${Math.round(probability * 100)} %`;
}

function windowOf(item) {
  return `${fmtTime(item.window_start)} – ${fmtTime(item.window_end)}`;
}

function alertsView(answer) {
  const run = answer.run;
  return [
    run ? h('p', { class: 'muted' },
      `Run ${run.run_id} · model ${run.model_name} v${run.model_version} · finished ${fmtTime(run.finished_at)} · `,
      `data ${fmtTime(run.data_start)} – ${fmtTime(run.data_end)} · ${run.vehicles} vehicles, ${run.alerts} alerts`) : null,
    table([
      { label: 'Vehicle', value: (a) => vehicleLink(a.vin, a.vehicle) },
      { label: 'Component', value: (a) => a.component },
      { label: 'Predicted window', value: windowOf },
      { label: 'Confidence', num: true, value: (a) => percent(a.probability) },
      { label: 'Observed', value: (a) => fmtTime(a.observed_at) },
    ], answer.alerts, { label: 'Maintenance alerts', empty: answer.reason || 'No alert.' }),
  ];
}

function metricsTable(card) {
  const rows = Array.isArray(card.metrics.held_out) ? card.metrics.held_out : [];
  return table([
    { label: 'Component', value: (r) => r.component },
    { label: 'Failures', num: true, value: (r) => r.failures },
    { label: 'Caught', num: true, value: (r) => r.caught },
    { label: 'Missed', num: true, value: (r) => r.missed },
    { label: 'Mean lead (s)', num: true, value: (r) => r.mean_lead_time_s ?? '—' },
    { label: 'False alarms', num: true, value: (r) => r.false_alarm_vehicles },
  ], rows, { label: `Held-out metrics of ${card.name}`, empty: 'The card holds no held-out evaluation.' });
}

function modelView(model) {
  const card = model.latest;
  const training = card.training || {};
  return h('article', { class: 'model-card', 'aria-label': `Model ${model.name}` },
    h('h3', {}, `${model.name} v${card.version}`),
    facts([
      ['Kind', card.kind],
      ['Versions', model.versions.join(', ')],
      ['Created', fmtTime(card.created_at)],
      ['Code version', card.code_version],
      ['Trained on', `${training.start ? fmtTime(training.start) : '—'} – ${training.end ? fmtTime(training.end) : '—'}`],
      ['Training data', ['vehicles', 'rows', 'failures'].filter((k) => k in training).map((k) => `${training[k]} ${k}`).join(', ') || '—'],
      ['Parameters', Object.entries(card.parameters || {}).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(', ') || '—'],
      ['Features', card.features.length ? card.features.join(', ') : '—'],
      ['Artifact SHA-256', h('code', {}, card.sha256)],
    ]),
    metricsTable(card));
}

export async function render(root, ctx) {
  const actor = ctx.can('insights:write') && ctx.can('fleet:write');
  const why = actor ? null : 'needs insights:write and fleet:write';
  const status = statusLine();
  const alertsBox = h('div');
  const appointmentsBox = h('div');
  const modelsBox = h('div');

  async function act(appointment, action) {
    const path = `/v1/insights/appointments/${encodeURIComponent(appointment.appointment_id)}/${action}`;
    const after = await api(path, { method: 'POST', body: action === 'move' ? {} : undefined });
    await loadAppointments();
    return action === 'move'
      ? `Appointment ${after.appointment_id} moved to ${after.centre_id} on ${after.day}; the car is told.`
      : `Appointment ${after.appointment_id} accepted; the car is told.`;
  }

  function actions(a) {
    const buttons = [];
    if (a.status === 'proposed') buttons.push(actionButton('Accept', () => act(a, 'accept'), { status, disabled: !actor, title: why }));
    if (a.status !== 'cancelled') {
      buttons.push(actionButton('Move', () => act(a, 'move'), { status, disabled: !actor, title: why || 'to the best other slot before the predicted window' }));
    }
    return h('div', { class: 'actions' }, buttons);
  }

  // Move to a chosen centre and day: the API checks capacity, stock and the predicted window.
  const moveWhich = h('select', { id: 'move-appointment' });
  const moveCentre = h('select', { id: 'move-centre' });
  const moveDay = h('input', { id: 'move-day', type: 'date', required: true });
  const moveStatus = statusLine();
  const moveForm = h('form', { class: 'inline-form', 'aria-label': 'Move an appointment' },
    h('label', { for: 'move-appointment' }, 'Appointment'), moveWhich,
    h('label', { for: 'move-centre' }, 'Centre'), moveCentre,
    h('label', { for: 'move-day' }, 'Day'), moveDay,
    h('button', { type: 'submit', disabled: !actor, title: why }, 'Move to this slot'), moveStatus);
  moveForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (!moveWhich.value) {
      replace(moveStatus, h('p', { class: 'error', role: 'alert' }, 'No open appointment to move.'));
      return;
    }
    try {
      const path = `/v1/insights/appointments/${encodeURIComponent(moveWhich.value)}/move`;
      const after = await api(path, { method: 'POST', body: { centre_id: moveCentre.value, day: moveDay.value } });
      replace(moveStatus, h('span', { class: 'ok' }, `Appointment ${after.appointment_id} moved to ${after.centre_id} on ${after.day}; the car is told.`));
      await loadAppointments();
    } catch (error) {
      replace(moveStatus, errorBox(error));
    }
  });

  async function loadAppointments() {
    const [answer, centres] = await Promise.all([
      api(`/v1/insights/appointments${query({ limit: 200 })}`),
      api('/v1/insights/service-centres'),
    ]);
    const chosen = moveWhich.value;
    replace(moveWhich, answer.appointments.filter((a) => a.status !== 'cancelled').map((a) =>
      h('option', { value: a.appointment_id, selected: a.appointment_id === chosen }, `${a.appointment_id} (${a.vin}, ${a.day})`)));
    const centre = moveCentre.value;
    replace(moveCentre, centres.centres.map((c) => h('option', { value: c.centre_id, selected: c.centre_id === centre }, `${c.name} (${c.centre_id})`)));
    replace(appointmentsBox, table([
      { label: 'Appointment', value: (a) => a.appointment_id },
      { label: 'Vehicle', value: (a) => vehicleLink(a.vin, a.vin) },
      { label: 'Component', value: (a) => `${a.component} (${a.part})` },
      { label: 'Centre', value: (a) => `${a.centre_id} (${a.distance_km.toFixed(1)} km)` },
      { label: 'Day', value: (a) => a.day },
      { label: 'Status', value: (a) => pill(a.status) },
      { label: 'Predicted window', value: windowOf },
      { label: 'Confidence', num: true, value: (a) => percent(a.probability) },
      { label: 'Actions', value: actions },
    ], answer.appointments, { label: 'Appointments', empty: NO_APPOINTMENT }));
  }

  async function load() {
    const [alerts, models] = await Promise.all([
      api(`/v1/insights/alerts${query({ limit: 200 })}`),
      api('/v1/insights/models'),
      loadAppointments(),
    ]);
    replace(alertsBox, alertsView(alerts));
    replace(modelsBox, models.models.length
      ? models.models.map(modelView)
      : h('p', { class: 'muted empty' }, models.reason || 'No model.'));
  }

  root.append(h('h1', {}, 'Insights'),
    section('Maintenance alerts', alertsBox),
    section('Appointments', status, appointmentsBox, moveForm),
    section('Models', modelsBox));
  await load();
  const timer = setInterval(() => load().catch(() => {}), 15000);
  return () => clearInterval(timer);
}

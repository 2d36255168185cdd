// Security: the R155 posture (incidents by severity and status, detection-to-response times),
// response playbooks waiting for a second person's approval, fleet incidents, each vehicle's
// incidents with their workflow (acknowledge, assign, resolve) and a vehicle's security
// events (#/security/VIN). The API enforces the two-person rule; the page shows its refusal.
import { api, query } from '../api.js';
import {
  actionButton, errorBox, fmtTime, h, pill, replace, section, statusLine, table, tiles,
} from '../ui.js';

const SEVERITIES = ['critical', 'high', 'medium', 'low', 'info'];
const STATUSES = ['open', 'acknowledged', 'resolved'];
const PLAYBOOKS = [
  ['disable_function', 'disable a vehicle function (needs a second person)'],
  ['security_channel', 'restrict the link to the security channel (needs a second person)'],
  ['collect_evidence', 'collect the detector\'s evidence (runs at once)'],
];

function nsTime(ns) {
  return fmtTime(new Date(ns / 1e6).toISOString());
}

function duration(s) {
  if (s === null || s === undefined) return '—';
  if (s < 120) return `${s.toFixed(1)} s`;
  if (s < 7200) return `${(s / 60).toFixed(1)} min`;
  if (s < 172800) return `${(s / 3600).toFixed(1)} h`;
  return `${(s / 86400).toFixed(1)} d`;
}

function vinLink(vin) {
  return h('a', { href: `#/security/${encodeURIComponent(vin)}`, title: 'its security events' }, vin);
}

export async function render(root, ctx, arg) {
  const vin = arg || '';
  const writer = ctx.can('security:write');
  const needs = writer ? null : 'needs security:write';
  const me = ctx.principal.client_id;
  const status = statusLine();
  const reportBox = h('div');
  const responsesBox = h('div');
  const fleetBox = h('div');
  const incidentsBox = h('div');
  const eventsBox = h('div');
  const days = h('select', { id: 'report-days' },
    [7, 30, 90, 365].map((d) => h('option', { value: d, selected: d === 30 }, `last ${d} days`)));
  const statusFilter = h('select', { id: 'incident-status' },
    h('option', { value: '' }, 'every status'), STATUSES.map((s) => h('option', { value: s }, s)));
  const signatureSelect = h('select', { id: 'response-signature', required: true });
  let incidents = [];

  async function loadReport() {
    const report = await api(`/v1/security/report${query({ days: days.value })}`);
    replace(reportBox,
      tiles([['incidents', report.incidents], ['vehicles', report.vehicles], ['events', report.events],
        ['open', report.by_status.open, report.by_status.open ? 'alert' : ''],
        ['awaiting approval', report.awaiting_approval, report.awaiting_approval ? 'alert' : '']]),
      table([
        { label: 'Severity', value: (s) => pill(s, s === 'critical' || s === 'high' ? 'failed' : 'pending') },
        ...STATUSES.map((st) => ({ label: st, num: true, value: (s) => String(report.by_severity[s]?.[st] ?? 0) })),
      ], SEVERITIES.filter((s) => report.by_severity[s]), { label: 'Incidents by severity' }),
      table([
        { label: 'From the vehicle\'s detection to', value: (r) => r[0] },
        { label: 'Incidents', num: true, value: (r) => String(r[1].count) },
        { label: 'Median', num: true, value: (r) => duration(r[1].median_s) },
        { label: '90th percentile', num: true, value: (r) => duration(r[1].p90_s) },
        { label: 'Longest', num: true, value: (r) => duration(r[1].max_s) },
      ], [['acknowledgement', report.to_acknowledge], ['response sent to the vehicle', report.to_respond],
        ['resolution', report.to_resolve]], { label: 'Detection to response' }),
      h('p', { class: 'muted' }, `Incidents opened since ${fmtTime(report.since)}; responses: `
        + `${report.responses.executed} executed, ${report.responses.proposed} awaiting approval, `
        + `${report.responses.refused} refused.`));
  }

  async function decide(response, verb) {
    let after;
    try {
      after = await api(`/v1/security/responses/${response.response_id}/${verb}`, { method: 'POST' });
    } catch (error) {
      if (error.status === 403 && verb === 'approve') {
        error.message = `Refused (two-person rule): ${error.message}`;
      }
      throw error;
    }
    await Promise.all([loadResponses(), loadReport()]);
    return verb === 'approve'
      ? `Response ${after.response_id} approved: job ${after.job_id} sends ${after.playbook} to ${after.vins.length} vehicles.`
      : `Response ${after.response_id} refused: nothing was sent.`;
  }

  async function loadResponses() {
    const responses = await api(`/v1/security/responses${query({ limit: 200 })}`);
    replace(responsesBox, table([
      { label: 'Response', num: true, value: (r) => String(r.response_id) },
      { label: 'Playbook', value: (r) => r.playbook + (r.args.function ? ` (${r.args.function})` : '') },
      { label: 'Signature', value: (r) => h('code', {}, r.signature) },
      { label: 'Vehicles', num: true, value: (r) => String(r.vins.length) },
      { label: 'Status', value: (r) => pill(r.status === 'proposed' ? 'awaiting approval' : r.status, r.status === 'executed' ? 'succeeded' : r.status === 'refused' ? 'cancelled' : 'pending') },
      { label: 'Requested', value: (r) => `${fmtTime(r.created_at)} by ${r.requested_by}` },
      { label: 'Decided', value: (r) => (r.decided_by ? `${fmtTime(r.decided_at)} by ${r.decided_by}` : '—') },
      { label: 'Job', value: (r) => (r.job_id ? h('a', { href: `#/jobs/${encodeURIComponent(r.job_id)}` }, r.job_id) : '') },
      { label: 'Actions', value: (r) => (r.status === 'proposed' ? [
        actionButton('Approve response', () => decide(r, 'approve'), {
          status, disabled: !writer,
          title: needs || (r.requested_by === me ? 'you proposed it: another person must approve it' : null),
        }), ' ',
        actionButton('Refuse', () => decide(r, 'refuse'), { status, disabled: !writer, cls: 'danger', title: needs }),
        r.requested_by === me ? h('span', { class: 'muted' }, ' you proposed it') : null,
      ] : '') },
    ], responses, { label: 'Responses', empty: 'No response proposed yet: propose one below for an incident signature.' }));
  }

  async function loadFleet() {
    const fleet = await api('/v1/security/fleet-incidents');
    replace(fleetBox, table([
      { label: 'Signature', value: (f) => h('code', {}, f.signature) },
      { label: 'Model / region', value: (f) => `${f.group_by} ${f.group}` },
      { label: 'Vehicles', num: true, value: (f) => String(f.vehicles.length) },
      { label: 'Events', num: true, value: (f) => String(f.events) },
      { label: 'Severity', value: (f) => pill(f.severity, 'failed') },
      { label: 'Last event', value: (f) => nsTime(f.last_ns) },
    ], fleet, { label: 'Fleet incidents', empty: 'No signature on several vehicles of one model in the last day.' }));
  }

  function workButton(incident, label, body, message) {
    return actionButton(label, async () => {
      await api(`/v1/security/incidents/${incident.incident_id}/actions`, { method: 'POST', body });
      await Promise.all([loadIncidents(), loadReport()]);
      return `Incident ${incident.incident_id} ${message}.`;
    }, { status, disabled: !writer, title: needs });
  }

  async function loadIncidents() {
    incidents = await api(`/v1/security/incidents${query({ status: statusFilter.value, limit: 500 })}`);
    replace(incidentsBox, table([
      { label: 'Incident', num: true, value: (i) => String(i.incident_id) },
      { label: 'VIN', value: (i) => vinLink(i.vin) },
      { label: 'Signature', value: (i) => h('code', {}, i.signature) },
      { label: 'Severity', value: (i) => pill(i.severity, i.severity === 'critical' || i.severity === 'high' ? 'failed' : 'pending') },
      { label: 'Status', value: (i) => pill(i.status, i.status === 'resolved' ? 'ended' : i.status === 'open' ? 'open' : 'pending') },
      { label: 'Assignee', value: (i) => i.assignee || '—' },
      { label: 'Events', num: true, value: (i) => String(i.event_count) },
      { label: 'Last event', value: (i) => nsTime(i.last_ns) },
      { label: 'Actions', value: (i) => (i.status === 'resolved' ? '' : [
        i.status === 'open' ? workButton(i, 'Acknowledge', { action: 'acknowledge' }, 'acknowledged') : null, ' ',
        i.assignee === me ? null : workButton(i, 'Assign to me', { action: 'assign', assignee: me }, `assigned to ${me}`), ' ',
        workButton(i, 'Resolve', { action: 'resolve' }, 'resolved'),
      ]) },
    ], incidents, { label: 'Incidents', empty: 'No incident: vehicles reported no security event, or none was correlated yet.' }));
    const open = [...new Set(incidents.filter((i) => i.status !== 'resolved').map((i) => i.signature))];
    const chosen = signatureSelect.value;
    replace(signatureSelect, open.map((s) => h('option', { value: s, selected: s === chosen }, s)));
  }

  async function loadEvents() {
    const vins = [...new Set(incidents.map((i) => i.vin))].sort();
    const picker = h('select', { id: 'security-vin' },
      h('option', { value: '' }, '— choose a vehicle —'),
      vins.map((v) => h('option', { value: v, selected: v === vin }, v)));
    picker.addEventListener('change', () => ctx.go(`#/security/${encodeURIComponent(picker.value)}`));
    const pickerRow = h('p', {}, h('label', { for: 'security-vin' }, 'Vehicle '), picker);
    if (!vin) {
      replace(eventsBox, pickerRow, h('p', { class: 'muted empty' }, 'Choose a vehicle to see the security events its detector reported.'));
      return;
    }
    const events = await api(`/v1/security/events${query({ vin, limit: 500 })}`);
    replace(eventsBox, pickerRow, table([
      { label: 'Event', num: true, value: (e) => String(e.event_id) },
      { label: 'Began', value: (e) => nsTime(e.ts_ns) },
      { label: 'Severity', value: (e) => e.severity },
      { label: 'Sensor', value: (e) => String(e.data.sensor ?? '—') },
      { label: 'Signature', value: (e) => h('code', {}, String(e.data.signature ?? '—')) },
      { label: 'Count', num: true, value: (e) => String(e.data.count ?? '—') },
      { label: 'Score', num: true, value: (e) => String(e.data.score ?? '—') },
      { label: 'Evidence', value: (e) => h('code', {}, (Array.isArray(e.data.evidence) ? e.data.evidence : []).slice(0, 3).join('  ')) },
    ], events, { label: `Security events of ${vin}`, empty: `${vin} reported no security event.` }));
  }

  const functionInput = h('input', { id: 'response-function', value: '', spellcheck: 'false', placeholder: 'for disable_function' });
  const playbookSelect = h('select', { id: 'response-playbook' }, PLAYBOOKS.map(([name, meaning]) => h('option', { value: name, title: meaning }, name)));
  const proposeStatus = statusLine();
  const form = h('form', { class: 'inline-form', 'aria-label': 'Propose a response' },
    h('label', { for: 'response-signature' }, 'Signature'), signatureSelect,
    h('label', { for: 'response-playbook' }, 'Playbook'), playbookSelect,
    h('label', { for: 'response-function' }, 'Function'), functionInput,
    h('button', { type: 'submit', disabled: !writer, title: needs }, 'Propose response'), proposeStatus);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      const body = { signature: signatureSelect.value, playbook: playbookSelect.value };
      if (functionInput.value.trim()) body.function = functionInput.value.trim();
      const response = await api('/v1/security/responses', { method: 'POST', body });
      replace(proposeStatus, h('span', { class: 'ok' }, response.status === 'proposed'
        ? `Response ${response.response_id} proposed for ${response.vins.length} vehicles; another person must approve it.`
        : `Response ${response.response_id} ran at once: job ${response.job_id}.`));
      await Promise.all([loadResponses(), loadReport()]);
    } catch (error) {
      replace(proposeStatus, errorBox(error));
    }
  });
  const correlate = actionButton('Correlate new events', async () => {
    const done = await api('/v1/security/correlate', { method: 'POST' });
    await Promise.all([loadIncidents(), loadFleet(), loadReport()]);
    await loadEvents();
    return `${done.events_read} events read: ${done.incidents_opened} incidents opened, ${done.incidents_updated} updated.`;
  }, { status, disabled: !writer, title: needs });
  days.addEventListener('change', () => loadReport().catch((error) => replace(reportBox, errorBox(error))));
  statusFilter.addEventListener('change', () => loadIncidents().catch((error) => replace(incidentsBox, errorBox(error))));

  root.append(h('h1', {}, 'Security'),
    section('Security posture (R155)', h('p', {}, h('label', { for: 'report-days' }, 'Window '), days), reportBox),
    section('Response playbooks', status, responsesBox, form),
    section('Fleet incidents', fleetBox),
    section('Incidents', h('p', {}, h('label', { for: 'incident-status' }, 'Status '), statusFilter, ' ', correlate), incidentsBox),
    section(vin ? `Security events of ${vin}` : 'Security events', eventsBox));
  await Promise.all([loadReport(), loadResponses(), loadFleet(), loadIncidents()]);
  await loadEvents();
}

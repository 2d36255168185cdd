// My vehicle's data (EU Data Act), for an owner account: what each of its vehicles produces
// per container (latest values, trade secrets withheld with the reason), downloads in open
// formats, the grants to third parties (give and revoke) and who read the data.
import { api, query } from '../api.js';
import { actionButton, download, errorBox, fmtTime, fmtValue, h, pill, replace, section, statusLine, table } from '../ui.js';

const DAY_MS = 24 * 3600 * 1000;

export async function render(root, ctx, arg) {
  const { vins } = await api('/v1/data-act/vehicles');
  const owner = ctx.principal.role === 'owner';
  root.append(h('h1', {}, owner ? 'My vehicle data' : 'Shared vehicle data'));
  if (!vins.length) {
    root.append(h('p', { class: 'muted empty' }, owner
      ? 'No vehicle is bound to this account yet: the operator binds it (drivetrain data-act owner add).'
      : 'No owner has granted this client any vehicle.'));
    return null;
  }
  const vin = vins.includes(arg) ? arg : vins[0];
  const picker = h('select', { id: 'data-act-vin' }, vins.map((v) => h('option', { value: v, selected: v === vin }, v)));
  picker.addEventListener('change', () => ctx.go(`#/data-act/${encodeURIComponent(picker.value)}`));
  const status = statusLine();
  const containersBox = h('div');
  const grantsBox = h('div');
  const logBox = h('div');
  const base = `/v1/data-act/vehicles/${encodeURIComponent(vin)}`;

  async function loadOverview() {
    const overview = await api(base);
    replace(containersBox, overview.containers.map((c) => h('article', { class: 'container-card', 'aria-label': `container ${c.name}` },
      h('h3', {}, c.name, ' ', pill(`${c.with_values} of ${c.signal_count} signals with values`, 'parked')),
      h('p', { class: 'muted' }, c.description),
      table([
        { label: 'Signal', value: ([path]) => path },
        { label: 'Latest', value: ([, v]) => fmtValue(v.value) },
        { label: 'At', value: ([, v]) => fmtTime(v.at) },
      ], Object.entries(c.latest), { label: `latest values of ${c.name}`, empty: 'No value reported yet.' }),
      Object.keys(c.withheld).length
        ? h('ul', { class: 'withheld muted', 'aria-label': `withheld in ${c.name}` },
          Object.entries(c.withheld).map(([path, why]) => h('li', {}, h('strong', {}, path), ` withheld: ${why}`)))
        : null)));
  }

  async function loadGrants() {
    if (!owner) return;
    const grants = await api(`${base}/grants`);
    replace(grantsBox, table([
      { label: 'Grant', num: true, value: (g) => String(g.grant_id) },
      { label: 'Recipient', value: (g) => g.recipient },
      { label: 'Containers', value: (g) => g.containers.join(', ') },
      { label: 'Until', value: (g) => fmtTime(g.expires_at) },
      { label: 'Status', value: (g) => pill(g.status) },
      { label: 'Actions', value: (g) => (g.status === 'active' ? actionButton('Revoke', async () => {
        await api(`/v1/data-act/grants/${g.grant_id}/revoke`, { method: 'POST' });
        await loadGrants();
        return `Grant ${g.grant_id} revoked: ${g.recipient} can no longer read it.`;
      }, { status }) : '') },
    ], grants, { label: 'Grants', empty: 'No third party has been granted this vehicle\'s data.' }));
    const log = await api(`${base}/access-log${query({ limit: 50 })}`);
    replace(logBox, table([
      { label: 'At', value: (e) => fmtTime(e.at) },
      { label: 'Who', value: (e) => `${e.client_id} (${e.party.replace('_', ' ')})` },
      { label: 'Read', value: (e) => e.action },
      { label: 'Containers', value: (e) => e.containers.join(', ') },
      { label: 'Values', num: true, value: (e) => String(e.values) },
      { label: 'Outcome', value: (e) => pill(e.error ? `refused: ${e.error}` : e.outcome, e.outcome === 'allowed' ? 'converged' : 'failed') },
    ], log, { label: 'Access log', empty: 'Nobody has read this vehicle\'s data yet.' }));
  }

  const downloads = h('div', { class: 'inline-form' }, ['json', 'csv', 'parquet'].map((format) => actionButton(`Download last 24 h (${format})`, async () => {
    const end = new Date();
    const params = { start: new Date(end.getTime() - DAY_MS).toISOString(), end: end.toISOString(), format };
    const response = await api(`${base}/data${query(params)}`, { raw: true });
    const blob = await response.blob();
    download(`${vin}-24h.${format}`, blob, response.headers.get('content-type'));
    return `Downloaded ${vin}-24h.${format} (${blob.size.toLocaleString()} bytes).`;
  }, { status })));

  root.append(h('div', { class: 'inline-form' }, h('label', { for: 'data-act-vin' }, 'Vehicle'), picker), status,
    section('What the vehicle produces', containersBox),
    section('Download', h('p', { class: 'muted' }, 'Open formats with VSS metadata: JSON (signals object), CSV (unit column), Parquet (key-value metadata).'), downloads));
  if (owner) {
    const containers = await api('/v1/data-act/containers');
    const recipient = h('input', { id: 'grant-recipient', required: true, spellcheck: 'false', placeholder: 'dtc_…' });
    const days = h('input', { id: 'grant-days', type: 'number', min: 1, max: 3660, value: 7 });
    const boxes = containers.map((c) => h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'container', value: c.name }), ` ${c.name}`));
    const give = actionButton('Grant', async () => {
      const chosen = boxes.map((b) => b.querySelector('input')).filter((i) => i.checked).map((i) => i.value);
      const made = await api(`${base}/grants`, { method: 'POST', body: { recipient: recipient.value.trim(), containers: chosen, valid_days: Number(days.value) } });
      await loadGrants();
      return `Granted ${made.containers.join(', ')} to ${made.recipient} until ${fmtTime(made.expires_at)}.`;
    }, { status });
    root.append(section('Share with a third party',
      h('div', { class: 'inline-form' }, h('label', { for: 'grant-recipient' }, 'Recipient client'), recipient,
        h('label', { for: 'grant-days' }, 'Days'), days),
      h('fieldset', {}, h('legend', {}, 'Containers'), boxes), give, grantsBox),
    section('Who read the data', logBox));
  }
  try {
    await Promise.all([loadOverview(), loadGrants()]);
  } catch (error) {
    status.append(errorBox(error));
  }
  return null;
}

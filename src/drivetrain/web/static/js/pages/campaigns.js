// Campaigns: data-collection campaigns with their life cycle (approve, suspend, resume,
// retire), vehicles by state, each vehicle's status, and a form that creates a draft with a
// live preview of the vehicles its fleet query selects. Live via the campaigns change feed.
import { api, follow, query } from '../api.js';
import {
  actionButton, debounce, errorBox, facts, fmtTime, h, pill, replace, section, statusLine, table,
} from '../ui.js';

// Which operator actions each status allows (docs/campaigns.md, "Life cycle and versions";
// an approved campaign starts at its start time, by the campaign runner).
const ACTIONS = {
  draft: ['approve', 'retire'],
  approved: ['retire'],
  running: ['suspend', 'retire'],
  suspended: ['resume', 'retire'],
  finished: ['retire'],
  retired: [],
};

const EXAMPLE = {
  campaign: {
    id: 'speed-sample',
    signals: ['Vehicle.Speed', 'Vehicle.Powertrain.TractionBattery.StateOfCharge.Current'],
    period_ms: 1000,
  },
  targeting: { query: 'region == "EU"' },
  description: 'Speed and state of charge every second',
};

function vehicleCounts(vehicles) {
  const entries = Object.entries(vehicles || {}).filter(([, n]) => n > 0);
  return entries.length ? entries.map(([state, n]) => [pill(`${n} ${state}`, state), ' ']) : '—';
}

export async function render(root, ctx, selectedId) {
  const controller = new AbortController();
  const listBox = h('div');
  const detailBox = h('div');
  const status = statusLine();
  const writer = ctx.can('campaigns:write');
  root.append(h('h1', {}, 'Campaigns'), section('Campaigns', status, listBox), detailBox);

  async function act(campaign, action) {
    await api(`/v1/campaigns/${encodeURIComponent(campaign.campaign_id)}/${action}`, { method: 'POST', body: {} });
    await load();
    return `Campaign ${campaign.campaign_id}: ${action} done.`;
  }

  function actions(campaign) {
    return h('div', { class: 'actions' }, (ACTIONS[campaign.status] || []).map((action) =>
      actionButton(action[0].toUpperCase() + action.slice(1), () => act(campaign, action), {
        status, disabled: !writer, title: writer ? `${action} ${campaign.campaign_id}` : 'needs campaigns:write',
        cls: action === 'retire' ? 'danger' : '',
      })));
  }

  async function showDetail(id) {
    if (!id) { replace(detailBox); return; }
    try {
      const [campaign, vehicles] = await Promise.all([
        api(`/v1/campaigns/${encodeURIComponent(id)}`),
        api(`/v1/campaigns/${encodeURIComponent(id)}/vehicles`),
      ]);
      replace(detailBox, section(`Campaign ${campaign.campaign_id}`,
        facts([
          ['Status', pill(campaign.status)], ['Version in force', campaign.version ?? 'none approved yet'],
          ['Latest version', `${campaign.latest_version} (${campaign.current.status}, by ${campaign.current.author})`],
          ['Approved by', campaign.current.approved_by], ['Created', `${fmtTime(campaign.created_at)} by ${campaign.created_by}`],
          ['Started', fmtTime(campaign.started_at)], ['Ended', fmtTime(campaign.ended_at)], ['Reason', campaign.reason],
          ['Delivery job', campaign.job_id ? h('a', { href: `#/jobs/${encodeURIComponent(campaign.job_id)}` }, campaign.job_id) : null],
        ]),
        h('h3', {}, 'Vehicles'),
        table([
          { label: 'VIN', value: (v) => h('a', { href: `#/vehicle/${encodeURIComponent(v.vin)}` }, v.vin) },
          { label: 'State', value: (v) => pill(v.state) },
          { label: 'Version', num: true, value: (v) => v.version ?? '—' },
          { label: 'Updated', value: (v) => fmtTime(v.updated_at) },
          { label: 'Reason', value: (v) => v.reason || '' },
          { label: 'Vehicle said', value: (v) => v.detail || '' },
        ], vehicles, { label: 'Campaign vehicles', empty: 'No vehicle holds this campaign yet (a draft targets nothing until approved).' }),
        h('h3', {}, 'Definition'), h('pre', {}, JSON.stringify(campaign.current.definition, null, 2))));
    } catch (error) {
      replace(detailBox, errorBox(error));
    }
  }

  async function load() {
    const page = await api(`/v1/campaigns${query({ limit: 200 })}`, { signal: controller.signal });
    const campaigns = page.campaigns || page;
    replace(listBox, table([
      { label: 'Campaign', value: (c) => h('a', { href: `#/campaigns/${encodeURIComponent(c.campaign_id)}` }, c.campaign_id) },
      { label: 'Status', value: (c) => pill(c.status) },
      { label: 'Version', num: true, value: (c) => `${c.version ?? '—'} / ${c.latest_version}` },
      { label: 'Vehicles', value: (c) => vehicleCounts(c.vehicles) },
      { label: 'Created', value: (c) => `${fmtTime(c.created_at)} by ${c.created_by}` },
      { label: 'Actions', value: actions },
    ], campaigns, { label: 'Campaigns', empty: 'No campaign yet: create one below, or with `drivetrain campaign create`.' }));
    await showDetail(selectedId);
  }

  // Create a draft, with a live preview of the vehicles its query selects.
  const text = h('textarea', { id: 'campaign-json', rows: 12, spellcheck: 'false' });
  text.value = JSON.stringify(EXAMPLE, null, 2);
  const preview = h('div', { role: 'status', 'aria-live': 'polite' });
  const createStatus = statusLine();
  const updatePreview = debounce(async () => {
    let targeting;
    try { targeting = JSON.parse(text.value).targeting || {}; } catch (error) {
      replace(preview, h('p', { class: 'error' }, `Not JSON yet: ${error.message}`));
      return;
    }
    if (Array.isArray(targeting.vins)) { replace(preview, h('p', {}, `Targets ${targeting.vins.length} named vehicles.`)); return; }
    try {
      const page = await api(`/v1/twins${query({ query: targeting.query || '', limit: 10 })}`);
      replace(preview, h('p', {}, h('strong', {}, `${page.total} vehicles`), ' match the query now',
        page.twins.length ? `: ${page.twins.map((t) => t.vin).join(', ')}${page.total > page.twins.length ? ', …' : ''}` : '.'));
    } catch (error) {
      replace(preview, errorBox(error));
    }
  }, 400);
  text.addEventListener('input', updatePreview);
  const create = h('form', { 'aria-label': 'Create a campaign' },
    h('label', { for: 'campaign-json' }, 'Campaign (JSON, as POST /v1/campaigns takes it)'), text,
    h('h3', {}, 'Vehicles the targeting selects'), preview,
    h('button', { type: 'submit', disabled: !writer, title: writer ? null : 'needs campaigns:write' }, 'Create draft'), createStatus);
  create.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      const created = await api('/v1/campaigns', { method: 'POST', body: JSON.parse(text.value) });
      replace(createStatus, h('span', { class: 'ok' }, `Draft ${created.campaign_id} created; approve it to start it.`));
      await load();
    } catch (error) {
      replace(createStatus, errorBox(error));
    }
  });
  root.append(section('New campaign', create));

  await load();
  updatePreview();
  const reload = debounce(() => load().catch(() => {}), 700);
  follow('/v1/campaigns/changes', () => reload(), { signal: controller.signal });
  return () => controller.abort();
}

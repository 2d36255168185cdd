// Ingest health: what ingestion did with each vehicle's data (accepted, refused, not
// consented ...), and the dead letters — what was refused and why — with replay.
import { api, query } from '../api.js';
import { actionButton, errorBox, fmtTime, h, pill, replace, section, statusLine, table, tiles } from '../ui.js';

const REFRESH_MS = 5000;

export async function render(root, ctx) {
  const controller = new AbortController();
  const writer = ctx.can('telemetry:write');
  const totalsBox = h('div');
  const vehiclesBox = h('div');
  const lettersBox = h('div');
  const status = statusLine();
  const statusSelect = h('select', { id: 'dead-letter-status' }, ['open', 'replayed', 'all'].map((s) => h('option', { value: s }, s)));

  async function load() {
    const [stats, letters] = await Promise.all([
      api(`/v1/ingest/stats${query({ vehicles: 50 })}`, { signal: controller.signal }),
      api(`/v1/ingest/dead-letters${query({ status: statusSelect.value, limit: 100 })}`, { signal: controller.signal }),
    ]);
    replace(totalsBox, stats.totals.length
      ? tiles(stats.totals.map((t) => [`samples ${t.outcome.replace('_', ' ')} (${t.messages.toLocaleString()} messages)`, t.samples.toLocaleString(), t.outcome === 'accepted' ? 'state-parked' : 'state-offline']))
      : h('p', { class: 'muted empty' }, 'Nothing ingested yet: no vehicle of this tenant has sent data.'));
    replace(vehiclesBox, table([
      { label: 'VIN', value: (v) => h('a', { href: `#/vehicle/${encodeURIComponent(v.vin)}` }, v.vin) },
      { label: 'Outcomes (samples / messages)', value: (v) => v.outcomes.map((o) => [pill(`${o.outcome} ${o.samples} / ${o.messages}`, o.outcome), ' ']) },
      { label: 'Last', value: (v) => fmtTime(v.last_at) },
    ], stats.vehicles, { label: 'Ingestion per vehicle', empty: 'No vehicle has sent data yet.' }));
    replace(lettersBox, table([
      { label: 'Id', num: true, value: (d) => String(d.dead_letter_id) },
      { label: 'Received', value: (d) => fmtTime(d.received_at) },
      { label: 'VIN', value: (d) => d.vin || '(unreadable)' },
      { label: 'Kind', value: (d) => `${d.kind} (${d.level})` },
      { label: 'Reason', value: (d) => pill(d.reason, 'failed') },
      { label: 'Detail', value: (d) => d.detail },
      { label: 'Samples', num: true, value: (d) => String(d.sample_count) },
      { label: 'Status', value: (d) => (d.status === 'replayed' ? pill(`replayed: ${d.replay_outcome}`, 'replayed') : pill(d.status)) },
      { label: 'Actions', value: (d) => (d.status === 'open' ? actionButton('Replay', async () => {
        const [outcome] = await api('/v1/ingest/dead-letters/replay', { method: 'POST', body: { ids: [d.dead_letter_id] } });
        await load();
        return `Dead letter ${d.dead_letter_id}: ${outcome.outcome} (${outcome.detail}).`;
      }, { status, disabled: !writer, title: writer ? null : 'needs telemetry:write' }) : '') },
    ], letters.dead_letters, { label: 'Dead letters', empty: `No ${statusSelect.value === 'all' ? '' : `${statusSelect.value} `}dead letter: everything sent was accepted.` }));
  }
  statusSelect.addEventListener('change', () => load().catch((error) => replace(status, errorBox(error))));

  root.append(h('h1', {}, 'Ingest health'),
    section('Samples by outcome', totalsBox),
    section('Dead letters', h('div', { class: 'inline-form' }, h('label', { for: 'dead-letter-status' }, 'Show'), statusSelect), status, h('div', { class: 'scroll' }, lettersBox)),
    section('Per vehicle', vehiclesBox));
  await load();
  const timer = setInterval(() => load().catch(() => {}), REFRESH_MS);
  return () => { clearInterval(timer); controller.abort(); };
}

// Commands and jobs: every job the dispatcher runs (commands, campaigns' deliveries) with
// counts per state, each vehicle's delivery, cancel, and a form that sends a command to the
// vehicles a fleet query selects. Live via the jobs change feed.
import { api, follow, query } from '../api.js';
import { parseValue } from './vehicle.js';
import {
  actionButton, debounce, errorBox, facts, fmtTime, h, pill, replace, section, statusLine, table,
} from '../ui.js';

const OPEN = new Set(['scheduled', 'running']);
const COUNTED = ['queued', 'delivered', 'succeeded', 'failed', 'timed_out', 'cancelled'];

function counts(job) {
  const parts = COUNTED.filter((state) => job.counts[state] > 0).map((state) => [pill(`${job.counts[state]} ${state.replace('_', ' ')}`, state), ' ']);
  return parts.length ? parts : h('span', { class: 'muted' }, `${job.counts.total} vehicles`);
}

/** {"times": 3} from "times=3, color=red" (values typed like the vehicle page's). */
function parseArgs(text) {
  const args = {};
  for (const pair of text.split(',').map((p) => p.trim()).filter(Boolean)) {
    const at = pair.indexOf('=');
    if (at < 1) throw new Error(`argument '${pair}' is not name=value`);
    args[pair.slice(0, at).trim()] = parseValue(pair.slice(at + 1));
  }
  return args;
}

export async function render(root, ctx, selectedId) {
  const controller = new AbortController();
  const writer = ctx.can('fleet:write');
  const status = statusLine();
  const listBox = h('div');
  const detailBox = h('div');

  async function showDetail(id) {
    if (!id) { replace(detailBox); return; }
    try {
      const [job, page] = await Promise.all([
        api(`/v1/jobs/${encodeURIComponent(id)}`),
        api(`/v1/jobs/${encodeURIComponent(id)}/vehicles${query({ limit: 500 })}`),
      ]);
      replace(detailBox, section(`Job ${job.job_id}`,
        facts([
          ['Name', job.name], ['Origin', job.origin], ['Status', pill(job.status)], ['Why', job.reason || job.waiting_reason],
          ['Target', job.query ?? 'named vehicles'], ['Created', `${fmtTime(job.created_at)} by ${job.created_by}`],
          ['Started', fmtTime(job.started_at)], ['Ended', fmtTime(job.ended_at)],
        ]),
        h('pre', {}, JSON.stringify(job.body, null, 2)),
        table([
          { label: 'VIN', value: (d) => h('a', { href: `#/vehicle/${encodeURIComponent(d.vin)}` }, d.vin) },
          { label: 'State', value: (d) => pill(d.state) },
          { label: 'Attempts', num: true, value: (d) => String(d.attempts) },
          { label: 'Sent', value: (d) => fmtTime(d.sent_at) },
          { label: 'Finished', value: (d) => fmtTime(d.finished_at) },
          { label: 'Reason', value: (d) => d.reason || '' },
          { label: 'Vehicle said', value: (d) => d.detail || '' },
        ], page.deliveries, { label: 'Deliveries', empty: 'No vehicle was selected.' })));
    } catch (error) {
      replace(detailBox, errorBox(error));
    }
  }

  async function load() {
    const page = await api(`/v1/jobs${query({ limit: 100 })}`, { signal: controller.signal });
    replace(listBox, table([
      { label: 'Job', value: (j) => h('a', { href: `#/jobs/${encodeURIComponent(j.job_id)}` }, j.job_id) },
      { label: 'Name', value: (j) => j.name },
      { label: 'Origin', value: (j) => j.origin },
      { label: 'Status', value: (j) => pill(j.status) },
      { label: 'Vehicles', value: counts },
      { label: 'Created', value: (j) => `${fmtTime(j.created_at)} by ${j.created_by}` },
      { label: 'Actions', value: (j) => (OPEN.has(j.status) ? actionButton('Cancel', async () => {
        await api(`/v1/jobs/${encodeURIComponent(j.job_id)}/cancel`, { method: 'POST', body: { reason: 'cancelled from the console' } });
        await load();
        return `Job ${j.job_id} cancelled.`;
      }, { status, disabled: !writer, cls: 'danger', title: writer ? null : 'needs fleet:write' }) : '') },
    ], page.jobs, { label: 'Jobs', empty: 'No job yet: send a command below, or with `drivetrain job create`.' }));
    await showDetail(selectedId);
  }

  const nameInput = h('input', { id: 'command-name', required: true, value: 'flash_lights', spellcheck: 'false' });
  const argsInput = h('input', { id: 'command-args', value: 'times=3', spellcheck: 'false' });
  const queryInput = h('input', { id: 'command-query', value: '', size: 40, spellcheck: 'false', placeholder: 'all vehicles' });
  const sendStatus = statusLine();
  const form = h('form', { class: 'inline-form', 'aria-label': 'Send a command' },
    h('label', { for: 'command-name' }, 'Command'), nameInput,
    h('label', { for: 'command-args' }, 'Arguments'), argsInput,
    h('label', { for: 'command-query' }, 'Vehicles (fleet query)'), queryInput,
    h('button', { type: 'submit', disabled: !writer, title: writer ? null : 'needs fleet:write' }, 'Send to vehicles'), sendStatus);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      const job = await api('/v1/jobs', { method: 'POST', body: {
        command: { name: nameInput.value.trim(), args: parseArgs(argsInput.value) }, query: queryInput.value.trim(),
      } });
      replace(sendStatus, h('span', { class: 'ok' }, `Job ${job.job_id} created for ${job.counts.total} vehicles.`));
      await load();
    } catch (error) {
      replace(sendStatus, errorBox(error));
    }
  });

  root.append(h('h1', {}, 'Commands & jobs'), section('Send a command', form), section('Jobs', status, listBox), detailBox);
  await load();
  const reload = debounce(() => load().catch(() => {}), 700);
  follow('/v1/jobs/changes', () => reload(), { signal: controller.signal });
  return () => controller.abort();
}

// Demo: the acts of `drivetrain demo` as they happen — each act's state (pending, running,
// passed, failed, skipped) and its one-line result — read from GET /v1/demo, polled every
// second while the page is open (the board changes its version with every step).
import { api } from '../api.js';
import { errorBox, fmtTime, h, pill, replace, section, table } from '../ui.js';

const POLL_MS = 1000;
const NONE = 'No demo plays on this platform for your tenant. `drivetrain demo` starts one and '
  + 'prints this console\'s address; `drivetrain demo --serve` keeps the platform up afterwards.';
const SAID = {
  running: 'The demo is playing its acts.',
  finished: 'The demo has played every act.',
  serving: 'The demo has played every act; the platform keeps running and the fleet keeps driving.',
};

function seconds(s) {
  return s === null || s === undefined ? '' : `${s.toFixed(1)} s`;
}

export async function render(root) {
  const box = h('div');
  const summary = h('p', { role: 'status', 'aria-live': 'polite' });
  root.append(h('h1', {}, 'Demo'), section('Acts', summary, box));
  let version = -1;
  let timer = null;
  let left = false;

  async function poll() {
    try {
      const demo = await api('/v1/demo');
      if (demo.version !== version) {
        version = demo.version;
        const counts = ['passed', 'failed', 'running', 'pending', 'skipped']
          .map((state) => [state, demo.acts.filter((a) => a.state === state).length])
          .filter(([, n]) => n > 0).map(([state, n]) => `${n} ${state}`).join(', ');
        replace(summary, demo.state === 'none' ? NONE
          : `${SAID[demo.state]} ${counts}. Started ${fmtTime(demo.started_at)}${demo.finished_at ? `, finished ${fmtTime(demo.finished_at)}` : ''}.`);
        replace(box, table([
          { label: '#', num: true, value: (a) => String(a.index) },
          { label: 'Act', value: (a) => a.title },
          { label: 'State', value: (a) => pill(a.state) },
          { label: 'Result', value: (a) => h('span', { class: a.outcome && a.state === 'failed' ? 'error' : null }, a.line || (a.state === 'pending' ? 'waiting' : '')) },
          { label: 'Time', num: true, value: (a) => (a.state === 'running' ? `budget ${seconds(a.budget_s)}` : seconds(a.elapsed_s)) },
        ], demo.acts, { label: 'Demo acts', empty: demo.state === 'none' ? '' : 'The scenario has no act.' }));
      }
    } catch (error) {
      replace(box, errorBox(error));
    }
    if (!left) timer = setTimeout(poll, POLL_MS);
  }
  await poll();
  return () => { left = true; clearTimeout(timer); };
}

// The console shell: sign-in, navigation, and a hash router (#/page/argument) that renders
// one page module at a time. Each page's render(main, ctx, arg) may return a cleanup
// function (to close its change streams) that runs when the page is left.
import { api, session, signIn } from './api.js';
import { errorBox, h, replace } from './ui.js';
import * as fleet from './pages/fleet.js';
import * as vehicle from './pages/vehicle.js';
import * as data from './pages/data.js';
import * as campaigns from './pages/campaigns.js';
import * as jobs from './pages/jobs.js';
import * as ingest from './pages/ingest.js';
import * as subscriptions from './pages/subscriptions.js';
import * as insights from './pages/insights.js';
import * as ota from './pages/ota.js';
import * as security from './pages/security.js';
import * as demo from './pages/demo.js';
import * as dataAct from './pages/data-act.js';

// Pages in navigation order, with the scope a token needs to see each one.
const PAGES = [
  { id: 'fleet', title: 'Fleet', scope: 'fleet:read', module: fleet },
  { id: 'vehicle', title: 'Vehicle', scope: 'fleet:read', module: vehicle },
  { id: 'data', title: 'Data', scope: 'telemetry:read', module: data },
  { id: 'campaigns', title: 'Campaigns', scope: 'campaigns:read', module: campaigns },
  { id: 'jobs', title: 'Commands & jobs', scope: 'fleet:read', module: jobs },
  { id: 'ingest', title: 'Ingest health', scope: 'telemetry:read', module: ingest },
  { id: 'subscriptions', title: 'Subscriptions', scope: 'commerce:read', module: subscriptions },
  { id: 'insights', title: 'Insights', scope: 'insights:read', module: insights },
  { id: 'ota', title: 'Updates (OTA)', scope: 'fleet:read', module: ota },
  { id: 'security', title: 'Security', scope: 'security:read', module: security },
  { id: 'demo', title: 'Demo', scope: 'fleet:read', module: demo },
  // The EU Data Act: an owner's own vehicles, or what owners shared with a third party.
  { id: 'data-act', title: 'My vehicle data', scope: 'data_act', roles: ['owner', 'third_party_app'], module: dataAct },
];

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const who = document.getElementById('who');
let leave = null;
let principal = null;

function route() {
  const [, id = '', ...rest] = location.hash.split('/');
  return { id, arg: rest.map(decodeURIComponent).join('/') };
}

function go(hash) {
  if (location.hash === hash) render();
  else location.hash = hash;
}

function signInPage(message) {
  replace(nav);
  replace(who);
  const idInput = h('input', { id: 'client-id', name: 'client_id', autocomplete: 'username', required: true, spellcheck: 'false' });
  const secretInput = h('input', { id: 'client-secret', name: 'client_secret', type: 'password', autocomplete: 'current-password', required: true });
  const status = h('div', { role: 'alert', class: 'status-line' }, message ? h('p', { class: 'error' }, message) : null);
  const form = h('form', { class: 'signin', 'aria-label': 'Sign in' },
    h('h1', {}, 'Sign in to the Drivetrain console'),
    h('p', { class: 'muted' }, 'Use an API client of your tenant (drivetrain auth create-client). ',
      'Its role decides what you may see and do: fleet operator, security analyst, read-only, admin.'),
    h('label', { for: 'client-id' }, 'Client ID'), idInput,
    h('label', { for: 'client-secret' }, 'Client secret'), secretInput,
    h('button', { type: 'submit' }, 'Sign in'), status);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    replace(status, h('p', { class: 'muted' }, 'Signing in…'));
    try {
      await signIn(idInput.value.trim(), secretInput.value);
      secretInput.value = '';
      principal = null;
      await render();
    } catch (error) {
      replace(status, errorBox(error));
    }
  });
  replace(main, form);
  idInput.focus();
}

function shows(page) {
  return can(page.scope) && (!page.roles || page.roles.includes(principal.role));
}

function can(scope) {
  return Boolean(principal && (principal.scopes.includes(scope) || principal.scopes.includes('admin')));
}

function drawChrome(current) {
  replace(nav, h('ul', {}, PAGES.filter(shows).map((p) =>
    h('li', {}, h('a', { href: `#/${p.id}`, 'aria-current': p.id === current ? 'page' : null }, p.title)))));
  const signOut = h('button', { type: 'button', class: 'link' }, 'Sign out');
  signOut.addEventListener('click', () => { session.clear(); principal = null; signInPage(); });
  replace(who, h('span', { title: `scopes: ${principal.scopes.join(' ')}` },
    `${principal.client_id} · ${principal.tenant} · ${principal.role.replace('_', ' ')}`), ' ', signOut);
}

async function render() {
  if (leave) { leave(); leave = null; }
  if (!session.token) { signInPage(); return; }
  try {
    if (!principal) principal = await api('/v1/auth/whoami');
  } catch (error) {
    signInPage(error.message);
    return;
  }
  let { id, arg } = route();
  const visible = PAGES.filter(shows);
  let page = visible.find((p) => p.id === id);
  if (!page) {
    if (!visible.length) {
      replace(main, h('p', { class: 'error' }, `The role ${principal.role} may read none of the console's pages.`));
      return;
    }
    page = visible[0];
    id = page.id;
    arg = '';
    history.replaceState(null, '', `#/${id}`);
  }
  drawChrome(id);
  document.title = `${page.title} · Drivetrain console`;
  const container = h('div', { class: `page page-${id}` });
  replace(main, container);
  try {
    leave = (await page.module.render(container, { can, go, principal }, arg)) || null;
  } catch (error) {
    container.append(errorBox(error));
  }
}

window.addEventListener('hashchange', render);
window.addEventListener('drivetrain:signed-out', () => { principal = null; signInPage('Your session ended; sign in again.'); });
render();

// Subscriptions: the feature catalog with its offers and prices, revenue per region,
// subscriptions by status, and each subscription with pause, resume and cancel; an operator
// with commerce:write can sell an offer for a vehicle.
import { api, query } from '../api.js';
import { actionButton, errorBox, fmtTime, h, pill, replace, section, statusLine, table, tiles } from '../ui.js';

const OPEN = new Set(['trialing', 'active', 'past_due', 'paused']);

export async function render(root, ctx) {
  const writer = ctx.can('commerce:write');
  const status = statusLine();
  const catalogBox = h('div');
  const revenueBox = h('div');
  const listBox = h('div');
  const why = writer ? null : 'needs commerce:write';

  async function act(subscription, action, body = {}) {
    await api(`/v1/commerce/subscriptions/${encodeURIComponent(subscription.subscription_id)}/${action}`, { method: 'POST', body });
    await load();
    return `Subscription ${subscription.subscription_id}: ${action} done.`;
  }

  function actions(s) {
    const buttons = [];
    if (s.status === 'active' || s.status === 'trialing') buttons.push(actionButton('Pause', () => act(s, 'pause'), { status, disabled: !writer, title: why }));
    if (s.status === 'paused') buttons.push(actionButton('Resume', () => act(s, 'resume'), { status, disabled: !writer, title: why }));
    if (OPEN.has(s.status) && !s.cancel_at_period_end) {
      buttons.push(actionButton('Cancel at period end', () => act(s, 'cancel', { at_period_end: true }), { status, disabled: !writer, title: why, cls: 'danger' }));
    }
    return h('div', { class: 'actions' }, buttons);
  }

  async function load() {
    const [catalog, revenue, page] = await Promise.all([
      api('/v1/commerce/catalog').catch((error) => ({ error })),
      api('/v1/commerce/revenue'),
      api(`/v1/commerce/subscriptions${query({})}`),
    ]);
    if (catalog.error) {
      replace(catalogBox, h('p', { class: 'muted empty' }, `No catalog: ${catalog.error.message}`));
    } else {
      replace(catalogBox, h('p', { class: 'muted' }, `Catalog version ${catalog.version}`),
        table([
          { label: 'Feature', value: (f) => h('code', {}, f.code) },
          { label: 'Name', value: (f) => f.name || '' },
          { label: 'Vehicles that qualify', value: (f) => (f.requires ? h('code', {}, f.requires) : 'all') },
        ], catalog.features, { label: 'Features' }),
        table([
          { label: 'Offer', value: (o) => h('code', {}, o.id) },
          { label: 'Features', value: (o) => (o.features || []).join(', ') },
          { label: 'Billing', value: (o) => o.billing },
          { label: 'Prices', value: (o) => Object.entries(o.prices || {}).map(([region, p]) => `${region} ${p.amount} ${p.currency}`).join(' · ') },
        ], catalog.offers, { label: 'Offers' }));
      replace(offerSelect, catalog.offers.map((o) => h('option', { value: o.id }, o.id)));
    }
    replace(revenueBox,
      revenue.regions.length
        ? tiles(revenue.regions.map((r) => [`revenue ${r.region}`, `${r.revenue} ${r.currency}`, 'state-parked']))
        : h('p', { class: 'muted empty' }, 'No revenue recognised yet.'),
      tiles(Object.entries(revenue.subscriptions).map(([state, n]) => [state.replace('_', ' '), n])));
    replace(listBox, table([
      { label: 'Subscription', value: (s) => s.subscription_id },
      { label: 'Vehicle', value: (s) => (s.vin ? h('a', { href: `#/vehicle/${encodeURIComponent(s.vin)}` }, s.vin) : '—') },
      { label: 'Account', value: (s) => s.account_id },
      { label: 'Offer', value: (s) => s.offer_id },
      { label: 'Status', value: (s) => [pill(s.status), s.cancel_at_period_end ? ' ends at period end' : ''] },
      { label: 'Price', num: true, value: (s) => `${s.price} ${s.currency}` },
      { label: 'Period ends', value: (s) => fmtTime(s.period_end) },
      { label: 'In the car', value: (s) => (!s.vin ? '—'
        : (s.confirmed_by_car || []).length ? [pill('confirmed', 'converged'), ` ${s.confirmed_by_car.join(', ')}`]
          : h('span', { class: 'muted' }, 'not confirmed')) },
      { label: 'Actions', value: actions },
    ], page.subscriptions, { label: 'Subscriptions', empty: 'No subscription yet.' }));
  }

  const vinInput = h('input', { id: 'buy-vin', required: true, size: 20, spellcheck: 'false' });
  const accountInput = h('input', { id: 'buy-account', required: true, value: 'driver:demo', spellcheck: 'false' });
  const offerSelect = h('select', { id: 'buy-offer' });
  const buyStatus = statusLine();
  const buy = h('form', { class: 'inline-form', 'aria-label': 'Sell an offer' },
    h('label', { for: 'buy-vin' }, 'VIN'), vinInput, h('label', { for: 'buy-account' }, 'Account'), accountInput,
    h('label', { for: 'buy-offer' }, 'Offer'), offerSelect,
    h('button', { type: 'submit', disabled: !writer, title: why }, 'Buy'), buyStatus);
  buy.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      const sub = await api('/v1/commerce/subscriptions', { method: 'POST', body: { vin: vinInput.value.trim(), account_id: accountInput.value.trim(), offer_id: offerSelect.value } });
      replace(buyStatus, h('span', { class: 'ok' }, `Subscription ${sub.subscription_id} is ${sub.status}.`));
      await load();
    } catch (error) {
      replace(buyStatus, errorBox(error));
    }
  });

  root.append(h('h1', {}, 'Subscriptions'), section('Revenue and subscriptions', revenueBox),
    section('Subscriptions', status, listBox), section('Sell an offer', buy), section('Catalog', catalogBox));
  await load();
  const timer = setInterval(() => load().catch(() => {}), 10000);
  return () => clearInterval(timer);
}

// A time-series line chart drawn as SVG, built into the console (no charting library to
// fetch). series: [{name, points: [{t: ms since epoch, v: number}]}].
import { h } from './ui.js';
import { svg as s } from './map.js';

function ticks(min, max, count = 5) {
  if (min === max) return [min];
  const raw = (max - min) / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const m = raw / power;
  const step = (m >= 5 ? 5 : m >= 2 ? 2 : 1) * power;
  const out = [];
  for (let v = Math.ceil(min / step) * step; v <= max + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

function clock(ms, spanMs) {
  const d = new Date(ms);
  const pad = (n) => String(n).padStart(2, '0');
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}${spanMs < 600000 ? `:${pad(d.getSeconds())}` : ''}`;
  return spanMs > 86400000 ? `${d.getMonth() + 1}/${d.getDate()} ${time}` : time;
}

export function lineChart(series, { width = 1000, height = 300, label = 'Chart', unit = '' } = {}) {
  const points = series.flatMap((one) => one.points).filter((p) => Number.isFinite(p.v));
  if (!points.length) return h('p', { class: 'muted empty' }, 'No samples in this time range.');
  const left = 64, right = 12, top = 12, bottom = 28;
  let [t0, t1] = [Math.min(...points.map((p) => p.t)), Math.max(...points.map((p) => p.t))];
  let [v0, v1] = [Math.min(...points.map((p) => p.v)), Math.max(...points.map((p) => p.v))];
  if (t0 === t1) { t0 -= 1000; t1 += 1000; }
  if (v0 === v1) { v0 -= 1; v1 += 1; }
  const x = (t) => left + ((t - t0) / (t1 - t0)) * (width - left - right);
  const y = (v) => top + (1 - (v - v0) / (v1 - v0)) * (height - top - bottom);
  const parts = [];
  for (const v of ticks(v0, v1)) {
    parts.push(s('line', { x1: left, x2: width - right, y1: y(v), y2: y(v), class: 'grid' }));
    parts.push(s('text', { x: left - 6, y: y(v) + 4, class: 'axis', 'text-anchor': 'end' }, `${v}${unit ? ` ${unit}` : ''}`));
  }
  const timeTicks = ticks(t0, t1, 6);
  for (const t of timeTicks) {
    parts.push(s('text', { x: x(t), y: height - 8, class: 'axis', 'text-anchor': 'middle' }, clock(t, t1 - t0)));
  }
  series.forEach((one, index) => {
    const valid = one.points.filter((p) => Number.isFinite(p.v));
    if (!valid.length) return;
    const d = valid.map((p, i) => `${i ? 'L' : 'M'}${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join(' ');
    parts.push(s('path', { d, class: `line line-${index % 6}` }, s('title', {}, one.name)));
    if (valid.length < 60) valid.forEach((p) => parts.push(s('circle', { cx: x(p.t), cy: y(p.v), r: 2.5, class: `dot line-${index % 6}` })));
  });
  const chart = s('svg', { viewBox: `0 0 ${width} ${height}`, class: 'chart', role: 'img', 'aria-label': `${label}: ${points.length} points` }, ...parts);
  const legend = series.length > 1 ? h('ul', { class: 'legend' }, series.map((one, index) => h('li', { class: `line-${index % 6}` }, one.name))) : null;
  return h('figure', { class: 'chart-figure' }, chart, legend);
}

// The fleet map: vehicles' last positions on an SVG over country outlines (basemap.js) and a
// graticule. It needs no tile server: positions and outlines are projected
// equirectangularly around the fleet's own extent, with degree lines labelled.
import { h } from './ui.js';

const SVG = 'http://www.w3.org/2000/svg';

function s(tag, attrs = {}, ...children) {
  const element = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value !== null && value !== undefined) element.setAttribute(key, String(value));
  }
  for (const child of children) {
    if (child !== null && child !== undefined) element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

function niceStep(span) {
  const raw = span / 5;
  const power = 10 ** Math.floor(Math.log10(raw));
  const m = raw / power;
  return (m >= 5 ? 5 : m >= 2 ? 2 : 1) * power;
}

/**
 * vehicles: [{vin, lat, lon, state}]; onSelect(vin) on click or Enter; rings: country
 * outlines as [lon, lat] arrays (or null).
 */
export function fleetMap(vehicles, { onSelect, rings = null, width = 720, height = 420 } = {}) {
  const placed = vehicles.filter((v) => Number.isFinite(v.lat) && Number.isFinite(v.lon));
  if (!placed.length) {
    return h('p', { class: 'muted empty' }, 'No vehicle has reported a position yet (Vehicle.CurrentLocation.Latitude/Longitude).');
  }
  let [minLat, maxLat] = [Math.min(...placed.map((v) => v.lat)), Math.max(...placed.map((v) => v.lat))];
  let [minLon, maxLon] = [Math.min(...placed.map((v) => v.lon)), Math.max(...placed.map((v) => v.lon))];
  // Never zoom in beyond ~1 km, and keep a margin around the outermost vehicles.
  const pad = Math.max(0.01, (maxLat - minLat) * 0.15, (maxLon - minLon) * 0.15);
  minLat -= pad; maxLat += pad; minLon -= pad; maxLon += pad;
  const kx = Math.cos(((minLat + maxLat) / 2) * Math.PI / 180);
  const margin = 34;
  const scale = Math.min((width - 2 * margin) / ((maxLon - minLon) * kx), (height - 2 * margin) / (maxLat - minLat));
  const cx = (minLon + maxLon) / 2;
  const cy = (minLat + maxLat) / 2;
  const x = (lon) => width / 2 + (lon - cx) * kx * scale;
  const y = (lat) => height / 2 - (lat - cy) * scale;
  const step = niceStep(Math.max(maxLat - minLat, (maxLon - minLon) * kx));
  const digits = Math.max(0, -Math.floor(Math.log10(step)));
  const grid = [];
  for (let lat = Math.ceil(minLat / step) * step; lat <= maxLat; lat += step) {
    grid.push(s('line', { x1: 0, x2: width, y1: y(lat), y2: y(lat), class: 'grid' }));
    grid.push(s('text', { x: 4, y: y(lat) - 3, class: 'axis' }, `${lat.toFixed(digits)}°`));
  }
  const lonStep = niceStep(maxLon - minLon);
  for (let lon = Math.ceil(minLon / lonStep) * lonStep; lon <= maxLon; lon += lonStep) {
    grid.push(s('line', { y1: 0, y2: height, x1: x(lon), x2: x(lon), class: 'grid' }));
    grid.push(s('text', { y: height - 4, x: x(lon) + 3, class: 'axis' }, `${lon.toFixed(digits)}°`));
  }
  const land = rings ? s('path', { class: 'land', d: rings.map((ring) => `M${ring.map(([lon, lat]) => `${x(lon).toFixed(1)},${y(lat).toFixed(1)}`).join('L')}Z`).join('') }) : null;
  const dots = placed.map((v) => {
    const dot = s('g', { class: `vehicle state-${v.state}`, tabindex: 0, role: 'link', 'aria-label': `${v.vin}, ${v.state}` },
      s('title', {}, `${v.vin} · ${v.state} · ${v.lat.toFixed(5)}, ${v.lon.toFixed(5)}`),
      s('circle', { cx: x(v.lon), cy: y(v.lat), r: 7 }));
    if (onSelect) {
      dot.addEventListener('click', () => onSelect(v.vin));
      dot.addEventListener('keydown', (event) => { if (event.key === 'Enter') onSelect(v.vin); });
    }
    return dot;
  });
  return s('svg', { viewBox: `0 0 ${width} ${height}`, class: 'map', role: 'group', 'aria-label': `Map of ${placed.length} vehicles' last positions` },
    s('rect', { x: 0, y: 0, width, height, class: 'sea' }), land, ...grid, ...dots);
}

export { s as svg };

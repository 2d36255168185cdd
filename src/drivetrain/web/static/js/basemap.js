// The map's basemap: country outlines from world-atlas (Natural Earth, 1:110m), shipped in
// the package as TopoJSON under /console/vendor/ and decoded here — no tiles, no CDN.

let loading = null;

/** Decode a TopoJSON topology's delta-encoded, quantized arcs into [lon, lat] lines. */
function decodeArcs(topology) {
  const [sx, sy] = topology.transform.scale;
  const [tx, ty] = topology.transform.translate;
  return topology.arcs.map((arc) => {
    let x = 0;
    let y = 0;
    return arc.map(([dx, dy]) => {
      x += dx;
      y += dy;
      return [x * sx + tx, y * sy + ty];
    });
  });
}

/** A ring that crosses the antimeridian made continuous (longitudes past ±180), so no
 * polygon is drawn as a band across the whole map. */
function unwrap(ring) {
  let shift = 0;
  return ring.map(([lon, lat], i) => {
    if (i) {
      const previous = ring[i - 1][0];
      if (lon - previous > 180) shift -= 360;
      else if (previous - lon > 180) shift += 360;
    }
    return [lon + shift, lat];
  });
}

/** Polygons' rings as [lon, lat] arrays: arc i, or ~i for arc i reversed (TopoJSON spec). */
function rings(topology, arcs) {
  const ringOf = (indexes) => unwrap(indexes.flatMap((index, n) => {
    const line = index >= 0 ? arcs[index] : [...arcs[~index]].reverse();
    return n ? line.slice(1) : line; // consecutive arcs share their end point
  }));
  const out = [];
  for (const geometry of topology.objects.countries.geometries) {
    const polygons = geometry.type === 'Polygon' ? [geometry.arcs] : geometry.type === 'MultiPolygon' ? geometry.arcs : [];
    for (const polygon of polygons) for (const ring of polygon) out.push(ringOf(ring));
  }
  return out;
}

/** The country rings, loaded once; null when the file cannot be read (the map still works). */
export function countryRings() {
  if (!loading) {
    loading = fetch('/console/vendor/world-atlas/countries-110m.json')
      .then((response) => (response.ok ? response.json() : null))
      .then((topology) => (topology ? rings(topology, decodeArcs(topology)) : null))
      .catch(() => null);
  }
  return loading;
}

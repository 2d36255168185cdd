// What a twin's reported state says about a vehicle right now: driving, charging, parked or
// offline — or under incident while a security incident of it is not resolved. Shared by the
// fleet and vehicle pages.

export const PATHS = {
  lat: 'Vehicle.CurrentLocation.Latitude',
  lon: 'Vehicle.CurrentLocation.Longitude',
  speed: 'Vehicle.Speed',
  charging: 'Vehicle.Powertrain.TractionBattery.Charging.IsCharging',
  soc: 'Vehicle.Powertrain.TractionBattery.StateOfCharge.Current',
};

// A vehicle silent longer than this (by the cloud's clock) counts as offline: a connected
// vehicle reports every few seconds.
export const OFFLINE_AFTER_S = 120;
export const STATES = ['driving', 'charging', 'parked', 'offline', 'no data', 'under incident'];

/** The latest time the cloud stored a reported value of `twin`, or null. */
export function lastSeen(twin) {
  const times = Object.values(twin.reported || {}).map((r) => r.updated_at).filter(Boolean);
  return times.length ? times.reduce((a, b) => (a > b ? a : b)) : null;
}

export function reported(twin, path) {
  const entry = (twin.reported || {})[path];
  return entry ? entry.value : null;
}

/** `incidentVins`: the VINs with an unresolved security incident (they show as under incident). */
export function vehicleState(twin, now = Date.now(), incidentVins = null) {
  if (incidentVins && incidentVins.has(twin.vin)) return 'under incident';
  const seen = lastSeen(twin);
  if (!seen) return 'no data';
  if (now - new Date(seen).getTime() > OFFLINE_AFTER_S * 1000) return 'offline';
  if (reported(twin, PATHS.charging) === true) return 'charging';
  const speed = reported(twin, PATHS.speed);
  if (typeof speed === 'number' && Math.abs(speed) >= 0.5) return 'driving';
  return 'parked';
}

/** [["BMS", "2.4.0"], ...]: what software the twin's ECUs run, by ECU name. */
export function softwareOf(twin) {
  return (twin.ecus || []).filter((e) => e.software_version).map((e) => [e.name, e.software_version])
    .sort(([a], [b]) => a.localeCompare(b));
}

// A browser run kept as it goes, so that a reload or a crashed tab loses at most the configuration in flight: each
// finished configuration's measurement is written to localStorage (synchronously, one key per configuration, keyed
// by run id), beside a header with the run's space, seed, preset and label. The page then offers "Resume run …",
// which plans the same space on the same adapter and continues from the next configuration (app.js).
//
// Keys: "spiraltorch-run:<runId>" the header {runId, spec, preset, label, startedAt, adapter, total, done,
// elapsedS}; "spiraltorch-run:<runId>:<i>" the i-th configuration's measurement, in the planned order.

const PREFIX = "spiraltorch-run:";

/** The adapter as a resumed run must find it again: measurements of two adapters are not one run. */
export function adapterKey(info) {
  return [info.vendor, info.architecture, info.device, info.description].join("|");
}

function put(key, value) {
  try {
    localStorage.setItem(key, JSON.stringify(value));
    return true;
  } catch (e) {   // quota exceeded, or storage disabled: the run goes on, it just cannot be resumed past here
    console.warn(`the run cannot be kept for resuming: ${e.message}`);
    return false;
  }
}

function get(key) {
  try {
    const v = localStorage.getItem(key);
    return v === null ? null : JSON.parse(v);
  } catch (_) {
    return null;
  }
}

/** A kept run in progress: made with its header (written at once), then `keep(i, m, elapsedS)` after each finished
 *  configuration. */
export class KeptRun {
  constructor(header) {
    this.header = header;
    this.ok = put(PREFIX + header.runId, header);
  }

  keep(i, m, elapsedS) {
    if (!this.ok) return;
    this.ok = put(`${PREFIX}${this.header.runId}:${i}`, m);
    if (!this.ok) return;
    this.header.done = i + 1;
    this.header.elapsedS = elapsedS;
    this.ok = put(PREFIX + this.header.runId, this.header);
  }

  /** The run is stored on the server: nothing left to resume. */
  forget() { forget(this.header.runId); }
}

/** Every unfinished run kept in this browser, newest first: {header, measurements} (the measurements of the
 *  configurations finished before the interruption, in order). */
export function keptRuns() {
  const out = [];
  for (let i = 0; i < localStorage.length; i++) {
    const key = localStorage.key(i);
    if (!key || !key.startsWith(PREFIX) || key.slice(PREFIX.length).includes(":")) continue;
    const header = get(key);
    if (!header || !header.runId || !header.spec) continue;
    const measurements = [];
    for (let j = 0; j < (header.done || 0); j++) {
      const m = get(`${PREFIX}${header.runId}:${j}`);
      if (!m) break;
      measurements.push(m);
    }
    out.push({ header, measurements });
  }
  return out.sort((a, b) => String(b.header.startedAt).localeCompare(String(a.header.startedAt)));
}

/** Drop a kept run (stored on the server, or discarded). */
export function forget(runId) {
  const keys = [];
  for (let i = 0; i < localStorage.length; i++) {
    const key = localStorage.key(i);
    if (key === PREFIX + runId || (key && key.startsWith(`${PREFIX}${runId}:`))) keys.push(key);
  }
  keys.forEach((k) => localStorage.removeItem(k));
}

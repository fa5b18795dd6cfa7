// Loads the WGSL in shaders/ from the server and assembles a kernel's module source per space.json `sources`,
// as native/shaders.py does. The browser needs `enable subgroups;` in front of the subgroup variant (naga, used
// by wgpu-py, takes the builtins without it and rejects the directive, so the .wgsl files leave it out).

import { getSpace } from "./space.js";

const cache = new Map();

export async function read(name) {
  if (!cache.has(name)) {
    cache.set(name, fetch(`/shaders/${name}`).then((r) => {
      if (!r.ok) throw new Error(`GET /shaders/${name} answered ${r.status}`);
      return r.text();
    }));
  }
  return cache.get(name);
}

/** Whether a configuration is of TopK's radix pipeline (space.json topk.radix: its own module and overrides). */
export function isRadix(kernel, params) { return kernel === "topk" && !!params.radix; }

export async function moduleSource(kernel, params) {
  const spec = getSpace()[kernel];
  if (isRadix(kernel, params)) return (await Promise.all(spec.radix.sources.map(read))).join("\n");
  const on = !!(spec.source_param && params[spec.source_param]);
  const names = spec.sources[String(on)];
  const text = (await Promise.all(names.map(read))).join("\n");
  return kernel === "topk" && params.sg ? `enable subgroups;\n${text}` : text;
}

/** Override constants of a configuration, by their WGSL names (a radix configuration's: topk.radix's). */
export function overrides(kernel, params) {
  const out = {};
  const spec = getSpace()[kernel];
  for (const [p, wgsl] of Object.entries(isRadix(kernel, params) ? spec.radix.overrides : spec.overrides)) {
    if (p in params) out[wgsl] = Number(params[p]);
  }
  return out;
}

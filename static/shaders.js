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

export async function moduleSource(kernel, params) {
  const spec = getSpace()[kernel];
  const on = !!(spec.source_param && params[spec.source_param]);
  const names = spec.sources[String(on)];
  const text = (await Promise.all(names.map(read))).join("\n");
  return kernel === "topk" && params.sg ? `enable subgroups;\n${text}` : text;
}

/** Override constants of a configuration, by their WGSL names. */
export function overrides(kernel, params) {
  const out = {};
  for (const [p, wgsl] of Object.entries(getSpace()[kernel].overrides)) {
    if (p in params) out[wgsl] = Number(params[p]);
  }
  return out;
}

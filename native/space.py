"""The search space of shaders/space.json: enumerating configurations and checking their restrictions.

static/space.js does the same for the browser tuner; the derived quantities below are defined in both.
"""
from __future__ import annotations

import operator

from .shaders import space

_OPS = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


def next_pow2(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()


def derived(kernel: str, shape: dict, params: dict) -> dict:
    """Quantities that restrictions and launches need, computed from a shape and a configuration. The radix
    pipeline (radix_derived) has its own chunks, scratch buffers and workgroup memory."""
    if kernel != "topk":
        return {}
    if params.get("radix"):
        return radix_derived(shape, params)
    rows, cols, k = shape["rows"], shape["cols"], shape["k"]
    kp = next_pow2(k)
    nchunks = -(-cols // params["ch"]) if params.get("use_2ce") and params.get("ch") else 1
    return {"kp": kp, "nchunks": nchunks, "merge_groups": -(-nchunks * kp // params["wg"]),
            "scratch_bytes": rows * nchunks * kp * 8, "input_bytes": rows * cols * 4, "radix_wg_bytes": 0}


def radix_seg(k: int) -> int:
    """SEG of topk_radix.wgsl: pairs per workgroup of the segmented sort, space.json topk.radix.seg lowered to k's
    power of two (at least 2). static/space.js mirrors this."""
    return min(space()["topk"]["radix"]["seg"], max(2, next_pow2(k)))


def radix_derived(shape: dict, params: dict) -> dict:
    """derived() of a radix configuration: nchunks = chunks of rch columns per row; merge_groups = the widest
    dispatch after the filter (segments of the sort, or the rank pass's k / wg); scratch_bytes = the largest
    scratch buffer (the row's k selected pairs, the last round's histogram of each chunk, the rounds' 2^rb-bin
    histograms); radix_wg_bytes = the most workgroup memory an entry point uses (radix_workgroup_bytes); and the
    chain's sizes: seg (SEG), nseg segments, rounds, hwords (histogram words a row), last_bins (the last round's
    bins). static/space.js mirrors this."""
    rows, cols, k = shape["rows"], shape["cols"], shape["k"]
    wg, rb = max(1, int(params["wg"])), min(max(int(params.get("rb") or 0), 0), 24)
    z = radix_sizes(cols, k, int(params.get("rch") or 0), rb, radix_seg(k))
    return {"kp": next_pow2(k), "nchunks": z["nchunks"], "merge_groups": max(z["nseg"], -(-k // wg)),
            "scratch_bytes": max(rows * k * 8, rows * z["nchunks"] * z["last_bins"] * 4, rows * (z["hwords"] + 1) * 4),
            "input_bytes": rows * cols * 4, "radix_wg_bytes": max(radix_workgroup_bytes(wg, rb, z["seg"]).values()),
            **{n: z[n] for n in ("seg", "nseg", "rounds", "hwords", "last_bins")}}


def radix_sizes(cols: int, k: int, rch: int, rb: int, seg: int) -> dict:
    """The radix chain's sizes for chunks of rch columns, rb bits a round and SEG seg: nchunks, seg, nseg segments,
    rounds, bins a round, hwords (histogram words a row), last_bins (the last round's, at most rb bits). rch or rb 0
    (not radix): one chunk, one round."""
    rounds = -(-32 // rb) if rb > 0 else 1
    bins = 1 << rb
    return {"nchunks": -(-cols // rch) if rch > 0 else 1, "seg": seg, "nseg": -(-k // seg), "rounds": rounds,
            "bins": bins, "hwords": rounds * bins, "last_bins": 1 << min(32 - (rounds - 1) * rb, rb)}


def radix_workgroup_bytes(wg: int, rb: int, seg: int) -> dict:
    """Workgroup memory of each entry point of topk_radix.wgsl (the variables it uses; the vec4 and the two counters
    included): the 2^rb-bin histogram and the scan's two u32 per invocation (radix_hist), the scan and wg staged pairs
    (radix_filter), the sort's seg pairs."""
    return {"radix_hist": 4 * (1 << min(max(rb, 0), 24)) + 8 * wg + 16, "radix_filter": 16 * wg + 8 + 16,
            "radix_segsort": 8 * seg, "radix_rank": 0}


def _term(t, env: dict):
    if isinstance(t, str) and not t.replace(".", "").replace("_", "").isalnum():
        raise ValueError(f"bad term {t!r} in space.json")
    if isinstance(t, str):
        if t.startswith("limits."):
            return env["limits"].get(t[len("limits."):], float("inf"))
        if t.startswith("features."):
            return t[len("features."):] in env["features"]
        return env[t]
    return t


def violations(kernel: str, shape: dict, params: dict, limits: dict | None = None,
               features=(), wgsl: bool = True) -> list[str]:
    """Restrictions of space.json that this configuration breaks on an adapter, as readable strings. `wgsl`: the
    configuration runs as this project's WGSL (the page, the wgpu backend); CUDA, MPS and NumPy pass False."""
    env = {**shape, **params, **derived(kernel, shape, params), "limits": limits or {}, "features": set(features),
           "wgsl": bool(wgsl)}
    return [" ".join(map(str, req)) for rule in space()[kernel]["restrictions"] for req in rule["require"]
            if not _holds(rule.get("when", {}), req, params, env)]


def _holds(when: dict, req, params: dict, env: dict) -> bool:
    """A restriction's requirement holds for a configuration: its rule's `when` does not match, or it is met."""
    lhs, op, rhs = req
    return any(params.get(p) != w for p, w in when.items()) or _OPS[op](_term(lhs, env), _term(rhs, env))


def configurations(kernel: str, shape: dict, grid: dict, limits: dict | None = None, features=(),
                   wgsl: bool = True) -> list[dict]:
    """Every legal configuration of `grid` ({param: [values]}) for a shape, in the order of the product of its values
    (`wgsl` as for violations): the legal ones of that product, found by setting the parameters one after another
    and dropping a partial configuration at the first requirement it breaks whose terms are all set (the radix
    pipeline's parameters multiply the product twelvefold; most of it goes early). static/space.js walks alike."""
    names = list(space()[kernel]["params"])
    values = [grid.get(n, [space()[kernel]["default"][n]]) for n in names]
    stages = _stages(kernel, names, shape)
    env = {**shape, "limits": limits or {}, "features": set(features), "wgsl": bool(wgsl)}
    params: dict = {}
    out = []

    def walk(d):
        if d == len(names):
            out.append(dict(params))
            return
        for v in values[d]:
            params[names[d]] = v
            here = {**env, **params, **(derived(kernel, shape, params) if d == len(names) - 1 else {})}
            if all(_holds(when, req, params, here) for when, req in stages[d]):
                walk(d + 1)
        del params[names[d]]
    walk(0)
    return out


def _stages(kernel: str, names: list, shape: dict) -> list[list]:
    """The requirements of space.json's restrictions, (when, requirement), by the index of the last parameter they
    need: the parameters of the rule's `when` and those a term names; a derived quantity needs them all."""
    stages = [[] for _ in names]
    for rule in space()[kernel]["restrictions"]:
        when = rule.get("when", {})
        for req in rule["require"]:
            need = [names.index(p) for p in when]
            for t in (req[0], req[2]):
                if not isinstance(t, str) or t in shape or t == "wgsl" or t.startswith(("limits.", "features.")):
                    continue
                need.append(names.index(t) if t in names else len(names) - 1)
            stages[max(need, default=0)].append((when, req))
    return stages


def default_params(kernel: str) -> dict:
    return dict(space()[kernel]["default"])


def stcore_fallback(rows: int, cols: int, k: int, subgroups: bool) -> dict:
    """st-core's built-in TopK rule (what it does without a tuned file), as a configuration of our search space.
    The rule and its mapping are documented in space.json under topk.baseline; static/space.js mirrors this."""
    use_2ce = cols > 32768 or k > 128
    wg = 256 if subgroups else 128
    kl = 32 if k >= 64 else 16 if k >= 16 else 8
    ch = 8192 if cols > 16384 else 0
    if not use_2ce:
        ch = 0
    elif not (k <= ch < cols):
        ch = next_pow2(max(1024, k))
        if ch >= cols:
            use_2ce, ch = False, 0
    return {"use_2ce": use_2ce, "wg": wg, "kl": kl, "ch": ch, "sg": bool(subgroups), "ls": True, "radix": False,
            "rb": 0, "rch": 0}


# Workgroup memory the TopK kernels use besides the sort buffer: the 256-bin histogram, the selection state and the
# scan's buffer of one u32 per invocation (scan_wg.wgsl / scan_sg.wgsl).
TOPK_WG_BYTES = 256 * 4 + 64


def sort_cap(kp: int, wg: int, limits: dict | None, ls: bool = True) -> int:
    """SORT_CAP of topk.wgsl: kp when the configuration asks for the workgroup-memory sort (ls) and kp (hi, lo)
    pairs fit in the adapter's workgroup storage beside the kernels' other workgroup variables, else 1 (the sort
    then runs in storage memory). static/space.js mirrors this."""
    if not ls:
        return 1
    avail = (limits or {}).get("maxComputeWorkgroupStorageSize", 16384)
    return kp if kp * 8 + TOPK_WG_BYTES + 4 * wg <= avail else 1

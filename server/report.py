"""How good the generated picks are, on a run's own measurements: per shape the best time, our pick's, the fixed
default's and st-core's fallback rule's; and leave-one-shape-out regret (the rule fitted without a shape, judged on
it), so the quality on shapes nobody measured is visible. `judge`: the rule of other runs, judged on a run's
shapes."""
from __future__ import annotations

import math

from spiraltorch_tuner.shaders import space
from spiraltorch_tuner.space import stcore_fallback

from spiraltorch_tuner.heuristics import (MIN_MS, TOPK_KEYS, WHERE_KEYS, WORST_TARGET, adapter_class, choose_topk,  # noqa: F401
                                          choose_where, class_key, class_order, kernel_regret, topk_table, topk_times,
                                          usable, where_kernel_times, where_query, where_table, where_times)

from .merge import merged_classes


def _geo(xs):
    xs = [x for x in xs if x]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else None


def _cfg(c: tuple | None) -> dict | None:
    return dict(zip(TOPK_KEYS, c)) if c else None


def _add_regrets(row: dict, names, best: float) -> None:
    """row[NAME_regret] = row[NAME_ms] / best for each name (None where that configuration was not measured)."""
    for name in names:
        v = row[f"{name}_ms"]
        row[f"{name}_regret"] = v / best if v else None


def _summary(rows: list, col: str) -> dict:
    vals = [r[col] for r in rows if r[col]]
    return {"geomean": _geo(vals), "worst": max(vals) if vals else None, "n": len(vals)}


def report(doc: dict, measurements: list | None = None) -> dict:
    """Per measured TopK shape: the best configuration, our pick, the held-out pick, the fixed default and st-core's
    fallback with their times and regrets; then geo-mean and worst regret of each, and tuned vs st-core speedup.
    `measurements`: judge these instead of the run's own (report_classes passes a class's merged measurements)."""
    ms = usable(doc.get("measurements", []) if measurements is None else measurements)
    sg = "subgroups" in doc.get("features", [])
    times = topk_times(ms)         # the rule's own view: correct, full-clock times; twice measured: the best
    table = topk_table(ms)
    default = tuple(space()["topk"]["default"][k] for k in TOPK_KEYS)
    rows = []
    for e in table:
        key = (e.rows, e.cols, e.k)
        t = times[key]
        best = min(t.values())
        pick = choose_topk(table, *key, sg)
        loo = choose_topk(topk_table(ms, exclude=key), *key, sg)
        base = tuple(stcore_fallback(*key, sg)[k] for k in TOPK_KEYS)
        row = {"shape": f"{e.rows}x{e.cols} k={e.k}", "rows": e.rows, "cols": e.cols, "k": e.k, "configs": len(t),
               "best": _cfg(min(t, key=t.get)), "best_ms": best,
               "pick": _cfg(pick), "pick_ms": t.get(pick),                  # the rule fitted on every shape
               "heldout_pick": _cfg(loo), "heldout_ms": t.get(loo),         # the rule fitted without this shape
               "default": _cfg(default), "default_ms": t.get(default),
               "stcore": _cfg(base), "stcore_ms": t.get(base)}
        _add_regrets(row, ("pick", "heldout", "default", "stcore"), best)
        row["regret"] = row["heldout_regret"]
        row["speedup_vs_stcore"] = row["stcore_ms"] / row["pick_ms"] if row["stcore_ms"] and row["pick_ms"] else None
        rows.append(row)
    return {
        "run_id": doc.get("run_id"), "subgroups": sg, "shapes": rows,
        "regret": {name: _summary(rows, col) for name, col in (
            ("tuned_measured", "pick_regret"), ("tuned_heldout", "heldout_regret"),
            ("fixed_default", "default_regret"), ("stcore_fallback", "stcore_regret"))},
        "speedup_vs_stcore": _geo([r["speedup_vs_stcore"] for r in rows]),
        "heldout_worst": worst_of(rows, lambda s: s["shape"]),
        "where_nd": where_report(ms),
        "doc": "regret = time of the chosen configuration / fastest measured time on that shape (1.0 is perfect). "
               "tuned_heldout: the rule fitted without that shape (leave-one-shape-out). fixed_default: "
               "space.json topk.default for every shape. stcore_fallback: st-core's built-in rule. A shape whose "
               "chosen configuration was not measured is left out of that column.",
    }


def worst_of(rows, name, col: str = "heldout_regret") -> dict | None:
    """The worst regret in column `col` (default: the held-out one) of report rows (`name(row)` names it) and how
    many of them are over the target (WORST_TARGET); None when no row has one."""
    held = [x for x in rows if x[col] is not None]
    if not held:
        return None
    worst = max(held, key=lambda x: x[col])
    return {"name": name(worst), "regret": worst[col], "target": WORST_TARGET,
            "over": sum(x[col] > WORST_TARGET for x in held), "n": len(held)}


class NothingToJudge(ValueError):
    """A judgement without TopK data to fit the rule on or to judge it on."""


def judge(on: dict, fit_measurements: list, fit_runs: list[str]) -> dict:
    """The TopK rule fitted on `fit_measurements` (from the runs `fit_runs`) judged on the TopK shapes of the run
    document `on`, which it was not fitted on (e.g. your model's shapes, tuned in their own run): per shape the best
    configuration and time there, the rule's pick, its time and regret (None where `on` did not measure the pick),
    the summary and the worst; and the where_nd rule on `on`'s cases where both sides have where_nd. The subgroups
    flag is `on`'s adapter's. Without TopK data on one side the TopK part is empty and `topk_missing` says why (a
    where_nd-only run is judged on where_nd alone); raises NothingToJudge when neither kernel can be judged."""
    fit_ms, on_ms = usable(fit_measurements), usable(on.get("measurements", []))
    sg = "subgroups" in on.get("features", [])
    table, times = topk_table(fit_ms), topk_times(on_ms)
    missing = None
    if not times:
        missing = f"run {on.get('run_id')} holds no correct TopK measurement to judge the rule on"
    elif table.votes[sg] is None:
        missing = (f"runs {', '.join(fit_runs) or '(none)'} hold no correct TopK measurement"
                   f"{'' if sg else ' with sg = false'} to fit the rule on")
    where = judge_where(on_ms, fit_ms)
    if missing and where is None:
        raise NothingToJudge(f"{missing}, and no where_nd measurements on both sides")
    rows = []
    for key in sorted(times) if not missing else []:
        t = times[key]
        best = min(t.values())
        pick = choose_topk(table, *key, sg)
        row = {"shape": f"{key[0]}x{key[1]} k={key[2]}", "rows": key[0], "cols": key[1], "k": key[2],
               "configs": len(t), "best": _cfg(min(t, key=t.get)), "best_ms": best, "pick": _cfg(pick),
               "pick_ms": t.get(pick)}
        _add_regrets(row, ("pick",), best)
        rows.append(row)
    return {"run_id": on.get("run_id"), "fit_runs": list(fit_runs), "subgroups": sg, "shapes": rows,
            "topk_missing": missing,
            "regret": _summary(rows, "pick_regret"), "worst": worst_of(rows, lambda x: x["shape"], "pick_regret"),
            "unmeasured": sum(r["pick_ms"] is None for r in rows), "where_nd": where,
            "doc": "regret = time of the rule's pick / fastest measured time on that shape, the rule fitted on "
                   "fit_runs only; a pick this run did not measure has no regret (counted in unmeasured); where_nd "
                   "(where both sides have it): the same per case, and on the kernel time alone; topk_missing: why "
                   "there is no TopK part (null where there is one)"}


def judge_where(on_ms: list, fit_ms: list) -> dict | None:
    """judge's where_nd part: the where_nd rule fitted on `fit_ms` judged on the cases of `on_ms` (usable
    measurements): per case the fastest configuration there, the rule's pick, its regret on a call's time (uploads
    pooled per path, as the rule is fitted) and on the kernel time alone; None unless both sides have where_nd data."""
    times, model = where_times(on_ms), where_table(fit_ms)
    if not times or not len(model):
        return None
    kernel = where_kernel_times(on_ms)
    rows = [_where_row(key, times[key], kernel, [("pick", "pick", choose_where(model, *where_query(*key[:2])))])
            for key in _where_cases(times)]
    return {"cases": rows, "regret": _summary(rows, "pick_regret"),
            "kernel_regret": _summary(rows, "pick_kernel_regret"),
            "worst": worst_of(rows, case_name, "pick_regret"), "unmeasured": sum(r["pick_ms"] is None for r in rows)}


def class_fit(records, on: dict) -> tuple[list, list[str]]:
    """What `judge` fits on for rule "all", the tables a merged file's `choose_topk_for` would use for `on`'s
    adapter: every stored run (records, oldest first) but `on` itself, merged per device class, and of the classes
    that may serve `on` (heuristics.class_order: same vendor and architecture, the closest first) the first with TopK
    data for `on`'s subgroups flag. Returns its merged measurements and run ids ([], [] when none)."""
    merged = merged_classes([r for r in records if r["run_id"] != on.get("run_id")])
    sg = "subgroups" in on.get("features", [])
    for i in class_order([c for c, _, _ in merged], adapter_class(on)):
        _, recs, ms = merged[i]
        if any(sg or not c[4] for t in topk_times(usable(ms)).values() for c in t):
            return ms, [r["run_id"] for r in recs]
    return [], []


class RuleIsJudgedRun(ValueError):
    """A judgement asked to fit the rule on the very run it judges."""


class UnknownRun(LookupError):
    """A run id the store does not hold."""


def rule_fit(store, on: dict, rule: str) -> tuple[list, list[str]]:
    """The measurements and run ids `judge` fits on for `rule`: "all" (class_fit over every stored run), or one
    stored run's id. Raises UnknownRun for a run the store (Store.get_run, Store.all_runs) does not hold and
    RuleIsJudgedRun when `rule` is `on` itself."""
    if rule == "all":
        return class_fit(store.all_runs(), on)
    if rule == on.get("run_id"):
        raise RuleIsJudgedRun("the rule's run is the judged run itself; judge on a run the rule was not fitted on "
                              "(the report has the held-out regret within one run)")
    fit = store.get_run(rule)
    if fit is None:
        raise UnknownRun(rule)
    return fit["run"].get("measurements", []), [rule]


def format_judge(r: dict) -> str:
    """A judgement (judge) as a plain-text table (the CLI prints it)."""
    out = [f"TopK rule of {', '.join(r['fit_runs'])} judged on run {r['run_id']}"]
    if r.get("topk_missing"):
        out.append(f"no TopK part: {r['topk_missing']}")
    else:
        out.append(f"{'shape':<22} {'configs':>7} {'best ms':>9} {'pick':>9}")
    for s in r["shapes"]:
        v = s["pick_regret"]
        out.append(f"{s['shape']:<22} {s['configs']:>7} {_fmt(s['best_ms'], '{:.4g}'):>9} {_fmt(v):>9}{_over(v)}"
                   .rstrip())
    g = r["regret"]
    if g["n"]:
        out.append(f"regret geomean {g['geomean']:.3f}  worst {g['worst']:.3f}  over {g['n']} shapes"
                   + (f" ({r['unmeasured']} picks not measured in this run)" if r["unmeasured"] else ""))
    out += _worst_line(r["worst"], "shapes", "worst")
    w = r.get("where_nd")
    if w:
        out += ["", "where_nd rule of the same runs judged on its cases",
                f"{'where_nd case':<34} {'configs':>7} {'best ms':>9} {'pick':>9} {'kernel':>9}"]
        for c in w["cases"]:
            v = c["pick_regret"]
            out.append(f"{case_name(c):<34} {c['configs']:>7} {_fmt(c['best_ms'], '{:.4g}'):>9} {_fmt(v):>9}"
                       f"{_over(v)}{_fmt(c['pick_kernel_regret']):>9}".rstrip())
        for name, g in (("", w["regret"]), (" (kernel alone)", w["kernel_regret"])):
            if g["n"]:
                out.append(f"where_nd regret{name} geomean {g['geomean']:.3f}  worst {g['worst']:.3f}  over {g['n']} "
                           "cases" + (f" ({w['unmeasured']} picks not measured in this run)" if w["unmeasured"] and
                                      not name else ""))
        out += _worst_line(w["worst"], "cases", "worst")
    return "\n".join(out)


def case_name(c: dict) -> str:
    """A where_nd report row as the CLI and the page name it: "broadcast 64x1024 float32"."""
    return f"{c['case']} {'x'.join(map(str, c['shape']))} {c['dtype']}"


def _where_cases(times: dict) -> list:
    """The (case, shape, dtype) keys of where_times in report order: by case, then size, shape and dtype."""
    return sorted(times, key=lambda k: (k[0], math.prod(k[1]), k[1], k[2]))


def _where_row(key: tuple, t: dict, kernel: dict, picks: list) -> dict:
    """A where_nd report row for case `key` with times `t` ({configuration: ms}): the fastest configuration, and
    per (name, column, configuration) of `picks` the configuration in `column`, NAME_ms, NAME_regret and
    NAME_kernel_regret (over the fastest kernel of its path; `kernel` as where_kernel_times). None where a pick is."""
    case, shape, dtype = key
    best = min(t.values())
    row = {"case": case, "shape": list(shape), "dtype": dtype, "configs": len(t),
           "best": dict(zip(WHERE_KEYS, min(t, key=lambda c: (t[c], c)))), "best_ms": best}
    for name, column, c in picks:
        row[column] = dict(zip(WHERE_KEYS, c)) if c else None
        row[f"{name}_ms"] = t.get(c)
    _add_regrets(row, [name for name, _, _ in picks], best)
    for name, _, c in picks:
        row[f"{name}_kernel_regret"] = kernel_regret(kernel.get(key, {}), c) if c else None
    return row


def where_report(ms: list) -> dict | None:
    """where_nd's part of the report: per measured case (case, shape, dtype) the best configuration, the rule's
    pick, the held-out pick (the rule fitted without every case of that output shape) and the fixed default, with
    regrets; None without where_nd measurements."""
    times = where_times(ms)
    if not times:
        return None
    kernel = where_kernel_times(ms)
    model = where_table(ms)
    default = tuple(space()["where_nd"]["default"][k] for k in WHERE_KEYS)
    held: dict = {}
    rows = []
    for key in _where_cases(times):
        case, shape, _ = key
        q = where_query(case, shape)
        if shape not in held:
            held[shape] = where_table(ms, exclude_shape=shape)
        rows.append(_where_row(key, times[key], kernel, [("pick", "pick", choose_where(model, *q)),
                                                         ("heldout", "heldout_pick", choose_where(held[shape], *q)),
                                                         ("default", "default", default)]))
    names = [("tuned_measured", "pick"), ("tuned_heldout", "heldout"), ("fixed_default", "default")]
    regret = {name: _summary(rows, f"{col}_regret") for name, col in names}
    if kernel:
        regret.update({f"{name}_kernel": _summary(rows, f"{col}_kernel_regret") for name, col in names})
    return {"cases": rows, "regret": regret, "heldout_worst": worst_of(rows, case_name),
            "doc": "where_nd: regret per measured case (a call's time, uploads included); tuned_heldout: the rule "
                   "fitted without every case of that output shape; fixed_default: space.json where_nd.default; "
                   "*_kernel (runs with kernel times): the kernel time over the fastest kernel of the same path"}


def report_classes(records, device_class: str | None = None) -> dict:
    """The report per device class on the merged measurements of the class's runs (the tables `?run=all` generates
    from): regrets, held-out regret and the fixed default's regret all on the merged times. `records`: stored runs
    ({"run_id", "created_at", "run"}), oldest first; `device_class`: only that class (heuristics.class_key), none
    when no run has it."""
    if device_class is not None:        # merge only that class's runs
        records = [r for r in records if class_key(adapter_class(r["run"])) == device_class]
    out = []
    for c, recs, ms in merged_classes(records):
        r = report(recs[-1]["run"], ms)
        r.update(run_id="all", runs=[x["run_id"] for x in recs], adapter_class=dict(vars(c)),
                 device_class=class_key(c))
        out.append(r)
    return {"classes": out, "doc": "one report per device class; each on the merge of its runs (heuristics.py: "
                                   "outlier rule, median of the remaining medians per configuration)"}


def class_summaries(records) -> list[dict]:
    """The device classes of stored runs, without fitting anything: per class its key, adapter class, runs (oldest
    first) and number of measurements."""
    out: dict = {}
    for rec in records:
        c = adapter_class(rec["run"])
        e = out.setdefault(c, {"device_class": class_key(c), "adapter_class": dict(vars(c)), "runs": [],
                               "n_measurements": 0})
        e["runs"].append(rec["run_id"])
        e["n_measurements"] += len(rec["run"].get("measurements") or [])
    return [out[c] for c in sorted(out)]


def _fmt(v, fmt="{:.3f}") -> str:
    return "-" if v is None else fmt.format(v)


def _over(v) -> str:
    """The mark of a regret over the worst-case target in the printed tables."""
    return "*" if v is not None and v > WORST_TARGET else " "


def format_report(r: dict) -> str:
    """The report as a plain-text table (the CLI prints it)."""
    out = [f"{'shape':<22} {'configs':>7} {'best ms':>9} {'pick':>9} {'held-out':>9}  {'default':>9} "
           f"{'st-core':>9}"]
    for s in r["shapes"]:
        out.append(f"{s['shape']:<22} {s['configs']:>7} {_fmt(s['best_ms'], '{:.4g}'):>9} "
                   f"{_fmt(s['pick_regret']):>9} {_fmt(s['heldout_regret']):>9}{_over(s['heldout_regret'])} "
                   f"{_fmt(s['default_regret']):>9} {_fmt(s['stcore_regret']):>9}")
    out.append(f"(columns after 'best ms': regret = time / best time; * held-out regret over {WORST_TARGET})")
    for name, v in r["regret"].items():
        out.append(f"regret {name:<16} geomean {_fmt(v['geomean'])}  worst {_fmt(v['worst'])}  over {v['n']} shapes")
    out += _worst_line(r.get("heldout_worst"), "shapes")
    out.append(f"tuned picks vs st-core fallback: {_fmt(r['speedup_vs_stcore'], '{:.2f}')}x faster (geomean)")
    w = r.get("where_nd")
    if w:
        out += ["", f"{'where_nd case':<34} {'configs':>7} {'best ms':>9} {'pick':>9} {'held-out':>9}  {'default':>9}"]
        for c in w["cases"]:
            out.append(f"{case_name(c):<34} {c['configs']:>7} {_fmt(c['best_ms'], '{:.4g}'):>9} "
                       f"{_fmt(c['pick_regret']):>9} {_fmt(c['heldout_regret']):>9}{_over(c['heldout_regret'])} "
                       f"{_fmt(c['default_regret']):>9}")
        for name, v in w["regret"].items():
            out.append(f"where_nd regret {name:<22} geomean {_fmt(v['geomean'])}  worst {_fmt(v['worst'])}  "
                       f"over {v['n']} cases")
        out += _worst_line(w.get("heldout_worst"), "cases")
    return "\n".join(out)


def _worst_line(worst: dict | None, unit: str, label: str = "worst held out") -> list[str]:
    if not worst:
        return []
    return [f"{label}: {worst['name']} ({worst['regret']:.3f}); {worst['over']} of {worst['n']} {unit} over "
            f"{worst['target']}"]

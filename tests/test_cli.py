"""The console script: native tuning on wgpu-py stores a run like a browser run and writes a compiling
wgpu_heuristics.rs; listing, reports and heuristics from the stored run."""
import json
import shutil
import subprocess
import sys

import pytest

import spiraltorch_tuner as st

WGPU = any(b["name"] == "wgpu" and b["available"] for b in st.backends())
TINY = {"seed": 3, "repeats": 2, "warmups": 1,
        "topk": {"shapes": [[2, 2048, 16], [1, 8192, 64]],
                 "params": {"use_2ce": [False, True], "wg": [64, 128], "kl": [4], "ch": [0, 1024], "sg": [False]}},
        "where_nd": {"shapes": [[4, 33]], "cases": ["contiguous", "neg_stride"], "dtypes": ["float32", "int32"],
                     "params": {"path": ["direct", "segmented"], "wg": [64], "vpt": [1]}}}


def cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "spiraltorch_tuner.server", *args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.skipif(not WGPU, reason="no wgpu-py adapter here")
def test_tune_on_wgpu_stores_the_run_and_writes_compiling_rust(tmp_path):
    space = tmp_path / "space.json"
    space.write_text(json.dumps(TINY))
    db, out = tmp_path / "t.sqlite3", tmp_path / "wgpu_heuristics.rs"
    r = cli("tune", "--backend", "wgpu", "--space", str(space), "--db", str(db), "--out", str(out))
    assert r.returncode == 0, r.stderr
    run_id = r.stdout.strip()
    assert "stored as run " + run_id in r.stderr and "[" in r.stderr   # progress lines
    assert "regret" in r.stderr                                        # the report is printed
    listed = cli("runs", "--db", str(db))
    assert run_id in listed.stdout and "native" in listed.stdout
    text = out.read_text()
    assert run_id in text and "choose_topk" in text
    if shutil.which("rustc"):
        c = subprocess.run(["rustc", "--edition", "2021", "--test", "-D", "warnings", "-o", str(tmp_path / "t"),
                            str(out)], capture_output=True, text=True)
        assert c.returncode == 0, c.stderr
        assert subprocess.run([str(tmp_path / "t")], capture_output=True).returncode == 0
    rep = cli("report", "--db", str(db), "--run", run_id, "--json")
    shapes = json.loads(rep.stdout)["shapes"]
    assert {(s["rows"], s["cols"], s["k"]) for s in shapes} == {(2, 2048, 16), (1, 8192, 64)}
    st_core = cli("heuristics", "--db", str(db), "--run", "latest", "--flavour", "st-core", "-o",
                  str(tmp_path / "st.rs"))
    assert st_core.returncode == 0 and "-> Option<crate::backend::wgpu_heuristics::Choice>" in (tmp_path / "st.rs").read_text()
    v13 = cli("heuristics", "--db", str(db), "--run", "latest", "--flavour", "st-core-v1.3", "-o",
              str(tmp_path / "v13.rs"))
    assert v13.returncode == 0 and "pub use super::Choice;" in (tmp_path / "v13.rs").read_text()


def test_tune_on_an_unavailable_backend_says_why(tmp_path):
    r = cli("tune", "--backend", "mps", "--db", str(tmp_path / "x.sqlite3"))
    assert r.returncode == 2 and "mps" in r.stderr and "macOS" in r.stderr


def test_report_and_heuristics_of_every_run_merged_per_device_class(tmp_path, monkeypatch):
    from test_heuristics_classes import two_classes

    from spiraltorch_tuner.server.settings import Settings
    from spiraltorch_tuner.server.store import open_store
    monkeypatch.delenv("SPIRALTORCH_DATABASE_URL", raising=False)
    db = tmp_path / "team.sqlite3"
    store = open_store(Settings.from_env(db_path=str(db)))
    records = two_classes()
    for r in records:
        store.put_run(r["run"])
    r = cli("report", "--db", str(db), "--run", "all")
    assert r.returncode == 0, r.stderr
    heads = [line for line in r.stdout.splitlines() if line.startswith("device class ")]
    from spiraltorch_tuner.heuristics import adapter_class, class_key
    keys = [class_key(adapter_class(r["run"])) for r in records]       # google, nvidia, google
    assert keys[0] == keys[2] != keys[1] and keys[0] < keys[1]
    assert heads == [f"device class {keys[0]}: 2 runs merged", f"device class {keys[1]}: 1 run merged"]
    key = heads[1].removeprefix("device class ").split(":")[0]
    one = json.loads(cli("report", "--db", str(db), "--run", "all", "--device-class", key, "--json").stdout)
    assert [c["device_class"] for c in one] == [key] and one[0]["runs"] == [records[1]["run_id"]]
    missing = cli("report", "--db", str(db), "--run", "all", "--device-class", "amd|rdna3|32-64|x")
    assert missing.returncode == 1 and "amd|rdna3|32-64|x" in missing.stderr
    assert cli("report", "--db", str(db), "--device-class", key).returncode == 2
    out = tmp_path / "merged.rs"
    h = cli("heuristics", "--db", str(db), "--run", "all", "-o", str(out))
    assert h.returncode == 0 and "from 3 runs merged per device class" in h.stderr
    assert "Merged: 3 runs in 2 device classes" in out.read_text()


def test_import_stores_run_files_like_the_api_and_says_what_it_refused(tmp_path):
    from pathlib import Path
    results = Path(__file__).resolve().parents[1] / "bench" / "results"
    good = results / "h200-2026-11-29-full-topk.json"
    doc = json.loads(good.read_text())
    changed = tmp_path / "changed.json"
    changed.write_text(json.dumps({**doc, "label": "edited"}))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"run_id": "x", "measurements": []}))
    db = str(tmp_path / "team.sqlite3")
    r = cli("import", "--db", db, str(good), str(good), str(changed), str(bad),
            str(results / "h200-2026-11-29-bench.txt"))
    assert r.returncode == 1
    lines = r.stderr.splitlines()
    assert lines[0].endswith(f"run {doc['run_id']} stored (1315 measurements)")
    assert lines[1].endswith(f"run {doc['run_id']} already stored (1315 measurements)")
    assert "already stored with a different body; give this one a new run_id" in lines[2]
    assert "run_id: String should match pattern" in lines[3]
    assert "not a JSON document" in lines[4]
    listed = cli("runs", "--db", db).stdout.splitlines()
    assert len(listed) == 1 and listed[0].startswith(doc["run_id"]) and "edited" not in listed[0]
    assert cli("import", "--db", db, str(good)).returncode == 0
    wrapped = tmp_path / "from-another-server.json"        # GET /api/runs/{id}: {"run_id", "created_at", "run"}
    other = {**doc, "run_id": "another-server-run"}
    wrapped.write_text(json.dumps({"run_id": other["run_id"], "created_at": "2026-11-29T00:00:00+00:00", "run": other}))
    r = cli("import", "--db", db, str(wrapped))
    assert r.returncode == 0 and "run another-server-run stored" in r.stderr


def test_judge_fits_the_rule_on_other_runs_and_judges_it_on_a_runs_shapes(tmp_path):
    """An H200 full run and a run of 40 shapes off its grid (bench/offgrid_shapes.py --seed 2028), imported: the
    rule of the full run (`--rule all`: every other run of the class) judged on the other's shapes gives the
    README's figures."""
    from pathlib import Path
    results = Path(__file__).resolve().parents[1] / "bench" / "results"
    full, off = (results / f"h200-2026-11-29-{n}.json" for n in ("full-topk", "offgrid-topk-3"))
    db = str(tmp_path / "team.sqlite3")
    assert cli("import", "--db", db, str(full), str(off)).returncode == 0
    full_id, off_id = (json.loads(p.read_text())["run_id"] for p in (full, off))
    r = cli("judge", "--db", db, "--on", off_id)
    assert r.returncode == 0, r.stderr
    assert f"TopK rule of {full_id} judged on run {off_id}" in r.stdout
    assert "regret geomean 1.043  worst 1.530  over 40 shapes" in r.stdout
    assert "worst: 13x36162 k=181 (1.530); 2 of 40 shapes over 1.25" in r.stdout
    marked = [line.split()[:2] for line in r.stdout.splitlines() if line.endswith("*")]
    assert marked == [["2x152064", "k=20"], ["13x36162", "k=181"]]
    same = json.loads(cli("judge", "--db", db, "--on", off_id, "--rule", full_id, "--json").stdout)
    assert same["fit_runs"] == [full_id] and same["regret"]["n"] == 40
    assert round(same["regret"]["worst"], 3) == 1.530
    assert cli("judge", "--db", db, "--on", off_id, "--rule", off_id).returncode == 2
    missing = cli("judge", "--db", db, "--on", off_id, "--rule", "no-such-run")
    assert missing.returncode == 1 and "no-such-run" in missing.stderr


# docs/browser-gpu.md's two rounds on the H200: run files (native, browser rounded, browser unrounded) and, per
# (judged run, rule's run), the lines `judge` prints; the report's held-out line of the rounded run where given.
H200_ROUNDS = {
    "round 1, TopK": (("native-full-topk", "browser-full-topk-rounded", "browser-full-topk-unrounded"), {
        "nr": ["regret geomean 1.019  worst 1.107  over 44 shapes"],
        "rn": ["regret geomean 1.010  worst 1.111  over 44 shapes"],
        "nu": ["regret geomean 1.870  worst 13.395  over 44 shapes"],
        "report r": ["regret tuned_heldout    geomean 1.025  worst 1.185  over 44 shapes"]}),
    "round 2, full preset": (("s18-native-full", "s18-browser-full-rounded", "s18-browser-full-topk-unrounded"), {
        "nr": ["regret geomean 1.020  worst 1.099  over 44 shapes",
               "where_nd regret geomean 1.011  worst 1.168  over 42 cases",
               "where_nd regret (kernel alone) geomean 1.006  worst 1.053  over 42 cases"],
        "rn": ["regret geomean 1.012  worst 1.111  over 44 shapes",
               "where_nd regret geomean 1.083  worst 3.304  over 42 cases",
               "where_nd regret (kernel alone) geomean 1.008  worst 1.047  over 42 cases"],
        "nu": ["regret geomean 1.020  worst 1.121  over 44 shapes"],
        "un": ["regret geomean 1.012  worst 1.116  over 44 shapes"]}),
    # round 3: 188 measurements of the rounded run read 33/31 quanta of canary as a lowered clock and were dropped
    "round 3, clock flags": (("s19-native-full", "s19-browser-full-rounded"), {
        "nr": ["regret geomean 1.038  worst 1.845  over 44 shapes",
               "where_nd regret (kernel alone) geomean 1.172  worst 1.483  over 42 cases"]}),
    "round 4, full preset": (("s19-native-full", "s19-r4-browser-full-rounded"), {
        "nr": ["regret geomean 1.019  worst 1.107  over 44 shapes",
               "where_nd regret geomean 1.017  worst 1.339  over 42 cases",
               "where_nd regret (kernel alone) geomean 1.008  worst 1.047  over 42 cases"],
        "rn": ["regret geomean 1.014  worst 1.100  over 44 shapes",
               "where_nd regret geomean 1.021  worst 1.222  over 42 cases",
               "where_nd regret (kernel alone) geomean 1.014  worst 1.073  over 42 cases"],
        "report r": ["regret tuned_heldout    geomean 1.025  worst 1.186  over 44 shapes",
                     "where_nd regret tuned_heldout          geomean 1.007  worst 1.201  over 42 cases"]}),
    # round 5 (nvidia-h200-x2): the page on GPU 0 (unrounded, then rounded), the native run on GPU 1 beside it
    "round 5, full preset": (("s20-native-full", "s20-browser-full-rounded", "s20-browser-full-unrounded"), {
        "nr": ["regret geomean 1.020  worst 1.123  over 44 shapes",
               "where_nd regret geomean 1.024  worst 1.294  over 42 cases",
               "where_nd regret (kernel alone) geomean 1.011  worst 1.043  over 42 cases"],
        "rn": ["regret geomean 1.014  worst 1.100  over 44 shapes",
               "where_nd regret geomean 1.028  worst 1.611  over 42 cases"],
        "nu": ["regret geomean 1.021  worst 1.123  over 44 shapes",
               "where_nd regret geomean 1.016  worst 1.294  over 42 cases"],
        "un": ["regret geomean 1.010  worst 1.103  over 44 shapes"],
        "report r": ["regret tuned_heldout    geomean 1.022  worst 1.171  over 44 shapes",
                     "where_nd regret tuned_heldout          geomean 1.002  worst 1.102  over 42 cases"],
        "report n": ["where_nd regret tuned_heldout          geomean 1.015  worst 1.294  over 42 cases"]}),
    # round 5's page runs judged on the native run alone on a fresh nvidia-h200-x2 (its where_nd paths measured
    # one after the other), and on a native where_nd run with the paths in turns (tuner.alternate)
    "round 5 on the native run alone": (("s20-native-alone", "s20-browser-full-rounded",
                                         "s20-browser-full-unrounded"), {
        "nr": ["regret geomean 1.020  worst 1.117  over 44 shapes",
               "where_nd regret geomean 1.034  worst 1.342  over 42 cases",
               "where_nd regret (kernel alone) geomean 1.010  worst 1.057  over 42 cases"],
        "report n": ["where_nd regret tuned_heldout          geomean 1.028  worst 1.342  over 42 cases"]}),
    "round 5, where_nd paths in turns": (("s20-native-where-turns", "s20-browser-full-rounded",
                                          "s20-browser-full-unrounded"), {
        "nr": ["no TopK part: run", "where_nd regret geomean 1.005  worst 1.047  over 42 cases",
               "where_nd regret (kernel alone) geomean 1.014  worst 1.076  over 42 cases"],
        "nu": ["where_nd regret geomean 1.006  worst 1.072  over 42 cases"],
        "report n": ["where_nd regret tuned_heldout          geomean 1.007  worst 1.072  over 42 cases"]}),
    # round 4's rule on round 2's native run (one GPU, nothing beside it, 10 calls a configuration)
    "round 4 on round 2's native run": (("s18-native-full", "s19-r4-browser-full-rounded"), {
        "nr": ["regret geomean 1.018  worst 1.099  over 44 shapes",
               "where_nd regret geomean 1.011  worst 1.168  over 42 cases",
               "where_nd regret (kernel alone) geomean 1.005  worst 1.023  over 42 cases"]}),
}


@pytest.mark.parametrize("round_", H200_ROUNDS)
def test_the_browser_runs_on_the_h200_give_docs_browser_gpu_figures(tmp_path, round_):
    """The page's runs in Chromium on the H200 (rounded and unrounded timestamps) and the native run on the same
    machine (docs/browser-gpu.md): each rule judged on the other's measurements, TopK and, where both have it,
    where_nd."""
    from pathlib import Path
    names, expect = H200_ROUNDS[round_]
    paths = [Path(__file__).resolve().parents[1] / "bench" / "results" / f"h200-2026-11-30-{n}.json" for n in names]
    db = str(tmp_path / "h200.sqlite3")
    assert cli("import", "--db", db, *map(str, paths)).returncode == 0
    ids = dict(zip("nru", (json.loads(p.read_text())["run_id"] for p in paths)))
    for what, lines in expect.items():
        r = (cli("report", "--db", db, "--run", ids[what[-1]]) if what.startswith("report")
             else cli("judge", "--db", db, "--on", ids[what[0]], "--rule", ids[what[1]]))
        assert r.returncode == 0 and all(x in r.stdout for x in lines), (what, r.stdout[-900:], r.stderr)
        if what == "un" and round_.startswith("round 2"):
            assert "where_nd" not in r.stdout                        # the unrounded run of round 2 is TopK only


def test_three_call_samples_pick_as_ten_on_the_h200_full_runs(tmp_path):
    """docs/timing.md (where_nd.call_timing): the where_nd rule fitted on the first 3 of each call's 10 samples of
    the H200 full runs (bench/call_samples.py), judged on all 10, picks as the rule of all 10."""
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    db = str(tmp_path / "calls.sqlite3")
    expect = {"native-full": "where_nd regret geomean 1.000  worst 1.004  over 42 cases",
              "browser-full-rounded": "where_nd regret geomean 1.000  worst 1.007  over 42 cases"}
    ids = {}
    for name, line in expect.items():
        run = root / "bench" / "results" / f"h200-2026-11-30-s18-{name}.json"
        cut = tmp_path / f"{name}-3.json"
        subprocess.run([sys.executable, str(root / "bench" / "call_samples.py"), str(run), str(cut), "3"], check=True)
        assert cli("import", "--db", db, str(run), str(cut)).returncode == 0
        on, rule = (json.loads(p.read_text())["run_id"] for p in (run, cut))
        r = cli("judge", "--db", db, "--on", on, "--rule", rule)
        assert r.returncode == 0 and line in r.stdout, (name, r.stdout[-600:], r.stderr)
        ids[name] = (on, rule)
    across = cli("judge", "--db", db, "--on", ids["native-full"][0], "--rule", ids["browser-full-rounded"][1])
    assert "where_nd regret geomean 1.011  worst 1.168  over 42 cases" in across.stdout, across.stdout[-600:]

"""The tuner page end to end: a real server (fixture `live_server`, tests/conftest.py), headless Chromium with its
SwiftShader WebGPU adapter, a run posted and stored, the heuristics file downloaded and compiled with rustc."""
from __future__ import annotations

import math
import os
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from spiraltorch_tuner.paths import ROOT

playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-quic", "--disable-background-networking", "--disable-component-update",
        "--disable-sync"]
RUN_TIMEOUT_MS = 120_000
OUTPUT = ROOT / "test-output"


def base_url(live_server) -> str:
    url = live_server if isinstance(live_server, str) else getattr(live_server, "url", None) or live_server.base_url
    return str(url).rstrip("/")


def launch(p, webgpu: bool = True):
    kw = {"executable_path": CHROMIUM} if os.path.exists(CHROMIUM) else {}
    args = (["--enable-unsafe-webgpu"] if webgpu else ["--disable-webgpu"]) + ARGS
    return p.chromium.launch(headless=True, args=args, **kw)


@pytest.fixture(scope="module")
def pw():
    with playwright_api.sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(pw):
    b = launch(pw)
    yield b
    b.close()


@pytest.fixture()
def page(browser):
    ctx = browser.new_context(viewport={"width": 1400, "height": 900}, accept_downloads=True)
    pg = ctx.new_page()
    errors = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.errors = errors
    yield pg
    ctx.close()


def open_tuner(page, url, query=""):
    page.goto(url + "/" + query)
    page.wait_for_selector("#adapter-card[data-ready]", timeout=60_000)
    if page.get_attribute("#adapter-card", "data-ready") != "1":
        pytest.skip(f"no WebGPU adapter in this Chromium: {page.text_content('#status')}")


def run_and_wait(page) -> float:
    assert page.is_enabled("#run")
    t0 = time.perf_counter()
    page.click("#run")
    page.wait_for_selector("body[data-state=running], body[data-state=done], body[data-state=error]")
    page.wait_for_selector("body[data-state=done], body[data-state=error]", timeout=RUN_TIMEOUT_MS)
    return time.perf_counter() - t0


def screenshot(page, tmp_path, name):
    shot = tmp_path / name
    page.screenshot(path=str(shot), full_page=True)
    OUTPUT.mkdir(exist_ok=True)
    shutil.copy(shot, OUTPUT / name)


def server_dbs(live_server, request, tmp_path_factory) -> list[Path]:
    """The server's SQLite file: from the fixture if it says, else the databases under pytest's temp dir (where the
    fixture makes its own); the caller looks for the run in each."""
    for attr in ("db_path", "db"):
        if getattr(live_server, attr, None):
            return [Path(getattr(live_server, attr))]
    for name in ("live_db_path", "db_path"):
        try:
            return [Path(request.getfixturevalue(name))]
        except pytest.FixtureLookupError:
            pass
    base = tmp_path_factory.getbasetemp()
    return [p for ext in ("*.sqlite3", "*.sqlite", "*.db") for p in base.rglob(ext)]


def rows_with_run_id(db: Path, run_id: str) -> int:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        n = 0
        for (table,) in con.execute("select name from sqlite_master where type = 'table'"):
            cols = [r[1] for r in con.execute(f"pragma table_info('{table}')")]
            if "run_id" in cols:
                n += con.execute(f"select count(*) from '{table}' where run_id = ?", (run_id,)).fetchone()[0]
        return n
    finally:
        con.close()


def set_space(page, fields: dict, check=(), uncheck=()):
    """A custom space on the page: `fields` {selector: text} filled, checkboxes checked and unchecked."""
    page.select_option("#preset", "custom")
    for sel in check:
        page.check(sel)
    for sel in uncheck:
        page.uncheck(sel)
    for sel, text in fields.items():
        page.fill(sel, text)


def set_tiny_space(page):
    set_space(page, {"#topk-shapes": "2x1024:8, 2x2048:32", "#topk-wg": "64, 128", "#topk-kl": "4",
                     "#topk-ch": "0, 1024", "#topk-sg": "false, true", "#where-shapes": "3x8x33",
                     "#where-path": "direct, segmented", "#where-wg": "64", "#where-vpt": "1, 4", "#repeats": "3",
                     "#warmups": "1", "#seed": "7", "#label": "e2e tiny"},
              check=["#p-1ce", "#p-2ce", "#where-on",
                     *(f"#where-cases input[value={c}]" for c in ("contiguous", "neg_stride", "broadcast"))])


def test_tiny_custom_space_runs_checks_stores_and_downloads_compilable_rust(page, live_server, request, tmp_path,
                                                                            tmp_path_factory):
    url = base_url(live_server)
    open_tuner(page, url)
    set_tiny_space(page)
    assert "configurations" in page.text_content("#config-count")
    elapsed = run_and_wait(page)
    state = page.evaluate("window.__tuner")
    status = page.text_content("#status")
    assert page.get_attribute("body", "data-state") == "done", status
    assert not page.errors, page.errors
    results = state["results"]
    assert results and len(results) == state["total"]
    bad = [(m.get("rows"), m.get("case"), m["params"], m["error"]) for m in results if not m["ok"]]
    assert not bad, bad
    kernels = {m["kernel"] for m in results}
    assert kernels == {"topk", "where_nd"}
    assert {m["params"]["path"] for m in results if m["kernel"] == "where_nd"} == {"direct", "segmented"}
    assert all(m["kernel_ms"] > 0 for m in results if m["kernel"] == "where_nd")     # SwiftShader has timestamps
    assert {m["params"]["use_2ce"] for m in results if m["kernel"] == "topk"} == {False, True}
    assert elapsed < 60, f"tiny space took {elapsed:.1f} s"
    assert "Finished" in page.text_content("#summary")
    # where the time went, per kernel and phase: the phases lie within the run's time, the timer's share is > 0
    ph = state["phases"]
    assert set(ph) == {"topk", "where_nd"}, ph
    assert all(ph[k]["timing"] > 0 and ph[k]["check"] > 0 for k in ph), ph
    assert ph["where_nd"]["call"] > 0, ph
    assert sum(v for k in ph for v in (ph[k]["configuration"], ph[k]["between"])) <= elapsed * 1e3, (ph, elapsed)
    assert "Time: TopK" in page.text_content("#phases") and "where_nd" in page.text_content("#phases")
    page.wait_for_selector("#report-where-table tbody tr")        # the quality report, TopK and where_nd
    assert page.locator("#report-table tbody tr").count() == 2
    assert page.locator("#report-where-table tbody tr").count() == 3         # three cases of one shape
    assert "held out" in page.text_content("#report-where-summary")
    assert "on the kernel time alone" in page.text_content("#report-where-summary")    # kernel_ms were posted
    assert "Held-out kernel regret" in page.text_content("#report-where-table thead")
    screenshot(page, tmp_path, "tuner.png")

    run_id = state["runId"]
    doc = httpx.get(f"{url}/api/runs/{run_id}").json()
    run = doc["run"]
    assert run["run_id"] == run_id and run["source"] == "browser" and run["status"] == "complete"
    assert run["preset"] == "custom" and run["label"] == "e2e tiny"
    assert run["space"]["topk"]["shapes"] == [[2, 1024, 8], [2, 2048, 32]]
    assert len(run["measurements"]) == len(results)
    assert run["limits"]["maxComputeInvocationsPerWorkgroup"] >= 128
    listed = httpx.get(f"{url}/api/runs").json()
    assert any(r["run_id"] == run_id for r in listed)
    page.wait_for_selector(f"#runs td.links a[href*='{run_id}']")
    page.evaluate("document.querySelector('#report-table tbody').replaceChildren()")
    page.click(f"#runs td.links a[href='/api/runs/{run_id}/report']")      # a stored run's report, on the page
    page.wait_for_selector("#report-table tbody tr")
    assert "e2e tiny" in page.text_content("#report-run")
    assert page.locator("#report-where-table tbody tr").count() == 3
    rep = httpx.get(f"{url}/api/runs/{run_id}/report").json()                # the page names the worst held-out
    held = [s for s in rep["shapes"] if s["heldout_regret"] is not None]     # shape and marks those over 1.25
    worst = max(held, key=lambda s: s["heldout_regret"])
    assert rep["heldout_worst"] == {"name": worst["shape"], "regret": worst["heldout_regret"], "target": 1.25,
                                    "over": sum(s["heldout_regret"] > 1.25 for s in held), "n": len(held)}
    for _ in range(40):
        if "Worst held out" in page.text_content("#report-summary"):
            break
        time.sleep(0.25)
    assert f"Worst held out: {worst['shape']} ({worst['heldout_regret']:.3f})" in page.text_content("#report-summary")
    assert page.locator("#report-table tbody tr.over").count() == sum(s["heldout_regret"] > 1.25 for s in held)
    key = next(c["device_class"] for c in httpx.get(f"{url}/api/classes").json() if run_id in c["runs"])
    cls = page.locator(f'#classes-list li[data-device-class="{key}"]')      # this run's class, its runs merged
    assert cls.count() == 1
    page.evaluate("document.querySelector('#report-table tbody').replaceChildren()")
    cls.locator("a", has_text="report").click()
    page.wait_for_selector("#report-table tbody tr")
    assert "all runs of google" in page.text_content("#report-run")
    mine = httpx.get(f"{url}/api/report", params={"device_class": key}).json()["classes"][0]
    assert run_id in mine["runs"]
    assert page.locator("#report-table tbody tr").count() == len(mine["shapes"])

    dbs = server_dbs(live_server, request, tmp_path_factory)
    assert dbs, "could not find the server's SQLite file"
    assert any(rows_with_run_id(db, run_id) for db in dbs if db.exists()), f"run {run_id} not in {dbs}"

    with page.expect_download() as info:
        page.click("#download")
    download = info.value
    assert download.suggested_filename == "wgpu_heuristics.rs"
    href = page.get_attribute("#download", "href")
    r = httpx.get(url + href if href.startswith("/") else href)
    assert r.status_code == 200
    assert 'filename="wgpu_heuristics.rs"' in r.headers["content-disposition"]
    rs = tmp_path / "wgpu_heuristics.rs"
    download.save_as(str(rs))
    assert rs.read_bytes() == r.content
    st_href = page.get_attribute("#download-stcore", "href")
    assert "flavour=st-core" in st_href
    r2 = httpx.get(url + st_href)
    assert r2.status_code == 200 and 'filename="wgpu_heuristics_generated.rs"' in r2.headers["content-disposition"]
    wasm = httpx.get(url + page.get_attribute("#download-wasm", "href"))
    assert wasm.status_code == 200 and 'filename="tuner_results.json"' in wasm.headers["content-disposition"]
    assert all({"rows_min", "cols_max", "k_max", "subgroup", "use_2ce", "wg", "kl", "ch"} <= set(r)
               for r in wasm.json()) and wasm.json()

    if shutil.which("rustc") is None:
        pytest.skip("rustc is not installed: the downloaded file was not compiled")
    lib = subprocess.run(["rustc", "--edition", "2021", "--crate-type", "lib", str(rs), "--out-dir", str(tmp_path)],
                         capture_output=True, text=True, timeout=300)
    assert lib.returncode == 0, lib.stderr
    exe = tmp_path / "heuristics_tests"
    build = subprocess.run(["rustc", "--edition", "2021", "--test", str(rs), "-o", str(exe)],
                           capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr
    tests = subprocess.run([str(exe)], capture_output=True, text=True, timeout=300)
    assert tests.returncode == 0, tests.stdout + tests.stderr


def test_quick_preset_finishes_within_a_minute_on_swiftshader(page, live_server, tmp_path):
    url = base_url(live_server)
    open_tuner(page, url)
    page.select_option("#preset", "quick")
    elapsed = run_and_wait(page)
    state = page.evaluate("window.__tuner")
    screenshot(page, tmp_path, "tuner-quick.png")
    print(f"\nquick preset: {len(state['results'])} configurations in {elapsed:.1f} s "
          f"(page: {state.get('durationS', 0):.1f} s) in headless Chromium")
    assert page.get_attribute("body", "data-state") == "done", page.text_content("#status")
    bad = [(m.get("rows"), m.get("case"), m["params"], m["error"]) for m in state["results"] if not m["ok"]]
    assert not bad, bad
    run = httpx.get(f"{url}/api/runs/{state['runId']}").json()["run"]
    assert run["preset"] == "quick" and run["status"] == "complete"
    assert elapsed < 60, f"quick preset took {elapsed:.1f} s in headless Chromium (target: under 60 s)"


def test_without_webgpu_the_page_explains_and_disables_run(pw, live_server, tmp_path):
    url = base_url(live_server)
    b = launch(pw, webgpu=False)
    try:
        ctx = b.new_context(viewport={"width": 1400, "height": 900})
        # --disable-webgpu alone may still leave navigator.gpu defined; remove it before the page runs
        ctx.add_init_script("delete Navigator.prototype.gpu;")
        pg = ctx.new_page()
        pg.goto(url + "/")
        pg.wait_for_selector("#adapter-card[data-ready=missing]", timeout=30_000)
        assert pg.is_visible("#webgpu-missing")
        text = pg.text_content("#webgpu-missing")
        assert "--enable-unsafe-webgpu" in text and "113" in text
        assert "navigator.gpu" in pg.text_content("#webgpu-missing-reason")
        assert pg.is_disabled("#run")
        assert pg.get_attribute("body", "data-state") == "error"
        screenshot(pg, tmp_path, "tuner-no-webgpu.png")
    finally:
        b.close()


def test_browser_run_replays_natively_with_identical_results(page, live_server, tmp_path):
    """A real browser run, then POST /api/runs/{id}/compare on wgpu-py: same inputs rebuilt from the seed, every
    configuration's result identical (browser checksum == native checksum), times side by side on the page."""
    from spiraltorch_tuner import backends
    if not any(b["name"] == "wgpu" and b["available"] for b in backends()):
        pytest.skip("no wgpu-py adapter here")
    url = base_url(live_server)
    open_tuner(page, url)
    set_tiny_space(page)
    run_and_wait(page)
    run_id = page.evaluate("window.__tuner.runId")
    doc = httpx.get(f"{url}/api/runs/{run_id}").json()["run"]
    assert all(m.get("checksum") for m in doc["measurements"] if m["ok"])
    r = httpx.post(f"{url}/api/runs/{run_id}/compare?backend=wgpu&repeats=2", timeout=300)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["backend"] == "wgpu" and body["n"] == sum(m["ok"] for m in doc["measurements"])
    assert all(row["checksum_compared"] for row in body["rows"])
    assert body["identical"] == body["n"], [row for row in body["rows"] if not row["identical"]][:3]
    assert all(row["native_ms"] > 0 and row["ratio"] > 0 for row in body["rows"])
    # the page: pick the run and the backend, compare, see the table
    page.reload()
    page.wait_for_selector(f"#compare-run option[value='{run_id}']", state="attached")
    page.select_option("#compare-run", run_id)
    page.select_option("#compare-backend", "wgpu")
    page.click("#compare")
    page.wait_for_selector("body[data-compare]", timeout=300_000)
    assert page.get_attribute("body", "data-compare") == "done", page.text_content("#compare-status")
    assert page.locator("#compare-table tbody tr").count() == body["n"]
    assert f"{body['n']} of {body['n']} identical" in page.text_content("#compare-status")
    page.locator("#compare-card").scroll_into_view_if_needed()
    screenshot(page, tmp_path, "compare.png")


def test_radix_configurations_are_built_checked_and_timed_in_the_page(page, live_server, tmp_path):
    """The radix pipeline from the page's controls (its checkbox, rb, rch) on SwiftShader: every configuration's
    pipelines built from topk_radix.wgsl with its override constants, its result checked bit for bit against the
    reference (1x3000 k=1100 needs the rank pass: more than one segment of 1024), timed, posted; replayed on wgpu-py,
    the same results."""
    from spiraltorch_tuner import backends
    url = base_url(live_server)
    open_tuner(page, url)
    set_space(page, {"#topk-shapes": "2x8192:64, 1x3000:1100", "#topk-wg": "256", "#topk-kl": "4",
                     "#topk-ch": "0", "#topk-sg": "false", "#topk-ls": "true", "#topk-rb": "0, 8, 11",
                     "#topk-rch": "0, 1024, 2048", "#repeats": "2", "#warmups": "1", "#seed": "5",
                     "#label": "e2e radix"},
              check=["#p-1ce", "#p-radix"], uncheck=["#p-2ce", "#where-on"])
    run_and_wait(page)
    state = page.evaluate("window.__tuner")
    assert page.get_attribute("body", "data-state") == "done", page.text_content("#status")
    assert not page.errors, page.errors
    results = state["results"]
    radix = [m for m in results if m["params"]["radix"]]
    assert len(radix) == 2 * 2 * 2 and {m["params"]["rch"] for m in radix} == {1024, 2048}
    bad = [(m["rows"], m["params"], m["error"]) for m in results if not m["ok"]]
    assert not bad, bad
    assert all(m["median_ms"] > 0 and m["timer"] == "timestamp" for m in radix)
    assert {m["params"]["radix"] for m in results} == {False, True}
    assert "radix=T rb=8 rch=1024" in page.text_content("#results")
    # the chart draws radix configurations in a colour and legend entry of their own (not as 1CE)
    assert page.locator("#chart circle.dot.radix").count() >= len(radix) - 2       # each shape's best is "best"
    assert "TopK radix" in page.text_content("#chart")
    run_id = state["runId"]
    run = httpx.get(f"{url}/api/runs/{run_id}").json()["run"]
    assert run["space"]["topk"]["params"]["radix"] == [False, True]
    assert sum(m["params"]["radix"] for m in run["measurements"]) == len(radix)
    if not any(b["name"] == "wgpu" and b["available"] for b in backends()):
        pytest.skip("no wgpu-py adapter here to replay the run")
    r = httpx.post(f"{url}/api/runs/{run_id}/compare?backend=wgpu&repeats=1", timeout=300)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["identical"] == body["n"] == len(results), [row for row in body["rows"] if not row["identical"]][:3]


def test_a_shader_that_fails_to_compile_fails_only_its_configurations(page, live_server, tmp_path):
    """The subgroup scan is replaced by broken WGSL (as on an adapter whose compiler rejects it): every sg=true
    configuration fails with the compiler's message, the others still run and the run is posted."""
    url = base_url(live_server)
    page.route("**/shaders/scan_sg.wgsl", lambda route: route.fulfill(
        status=200, content_type="text/plain", body="fn inv_lane( -> this is not WGSL"))
    open_tuner(page, url)
    set_tiny_space(page)
    page.uncheck("#where-on")
    run_and_wait(page)
    assert page.get_attribute("body", "data-state") == "done", page.text_content("#status")
    state = page.evaluate("window.__tuner")
    sg = [m for m in state["results"] if m["params"].get("sg")]
    plain = [m for m in state["results"] if not m["params"].get("sg")]
    assert sg and all(not m["ok"] and m["error"] for m in sg)
    assert plain and all(m["ok"] for m in plain)
    run = httpx.get(f"{url}/api/runs/{state['runId']}").json()["run"]
    assert len(run["measurements"]) == len(state["results"])
    assert page.locator("#results tbody tr", has_text="sg=T").count() == len(sg)
    screenshot(page, tmp_path, "tuner-shader-error.png")


def test_device_lost_mid_run_is_shown_and_what_was_measured_is_posted(page, live_server, tmp_path):
    url = base_url(live_server)
    open_tuner(page, url)
    set_tiny_space(page)
    page.click("#run")
    deadline = time.time() + 60
    while page.evaluate("window.__tuner.results.length") < 3:   # (wait_for_function would need unsafe-eval)
        assert time.time() < deadline
        time.sleep(0.05)
    page.evaluate("window.__tuner.loseDevice()")
    page.wait_for_selector("body[data-state=done], body[data-state=error]", timeout=RUN_TIMEOUT_MS)
    state = page.evaluate("window.__tuner")
    assert state["runId"], page.text_content("#status")
    run = httpx.get(f"{url}/api/runs/{state['runId']}").json()["run"]
    ok = [m for m in run["measurements"] if m["ok"]]
    failed = [m for m in run["measurements"] if not m["ok"]]
    assert len(ok) >= 3 and failed, (len(ok), len(failed))
    assert any("lost" in (m["error"] or "").lower() or "destroy" in (m["error"] or "").lower() for m in failed)
    assert run["status"] in ("complete", "failed")


def test_hostile_text_from_other_browsers_is_shown_as_text(page, live_server, sample_run, tmp_path):
    """A run whose label and adapter strings carry markup, template syntax and comment terminators is listed on the
    page verbatim as text: no element is created from it and no script runs."""
    url = base_url(live_server)
    evil = '</script><img src=x id=pwned onerror="window.__pwned=1"> {{ 7*7 }} */ "quoted"'
    doc = sample_run(label=evil, adapter={"vendor": evil, "architecture": "<b id=bold>x</b>", "device": "",
                                          "description": ""})
    assert httpx.post(f"{url}/api/runs", json=doc).status_code == 201
    page.goto(url + "/")
    cell = page.locator("#runs tbody td", has_text="{{ 7*7 }}").first
    cell.wait_for()
    assert cell.text_content() == evil
    assert page.locator("#pwned").count() == 0 and page.locator("#bold").count() == 0
    assert page.evaluate("window.__pwned === undefined")
    assert "49" not in cell.text_content()


# Small canary numbers for SwiftShader, where one of space.json's canaries takes ~0.1 s and one load dispatch ~3 s:
# 16 workgroups x 1024 iterations (~1 ms), loads of 16384 (~15 ms); tolerance 0.5 (the clock, canary / best, is
# >= 1.0) so every measurement takes its samples again once, after the GPU was loaded: the retry path runs.
CANARY_SMALL = "groups:16,iters:1024,load_iters:16384,calibrate_ms:50,ramp_ms:20,ramp_max_ms:60,tolerance:0.5,retries:1"


@pytest.mark.parametrize("query", ["", f"?clockguard=1&canary={CANARY_SMALL}"], ids=["default", "forced"])
def test_clock_guard_posts_clock_only_where_it_is_on(page, live_server, tmp_path, query):
    """The clock canary (static/timing.js, as native/wgpu_backend.py): off on SwiftShader by default, so no measurement
    carries `clock`; forced on with ?clockguard=1, every measurement timed by timestamps (TopK; where_nd's kernel_ms)
    carries a finite clock >= 1.0 (the canary's time over its best), samples are taken, and the retries ran."""
    url = base_url(live_server)
    open_tuner(page, url, query)
    forced = bool(query)
    assert ("clock guard on" in page.text_content("#adapter-body")) == forced
    set_space(page, {"#topk-shapes": "2x1024:8", "#topk-wg": "64, 128", "#topk-kl": "4", "#topk-ch": "0",
                     "#topk-sg": "false", "#where-shapes": "3x8x33", "#where-path": "direct", "#where-wg": "64",
                     "#where-vpt": "1", "#repeats": "3", "#warmups": "1"},
              check=["#p-1ce", "#where-on"], uncheck=["#p-2ce"])
    elapsed = run_and_wait(page)
    state = page.evaluate("window.__tuner")
    if forced:
        screenshot(page, tmp_path, "tuner-clockguard.png")
    assert page.get_attribute("body", "data-state") == "done", page.text_content("#status")
    assert not page.errors, page.errors
    guard = state["clockGuard"]
    run = httpx.get(f"{url}/api/runs/{state['runId']}").json()["run"]
    ms = run["measurements"]
    assert ms and all(m["ok"] for m in ms), [m["error"] for m in ms]
    timed = [m for m in ms if m["timer"] == "timestamp"]
    assert timed and {m["kernel"] for m in timed} == {"topk"}
    # where_nd: a call with its uploads on the wall clock, and its kernel alone timed as TopK is (kernel_ms)
    wheres = [m for m in ms if m["kernel"] == "where_nd"]
    assert wheres and all(m["timer"] == "wall" and m["kernel_ms"] > 0 and m["kernel_ms"] not in m["samples_ms"]
                          for m in wheres), wheres
    assert all(m["samples_ms"] and all(s > 0 for s in m["samples_ms"]) for m in ms)
    if not forced:
        assert not any("clock" in m for m in ms)
        assert guard["on"] is False and guard["calibrations"] == 0 and guard["load_ms"] == 0
        return
    print(f"\nclock guard forced on: {len(ms)} configurations in {elapsed:.1f} s; guard {guard}")
    for m in timed + wheres:      # where_nd: the clock beside its kernel time
        assert isinstance(m.get("clock"), float) and math.isfinite(m["clock"]) and m["clock"] >= 1.0, m
        assert len(m["samples_ms"]) == 3
    assert guard["on"] and guard["best_ms"] > 0 and guard["calibrations"] == 1 and guard["tolerance"] == 0.5
    assert guard["retries"] == len(timed) + len(wheres) and guard["load_ms"] > 0
    assert elapsed < 30, f"forced clock guard run took {elapsed:.1f} s"


def test_a_stored_runs_judge_link_shows_how_the_other_runs_rule_serves_its_shapes(page, live_server, tmp_path):
    """Two runs of one (made-up) device class, posted: the judged run's `judge` link shows the rule of the other
    run on its three TopK shapes, as GET /api/runs/{id}/judge has it; a run without TopK data says why there is
    nothing to judge."""
    from conftest import make_run
    url = base_url(live_server)
    adapter = {"vendor": "judge-test", "architecture": "arch-j", "device": "", "description": ""}
    fit, judged = make_run(adapter=adapter, label="fit"), make_run(adapter=adapter, label="judged")
    judged["measurements"] = [{**m, "median_ms": m["median_ms"] * (1.5 if m["params"].get("wg") == 64 else 1.0)}
                              if m["ok"] else m for m in judged["measurements"]]     # this run's best differs
    where_only = make_run(adapter={**adapter, "architecture": "arch-w"}, label="where only",
                          measurements=[m for m in fit["measurements"] if m["kernel"] == "where_nd"])
    for d in (fit, judged, where_only):
        assert httpx.post(f"{url}/api/runs", json=d).status_code == 201
    open_tuner(page, url)
    page.click(f"#runs td.links a[href='/api/runs/{judged['run_id']}/judge']")
    page.wait_for_selector("#report-table tbody tr")
    j = httpx.get(f"{url}/api/runs/{judged['run_id']}/judge").json()
    assert j["fit_runs"] == [fit["run_id"]]
    assert page.locator("#report-table tbody tr").count() == len(j["shapes"]) == 3
    assert "Rule's pick" in page.text_content("#report-table thead")
    summary = page.text_content("#report-summary")
    assert "which never saw these shapes" in summary and f"worst {j['regret']['worst']:.3f}" in summary
    assert page.locator("#report-chart svg").count() == 1
    assert "judged on judged" in page.text_content("#report-run")
    # both runs have where_nd: its rule's regret per case is shown as the API has it
    assert page.is_visible("#report-where-table")
    assert page.locator("#report-where-table tbody tr").count() == len(j["where_nd"]["cases"]) > 0
    assert f"worst {j['where_nd']['regret']['worst']:.3f}" in page.text_content("#report-where-summary")
    screenshot(page, tmp_path, "tuner-judge.png")
    page.click(f"#runs td.links a[href='/api/runs/{where_only['run_id']}/judge']")
    for _ in range(40):
        if page.text_content("#report-summary").startswith("Nothing to judge"):
            break
        time.sleep(0.25)
    assert "no correct TopK measurement to judge" in page.text_content("#report-summary")
    assert not page.errors, page.errors


def config_key(m) -> tuple:
    return (m["kernel"], m.get("rows"), m.get("cols"), m.get("k"), m.get("case"), tuple(m.get("shape") or ()),
            m.get("dtype"), tuple(sorted(m["params"].items())))


def test_a_run_interrupted_by_a_reload_is_resumed_and_posted_once_whole(page, live_server, tmp_path):
    """The page keeps each finished configuration in localStorage; reloaded mid-run, it offers "Resume run …",
    goes on from the next configuration with the same space and seed, and posts one run that holds every
    configuration once, the kept ones as they were measured, each with the checksum an uninterrupted run has."""
    url = base_url(live_server)
    open_tuner(page, url)
    set_tiny_space(page)
    page.uncheck("#where-cases input[value=broadcast]")
    run_and_wait(page)
    assert page.get_attribute("body", "data-state") == "done", page.text_content("#status")
    whole = httpx.get(f"{url}/api/runs/{page.evaluate('window.__tuner.runId')}").json()["run"]["measurements"]
    assert page.is_hidden("#resume-notice")                        # a stored run is not kept for resuming

    page.click("#run")
    deadline = time.time() + 60
    while page.evaluate("window.__tuner.results.length") < 4:
        assert time.time() < deadline
        time.sleep(0.05)
    run_id = page.evaluate("window.__tuner.runId")
    page.reload()                                                  # the tab goes away mid-run
    page.wait_for_selector("#resume-notice:not([hidden])", timeout=60_000)
    assert page.get_attribute("#resume-notice", "data-run-id") == run_id
    assert "Resume run" in page.text_content("#resume")
    kept = page.evaluate(f"""(() => {{ const h = JSON.parse(localStorage.getItem("spiraltorch-run:{run_id}"));
        return [...Array(h.done).keys()].map((i) => JSON.parse(localStorage.getItem(`spiraltorch-run:{run_id}:${{i}}`))); }})()""")
    assert 4 <= len(kept) < len(whole)
    assert f"{len(kept)} of {len(whole)} configurations measured" in page.text_content("#resume-text")
    page.click("#resume")
    page.wait_for_selector("body[data-state=done], body[data-state=error]", timeout=RUN_TIMEOUT_MS)
    assert page.get_attribute("body", "data-state") == "done", page.text_content("#status")
    assert f"Resumed after {len(kept)} configurations" in page.text_content("#summary")
    assert not page.errors, page.errors

    run = httpx.get(f"{url}/api/runs/{run_id}").json()["run"]
    got = run["measurements"]
    assert run["status"] == "complete" and run["space"]["seed"] == 7 and run["label"] == "e2e tiny"
    assert [config_key(m) for m in got] == [config_key(m) for m in whole]          # every configuration, once
    assert len(set(map(config_key, got))) == len(got)
    assert all(m["ok"] for m in got), [m["error"] for m in got if not m["ok"]]
    assert [m["checksum"] for m in got] == [m["checksum"] for m in whole]
    assert got[:len(kept)] == kept                                 # kept ones posted as measured, not re-measured
    assert page.is_hidden("#resume-notice")
    assert page.evaluate(f"localStorage.getItem('spiraltorch-run:{run_id}')") is None
    print(f"\nresumed run: reloaded after {len(kept)} of {len(got)} configurations, posted whole, checksums as "
          "uninterrupted")
    page.reload()
    page.wait_for_selector("#adapter-card[data-ready]")
    assert page.is_hidden("#resume-notice")


@pytest.mark.parametrize("query", ["?quantize=100000", ""], ids=["rounded", "unrounded"])
def test_the_adapter_card_says_whether_timestamps_are_rounded_and_what_the_tuner_does(page, live_server, query):
    """Chrome rounds WebGPU timestamps to 100 us unless its developer features are on (?quantize=100000 does the same
    here): the adapter card says so and how the tuner copes, and after a run how many configurations it timed so."""
    url = base_url(live_server)
    open_tuner(page, url, query)
    note = page.text_content("#timestamps-note")
    probe = page.evaluate("window.__tuner.timestamps")
    if not query:
        assert probe["quantum_ns"] == 0 and note.startswith("not rounded"), note
        return
    assert probe["quantum_ns"] >= 100_000 and probe["quantum_ns"] % 100_000 == 0, probe
    assert note.startswith("rounded to ") and "(simulated: ?quantize=100000)" in note, note
    assert "copies of a configuration between one pair of timestamps" in note and "at least 20 quanta" in note
    set_space(page, {"#topk-shapes": "2x1024:8", "#topk-wg": "64", "#topk-kl": "4", "#topk-ch": "0",
                     "#topk-sg": "false", "#where-shapes": "3x8x33", "#where-path": "direct", "#where-wg": "64",
                     "#where-vpt": "1", "#repeats": "4", "#warmups": "1"},
              check=["#p-1ce", "#where-on", "#where-cases input[value=contiguous]"], uncheck=["#p-2ce"] +
              [f"#where-cases input[value={c}]" for c in ("neg_stride", "broadcast")])
    run_and_wait(page)
    assert page.get_attribute("body", "data-state") == "done", page.text_content("#status")
    ms = httpx.get(f"{url}/api/runs/{page.evaluate('window.__tuner.runId')}").json()["run"]["measurements"]
    assert {m["kernel"] for m in ms} == {"topk", "where_nd"}, ms
    # where_nd: the kernel alone is timed on the timestamps (kernel_ms), with its quantum and chains; its call with
    # the uploads at most space.json's where_nd.call_timing times (3), TopK's samples as many as the repeats
    assert all(m["ok"] and m["quantum_ns"] >= 100_000 and m["chains"] >= 1 for m in ms), ms
    assert sorted({m["kernel"]: len(m["samples_ms"]) for m in ms}.items()) == [("topk", 4), ("where_nd", 3)], ms
    assert f"This run: {len(ms)} of {len(ms)} configurations timed on rounded timestamps" in \
        page.text_content("#timestamps-note")

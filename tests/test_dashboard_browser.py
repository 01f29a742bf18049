"""The dashboard end to end: `farm dashboard` serves a seeded store on 127.0.0.1 and Debian's Chromium, headless, goes
through every page as a person would (sidebar, links, pickers, the download button), checking that no exception box
shows and that the known figures do. Screenshots of each page go to test-artifacts/dashboard/."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

try:
    from playwright.sync_api import expect
except ImportError:  # the fixture below says what to install
    expect = None

from conftest import Dashboard
from farm.export import export_per_device
from farm.stats import summarize
from farm.store import Store
from test_dashboard import FAILED_REASON, SKIPPED_REASON, samples_around, seed_runtimes, seed_store

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts" / "dashboard"
CHROMIUM = "/usr/bin/chromium"
WAIT_MS = 30_000  # any one thing the page should show
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover
        pytest.fail("the browser test needs playwright (`make test` installs it)", pytrace=False)
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"the browser test needs Debian's Chromium at {CHROMIUM} (`make test` installs it)", pytrace=False)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=WAIT_MS)
        yield chromium
        chromium.close()


def settled(page) -> None:
    """Wait for the script run to end and every lazily loaded element to be drawn; then no exception box may show."""
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=WAIT_MS)
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stSkeleton\"]')", timeout=WAIT_MS)
    exceptions = page.locator('[data-testid="stException"]')
    assert exceptions.count() == 0, exceptions.first.inner_text()


def shows(page, text: str) -> None:
    page.get_by_text(text, exact=False).first.wait_for(state="visible", timeout=WAIT_MS)


def pick(page, label: str, option: str) -> None:
    """Choose `option` in the selectbox labelled `label`, as a person does: open it, click the option."""
    box = page.get_by_role("combobox", name=label, exact=True)
    box.click()
    page.get_by_role("option", name=option, exact=True).click()
    expect(box).to_have_value(option, timeout=WAIT_MS)


def go(page, title: str) -> None:
    page.locator('[data-testid="stSidebarNav"] a').filter(has_text=title).click()
    page.get_by_role("heading", name=title, exact=True).wait_for(timeout=WAIT_MS)


def plot_texts(page) -> list[str]:
    page.locator(".js-plotly-plot .main-svg").first.wait_for(timeout=WAIT_MS)
    return page.locator(".js-plotly-plot text").all_text_contents()


def snapshot(page, name: str) -> None:
    settled(page)
    page.wait_for_timeout(300)  # plotly's transitions
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def test_every_page_in_chromium(browser, tmp_path):
    db = tmp_path / "farm.db"
    seed_store(db)
    exported = export_per_device(Store(db, create=False), "candidate", tmp_path / "reports")
    dashboard = Dashboard(db, ARTIFACTS / "server.log")
    outside: list[str] = []
    try:
        context = browser.new_context(viewport={"width": 1400, "height": 2400}, accept_downloads=True)
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(("http://127.0.0.1", "data:",
                                                                                      "blob:", "ws://127.0.0.1"))
                else None)

        page.goto(dashboard.url, timeout=WAIT_MS)
        shows(page, "Sweep live is still running:")  # the newest sweep, still running: progress, not a traceback
        shows(page, "1 of 5 jobs finished")
        snapshot(page, "1-sweeps-running")
        # The sweep's coordinator finishes a job: the page, left alone, shows it within a refresh or two.
        store = Store(db, create=False)
        running = store.jobs(store.sweep("live").id, ("running",))[0]
        store.finish_job(running.id, {**summarize(samples_around(38.0)), "init_ms": 150.0, "first_ms": 76.0,
                                      "delegate_outcome": "applied", "runtime": "ai_edge_litert",
                                      "runtime_version": "2.3.0"}, samples_around(38.0))
        store.engine.dispose()
        shows(page, "2 of 5 jobs finished, 0 running now")

        pick(page, "Sweep", "baseline")
        shows(page, FAILED_REASON)
        shows(page, SKIPPED_REASON)
        snapshot(page, "2-sweeps")

        go(page, "Leaderboard")
        settled(page)
        assert "40" in plot_texts(page)  # pi4's mnv2 fp32 p50, written in its heatmap cell
        best = "digits · int8 · xnnpack · 1 thr · ai_edge_litert"
        assert page.locator('[data-testid="stTable"]').filter(has_text=best).count()
        snapshot(page, "3-leaderboard")

        go(page, "Trade-offs")
        settled(page)
        texts = plot_texts(page)
        assert "p50 latency (ms)" in texts and "pi4" in texts and "local" in texts
        snapshot(page, "4-tradeoffs")

        go(page, "Device")
        pick(page, "Device", "pi4")
        shows(page, "Raspberry Pi 4 Model B Rev 1.4")
        shows(page, "Hottest zone 48.0–52.5 °C")
        settled(page)
        plot_texts(page)
        snapshot(page, "5-device")

        pick(page, "Sweep", "candidate")  # the sidebar's sweep is the candidate; the one before it, the baseline
        go(page, "Compare")
        flagged = page.locator('[data-testid="stTable"]')
        flagged.filter(has_text="pi4 · mnv2 · fp32 · xnnpack · 1 thr · ai_edge_litert").wait_for(timeout=WAIT_MS)
        assert "slower" in flagged.inner_text() and "+100.0 %" in flagged.inner_text()
        settled(page)
        snapshot(page, "6-compare")

        go(page, "Ops")  # pi4's op profiles in the candidate sweep: its nodes, and fp32 against int8 by op type
        pick(page, "Variant", "fp32")
        pick(page, "Compare with", "int8")
        shows(page, "Time per run by op type: fp32 against int8")
        texts = plot_texts(page)
        assert "CONV_2D" in texts and "Convolution (NHWC, QC8) GEMM" in texts and "int8" in texts
        snapshot(page, "6b-ops")

        go(page, "Export")
        pick(page, "Device", "pi4")
        settled(page)
        with page.expect_download(timeout=WAIT_MS) as download:
            page.get_by_role("button", name="Download candidate-pi4.csv").click()
        saved = tmp_path / "downloaded.csv"
        download.value.save_as(saved)
        assert download.value.suggested_filename == "candidate-pi4.csv"
        assert saved.read_bytes() == next(p for p in exported if p.name == "candidate-pi4.csv").read_bytes()
        snapshot(page, "7-export")
        context.close()
    finally:
        dashboard.stop()
    assert outside == []  # the dashboard works without the internet: nothing is fetched from elsewhere


def test_runtimes_side_by_side_in_chromium(browser, tmp_path):
    """TFLite and ONNX results on four runtimes: the sidebar's runtime filter, and Trade-offs coloured by runtime."""
    db = tmp_path / "runtimes.db"
    seed_runtimes(db)
    dashboard = Dashboard(db, tmp_path / "server.log")
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 2000})
        page.set_default_timeout(WAIT_MS)
        page.goto(dashboard.url, timeout=WAIT_MS)
        go(page, "Trade-offs")
        pick(page, "Colour by", "runtime")
        settled(page)
        texts = plot_texts(page)  # the legends: the accuracy plot's, then the size plot's with the phone's tools
        assert {"ai_edge_litert", "onnxruntime", "benchmark_model", "onnxruntime_perf_test"} <= set(texts)
        snapshot(page, "10-tradeoffs-runtimes")

        runtimes = page.get_by_role("combobox", name="Runtimes", exact=True)
        runtimes.click()
        page.get_by_role("option", name="onnxruntime", exact=True).click()
        shows(page, "runtimes: onnxruntime")
        settled(page)
        texts = plot_texts(page)
        assert "onnxruntime" in texts and "ai_edge_litert" not in texts and "benchmark_model" not in texts
        snapshot(page, "11-tradeoffs-onnxruntime")
        page.close()
    finally:
        dashboard.stop()


EVIL = "198.51.100.7"  # TEST-NET-2: nothing answers there; a page that asks for it has rendered store text as markup
HOSTILE_MODEL = f'![m](http://{EVIL}/model.png) <a href="http://{EVIL}/">m</a> [click](http://{EVIL}/) :red[m]'
HOSTILE_REASON = f"[Click to re-authenticate](http://{EVIL}/login) ![e](http://{EVIL}/error.png) <b>now</b>"
HOSTILE_BOARD = f"![b](http://{EVIL}/board.png) **Pi** <img src=http://{EVIL}/b.png>"
HOSTILE_GOVERNOR = f"![g](http://{EVIL}/governor.png)"
HOSTILE_RUNTIME = f"<img src=http://{EVIL}/r.png> [rt](http://{EVIL}/)"  # a result's runtime is the device's word


def seed_hostile(path) -> None:
    """A store whose names, reasons and facts are markdown, HTML and Rich markup, as a hostile board or user sends."""
    from farm.inventory import parse_device
    from test_dashboard import SeedVariant

    store = Store(path)
    store.upsert_device(parse_device({"name": "pi[b]*x*", "kind": "local", "tags": [f"[t](http://{EVIL}/)"]}),
                        {"board": HOSTILE_BOARD, "governor": HOSTILE_GOVERNOR, "cores": 4})
    variants = [store.add_variant(SeedVariant(HOSTILE_MODEL, kind, f"{i:064x}", 1000 * (i + 1)))
                for i, kind in enumerate(("fp32", "int8"))]
    sweep = store.create_sweep("hostile", {}, [{"device": "pi[b]*x*", "variant_id": v, "delegate": "xnnpack",
                                                "threads": 1, "repeat": 0} for v in variants])
    done, failed = store.jobs(sweep.id)
    store.start_job(done.id)
    env = json.dumps({"governor": HOSTILE_GOVERNOR, "temps_c": {"cpu": 50.0}})
    store.finish_job(done.id, {**summarize(samples_around(5.0)), "init_ms": 10.0, "first_ms": 6.0, "accuracy": 0.9,
                               "delegate_outcome": "applied", "runtime": HOSTILE_RUNTIME, "runtime_version": "2.3.0",
                               "env_before": env, "env_after": env}, samples_around(5.0))
    store.start_job(failed.id)
    store.fail_job(failed.id, HOSTILE_REASON)
    store.engine.dispose()


def test_store_text_is_never_markup_in_chromium(browser, tmp_path):
    db = tmp_path / "hostile.db"
    seed_hostile(db)
    dashboard = Dashboard(db, tmp_path / "server.log")
    requested: list[str] = []
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 2000})
        page.set_default_timeout(WAIT_MS)
        page.on("request", lambda request: requested.append(request.url))
        page.goto(dashboard.url, timeout=WAIT_MS)
        for title in ("Sweeps", "Leaderboard", "Trade-offs", "Device"):
            go(page, title)
            settled(page)
            page.wait_for_timeout(500)  # images, had there been any, would be asked for by now
            # As it reads: the word joiners that keep URLs from becoming links are invisible.
            shown = page.locator('[data-testid="stMain"]').inner_text().replace("\u2060", "")
            links = page.locator(f'a[href*="{EVIL}"], img[src*="{EVIL}"], image[href*="{EVIL}"]')
            assert links.count() == 0, (title, [links.nth(i).evaluate("e => e.closest(\"[data-testid]\").getAttribute(\"data-testid\") + \" \" + e.parentElement.outerHTML.slice(0, 400)") for i in range(links.count())])
            assert page.locator('.js-plotly-plot a, [data-testid="stMain"] b').count() == 0, title
            if title == "Sweeps":
                assert HOSTILE_REASON in shown  # the reason, word for word, in the "why failed" table
            if title == "Leaderboard":
                assert HOSTILE_MODEL in shown and HOSTILE_RUNTIME in shown  # the configuration's name, best per device
                assert any("<a href" in text for text in plot_texts(page))  # the heatmap's label, as text
            if title == "Device":
                assert HOSTILE_BOARD in shown and HOSTILE_GOVERNOR in shown
            page.screenshot(path=str(ARTIFACTS / f"9-hostile-{title.lower()}.png"))
        page.close()
    finally:
        dashboard.stop()
    assert [url for url in requested if EVIL in url] == []

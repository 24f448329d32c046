"""The app in a real browser: Debian's chromium driven by Playwright picks an example, predicts,
and sees k classes and a GradCAM image; then opens the Model card tab and sees the card.

The screenshot goes to $CIFARLAB_SCREENSHOT (relative to the repository, e.g. docs/app.png) when
set, else to the test's tmp dir. $CIFARLAB_APP_CKPT (a run dir or .ckpt) serves that checkpoint
instead of the test's briefly trained one, for a screenshot of a real model."""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from cifarlab.app.explorer import Explorer
from cifarlab.app.ui import build_app, launch
from cifarlab.runs.run import TrainedRun
from conftest import ROOT
from test_app import explorer, free_port, served  # noqa: F401  (fixtures: the test_app server)

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the [dev] extra: make install-dev")
expect, sync_playwright = playwright_api.expect, playwright_api.sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]

pytestmark = [
    pytest.mark.slow,  # starts chromium, and trains through test_app's fixtures
    pytest.mark.skipif(not CHROMIUM.is_file(), reason=f"Debian's chromium is not installed at {CHROMIUM}: `make browser` "
                                                      "(apt-get install -y chromium) installs it"),
]


@pytest.fixture(scope="module")
def url(request: pytest.FixtureRequest) -> Iterator[str]:
    """The app's URL: on $CIFARLAB_APP_CKPT when set, else the test_app fixture's server."""
    ckpt = os.environ.get("CIFARLAB_APP_CKPT")
    if not ckpt:
        yield request.getfixturevalue("served")
        return
    demo = launch(build_app(Explorer(TrainedRun(ROOT / ckpt))), "127.0.0.1", free_port(), block=False)
    yield demo.local_url
    demo.close()


def test_browser_picks_an_example_and_sees_top_k_and_gradcam(url: str, tmp_path: Path) -> None:
    shot = ROOT / os.environ["CIFARLAB_SCREENSHOT"] if os.environ.get("CIFARLAB_SCREENSHOT") else tmp_path / "app.png"
    k = 5
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(url)
            page.locator("#k input[type=number]").fill(str(k))
            page.locator("#k input[type=number]").press("Enter")
            page.locator("#examples button:has(img[src$='/cat.png'])").click()
            expect(page.locator("#image img")).to_be_visible(timeout=20_000)
            page.locator("#predict").click()
            expect(page.locator("#topk [data-testid$='-confidence-set']")).to_have_count(k, timeout=30_000)
            expect(page.locator("#gradcam img")).to_be_visible(timeout=30_000)
            shot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(shot), full_page=True)
            page.get_by_role("tab", name="Model card").click()
            card = page.locator("#model-card")
            expect(card.locator("h1")).to_contain_text("Model card", timeout=20_000)
            for heading in ("Intended use", "Per-class recall", "Calibration", "How to reproduce"):
                expect(card.locator("h2", has_text=heading)).to_be_visible()
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000

"""The report in a real browser: Debian's Chromium, headless, driven by Playwright (no browser download).
No console error, no network request besides the file itself, and every chart draws something.

Under CI=true a missing browser or Playwright fails the test (`.ci/run` installs Chromium); elsewhere the test
is skipped with the package to install."""

from __future__ import annotations

import os

import pytest

from sftkit.report.browser import FLAGS, INSTALL_HINT, find_browser
from sftkit.report.compare_runs import write_comparison
from sftkit.report.page import write_report

CHART_BOXES = """() => [...document.querySelectorAll('svg.chart')].map(svg => {
  const box = svg.getBoundingClientRect();
  const drawn = [...svg.querySelectorAll('polyline, circle, rect, line, path')]
    .map(e => e.getBBox()).filter(b => b.width > 0 || b.height > 0).length;
  return {label: svg.getAttribute('aria-label'), width: box.width, height: box.height, drawn: drawn};
})"""


def _requirement(missing: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"the browser test needs {missing} under CI: " + (INSTALL_HINT if missing == "Chromium" else
                    "pip install -e '.[dev]'"))
    pytest.skip(f"no {missing}: {INSTALL_HINT}" if missing == "Chromium" else f"no {missing}: pip install playwright "
                "(the dev extra has it)")


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _requirement("Playwright")
    executable = find_browser()
    if executable is None:
        _requirement("Chromium")
    with sync_playwright() as playwright:
        # Playwright adds its own headless switch; the rest keep a fresh profile from calling home
        launched = playwright.chromium.launch(executable_path=executable, args=[f for f in FLAGS if f != "--headless"])
        yield launched
        launched.close()


def open_page(browser, path):
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    events = {"console": [], "requests": [], "errors": []}
    page.on("console", lambda m: events["console"].append((m.type, m.text)))
    page.on("pageerror", lambda e: events["errors"].append(str(e)))
    page.on("request", lambda r: events["requests"].append(r.url))
    page.goto(path.resolve().as_uri())
    page.wait_for_load_state("load")
    return page, events


@pytest.mark.parametrize("which", ["report", "comparison"])
def test_page_renders_offline_with_every_chart_drawn(browser, full_run, tmp_path, which):
    if which == "report":
        path, expected = write_report(full_run), 10  # 4 training, 2 prompting, forgetting, safety, red-team, data
    else:
        path, expected = write_comparison([full_run, full_run], tmp_path / "comparison.html"), 2
    page, events = open_page(browser, path)
    boxes = page.evaluate(CHART_BOXES)
    assert len(boxes) == expected == path.read_text().count('<svg class="chart"'), [b["label"] for b in boxes]
    for box in boxes:
        assert box["width"] > 100 and box["height"] > 50 and box["drawn"] > 0, box
    assert [m for m in events["console"] if m[0] in ("error", "warning")] == []
    assert events["errors"] == []
    assert [url for url in events["requests"] if url != path.resolve().as_uri() and not url.startswith("data:")] == []
    if which == "report":
        assert page.locator("#verdict li").count() >= 4
    else:
        assert page.locator("#leaderboard tbody tr").count() == 2
    page.close()


def test_screenshot_is_a_png_of_the_requested_size(full_run, tmp_path):
    """`sftkit report RUN --screenshot PNG` (how docs/report-quickstart.png is made): chromium's own --screenshot."""
    import struct

    from sftkit.report.browser import screenshot

    if find_browser() is None:
        _requirement("Chromium")
    png = screenshot(write_report(full_run), tmp_path / "shot.png", width=800, height=1200)
    head = png.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR"
    assert struct.unpack(">II", head[16:24]) == (800, 1200)

"""/admin/overview in a real headless browser (Debian's chromium via chromedriver) against
the real app served over HTTP on a real PostgreSQL database, with the messages of
tests/staff/overview_seed.py: reached from the navigation after signing in, it shows the
counts worked out by hand, draws the days as SVG bars of the right heights, runs no
script and no customer text (the seeded messages are markup), and logs no script error."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from flask import Flask
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from werkzeug.serving import make_server

from app.extensions import db
from tests.knowledge.test_admin_page import CHROMEDRIVER, CHROMIUM, browser, css, sign_in, wait
from tests.staff.conftest import STAFF
from tests.staff.overview_seed import EXPECTED_TOTALS, HOSTILE, day, seed

__all__ = ["browser"]  # the module-scoped chromium fixture

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason="needs chromium and chromedriver"),
]


@pytest.fixture(scope="module")
def url(app: Flask) -> Iterator[str]:
    with app.app_context():
        seed()
        db.session.remove()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def _cell(driver: WebDriver, key: str, days: int) -> str:
    return css(driver, f'#totals tr[data-key="{key}"] td[data-days="{days}"]').text


def test_the_overview_shows_the_counts_and_draws_the_days(browser: WebDriver, url: str) -> None:
    browser.get(url + "/admin/login")
    browser.delete_all_cookies()
    browser.get_log("browser")
    sign_in(browser, url, STAFF, "/admin/conversations")
    css(browser, 'nav a[href="/admin/overview"]').click()
    wait(browser).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#totals"), "the overview")
    assert "/admin/overview" in browser.current_url
    assert css(browser, 'nav a[aria-current="page"]').text == "概览"
    assert css(browser, "#overview-timezone").text == "Asia/Shanghai"

    for days, expected in EXPECTED_TOTALS.items():
        for key in ("messages", "faq", "generated", "refused", "handed_off", "failed"):
            assert _cell(browser, key, days) == str(expected[key]), (days, key)
        seconds = expected["p95_reply_ms"] / 1000
        assert _cell(browser, "p95_reply_ms", days) == f"{seconds:.1f} 秒"

    # The 7 days' chart: a bar for each day with messages (1, 2 and 6 days ago), drawn
    # (a rendered height in pixels), as tall as its count relative to the others.
    week = css(browser, "#period-7 svg.outcomes-chart")
    bars = {
        g.get_attribute("data-day"): g for g in week.find_elements(By.CSS_SELECTOR, "g.day-bar")
    }
    days_with_messages = {day(b).date().isoformat(): n for b, n in ((1, 8), (2, 2), (6, 1))}
    counts = {d: int(g.get_attribute("data-messages")) for d, g in bars.items()}
    assert {d: n for d, n in counts.items() if n} == days_with_messages
    heights = {
        d: browser.execute_script(
            "return Array.from(arguments[0].querySelectorAll('rect.chart-bar'))"
            ".reduce((h, r) => h + r.getBoundingClientRect().height, 0)",
            bars[d],
        )
        for d in days_with_messages
    }
    first, second = day(1).date().isoformat(), day(2).date().isoformat()
    assert heights[second] > 0 and heights[first] == pytest.approx(4 * heights[second], rel=0.02)
    segments = bars[first].find_elements(By.CSS_SELECTOR, "rect.chart-bar")
    assert [s.get_attribute("data-outcome") for s in segments] == [
        "faq", "generated", "refused", "handed_off", "failed", "other",
    ]  # fmt: skip
    assert browser.find_elements(By.CSS_SELECTOR, "#period-30 svg.p95-chart rect.chart-bar")

    # No customer text here, and the seeded markup ran nowhere.
    assert browser.execute_script("return window.pwned === undefined")
    assert HOSTILE not in browser.page_source
    errors = [
        e["message"]
        for e in browser.get_log("browser")
        if e["level"] == "SEVERE" and "Failed to load resource" not in e["message"]
    ]
    assert not errors, errors

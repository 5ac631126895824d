"""The dashboard in a real browser: Debian's headless Chromium driven by Playwright.

The app is served by uvicorn (real HTTP) on SQLite with a few days of `ledger demo`
data. The test signs in with a platform admin token and with an auditor token, checks
the charts' SVG against /reports/revenue, switches the range and the stacking, changes
a model's price through the registry form and sees the step chart gain the scheduled
step, edits an account setting and sees the API's validation error, and saves
screenshots at a laptop and a phone width under test-artifacts/.

Nothing is downloaded at run time (no `playwright install`): the browser is
/usr/bin/chromium, which .ci/run installs. Outside CI the test is skipped when it is
missing; with CI set that is a failure.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.app import create_app
from ledger.demo import PROFILES, Demo
from ledger.domain.base import Actor
from ledger.service import Ledger
from tests.conftest import ADMIN_TOKEN, LiveServer, make_settings

CHROMIUM = Path(os.environ.get("LEDGER_TEST_CHROMIUM", "/usr/bin/chromium"))
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
LAPTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}
ACCOUNT = PROFILES[1].name  # acme-content: a writer, so it has writer_automation set

pytestmark = pytest.mark.browser


def _need_browser() -> Any:
    """The Playwright module, or skip (fail in CI) when the browser or it is missing."""
    problem = None
    if not CHROMIUM.exists():
        problem = f"{CHROMIUM} is missing (apt-get install chromium)"
    try:
        from playwright import sync_api
    except ImportError:
        problem = "the playwright package is not installed (pip install -e '.[dev]')"
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"{problem} and CI is set")
        pytest.skip(problem)
    return sync_api


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A served SQLite store with a week of demo usage, an admin and an auditor token."""
    settings = make_settings("sqlite", tmp_path_factory.mktemp("dashboard"))
    ledger = Ledger(settings)
    ledger.seed()
    summary = Demo(ledger, days=7, scale=0.15, seed=3).run()
    auditor = ledger.keys.issue("auditor", Actor(id="test", role="platform_admin"),
                                label="dashboard test").value.token
    with LiveServer(create_app(settings, ledger)) as server:
        api = httpx.Client(base_url=f"{server.url}/api/v1", timeout=30,
                           headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        # every view has applied the demo before the browser reads them
        head = ledger.store.head()
        assert api.get("/reports/revenue", params={"min_position": head}).status_code == 200
        yield {"url": server.url, "api": api, "auditor": auditor, "summary": summary}
        api.close()
    ledger.close()


@pytest.fixture(scope="module")
def browser(site: dict[str, Any]) -> Iterator[Any]:
    sync_api = _need_browser()
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield chromium
        chromium.close()


class Dashboard:
    """One tab on the dashboard, with the page errors it saw."""

    def __init__(self, browser: Any, url: str, viewport: dict[str, int]) -> None:
        self.context = browser.new_context(viewport=viewport)
        self.page = self.context.new_page()
        self.page.set_default_timeout(20_000)
        self.url = url
        self.errors: list[str] = []
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))

    def sign_in(self, token: str) -> None:
        self.page.goto(f"{self.url}/dashboard")
        self.page.fill("#token", token)
        self.page.click("#sign-in-form button[type=submit]")
        self.ready()

    def ready(self, name: str | None = None) -> Any:
        """Wait until the page (`name`, if given) has rendered; it."""
        selector = f'#page[data-page="{name}"]' if name else "#page"
        return self.page.wait_for_selector(f'{selector}[data-ready="true"]')

    def open(self, hash_: str) -> None:
        """Go to `#/hash_` the way a link does and wait for the page to render: the
        shell replaces #page on every route, so the old one is marked first."""
        self.page.evaluate("h => { document.getElementById('page').dataset.old = '1'; "
                           "location.hash = h; }", f"#/{hash_}")
        self.page.wait_for_selector(f'#page:not([data-old])[data-page="{hash_.split("/")[0]}"]'
                                    '[data-ready="true"]')

    def text(self, selector: str) -> str:
        return str(self.page.inner_text(selector)).strip()

    def kpi(self, label: str) -> str:
        return self.text(f'.kpi:has(.label:text-is("{label}")) .value')

    def fits_width(self) -> bool:
        """Nothing wider than the window: tables scroll inside their card instead."""
        return bool(self.page.evaluate(
            "() => document.documentElement.scrollWidth <= window.innerWidth"))

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / name
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def close(self) -> None:
        self.context.close()


def usd(value: str) -> Decimal:
    """A dashboard figure ("$1,234.56", "-$0.40", "$12") as a Decimal."""
    match = re.fullmatch(r"(-?)\$([\d,]+(?:\.\d+)?)", value)
    assert match, value
    return Decimal(match[1] + match[2].replace(",", ""))


def pct(value: str | None) -> str:
    """A percentage as the page prints it: JavaScript's toFixed(1) rounds the binary
    double half away from zero."""
    exact = Decimal(float(Decimal(str(value))))
    return f"{exact.quantize(Decimal('0.1'), rounding=ROUND_HALF_UP)}%"


def page_range(board: Dashboard) -> tuple[str, str]:
    """The range the page shows: from, and the day after "To (inclusive)"."""
    since = board.page.input_value('input[name="from"]')
    last = date.fromisoformat(board.page.input_value('input[name="to"]'))
    return since, (last + timedelta(days=1)).isoformat()


def bars(board: Dashboard, chart: str) -> dict[str, Decimal]:
    """Per day, the sum of the stacked bars of a revenue chart (from their titles)."""
    per_day: dict[str, Decimal] = {}
    for title in board.page.locator(f"{chart} svg rect.bar title").all_text_contents():
        day, _, value = re.fullmatch(r"(\S+) · (.+): (\S+)", title).groups()  # type: ignore[union-attr]
        per_day[day] = per_day.get(day, Decimal(0)) + usd(value)
    return per_day


def check_revenue_page(board: Dashboard, api: httpx.Client) -> dict[str, Any]:
    """The figures and the chart of the revenue page equal /reports/revenue's."""
    since, until = page_range(board)
    report: dict[str, Any] = api.get("/reports/revenue", params={
        "from": since, "to": until, "group_by": "day"}).json()
    total = report["total"]
    assert total["charges"] > 0, "the demo left no charge in the range"
    assert usd(board.kpi("Revenue")) == Decimal(total["revenue_usd"]).quantize(Decimal("0.01"))
    assert abs(usd(board.kpi("Provider cost")) - Decimal(total["cost_usd"])) <= Decimal("0.005")
    assert abs(usd(board.kpi("Margin")) - Decimal(total["margin_usd"])) <= Decimal("0.005")
    assert board.kpi("Margin %") == pct(total["margin_pct"])
    assert board.kpi("Credits used") == f"{total['credits_used']:,}"
    assert board.kpi("Charges") == f"{total['charges']:,}"

    # a stack of bars per day with revenue, summing to that day's revenue (each bar's
    # title rounds to the cent), and a margin % point per day with charges
    days = {r["day"]: r for r in report["data"]}
    drawn = bars(board, "#revenue-chart")
    assert set(drawn) == {d for d, r in days.items() if Decimal(r["revenue_usd"]) != 0}
    for day, value in drawn.items():
        series = board.page.locator(f'#revenue-chart svg rect.bar title:text-matches("^{day} ")')
        assert abs(value - Decimal(days[day]["revenue_usd"])) <= Decimal("0.005") * (
            series.count()), day
    dots = board.page.locator("#revenue-chart svg circle.pct-dot title").all_text_contents()
    assert len(dots) == sum(1 for r in days.values() if r["margin_pct"] is not None)
    for dot in dots:
        day = dot.split(" ")[0]
        assert dot.endswith(f": {pct(days[day]['margin_pct'])}"), dot
    axis = board.page.text_content("#revenue-chart svg > text:last-of-type")
    last_day = (date.fromisoformat(until) - timedelta(days=1)).isoformat()
    assert axis == f"{since} \u2013 {last_day} (UTC days)"  # an en dash
    return report


def test_sign_in_charts_range_registry_and_settings(site: dict[str, Any],
                                                     browser: Any) -> None:
    api: httpx.Client = site["api"]
    board = Dashboard(browser, site["url"], LAPTOP)
    try:
        # a token the API refuses does not sign in
        board.page.goto(f"{site['url']}/dashboard")
        board.page.fill("#token", "not-a-token")
        board.page.click("#sign-in-form button[type=submit]")
        board.page.wait_for_selector("#sign-in-error:has-text('unknown')")
        assert board.page.is_visible("#sign-in")

        board.sign_in(ADMIN_TOKEN)
        board.ready("revenue")
        assert board.text("#who-role") == "platform_admin"
        month = check_revenue_page(board, api)
        legend = board.page.locator(".legend span").all_inner_texts()
        assert {"openai", "margin % (right axis)"} <= set(legend)
        board.screenshot("dashboard-revenue-desktop.png")

        # the range: seven days
        board.page.click('.seg[aria-label="range"] button[data-days="7"]')
        board.ready("revenue")
        assert board.page.get_attribute('.seg[aria-label="range"] button[data-days="7"]',
                                         "class") == "on"
        week = check_revenue_page(board, api)
        assert len(week["data"]) <= 7
        assert week["total"]["charges"] <= month["total"]["charges"]
        # and a range typed in: two days of the demo
        two_days_ago = (datetime.now(UTC).date() - timedelta(days=2)).isoformat()
        board.page.fill('input[name="from"]', two_days_ago)
        board.page.fill('input[name="to"]', two_days_ago)
        board.page.click(".toolbar button:text-is('Apply')")
        board.ready("revenue")
        assert page_range(board)[0] == two_days_ago
        check_revenue_page(board, api)

        # stacked by model: the biggest model by revenue is in the legend
        by_model = api.get("/reports/revenue", params={
            "from": page_range(board)[0], "to": page_range(board)[1],
            "group_by": "model"}).json()["data"]
        top = max(by_model, key=lambda r: Decimal(r["revenue_usd"]))["model"]
        board.page.click('.seg[aria-label="stack"] button:text-is("by model")')
        board.ready("revenue")
        assert top in board.page.locator(".legend span").all_inner_texts()
        assert board.text("#page h2").startswith("Revenue per day by model")

        # accounts: a bar per account that used credits in the range
        board.open("accounts")
        accounts = api.get("/reports/revenue", params={
            "from": page_range(board)[0], "to": page_range(board)[1],
            "group_by": "account"}).json()["data"]
        titles = board.page.locator("#top-accounts svg rect.bar title").all_text_contents()
        assert len(titles) == min(12, sum(1 for r in accounts if r["credits_used"] > 0))

        # the model registry: a price change from the day after tomorrow, made in the
        # form, is a scheduled (dashed) step of the price history
        board.open("models")
        board.page.click("#page tr:has(td:text-is('dall-e-3'))")
        board.page.wait_for_selector("#price-chart svg path.step", state="attached")
        assert board.page.locator("#price-chart svg path.step.future").count() == 0
        later = (datetime.now(UTC) + timedelta(days=2)).replace(second=0, microsecond=0)
        board.page.fill('#model-form input[name="cost_per_image"]', "0.048")
        board.page.fill('#model-form input[name="effective_at"]',
                        later.strftime("%Y-%m-%dT%H:%M"))
        board.page.click("#model-form button[type=submit]")
        # saved, the page is drawn again from the API: the new step is dashed
        board.page.wait_for_selector("#price-chart svg path.step.future", state="attached")
        model = api.get("/models/dall-e-3").json()
        assert model["cost_per_image"] == "0.040000"  # still the price in force
        assert [(p["effective_at"][:16], p["cost_per_image"])
                for p in model["scheduled_prices"]] == [
            (later.isoformat()[:16], "0.048000")]
        assert board.page.locator("#price-chart svg circle title").all_text_contents()[-1] \
            .startswith("$ per image: $0.048 from ")
        board.screenshot("dashboard-price-history-desktop.png")

        # the settings panel: a bad value gets the API's 422 with its field, a good one
        # is saved with the version check
        board.open(f"account/{ACCOUNT}/content")
        form = board.page.locator("form.settings").first
        before = api.get("/system/settings/account/writer_automation",
                         params={"account_id": ACCOUNT}).json()
        form.locator('input[name="articles_per_run"]').fill("500")
        form.locator("button[type=submit]").click()
        alert = form.locator('[role="alert"]')
        alert.wait_for()
        assert alert.inner_text().startswith("422 ")
        assert "articles_per_run" in form.locator("ul.errors").inner_text()
        unchanged = api.get("/system/settings/account/writer_automation",
                            params={"account_id": ACCOUNT}).json()
        assert unchanged["version"] == before["version"]
        form.locator('input[name="articles_per_run"]').fill("7")
        form.locator("button[type=submit]").click()
        # saved, the form is drawn again at the new version
        form.locator(f".actions:has-text('version {before['version'] + 1}')").wait_for()
        saved = api.get("/system/settings/account/writer_automation",
                        params={"account_id": ACCOUNT}).json()
        assert (saved["version"], saved["value"]["articles_per_run"]) == (
            before["version"] + 1, 7)
        assert saved["value"]["tone"] == before["value"]["tone"]  # the rest is kept
        board.screenshot("dashboard-settings-desktop.png")

        # projections: no lag, and a verification run from the page
        board.open("system")
        assert board.page.locator("#page td:has-text('revenue')").count() == 1
        board.page.click("#page button:text-is('Verify now')")
        board.page.wait_for_selector("#verify .pill.ok")
        assert board.errors == []
    finally:
        board.close()


def test_an_auditor_reads_everything_and_edits_nothing(site: dict[str, Any],
                                                        browser: Any) -> None:
    api: httpx.Client = site["api"]
    board = Dashboard(browser, site["url"], LAPTOP)
    try:
        board.sign_in(site["auditor"])
        board.ready("revenue")
        assert board.text("#who-role") == "auditor"
        assert board.page.locator("#nav a").all_inner_texts() == [
            "Revenue", "Accounts", "Provider calls", "AI settings", "Integration",
            "Account", "Projections"]
        check_revenue_page(board, api)

        board.open("models/gpt-4.1")
        board.page.wait_for_selector("#price-chart svg path.step", state="attached")
        assert board.page.locator("#model-form button[type=submit]").count() == 0
        assert board.page.locator("#model-form input[name=input_token_rate]").is_disabled()

        board.open(f"account/{ACCOUNT}/content")
        assert board.page.locator("form.settings button[type=submit]").count() == 0
        assert board.page.locator("form.settings input:enabled").count() == 0
        assert board.page.locator("form.settings").first.inner_text().count(
            "Read-only for this role.") == 1

        board.open("integration")
        assert board.page.locator("#integration-form input:enabled, "
                                  "#integration-form select:enabled").count() == 0
        board.page.click("#sign-out")
        assert board.page.is_visible("#sign-in")
        assert board.errors == []
    finally:
        board.close()


def test_the_calls_panel_shows_the_demo_calls(site: dict[str, Any], browser: Any) -> None:
    """The demo's metered calls (ledger demo calls simulated providers through the
    AIService) fill the provider-calls panel: the latest 50 in the API's order, failed
    ones highlighted with their class and status, showing no credits."""
    api: httpx.Client = site["api"]
    calls = api.get("/calls", params={"limit": 50}).json()["data"]
    assert len(calls) == 50
    assert site["summary"].failed_calls > 0
    board = Dashboard(browser, site["url"], LAPTOP)
    try:
        board.sign_in(ADMIN_TOKEN)
        board.open("calls")
        rows = board.page.locator("#page section").first.locator("tbody tr")
        assert rows.count() == len(calls)
        for i, call in enumerate(calls):
            row = rows.nth(i)
            cells = row.locator("td").all_inner_texts()
            assert cells[1] == call["status"]
            assert cells[2:5] == [call["account_id"], call["provider"], call["model_id"]]
            assert cells[5] == f"{call['latency_ms']:,} ms"
            bad = "bad" in (row.get_attribute("class") or "").split()
            assert bad == (call["status"] == "failed")
            if bad:
                assert cells[6] == "—"
                assert cells[8].startswith(f"{call['error_kind']} (HTTP {call['http_status']})")
        board.screenshot("dashboard-calls-desktop.png")
        assert board.errors == []
    finally:
        board.close()


@pytest.mark.parametrize("viewport", [LAPTOP, PHONE], ids=["desktop", "phone"])
def test_every_page_fits_the_screen(site: dict[str, Any], browser: Any,
                                    viewport: dict[str, int]) -> None:
    """Each page renders (charts drawn, no script error) without a horizontal scroll
    bar, and the revenue page is saved as the screenshot of this width."""
    name = "desktop" if viewport is LAPTOP else "phone"
    board = Dashboard(browser, site["url"], viewport)
    try:
        board.sign_in(ADMIN_TOKEN)
        board.ready("revenue")
        board.page.wait_for_selector("#revenue-chart svg rect.bar")
        width = board.page.evaluate(
            "() => document.querySelector('#revenue-chart svg').getBoundingClientRect().width")
        assert width <= viewport["width"]
        assert board.fits_width(), "revenue"
        board.screenshot(f"dashboard-{name}.png")
        pages = {"accounts": "#top-accounts svg rect.bar",
                 "calls": "#page table",
                 "models/dall-e-3": "#price-chart svg path.step",
                 "integration": "#integration-form",
                 f"account/{ACCOUNT}/overview": "#account-chart svg rect.bar",
                 f"account/{ACCOUNT}/credits": "#account-tab table",
                 f"account/{ACCOUNT}/activity": "#account-tab table",
                 f"account/{ACCOUNT}/images": "form.settings",
                 f"account/{ACCOUNT}/publishing": "form.settings",
                 "system": "#page table"}
        for hash_, drawn in pages.items():
            board.open(hash_)
            board.page.wait_for_selector(drawn, state="attached")
            assert board.page.locator("#page .error").count() == 0, hash_
            assert board.fits_width(), hash_
        board.screenshot(f"dashboard-system-{name}.png")
        assert board.errors == []
    finally:
        board.close()

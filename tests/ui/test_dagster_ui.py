"""What a trader does in the Dagster UI, done by clicking in headless chromium: the lineage
shows every asset in its group, a one-market backfill launched from ohlcv's Materialize
dialog materialises, the backtest report's equity plot is an image, the Runs page lists
every run the instance holds, and a named main-job run can be re-executed.

The pages' state before the clicks (the chain up to the backtest reports) was materialised
in-process by the fixture; everything a test claims the UI does is done through the UI, and
the instance is asked afterwards as a second witness.

Dagster's markup has no test ids: the selectors are roles, visible texts and, for the graph,
the CSS-module class prefixes of Dagster 1.13 (`AssetNode_assetName`, `foreignObject.group`).
"""

from __future__ import annotations

import base64
import re
import struct
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pytest

from tests.ui.conftest import BASE_TIMEFRAME, DagsterUi

if TYPE_CHECKING:  # Playwright itself is imported by the fixtures, after the chromium check
    from playwright.sync_api import Locator, Page

pytestmark = pytest.mark.ui

BACKFILL_MARKET = "ETHUSDT"
# A UI-launched run is a new process that imports the code location (torch included), and
# the multiprocess executor starts another for the step: tens of seconds on two cores.
RUN_TIMEOUT_MS = 180_000
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

_GRAPH = """() => {
  const box = (e) => { const r = e.getBoundingClientRect();
                       return [r.left, r.top, r.right, r.bottom]; };
  const groups = [...document.querySelectorAll('foreignObject.group')].map((g) => ({
    name: g.querySelector('[data-tooltip]')?.getAttribute('data-tooltip'), box: box(g) }));
  const nodes = [...document.querySelectorAll('[class*="AssetNode_assetName"]')].map((n) => ({
    name: n.textContent.trim(), box: box(n.parentElement) }));
  return { groups, nodes };
}"""


def _shown_as(shown: str, key: str) -> bool:
    """The graph shortens long names in the middle ("hyperparame…_study") at the zoom that
    fits every group on the screen."""
    if shown == key:
        return True
    head, ellipsis, tail = shown.partition("…")
    return bool(ellipsis) and key.startswith(head) and key.endswith(tail) and len(shown) < len(key)


def _inside(inner: list[float], outer: list[float]) -> bool:
    left, top, right, bottom = inner
    return outer[0] <= left and outer[1] <= top and right <= outer[2] and bottom <= outer[3]


def test_lineage_shows_every_asset_in_its_group(
    dagster_ui: DagsterUi, page: Page, keep_screenshot: Callable[[Page, str], Path | None]
) -> None:
    expected = dagster_ui.asset_groups  # read from the Definitions, not written here
    assert expected, "the Definitions list no asset"
    page.goto(f"{dagster_ui.url}/asset-groups")
    canvas = page.locator("[data-svg-viewport]")
    for group in set(expected.values()):
        canvas.get_by_text(group, exact=True).first.wait_for()
    # The graph opens with every group collapsed; its background menu expands them all.
    # (Bottom left: the search bar lies over the top of the canvas, the zoom controls over
    # the bottom right, and the fitted graph leaves the left margin empty.)
    height = canvas.bounding_box()["height"]
    canvas.click(button="right", position={"x": 12, "y": height - 12})
    page.get_by_role("menuitem", name="Expand all groups").click()
    page.wait_for_function(
        "n => document.querySelectorAll('[class*=\"AssetNode_assetName\"]').length >= n",
        arg=len(expected),
    )
    graph = page.evaluate(_GRAPH)
    keep_screenshot(page, "lineage")

    boxes = {g["name"]: g["box"] for g in graph["groups"]}
    assert set(boxes) == set(expected.values()), graph["groups"]
    assert len(graph["nodes"]) == len(expected), graph["nodes"]
    for key, group in expected.items():
        drawn = [n for n in graph["nodes"] if _shown_as(n["name"], key)]
        assert len(drawn) == 1, (key, graph["nodes"])
        assert _inside(drawn[0]["box"], boxes[group]), (key, group, drawn[0], boxes[group])


def _pick_partition(page: Page, dialog: Locator, key: str) -> None:
    """Open the first dimension selector still empty and tick `key` in its menu."""
    dialog.get_by_text("Select a partition or create one").first.click()
    page.get_by_role("menuitem").filter(has_text=key).click()
    dialog.get_by_text("Launch runs to materialize ohlcv").click()  # closes the menu


def test_a_one_market_backfill_launched_from_the_materialize_dialog_materialises(
    dagster_ui: DagsterUi, page: Page, keep_screenshot: Callable[[Page, str], Path | None]
) -> None:
    import dagster as dg
    from playwright.sync_api import expect

    partition = str(dg.MultiPartitionKey({"market": BACKFILL_MARKET, "timeframe": BASE_TIMEFRAME}))
    page.goto(f"{dagster_ui.url}/assets/ohlcv")
    page.get_by_role("button", name="Materialize…").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_text("Launch runs to materialize ohlcv")).to_be_visible()
    _pick_partition(page, dialog, BACKFILL_MARKET)  # the market dimension comes first
    _pick_partition(page, dialog, BASE_TIMEFRAME)
    expect(dialog.get_by_text("1 partition", exact=True)).to_be_visible()
    # One partition is one run (Dagster makes a backfill object only for several).
    dialog.get_by_role("button", name="Launch 1 run").click()

    toast = page.get_by_text(re.compile(r"^Launched run [0-9a-f]{8}$"))
    short_id = toast.inner_text().split()[-1]
    page.get_by_role("link", name="View", exact=True).click()  # the toast's
    page.wait_for_url(re.compile(rf"/runs/{short_id}[0-9a-f-]{{28}}"))
    run_id = page.url.split("/runs/")[1].split("?")[0]
    expect(page.get_by_text(f"partition: {partition}").first).to_be_visible()
    ended = page.get_by_text(re.compile(r"^RUN_(SUCCESS|FAILURE)$")).first
    ended.wait_for(timeout=RUN_TIMEOUT_MS)
    assert ended.inner_text() == "RUN_SUCCESS", f"run {run_id} failed (see the screenshot)"
    keep_screenshot(page, "backfill-run")

    # The partition's page says materialised, by this run.
    page.goto(f"{dagster_ui.url}/assets/ohlcv?view=partitions")
    page.get_by_text(BACKFILL_MARKET, exact=True).first.click()
    page.get_by_text(BASE_TIMEFRAME, exact=True).first.click()
    expect(page.get_by_text(partition, exact=True).first).to_be_visible()
    expect(page.get_by_text("Materialized", exact=True).first).to_be_visible()
    expect(page.get_by_role("link", name=run_id[:8])).to_be_visible()

    # Second witness: the instance the UI runs on.
    with dagster_ui.instance() as instance:
        run = instance.get_run_by_id(run_id)
        assert run is not None and run.status == dg.DagsterRunStatus.SUCCESS
        assert run.tags.get("dagster/partition") == partition
        latest = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("ohlcv"), asset_partitions=[partition]),
            limit=1,
        ).records
    assert latest and latest[0].run_id == run_id


def test_the_backtest_reports_equity_plot_is_an_image(
    dagster_ui: DagsterUi, page: Page, keep_screenshot: Callable[[Page, str], Path | None]
) -> None:
    page.goto(f"{dagster_ui.url}/assets/backtest_report")
    row = page.get_by_role("row").filter(has=page.get_by_text("equity", exact=True))
    row.wait_for()
    images = row.locator('img[src^="data:image/png"]')
    if images.count() == 0:
        # Dagster shows markdown over 1,000 characters behind this link, in a dialog.
        row.get_by_text("[Show Markdown]").click()
        images = page.get_by_role("dialog").locator('img[src^="data:image/png"]')
    image = images.first
    image.wait_for()
    png = base64.b64decode(image.get_attribute("src").split(",", 1)[1])
    assert png[:8] == PNG_SIGNATURE
    width, height = struct.unpack(">II", png[16:24])  # IHDR
    assert width > 0 and height > 0
    # The browser decoded it to the same size: an image, not a broken icon.
    assert image.evaluate("e => [e.naturalWidth, e.naturalHeight]") == [width, height]
    keep_screenshot(page, "backtest-plot")


# The Runs page shows this many runs before "Older"; the fixture makes far fewer.
RUNS_PAGE = 25
_RUN_LINK = re.compile(r"^/runs/([0-9a-f]{8}-[0-9a-f-]{27})$")
_RUNS_COUNT = "{ runsOrError { __typename ... on Runs { count } } }"


def test_the_runs_page_lists_every_run_the_instance_holds(
    dagster_ui: DagsterUi, page: Page
) -> None:
    """The UI reads the fixture's PostgreSQL storage, not one of its own: the Runs page lists
    exactly the runs of Dagster's `runs` table, and its GraphQL count agrees."""
    with psycopg.connect(dagster_ui.dagster_database_url) as conn:
        total = conn.execute("SELECT count(*) FROM runs").fetchone()[0]
        stored = {row[0] for row in conn.execute("SELECT run_id FROM runs")}
    assert 0 < total <= RUNS_PAGE, f"{total} runs: this test reads one page of the Runs page"
    counted = dagster_ui.dev.graphql(_RUNS_COUNT)["runsOrError"]
    assert counted == {"__typename": "Runs", "count": total}

    page.set_viewport_size({"width": 1600, "height": 4000})  # its table renders what is seen
    page.goto(f"{dagster_ui.url}/runs")
    page.get_by_role("link", name="View", exact=True).first.wait_for()
    hrefs = page.eval_on_selector_all('a[href^="/runs/"]', "links => links.map(a => a.pathname)")
    listed = {m.group(1) for m in map(_RUN_LINK.match, hrefs) if m}
    assert len(listed) == total, (len(listed), total)
    assert listed == stored


def test_a_named_main_job_run_can_be_re_executed_from_its_page(
    dagster_ui: DagsterUi, page: Page, keep_screenshot: Callable[[Page, str], Path | None]
) -> None:
    """The set-up ran the main job as its named jobs (as `signals run` does), so a run's page
    offers "Re-execute"; a run of the ephemeral asset job would have it disabled ("not
    available in your definitions"). Nothing is launched here."""
    import dagster as dg
    from playwright.sync_api import expect

    with dagster_ui.instance() as instance:
        runs = instance.get_runs(dg.RunsFilter(job_name="features_job"), limit=1)
    assert runs, "the set-up ran no features_job run"
    page.goto(f"{dagster_ui.url}/runs/{runs[0].run_id}")
    expect(page.get_by_text("RUN_SUCCESS", exact=True).first).to_be_visible()
    expect(page.get_by_text("Run of features_job", exact=False).first).to_be_visible()
    button = page.get_by_role("button", name=re.compile(r"Re-execute"))  # after its icon
    expect(button).to_be_enabled()
    button.hover()  # a disabled one explains itself in a tooltip; this one must not refuse
    expect(page.get_by_text("not available in your definitions")).to_have_count(0)
    keep_screenshot(page, "named-job-run")

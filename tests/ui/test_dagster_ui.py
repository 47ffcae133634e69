"""What a trader does in the Dagster UI, done by clicking in headless chromium: the lineage
shows every asset in its group, a one-market backfill launched from ohlcv's Materialize
dialog materialises, the backtest report's equity plot is an image, the Runs page lists
every run the instance holds, a named main-job run can be re-executed, and turning
new_candle_sensor on makes the real daemon launch live runs whose shadow signals show on
the live_signals page.

The pages' state before the clicks (the chain up to the backtest reports) was materialised
in-process by the fixture; everything a test claims the UI does is done through the UI, and
the instance is asked afterwards as a second witness.

Dagster's markup has no test ids: the selectors are roles, visible texts and, for the graph
and the asset's events list, the CSS-module class prefixes of Dagster 1.13
(`AssetNode_assetName`, `foreignObject.group`, `AssetEventList_assetListRow`).
"""

from __future__ import annotations

import base64
import json
import os
import re
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import pytest

from tests.ui.conftest import (
    BASE_TIMEFRAME,
    DATA_END,
    MARKETS,
    SCREENSHOTS_ENV,
    SENSOR_INTERVAL_S,
    DagsterUi,
)

if TYPE_CHECKING:  # Playwright itself is imported by the fixtures, after the chromium check
    import dagster as dg
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


HOUR_MS = 3_600_000
DATA_END_MS = int(DATA_END.timestamp() * 1000)
# Bounded waits for the live runs: a run is a new process that imports the code location
# (torch included), tens of seconds on two busy cores; no timed assertion beyond that.
LIVE_TIMEOUT_S = 120
CLOSE_LEAD_S = 2.0  # the second candle closes this long after the clock is set
_SENSOR = """{ sensorOrError(sensorSelector: {repositoryLocationName: "futures_signals",
    repositoryName: "__repository__", sensorName: "new_candle_sensor"}) {
  __typename ... on Sensor { jobOriginId sensorState { selectorId status
    ticks(limit: 12) { status timestamp runIds skipReason error { message } } } } } }"""
_STOP_SENSOR = """mutation($origin: String, $selector: String) {
  stopSensor(jobOriginId: $origin, jobSelectorId: $selector) { __typename } }"""
_METADATA = """keys => Object.fromEntries([...document.querySelectorAll('tr')]
  .filter(tr => tr.cells.length >= 2 && keys.includes(tr.cells[0].innerText.trim()))
  .map(tr => [tr.cells[0].innerText.trim(), tr.cells[1].innerText.trim()]))"""


def _set_clock(dagster_ui: DagsterUi, clock_ms: int) -> float:
    """Move the replay clock to `clock_ms`, running at the speed of real time; returns the
    wall time at which it read `clock_ms` (to map candle closes to wall time)."""
    wall = time.time()
    dagster_ui.exchange.clock.set(clock_ms, 1.0)
    return wall


def _sensor(dagster_ui: DagsterUi) -> dict[str, Any]:
    return dagster_ui.dev.graphql(_SENSOR)["sensorOrError"]


def _live_records(instance: dg.DagsterInstance) -> list[dg.EventLogRecord]:
    import dagster as dg

    return instance.fetch_materializations(dg.AssetKey("live_signals"), limit=100).records


def _candle_of(record: dg.EventLogRecord) -> str:
    return record.asset_materialization.metadata["candle"].value


def _wait_for_live_signals(
    dagster_ui: DagsterUi, instance: dg.DagsterInstance, candles: list[int], since: float
) -> list[dg.EventLogRecord]:
    """Until every market has a live_signals materialisation for each of `candles` and the
    runs that made them have ended; bounded (LIVE_TIMEOUT_S after `since`), failing with
    what the sensor ticked, the live runs' statuses and dagster dev's log."""
    import dagster as dg

    from pipeline.reporting.text import utc_text

    wanted = {(m, utc_text(c)) for m in MARKETS for c in candles}
    while True:
        records = [r for r in _live_records(instance) if (r.partition_key, _candle_of(r)) in wanted]
        runs = instance.get_runs(dg.RunsFilter(job_name="live_inference_job"))
        states = [
            (run.run_id[:8], run.tags.get("signals/candle"), run.status.value) for run in runs
        ]
        if {(r.partition_key, _candle_of(r)) for r in records} == wanted and all(
            run.is_finished for run in runs
        ):
            return records
        if time.time() > since + LIVE_TIMEOUT_S:
            ticks = (_sensor(dagster_ui).get("sensorState") or {}).get("ticks")
            pytest.fail(
                f"no live_signals materialisation for every market and candle "
                f"{sorted(wanted)} within {LIVE_TIMEOUT_S} s; got "
                f"{sorted((r.partition_key, _candle_of(r)) for r in records)}; live runs: "
                f"{states}"
                f"; sensor ticks: {json.dumps(ticks)[:2000]}\ndagster dev log:\n"
                f"{dagster_ui.dev.log_tail()}",
                pytrace=False,
            )
        time.sleep(0.5)


def _delays(
    instance: dg.DagsterInstance, records: list[dg.EventLogRecord], closed_at: dict[str, float]
) -> list[dict[str, Any]]:
    """Per signal, seconds from its candle's close (wall time) to the run's request by the
    sensor, the run's start and the materialisation."""
    rows = []
    for record in sorted(records, key=lambda r: (_candle_of(r), r.partition_key or "")):
        run = instance.get_run_record_by_id(record.run_id)
        assert run is not None
        close = closed_at[_candle_of(record)]
        rows.append(
            {
                "market": record.partition_key,
                "candle": _candle_of(record),
                "run_id": record.run_id,
                "requested_s": round(run.create_timestamp.timestamp() - close, 2),
                "started_s": round((run.start_time or float("nan")) - close, 2),
                "materialised_s": round(record.timestamp - close, 2),
            }
        )
    return rows


def test_turning_the_new_candle_sensor_on_in_the_ui_records_shadow_signals(
    dagster_ui: DagsterUi, page: Page, keep_screenshot: Callable[[Page, str], Path | None]
) -> None:
    """new_candle_sensor, turned on on its page, makes the real daemon of dagster dev launch
    one live run per market and candle, whose signal the small chain's candidate decides in
    shadow (no production model: the fixture runs no gate): one live_signals
    materialisation per market and candle, shown with its mode, model and side on the
    asset's events list, one `signals` row each, and no order.

    Two candles: the newest one as the sensor is turned on (its first tick takes the newest
    closed candle; the replay clock is set to its close just before the click), then the
    next, which closes while the sensor is on. The delay from each candle's close (replay
    clock mapped to wall time) to its materialisation is printed (and written into
    $SIGNALS_UI_SCREENSHOTS). Here, on two busy cores with the sensor's interval at 5 s, it
    was 16–31 s over four runs: the sensor requested the run 1–9 s after the close (within
    two intervals), the run worker's start (a new process importing the code location, one
    per market at once) took 15–20 s, and the decision itself under a second. Nothing
    asserts it: a loaded CI box would make such an assertion flaky.
    """
    import dagster as dg
    from playwright.sync_api import expect

    from pipeline.model.contract import MODEL_NAME
    from pipeline.reporting.text import utc_text
    from pipeline.store.models import deciding_models

    with psycopg.connect(dagster_ui.database_url) as conn:
        deciders = deciding_models(conn, MODEL_NAME, BASE_TIMEFRAME)
    # The fixture runs no gate: its candidate (checks passed) decides alone, in shadow.
    assert [mode for _, mode in deciders] == ["shadow"], deciders
    model = deciders[0][0]
    first, second = DATA_END_MS - HOUR_MS, DATA_END_MS  # candles' open times
    closed_at: dict[str, float] = {}

    page.goto(f"{dagster_ui.url}/automation")
    page.get_by_role("link", name="new_candle_sensor").click()  # its name has the icon's
    page.wait_for_url(re.compile(r"/sensors/new_candle_sensor"))
    running = page.get_by_role("row").filter(has_text="Running")
    switch = running.get_by_role("checkbox")
    expect(switch).not_to_be_checked()
    try:
        with dagster_ui.instance() as instance:
            closed_at[utc_text(first)] = _set_clock(dagster_ui, first + HOUR_MS)
            running.locator("label").first.click()  # the switch's input is visually hidden
            expect(switch).to_be_checked()
            _wait_for_live_signals(dagster_ui, instance, [first], closed_at[utc_text(first)])
            close = _set_clock(dagster_ui, second + HOUR_MS - int(CLOSE_LEAD_S * 1000))
            closed_at[utc_text(second)] = close + CLOSE_LEAD_S
            records = _wait_for_live_signals(
                dagster_ui, instance, [first, second], closed_at[utc_text(second)]
            )
            runs = instance.get_runs(dg.RunsFilter(job_name="live_inference_job"))
            delays = _delays(instance, records, closed_at)
        page.reload()
        expect(page.get_by_text("2 runs requested").first).to_be_visible()
        keep_screenshot(page, "sensor-on")
        running.locator("label").first.click()
        expect(switch).not_to_be_checked()
    finally:
        sensor = _sensor(dagster_ui)
        if (sensor.get("sensorState") or {}).get("status") != "STOPPED":
            dagster_ui.dev.graphql(
                _STOP_SENSOR,
                {"origin": sensor["jobOriginId"], "selector": sensor["sensorState"]["selectorId"]},
            )

    print("\nclose → live_signals materialisation (s), sensor interval", SENSOR_INTERVAL_S, "s:")
    for row in delays:
        print(
            f"  {row['market']} {row['candle']}: requested {row['requested_s']}, run started "
            f"{row['started_s']}, materialised {row['materialised_s']}"
        )
    if folder := os.environ.get(SCREENSHOTS_ENV):
        path = Path(folder) / "live-delays.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        summary = {"sensor_interval_s": SENSOR_INTERVAL_S, "signals": delays}
        path.write_text(json.dumps(summary, indent=1))

    # Exactly one run and one materialisation per market and candle: the sensor's later
    # ticks found nothing new, and Dagster's run keys would refuse a repeat.
    candles = [utc_text(first), utc_text(second)]
    expected = sorted((m, c) for m in MARKETS for c in candles)
    assert sorted((r.partition_key, _candle_of(r)) for r in records) == expected
    assert len(runs) == len(expected) and all(r.is_success for r in runs), runs
    assert {r.run_id for r in records} == {r.run_id for r in runs}
    for record in records:
        meta = {k: v.value for k, v in record.asset_materialization.metadata.items()}
        assert (meta["mode"], meta["model_id"]) == ("shadow", str(model.id)), meta
    # The store: one shadow signal per market and candle by the candidate, and no order.
    with psycopg.connect(dagster_ui.database_url) as conn:
        signals = conn.execute(
            "SELECT symbol, candle_time, mode, model_id, side FROM signals ORDER BY 2, 1"
        ).fetchall()
        orders = conn.execute("SELECT count(*) FROM orders").fetchone()[0]
    by_signal = {(s[0].split("/")[0] + "USDT", utc_text(s[1])): s for s in signals}
    assert sorted(by_signal) == expected and len(signals) == len(expected), signals
    assert {(s[2], s[3]) for s in signals} == {("shadow", model.id)}
    assert orders == 0

    # The UI: the asset's events list has one materialisation per market and candle, and
    # each shows its candle, mode, model and side (the store's).
    page.goto(f"{dagster_ui.url}/assets/live_signals?view=events")
    events = page.locator('[class*="AssetEventList_assetListRow"]')
    expect(events).to_have_count(len(expected))
    # The selected event's description, "<market> <candle>": unique per event.
    description = page.get_by_text(re.compile(r"^[A-Z0-9]+ \d{4}-\d\d-\d\d \d\d:\d\d UTC$"))
    shown: list[tuple[str, str]] = []
    for event in events.all():
        event.click()
        if shown:  # wait until the pane shows this event, not the one before
            expect(description).not_to_have_text(" ".join(shown[-1]))
        market, candle = description.inner_text().split(" ", 1)
        assert event.inner_text().split()[-1] == market  # the list row's partition
        meta = page.evaluate(_METADATA, ["candle", "mode", "model_id", "side"])
        side = by_signal[(market, candle)][4]
        expected_meta = {"candle": candle, "mode": "shadow", "model_id": str(model.id)}
        assert meta == {**expected_meta, "side": str(side)}, (market, meta)
        shown.append((market, candle))
    assert sorted(shown) == expected
    events.first.click()
    keep_screenshot(page, "live-signals")

"""Browser tests of the Dagster UI: Debian's chromium driven by Playwright against a real
`dagster dev` (webserver + daemon) on a temporary home.

The setting is small so the module stays within a couple of minutes on two cores: BTC and
ETH, the base timeframe only, candles from late 2020 to 2021-09-01 (the longest feature
warm-up is ~5 months of hours), one study trial and SIGNALS_MAX_EPOCHS epochs. The candles
reach the runs through the replay exchange over HTTP (ccxt), as in `signals run` offline.
Dagster's storage is a database of its own on the session's embedded PostgreSQL, as with
`make ui`.

Chromium is the distribution's (`apt-get install chromium`; .ci/run installs it), launched
through `executable_path`: Playwright's own browser download cannot work on these machines.
Without it the tests fail, saying how to install it; SIGNALS_SKIP_BROWSER=1 skips them
instead, for local runs only.

When a UI test fails, every page it had open is saved as a full-page PNG (and its URL) under
test-artifacts/ui/, and the report names the files. With SIGNALS_UI_SCREENSHOTS=DIR the
passing tests also save the pages a closing note shows (lineage, backfill run, backtest plot,
a named main-job run, the sensor on, the live signals) and the live test's measured delays.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import psycopg
import pytest

from tests.conftest import REPO, _with_dbname
from tests.helpers.dagster_ui import DagsterDev, DagsterDevError
from tests.helpers.folders import write_folder

if TYPE_CHECKING:
    import dagster as dg
    from playwright.sync_api import Browser, Page

    from pipeline.replay.server import ReplayExchange

SKIP_ENV = "SIGNALS_SKIP_BROWSER"
SCREENSHOTS_ENV = "SIGNALS_UI_SCREENSHOTS"
ARTIFACTS = REPO / "test-artifacts" / "ui"

MARKETS = ("BTCUSDT", "ETHUSDT")
BASE_TIMEFRAME = "1h"
DATA_END = pd.Timestamp("2021-09-01", tz="UTC")
# The folder holds a few candles past DATA_END that the replay clock has not reached: the live
# test moves the clock so that they close while new_candle_sensor is on.
LIVE_HOURS = 3
SENSOR_INTERVAL_S = 5  # new_candle_sensor's minimum interval in this dagster dev
SMALL_SETTING = {
    "SIGNALS_MARKETS": "BTC/USDT:USDT,ETH/USDT:USDT",
    "SIGNALS_TIMEFRAMES": BASE_TIMEFRAME,
    "SIGNALS_SINCE": "2020-10-01",
    "SIGNALS_TRAIN_END": "2021-06-30",
    "SIGNALS_VALIDATION_END": "2021-08-31",
    "SIGNALS_MAX_EPOCHS": "1",
    "SIGNALS_SOURCE": "ccxt",
    "SIGNALS_SENSOR_INTERVAL_S": str(SENSOR_INTERVAL_S),
}
# What the pages need before the tests click: the chain up to a backtest report.
PREPARED = ("ohlcv", "market_factor", "features", "selected_features")
PREPARED += ("hyperparameter_study", "lstm_model", f"backtest_report:{MARKETS[0]}")
START_TIMEOUT_S = 180  # dagster dev with the code location loaded, on two busy cores
PREPARE_TIMEOUT_S = 300


def chromium_executable() -> str | None:
    """Debian's chromium: on PATH, or where the package puts it."""
    found = shutil.which("chromium")
    if found:
        return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Where chromium is. Missing, the tests FAIL (CI must have installed it), unless
    SIGNALS_SKIP_BROWSER=1 says this local run does without them (CI=true ignores it)."""
    if os.environ.get(SKIP_ENV) == "1" and os.environ.get("CI") != "true":
        pytest.skip(f"browser tests skipped: {SKIP_ENV}=1")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.fail(
            "Playwright for Python is missing: install the dev extra (`make setup`), or set "
            f"{SKIP_ENV}=1 to skip the browser tests locally",
            pytrace=False,
        )
    path = chromium_executable()
    if path is None:
        pytest.fail(
            "chromium is not installed: `apt-get update && apt-get install -y chromium` "
            f"(.ci/run does this), or set {SKIP_ENV}=1 to skip the browser tests locally",
            pytrace=False,
        )
    return path


@dataclass
class DagsterUi:
    """The running UI and what stands behind it."""

    url: str
    dev: DagsterDev
    home: Path  # SIGNALS_HOME of the small setting (reports, the parquet store)
    database_url: str  # the project's database (Dagster's is `<name>_dagster` beside it)
    exchange: ReplayExchange  # the replay exchange's clock can be moved by a test
    env: dict[str, str]
    asset_groups: dict[str, str]  # every asset key of the Definitions → its group

    def instance(self) -> dg.DagsterInstance:
        """The same instance the UI shows, opened in this process: the second witness."""
        import dagster as dg

        return dg.DagsterInstance.from_config(str(self.dev.home))

    @property
    def dagster_database_url(self) -> str:
        """Dagster's own database (runs, event logs), as libpq connection text."""
        from pipeline.store.dagster_storage import dagster_database_name

        return _with_dbname(self.database_url, dagster_database_name(self.database_url))


def _small_folder(root: Path, frames: dict[str, pd.DataFrame]) -> Path:
    end = int((DATA_END + pd.Timedelta(hours=LIVE_HOURS)).timestamp() * 1000)
    return write_folder(
        root, {m: frames[m][frames[m]["timestamp"] < end].reset_index(drop=True) for m in MARKETS}
    )


def _prepare(env: dict[str, str], assets_json: Path, log: Path) -> subprocess.Popen:
    """The small main job in a process of its own (the partitions come from its settings);
    it also writes the Definitions' asset groups to `assets_json`."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.helpers.small_chain", str(assets_json), *PREPARED],
            cwd=REPO,
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


@pytest.fixture(scope="module")
def dagster_ui(
    chromium_path: str,
    tmp_path_factory: pytest.TempPathFactory,
    sample_frames: dict[str, pd.DataFrame],
    pg_server: str,
) -> Iterator[DagsterUi]:
    """`dagster dev` on a temporary home, its storage on the embedded server, the small
    setting's chain materialised (in parallel with the start), stopped afterwards."""
    from pipeline.cli.run import DEV_INSTANCE
    from pipeline.replay.clock import ReplayClock
    from pipeline.replay.server import ReplayExchange, ReplayServer
    from pipeline.store.dagster_storage import ENV_DAGSTER_PG_URL, dagster_storage_url

    root = tmp_path_factory.mktemp("ui")
    name = f"ui_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    database_url = _with_dbname(pg_server, name)
    dagster_home = root / "dagster"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text(DEV_INSTANCE.read_text(encoding="utf-8"))

    exchange = ReplayExchange(_small_folder(root / "candles", sample_frames), ReplayClock())
    # A clock of its own: the small data's end (DATA_END; the live test's candles after it
    # have not closed yet), at the speed of real time.
    exchange.clock.set(int(DATA_END.timestamp() * 1000), 1.0)
    server = ReplayServer(exchange).start()
    env = {
        **SMALL_SETTING,
        "SIGNALS_HOME": str(root / "home"),
        "SIGNALS_DATABASE_URL": database_url,
        "SIGNALS_API_URL": server.url,
        ENV_DAGSTER_PG_URL: dagster_storage_url(database_url),
        "DAGSTER_HOME": str(dagster_home),
        "OMP_NUM_THREADS": "1",
    }
    dev = DagsterDev(dagster_home, env)
    patch = pytest.MonkeyPatch()
    patch.setenv(ENV_DAGSTER_PG_URL, env[ENV_DAGSTER_PG_URL])  # for instance() here
    try:
        prepare_log, assets_json = root / "prepare.log", root / "assets.json"
        prepare = _prepare(env, assets_json, prepare_log)
        dev.start()
        try:
            code = prepare.wait(timeout=PREPARE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            prepare.kill()
            code = "timeout"
        if code != 0:
            tail = "\n".join(prepare_log.read_text(errors="replace").splitlines()[-30:])
            pytest.fail(f"the small main job failed ({code}):\n{tail}", pytrace=False)
        try:
            dev.wait_ready(START_TIMEOUT_S)
        except DagsterDevError as err:
            pytest.fail(str(err), pytrace=False)
        # What "Skip" on the first visit's "Join the Dagster community" dialog does: that
        # dialog (shown on 127.0.0.1 until the instance records it seen) covers every page.
        dev.graphql("mutation { setNuxSeen }")
        groups = json.loads(assets_json.read_text())
        yield DagsterUi(dev.url, dev, root / "home", database_url, exchange, env, groups)
    finally:
        dev.stop()
        server.stop()
        patch.undo()


@pytest.fixture(scope="module")
def browser(chromium_path: str) -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, headless=True)
        yield browser
        browser.close()


@pytest.fixture()
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser context per test (no state carried between tests)."""
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    context.set_default_timeout(30_000)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture()
def keep_screenshot(request: pytest.FixtureRequest) -> Callable[[Page, str], Path | None]:
    """`keep_screenshot(page, "lineage")` saves a full-page PNG into $SIGNALS_UI_SCREENSHOTS
    when it is set (the pictures a closing note shows); otherwise does nothing."""
    folder = os.environ.get(SCREENSHOTS_ENV)

    def keep(page: Page, name: str) -> Path | None:
        if not folder:
            return None
        path = Path(folder) / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(path), full_page=True)
        return path

    return keep


def _artifact_name(nodeid: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid.split("::")[-1])


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """A failed UI test leaves a full-page PNG and the URL of each page it had open."""
    outcome = yield
    report = outcome.get_result()
    page = getattr(item, "funcargs", {}).get("page")
    if report.when != "call" or not report.failed or page is None:
        return
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    base = _artifact_name(item.nodeid)
    lines = []
    for number, open_page in enumerate(page.context.pages):
        stem = base if number == 0 else f"{base}-{number + 1}"
        path = ARTIFACTS / f"{stem}.png"
        try:
            open_page.screenshot(path=str(path), full_page=True, timeout=15_000)
            (ARTIFACTS / f"{stem}.url").write_text(open_page.url + "\n")
            lines.append(f"{path}  ({open_page.url})")
        except Exception as err:  # a crashed page must not hide the test's own failure
            lines.append(f"{path}: no screenshot ({err})")
    text = "\n".join(lines)
    report.sections.append(("screenshots", text))
    sys.stderr.write(f"\nscreenshots of {item.nodeid}:\n{text}\n")

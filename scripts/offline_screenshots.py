"""Screenshots of the offline recipe after `make run`, in headless chromium.

    .venv/bin/python scripts/offline_screenshots.py --out docs/screenshots/offline \
        [--clock 2023-12-20] [--speed 1440] [--minutes 8]

Run after `make run` on the sample (it uses your store and Dagster instance, as `make ui`
does). It follows the README's offline recipe: `signals replay-exchange` on the sample (its
clock at `--clock`, `--speed` times real time, so that a 4h candle closes every few seconds and a
5-day horizon passes in minutes), `dagster dev` pointed at it (what `make ui` starts), and
`new_candle_sensor` turned on. It saves the lineage, the gate's check and event, and the
`live_signals` page twice: once after the first decisions (no realised return yet: their exit
candles have not closed) and once after the first exit candles closed on the exchange's clock.
Beside each `live_signals` shot, `evidence-N.json` lists every signal with its exit candle's
close, the exchange's clock at that moment and whether the signal is resolved: a resolved
signal whose exit had not closed would be the bug the issue describes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.helpers.dagster_ui import DagsterDev  # noqa: E402

BIN = Path(sys.executable).parent


def exchange_now_ms(api_url: str) -> int:
    with urllib.request.urlopen(f"{api_url}/fapi/v1/time", timeout=5) as reply:
        return int(json.loads(reply.read())["serverTime"])


def evidence(database_url: str, api_url: str, step_ms: int) -> dict:
    """Every live signal: its candle, its exit candle's close, resolved or not, and the
    exchange's clock now."""
    import psycopg

    now = exchange_now_ms(api_url)
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            """SELECT symbol, (extract(epoch FROM candle_time) * 1000)::bigint, horizon, mode,
                      realised_return, realised_net_return
               FROM signals ORDER BY candle_time, symbol"""
        ).fetchall()
    signals = []
    for symbol, candle_ms, horizon, mode, realised, net in rows:
        exit_close = candle_ms + (2 + int(horizon)) * step_ms  # exit candle opens at +1+H
        signals.append(
            {
                "symbol": symbol,
                "candle_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime(candle_ms / 1000)),
                "mode": mode,
                "exit_candle_closes_utc": time.strftime(
                    "%Y-%m-%d %H:%M", time.gmtime(exit_close / 1000)
                ),
                "exit_closed_on_exchange": exit_close <= now,
                "realised_return": realised,
                "realised_net_return": net,
            }
        )
    wrong = [
        s for s in signals if s["realised_return"] is not None and not s["exit_closed_on_exchange"]
    ]
    return {
        "exchange_clock_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now / 1000)),
        "signals": len(signals),
        "resolved": sum(s["realised_return"] is not None for s in signals),
        "resolved_before_their_exit_closed": len(wrong),
        "rows": signals,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="docs/screenshots/offline")
    parser.add_argument("--clock", default="2023-12-20")
    parser.add_argument("--speed", type=float, default=1440.0)
    parser.add_argument("--minutes", type=float, default=8.0, help="how long the sensor runs")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument(
        "--data-dir",
        default=os.environ.get(
            "SIGNALS_DATA_DIR", str(REPO.parent / "shared" / "data" / "binance-usdm-1h")
        ),
    )
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from playwright.sync_api import sync_playwright

    from pipeline.data.timeframes import timeframe_ms
    from pipeline.settings import Settings
    from pipeline.store.database import open_database, resolve_url

    settings = Settings.from_env()
    open_database(settings).close()  # the embedded server up
    database_url = resolve_url(settings)
    dagster_url = subprocess.run(
        [str(BIN / "signals"), "db", "dagster-url"], capture_output=True, text=True, check=True
    ).stdout.strip()
    home = settings.home / "dagster"
    home.mkdir(parents=True, exist_ok=True)
    yaml = home / "dagster.yaml"
    if "storage:" not in (yaml.read_text() if yaml.exists() else ""):
        yaml.write_text((REPO / "pipeline" / "dagster_dev.yaml").read_text())
    api_url = f"http://127.0.0.1:{args.port}"
    replay = subprocess.Popen(
        [
            str(BIN / "signals"),
            "replay-exchange",
            "--data-dir",
            args.data_dir,
            "--port",
            str(args.port),
            "--clock",
            args.clock,
            "--speed",
            str(args.speed),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    env = {
        "SIGNALS_API_URL": api_url,
        "SIGNALS_DAGSTER_PG_URL": dagster_url,
        "SIGNALS_SENSOR_INTERVAL_S": "5",  # the recipe's 30 s, shortened with the clock
    }
    dev = DagsterDev(home, env, port=3000)
    step = timeframe_ms(settings.decision_timeframe)
    taken = 0
    try:
        dev.start()
        dev.wait_ready(300)
        dev.graphql("mutation { setNuxSeen }")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=shutil.which("chromium") or "/usr/bin/chromium", headless=True
            )
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.set_default_timeout(60_000)

            def shot(path: str, name: str, then=None) -> None:
                page.goto(f"{dev.url}{path}")
                page.wait_for_load_state("networkidle")
                time.sleep(3)  # let the graphs and tables settle
                if then is not None:
                    then()
                    time.sleep(2)
                page.screenshot(path=str(out / f"{name}.png"), full_page=True)
                print(f"saved {out / name}.png", file=sys.stderr)

            def expand_groups() -> None:
                # The graph opens with every group collapsed; its background menu expands
                # them all (bottom left: nothing lies over the canvas there).
                canvas = page.locator("[data-svg-viewport]")
                canvas.wait_for()
                height = canvas.bounding_box()["height"]
                canvas.click(button="right", position={"x": 12, "y": height - 12})
                page.get_by_role("menuitem", name="Expand all groups").click()

            def newest_event() -> None:
                page.locator('[class*="AssetEventList_assetListRow"]').first.click()

            shot("/asset-groups", "1-lineage", expand_groups)
            shot("/assets/production_model?view=checks", "2-gate-check")
            shot("/assets/production_model?view=events", "3-gate-event", newest_event)
            subprocess.run(
                [
                    str(BIN / "dagster"),
                    "sensor",
                    "start",
                    "new_candle_sensor",
                    "-w",
                    "workspace.yaml",  # the location dagster dev serves
                ],
                env={**dev.env},
                cwd=REPO,
                check=True,
                capture_output=True,
            )
            print("sensor on", file=sys.stderr)
            started = time.monotonic()
            while time.monotonic() - started < args.minutes * 60:
                time.sleep(10)
                found = evidence(database_url, api_url, step)
                print(
                    f"clock {found['exchange_clock_utc']}: {found['signals']} signals, "
                    f"{found['resolved']} resolved",
                    file=sys.stderr,
                )
                first = taken == 0 and found["signals"] >= 10
                second = taken == 1 and found["resolved"] >= 5
                if first or second:
                    taken += 1
                    name = f"{3 + taken}-live-signals"
                    shot("/assets/live_signals?view=events", name, newest_event)
                    (out / f"evidence-{taken}.json").write_text(json.dumps(found, indent=2))
                if taken == 2:
                    break
            browser.close()
    finally:
        subprocess.run(
            [
                str(BIN / "dagster"),
                "sensor",
                "stop",
                "new_candle_sensor",
                "-w",
                "workspace.yaml",
            ],
            env={**dev.env},
            cwd=REPO,
            capture_output=True,
        )
        dev.stop()
        replay.terminate()
    return 0 if taken == 2 else 1


if __name__ == "__main__":
    sys.exit(main())

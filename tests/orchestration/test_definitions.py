"""The code location loads, and what it offers (assets, checks, partitions, jobs, schedules,
sensors, resources) matches the committed snapshot, so a change to the Dagster surface is a
reviewed diff rather than a surprise in the UI.

The suite's process runs the barrier strategy's location (tests/conftest.py); the portfolio
strategy's, the product's default, is loaded in a process of its own and compared with its own
snapshot. Regenerate after an intended change: SIGNALS_UPDATE_SNAPSHOT=1 pytest
tests/orchestration.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import dagster as dg
import pytest

SNAPSHOT = Path(__file__).parent / "snapshots" / "definitions.json"
PORTFOLIO_SNAPSHOT = Path(__file__).parent / "snapshots" / "definitions_portfolio.json"
LOCATION_ENV = ("SIGNALS_MARKETS", "SIGNALS_TIMEFRAMES", "SIGNALS_SENSOR_INTERVAL_S")


def _partitions(definition: dg.PartitionsDefinition | None) -> object:
    if definition is None:
        return None
    if isinstance(definition, dg.MultiPartitionsDefinition):
        return {d.name: d.partitions_def.get_partition_keys() for d in definition.partitions_defs}
    return definition.get_partition_keys()


def surface(defs: dg.Definitions) -> dict[str, object]:
    """Everything a user of the UI sees of the location, as plain data."""
    graph = defs.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "partitions": _partitions(node.partitions_def),
            "deps": sorted(k.to_user_string() for k in node.parent_keys),
            "checks": sorted(c.name for c in node.check_keys),
        }
    jobs = sorted(j.name for j in defs.resolve_all_job_defs() if not j.name.startswith("__"))
    schedules = {
        s.name: {
            "cron": s.cron_schedule,
            "timezone": s.execution_timezone,
            "job": s.job_name,
            "default": s.default_status.value,
        }
        for s in defs.schedules or []
    }
    sensors = {
        s.name: {
            "jobs": sorted(j.name for j in s.jobs),
            "interval_s": s.minimum_interval_seconds,
            "default": s.default_status.value,
        }
        for s in defs.sensors or []
    }
    return {
        "assets": assets,
        "jobs": jobs,
        "schedules": schedules,
        "sensors": sensors,
        "resources": sorted(defs.resources or {}),
    }


def test_the_code_location_loads_and_matches_its_snapshot() -> None:
    overridden = [name for name in LOCATION_ENV if os.environ.get(name)]
    if overridden:
        pytest.fail(f"the snapshot is of the default location; unset {', '.join(overridden)}")
    from pipeline.definitions import defs

    dg.Definitions.validate_loadable(defs)
    current = surface(defs)
    if os.environ.get("SIGNALS_UPDATE_SNAPSHOT") == "1":
        SNAPSHOT.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    assert current == json.loads(SNAPSHOT.read_text())


def test_the_portfolio_location_loads_and_matches_its_snapshot() -> None:
    """The default location (SIGNALS_STRATEGY=portfolio): the portfolio chain, funding_rates,
    an unpartitioned backtest_report and the portfolio live job behind the sensor."""
    import subprocess
    import sys

    overridden = [name for name in LOCATION_ENV if os.environ.get(name)]
    if overridden:
        pytest.fail(f"the snapshot is of the default location; unset {', '.join(overridden)}")
    code = (
        "import json, dagster as dg\n"
        "from pipeline.definitions import defs\n"
        "from tests.orchestration.test_definitions import surface\n"
        "dg.Definitions.validate_loadable(defs)\n"
        "print(json.dumps(surface(defs)))\n"
    )
    env = {**os.environ, "SIGNALS_STRATEGY": "portfolio"}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    current = json.loads(done.stdout.strip().splitlines()[-1])
    if os.environ.get("SIGNALS_UPDATE_SNAPSHOT") == "1":
        PORTFOLIO_SNAPSHOT.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    assert current == json.loads(PORTFOLIO_SNAPSHOT.read_text())
    assert current["assets"]["backtest_report"]["partitions"] is None
    assert current["sensors"]["new_candle_sensor"]["jobs"] == ["portfolio_live_job"]


def test_the_snapshot_notices_a_changed_surface() -> None:
    """The comparison can fail: one asset's group moved is a different surface."""
    from pipeline.definitions import defs

    current = surface(defs)
    changed = json.loads(json.dumps(current))
    changed["assets"]["ohlcv"]["group"] = "elsewhere"
    assert changed != json.loads(SNAPSHOT.read_text())


def test_every_sensor_schedule_and_job_says_what_it_does() -> None:
    """The UI shows these descriptions beside each name: none may be empty."""
    from pipeline.definitions import defs

    described = [*defs.sensors, *defs.schedules, *defs.jobs]
    assert len(described) >= 6
    missing = [x.name for x in described if len((x.description or "").strip()) < 20]
    assert missing == []


def test_paper_accounts_are_per_market_only_when_asked(tmp_path) -> None:
    """SIGNALS_ACCOUNT_PER_MARKET=1 gives each market a paper account of its own (how a
    replay through the deployed location compares each market with its backtest)."""
    from pipeline.settings import Settings
    from resources.broker import broker_resource

    home = {"SIGNALS_HOME": str(tmp_path)}
    assert not broker_resource(Settings.from_env(home)).account_per_market
    asked = Settings.from_env({**home, "SIGNALS_ACCOUNT_PER_MARKET": "1"})
    assert asked.account_per_market and broker_resource(asked).account_per_market

"""Schedules: keep candles fresh by ingesting each partition just after its candle closes."""

import dagster as dg

from pipeline.data.timeframes import timeframe_ms
from pipeline.jobs import live_checks_job, ohlcv_job, retraining_job
from pipeline.partitions import market_partitions, partition_key, timeframe_partitions

# A few minutes past the hour: the exchange has closed the candle and settled its numbers.
OHLCV_REFRESH_CRON = "3 * * * *"


@dg.schedule(
    cron_schedule=OHLCV_REFRESH_CRON,
    job=ohlcv_job,
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Hourly at :03 UTC: ingest each market × timeframe whose candle just closed.",
)
def ohlcv_refresh_schedule(context: dg.ScheduleEvaluationContext):
    """Each hour, one run per market × timeframe whose candle has just closed."""
    tick = context.scheduled_execution_time
    assert tick is not None
    tick_ms = int(tick.timestamp() * 1000)
    for timeframe in timeframe_partitions.get_partition_keys():
        step = timeframe_ms(timeframe)
        closed_at = tick_ms - tick_ms % step
        if tick_ms - closed_at >= timeframe_ms("1h"):
            continue  # this timeframe did not close within the last hour
        for market in market_partitions.get_partition_keys():
            key = partition_key(market, timeframe)
            yield dg.RunRequest(run_key=f"{key}@{closed_at}", partition_key=key)


@dg.schedule(
    cron_schedule="30 2 * * 1",
    job=retraining_job,
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Mondays 02:30 UTC: retraining_job (selection, study, candidate, gate).",
)
def retraining_schedule(context: dg.ScheduleEvaluationContext):
    """Mondays 02:30 UTC: reselect features, tune within the study's budget, train a
    candidate with the best trial's parameters, and let the gate decide. A new selection or
    window names a new study; an unchanged one resumes its study, which adds trials only up
    to its budget."""
    tick = context.scheduled_execution_time
    yield dg.RunRequest(run_key=f"retrain@{tick.isoformat() if tick else 'manual'}")


live_checks_schedule = dg.ScheduleDefinition(
    name="live_checks_schedule",
    cron_schedule="10 */6 * * *",
    job=live_checks_job,
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Every 6 hours at :10 UTC: the drift watch over live_signals (feature drift "
    "and calibration of the deciding model).",
)

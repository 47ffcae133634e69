-- Shadow signals: a candidate decides beside production (or alone, when no model is in
-- production) on the same path, and its decisions are recorded but never executed.
ALTER TABLE signals
    ADD COLUMN mode text NOT NULL DEFAULT 'production' CHECK (mode IN ('production', 'shadow'));

-- What happened after a signal: the market's move from the entry (the next candle's open) to
-- the exit (the open `horizon` candles later), and the signal's net return on it after the
-- round-trip taker fee (0 for a flat decision). Filled once both candles are stored.
ALTER TABLE signals
    ADD COLUMN horizon             integer,
    ADD COLUMN realised_return     double precision,
    ADD COLUMN realised_net_return double precision,
    ADD COLUMN resolved_at         timestamptz;

-- When the live job reported the candle to the live_signals asset: a retried run reports it
-- only if its first run did not get that far.
ALTER TABLE signals ADD COLUMN reported_at timestamptz;

CREATE INDEX signals_unresolved ON signals (exchange, symbol, timeframe, candle_time)
    WHERE realised_return IS NULL;

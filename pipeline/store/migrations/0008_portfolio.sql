-- Portfolio decisions: at each decision candle, one model's scores of every market turned into
-- target weights by the portfolio layer, with the layer's state after it (what the next
-- decision's no-trade band and minimum hold read). One row per model, exchange, timeframe and
-- candle, written once; a retried run finds it.
CREATE TABLE portfolio_decisions (
    id          bigserial   PRIMARY KEY,
    model_id    bigint      NOT NULL REFERENCES models (id),
    exchange    text        NOT NULL,
    timeframe   text        NOT NULL,
    candle_time timestamptz NOT NULL,  -- open time of the deciding candle
    mode        text        NOT NULL CHECK (mode IN ('production', 'shadow')),
    markets     jsonb       NOT NULL,  -- the layer's columns, in order
    scores      jsonb       NOT NULL,  -- normalised scores (null: no complete window)
    vol         jsonb       NOT NULL,  -- annualised volatility each position is sized by
    raw         jsonb       NOT NULL,  -- target weights before the band and the minimum hold
    targets     jsonb       NOT NULL,  -- standing target weights after this decision
    orders      jsonb       NOT NULL,  -- which markets are ordered to their target
    state       jsonb       NOT NULL,  -- the layer's state after this decision
    run_id      text,
    recorded_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (model_id, exchange, timeframe, candle_time)
);

-- A signal of a portfolio model carries its place in the portfolio: the score, the target
-- weight, whether its market was ordered, the portfolio's gross and net exposure.
ALTER TABLE signals ADD COLUMN context jsonb;

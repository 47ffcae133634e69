-- Perpetual funding settlements, one row per (exchange, market, settlement time).
-- funding_ms is the settlement time in epoch milliseconds, rounded to the second (Binance
-- stamps its 00/08/16 UTC settlements a few ms late); rate is per settlement (0.0001 = 0.01 %).
CREATE TABLE funding_rates (
    exchange    text             NOT NULL,
    market      text             NOT NULL,  -- ccxt unified symbol, e.g. BTC/USDT:USDT
    funding_ms  bigint           NOT NULL,
    rate        double precision NOT NULL CHECK (rate > -1 AND rate < 1),
    ingested_at timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (exchange, market, funding_ms)
);

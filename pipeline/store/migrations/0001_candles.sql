-- OHLCV candles, one row per (exchange, market, timeframe, candle open time).
CREATE TABLE candles (
    exchange    text             NOT NULL,
    symbol      text             NOT NULL,  -- ccxt unified symbol, e.g. BTC/USDT:USDT
    timeframe   text             NOT NULL,
    open_time   timestamptz      NOT NULL,
    open        double precision NOT NULL CHECK (open > 0),
    high        double precision NOT NULL CHECK (high > 0),
    low         double precision NOT NULL CHECK (low > 0),
    close       double precision NOT NULL CHECK (close > 0),
    volume      double precision NOT NULL CHECK (volume >= 0),
    ingested_at timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (exchange, symbol, timeframe, open_time)
);

-- Resting exits: the reduce-only stop and take-profit orders a barrier trade leaves at the
-- broker, so that live exits inside a candle at the backtest's levels.

-- The paper broker's orders may rest: `kind` says which, `trigger_price` where, and
-- `watched_from_ms` is the open of the next candle whose range it has not been checked on.
ALTER TABLE paper_orders ADD COLUMN kind text NOT NULL DEFAULT 'market'
    CHECK (kind IN ('market', 'stop', 'take_profit'));
ALTER TABLE paper_orders ADD COLUMN trigger_price double precision;
ALTER TABLE paper_orders ADD COLUMN watched_from_ms bigint;
CREATE INDEX paper_orders_resting ON paper_orders (account, symbol) WHERE status = 'open';

-- The position manager's record of each market's live barrier trade: its side, the candle
-- whose decision set (or re-armed) its levels, the last candle it may be held (its time
-- limit) and the levels its resting exits sit at. One row per account and market while a
-- trade is open; removed when it closes.
CREATE TABLE barrier_trades (
    account          text             NOT NULL,
    symbol           text             NOT NULL,
    side             smallint         NOT NULL CHECK (side IN (-1, 1)),
    armed_candle_ms  bigint           NOT NULL,
    hold_until_ms    bigint           NOT NULL,
    stop_price       double precision NOT NULL CHECK (stop_price > 0),
    take_price       double precision NOT NULL CHECK (take_price > 0),
    updated_at       timestamptz      NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (account, symbol)
);

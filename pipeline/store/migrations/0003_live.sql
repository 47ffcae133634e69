-- Live trading: signals, the orders they cause, fills, the position book, equity marks,
-- the account's trading state (halts), reconciliation reports, and the paper broker's own
-- account (kept apart from the book so that reconciling a paper account means something).

-- One decision per model, market, timeframe and candle (the candle whose close decided).
CREATE TABLE signals (
    id             bigserial        PRIMARY KEY,
    model_id       bigint           NOT NULL REFERENCES models (id),
    exchange       text             NOT NULL,
    symbol         text             NOT NULL,
    timeframe      text             NOT NULL,
    candle_time    timestamptz      NOT NULL,  -- open time of the deciding candle
    probability_up double precision NOT NULL CHECK (probability_up BETWEEN 0 AND 1),
    confidence     double precision NOT NULL,
    side           smallint         NOT NULL CHECK (side IN (-1, 0, 1)),
    threshold      double precision NOT NULL,
    input_hash     text             NOT NULL CHECK (length(input_hash) = 64),
    explanation    jsonb            NOT NULL,
    run_id         text,
    timings        jsonb            NOT NULL DEFAULT '{}',
    recorded_at    timestamptz      NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (model_id, exchange, symbol, timeframe, candle_time)
);
CREATE INDEX signals_by_market ON signals (exchange, symbol, timeframe, candle_time);

CREATE TABLE orders (
    id                bigserial        PRIMARY KEY,
    account           text             NOT NULL,  -- 'paper' or the exchange account's name
    client_order_id   text             NOT NULL,
    symbol            text             NOT NULL,
    side              text             NOT NULL CHECK (side IN ('buy', 'sell')),
    quantity          double precision NOT NULL CHECK (quantity > 0),
    reduce_only       boolean          NOT NULL,
    purpose           text             NOT NULL,  -- open, close, flatten
    signal_id         bigint           REFERENCES signals (id),
    status            text             NOT NULL DEFAULT 'sent'
                                       CHECK (status IN ('sent', 'filled', 'rejected', 'open',
                                                         'cancelled', 'unknown')),
    exchange_order_id text,
    filled            double precision NOT NULL DEFAULT 0,
    average_price     double precision,
    fee               double precision NOT NULL DEFAULT 0,
    reason            text,
    created_at        timestamptz      NOT NULL DEFAULT clock_timestamp(),
    acknowledged_at   timestamptz,
    UNIQUE (account, client_order_id)
);

-- One row per filled order (market orders fill at once, so the order's fill is one row).
CREATE TABLE fills (
    order_id   bigint           PRIMARY KEY REFERENCES orders (id),
    account    text             NOT NULL,
    symbol     text             NOT NULL,
    side       text             NOT NULL,
    quantity   double precision NOT NULL CHECK (quantity > 0),
    price      double precision NOT NULL CHECK (price > 0),
    fee        double precision NOT NULL CHECK (fee >= 0),
    filled_at  timestamptz      NOT NULL  -- the broker's time of the fill
);

-- The book: what we believe we hold, per account and market.
CREATE TABLE positions (
    account       text             NOT NULL,
    symbol        text             NOT NULL,
    quantity      double precision NOT NULL,  -- signed: + long, - short, 0 flat
    entry_price   double precision,
    last_candle   timestamptz,                -- newest candle whose signal was executed
    updated_at    timestamptz      NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (account, symbol)
);

CREATE TABLE equity (
    account   text             NOT NULL,
    at        timestamptz      NOT NULL,  -- the broker's clock (replay time when replaying)
    equity    double precision NOT NULL,
    note      text,
    PRIMARY KEY (account, at)
);

CREATE TABLE trading_state (
    account          text             PRIMARY KEY,
    halted           boolean          NOT NULL DEFAULT false,
    halted_reason    text,
    halted_until     timestamptz,       -- null with halted: until an operator resumes
    day              date,              -- UTC day of day_start_equity (broker's clock)
    day_start_equity double precision,
    updated_at       timestamptz      NOT NULL DEFAULT clock_timestamp()
);

CREATE TABLE reconciliations (
    id          bigserial   PRIMARY KEY,
    account     text        NOT NULL,
    at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    ok          boolean     NOT NULL,
    differences jsonb       NOT NULL
);

-- The paper broker's account: its wallet and its positions, as an exchange would keep them.
CREATE TABLE paper_accounts (
    account  text             PRIMARY KEY,
    balance  double precision NOT NULL
);
CREATE TABLE paper_positions (
    account     text             NOT NULL REFERENCES paper_accounts (account),
    symbol      text             NOT NULL,
    quantity    double precision NOT NULL DEFAULT 0,
    entry_price double precision,
    leverage    integer          NOT NULL DEFAULT 1 CHECK (leverage BETWEEN 1 AND 125),
    margin_mode text             NOT NULL DEFAULT 'isolated'
                                 CHECK (margin_mode IN ('isolated', 'cross')),
    PRIMARY KEY (account, symbol)
);
CREATE TABLE paper_orders (
    account         text             NOT NULL REFERENCES paper_accounts (account),
    client_order_id text             NOT NULL,
    symbol          text             NOT NULL,
    side            text             NOT NULL,
    quantity        double precision NOT NULL,
    status          text             NOT NULL,
    price           double precision,
    fee             double precision NOT NULL DEFAULT 0,
    reason          text,
    at_ms           bigint           NOT NULL,
    PRIMARY KEY (account, client_order_id)
);

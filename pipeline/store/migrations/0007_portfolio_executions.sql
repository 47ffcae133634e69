-- Portfolio execution (`pipeline.execution.portfolio_manager`): one row per account and
-- decision candle. It is written 'planned', with the orders decided from the account's value
-- at the open, BEFORE any of them is sent: a retried run (killed half-way, or run twice) sends
-- exactly those orders under the same client order ids and no others. It becomes 'done' with
-- what the execution did; a done candle, or one older than the newest recorded, is not
-- executed again. A table of its own rather than a pseudo-market in `positions`: the book
-- would then hold a row that is no position, and it could not keep the plan a retry needs.
CREATE TABLE portfolio_executions (
    account      text        NOT NULL,
    candle_time  timestamptz NOT NULL,  -- open time of the deciding candle
    timeframe    text        NOT NULL,
    status       text        NOT NULL CHECK (status IN ('planned', 'done')),
    action       text,                  -- PortfolioExecution.action, once done
    plan         jsonb,                 -- null where nothing was planned (late, halted, …)
    result       jsonb,                 -- PortfolioExecution.to_json(), once done
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (account, candle_time)
);

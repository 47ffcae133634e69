-- Every look at a test period: what was evaluated, on which period, and what it scored.
-- Never deduplicated: a repeat of the same config on the same period is another trial
-- (the deflated Sharpe ratio needs their number, not the number of distinct configs).
CREATE TABLE evaluation_trials (
    id           bigserial   PRIMARY KEY,
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    kind         text        NOT NULL,            -- e.g. walk_forward, tuning
    config       jsonb       NOT NULL,
    config_hash  text        NOT NULL CHECK (length(config_hash) = 64),
    period_start timestamptz,                     -- the test period, both ends included
    period_end   timestamptz,
    figures      jsonb       NOT NULL,            -- e.g. {"sharpe": …, "trades": …}
    note         text        NOT NULL DEFAULT ''
);
CREATE INDEX evaluation_trials_by_kind ON evaluation_trials (kind, recorded_at);

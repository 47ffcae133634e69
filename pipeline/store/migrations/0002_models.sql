-- Trained models: everything needed to rebuild and audit one, and its place in the lifecycle.
CREATE TABLE models (
    id                bigserial   PRIMARY KEY,
    name              text        NOT NULL,               -- e.g. lstm
    timeframe         text        NOT NULL,
    status            text        NOT NULL DEFAULT 'candidate'
                                  CHECK (status IN ('candidate', 'production', 'retired')),
    created_at        timestamptz NOT NULL DEFAULT now(),
    promoted_at       timestamptz,
    retired_at        timestamptz,
    config            jsonb       NOT NULL,               -- architecture and training settings
    features          jsonb       NOT NULL,               -- ordered feature names
    scaler            jsonb       NOT NULL,
    data_window       jsonb       NOT NULL,               -- markets, split boundaries
    metrics           jsonb       NOT NULL,
    seed              bigint      NOT NULL,
    checkpoint        bytea       NOT NULL,               -- torch state dict, tensors only
    checkpoint_sha256 text        NOT NULL CHECK (length(checkpoint_sha256) = 64),
    promotion_note    jsonb
);
-- At most one production model per name and timeframe.
CREATE UNIQUE INDEX models_one_production ON models (name, timeframe) WHERE status = 'production';

CREATE TABLE training_epochs (
    model_id       bigint           NOT NULL REFERENCES models (id) ON DELETE CASCADE,
    epoch          integer          NOT NULL,
    train_loss     double precision NOT NULL,
    train_accuracy double precision NOT NULL,
    val_loss       double precision NOT NULL,
    val_accuracy   double precision NOT NULL,
    gap            double precision NOT NULL,
    seconds        double precision NOT NULL,
    PRIMARY KEY (model_id, epoch)
);

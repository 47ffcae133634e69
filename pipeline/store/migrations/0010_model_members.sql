-- Seed ensembles: one model record, N networks. Each member's checkpoint is kept with its own
-- SHA-256 and seed; the models row of an ensemble keeps an empty checkpoint and, as its
-- checkpoint_sha256, the digest of its members' (pipeline.store.models.ensemble_sha256), so a
-- member removed, added, reordered or altered is refused on load. Single-network records
-- have no rows here and load as before.
CREATE TABLE IF NOT EXISTS model_members (
    model_id          bigint  NOT NULL REFERENCES models (id) ON DELETE CASCADE,
    member            integer NOT NULL CHECK (member >= 0),
    seed              bigint  NOT NULL,
    checkpoint        bytea   NOT NULL,               -- torch state dict, tensors only
    checkpoint_sha256 text    NOT NULL CHECK (length(checkpoint_sha256) = 64),
    PRIMARY KEY (model_id, member)
);

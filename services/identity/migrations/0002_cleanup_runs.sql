-- One row per run of the token cleanup schedule: the cumulative metrics are sums over it.
CREATE TABLE cleanup_runs (
    id TEXT PRIMARY KEY,
    started_at TIMESTAMPTZ NOT NULL,
    ok BOOLEAN NOT NULL,
    deleted BIGINT NOT NULL,
    expected_to_delete BIGINT NOT NULL,
    still_active_revoked BIGINT NOT NULL,
    remaining_expired BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    error TEXT NULL
);
CREATE INDEX cleanup_runs_started ON cleanup_runs (started_at)

-- Candidate quizzes for hire: a link to one attempt at a quiz by an unguessable token. Only the
-- token's SHA-256 is kept; the token is given once, to hire. Portable between Postgres and
-- SQLite.
CREATE TABLE candidate_links (
    platform TEXT NOT NULL,
    id TEXT NOT NULL,
    -- SHA-256 of the token, hex.
    token_hash TEXT NOT NULL,
    quiz_id TEXT NOT NULL,
    candidate_ref TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    -- Past this, a link never opened is refused.
    expires_at TIMESTAMPTZ NOT NULL,
    -- The attempt it started (on the first open).
    attempt_id TEXT NULL,
    -- When it was used up: submitted, or refused past the attempt's deadline.
    used_at TIMESTAMPTZ NULL,
    PRIMARY KEY (platform, id),
    FOREIGN KEY (platform, quiz_id) REFERENCES quizzes (platform, id),
    CONSTRAINT candidate_links_used_after_open CHECK (used_at IS NULL OR attempt_id IS NOT NULL)
);
CREATE UNIQUE INDEX candidate_links_by_token ON candidate_links (token_hash);
CREATE INDEX candidate_links_by_ref ON candidate_links (platform, candidate_ref);

-- Engagement: badges (one per student and badge key, however often a rule finds it earned)
-- and the daily at-risk scores with their factors. Portable between Postgres and SQLite.
CREATE TABLE badges (
    platform TEXT NOT NULL,
    user_id TEXT NOT NULL,
    -- `first_quiz_passed`, `streak`, `course_completed:<course id>`.
    badge_key TEXT NOT NULL,
    -- 1 first quiz passed, 2 streak, 3 course completed (BadgeKind).
    kind INTEGER NOT NULL,
    course_id TEXT NOT NULL DEFAULT '',
    title TEXT NOT NULL,
    awarded_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (platform, user_id, badge_key),
    CONSTRAINT badges_kind CHECK (kind IN (1, 2, 3))
);

CREATE TABLE risk_scores (
    platform TEXT NOT NULL,
    course_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    score INTEGER NOT NULL,
    at_risk BOOLEAN NOT NULL,
    -- JSON: the factors, each with its value, weight, points and reason.
    factors TEXT NOT NULL,
    computed_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (platform, course_id, user_id),
    CONSTRAINT risk_scores_score CHECK (score BETWEEN 0 AND 100)
);
CREATE INDEX risk_scores_at_risk ON risk_scores (platform, at_risk, score);

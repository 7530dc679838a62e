-- Batches: a course's students in groups, each with its batch lead (a user with the BATCH_LEAD
-- capability), who watches their progress and marks their attendance. A student is in one
-- batch per course. Portable between Postgres and SQLite.
CREATE TABLE batches (
    platform TEXT NOT NULL,
    id TEXT NOT NULL,
    course_id TEXT NOT NULL,
    name TEXT NOT NULL,
    lead_id TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (platform, id),
    FOREIGN KEY (platform, course_id) REFERENCES courses (platform, id)
);
CREATE INDEX batches_by_lead ON batches (platform, lead_id);
CREATE INDEX batches_by_course ON batches (platform, course_id);

CREATE TABLE batch_students (
    platform TEXT NOT NULL,
    batch_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    course_id TEXT NOT NULL,
    added_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (platform, batch_id, user_id),
    FOREIGN KEY (platform, batch_id) REFERENCES batches (platform, id)
);
CREATE UNIQUE INDEX batch_students_one_per_course ON batch_students (platform, course_id, user_id);

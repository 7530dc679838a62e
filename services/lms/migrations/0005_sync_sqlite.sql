-- integrations-sync (SQLite): as 0005_sync_postgres.sql, with enrollments made again to widen its
-- CHECK (no other table refers to it).
CREATE TABLE external_courses (
    platform TEXT NOT NULL,
    source TEXT NOT NULL,
    external_id TEXT NOT NULL,
    course_id TEXT NOT NULL,
    title TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (platform, source, external_id),
    FOREIGN KEY (platform, course_id) REFERENCES courses (platform, id)
);

-- The rows wait in a copy while the table is made again under its own name.
CREATE TABLE enrollments_before_sync AS SELECT * FROM enrollments;
DROP TABLE enrollments;
CREATE TABLE enrollments (
    platform TEXT NOT NULL,
    id TEXT NOT NULL,
    course_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    source INTEGER NOT NULL,
    reference TEXT NOT NULL DEFAULT '',
    lessons_completed INTEGER NOT NULL DEFAULT 0,
    enrolled_at TIMESTAMPTZ NOT NULL,
    completed_at TIMESTAMPTZ NULL,
    external_percent INTEGER NULL,
    external_measured_at TIMESTAMPTZ NULL,
    PRIMARY KEY (platform, id),
    FOREIGN KEY (platform, course_id) REFERENCES courses (platform, id),
    CONSTRAINT enrollments_source CHECK (source IN (1, 2, 3, 4)),
    CONSTRAINT enrollments_progress CHECK (lessons_completed >= 0),
    CONSTRAINT enrollments_external_percent
        CHECK (external_percent IS NULL OR external_percent BETWEEN 0 AND 100)
);
INSERT INTO enrollments (platform, id, course_id, user_id, source, reference,
    lessons_completed, enrolled_at, completed_at)
    SELECT platform, id, course_id, user_id, source, reference, lessons_completed, enrolled_at,
        completed_at FROM enrollments_before_sync;
DROP TABLE enrollments_before_sync;
CREATE UNIQUE INDEX enrollments_once ON enrollments (platform, course_id, user_id);
CREATE INDEX enrollments_by_user ON enrollments (platform, user_id, enrolled_at);
CREATE INDEX enrollments_by_course ON enrollments (platform, course_id, enrolled_at);

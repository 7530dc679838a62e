-- integrations-sync (Postgres): upstream courses mapped to lms's, enrollments of a fourth source
-- (4 sync) carrying the upstream system's progress reading. SQLite rebuilds the table instead
-- (0005_sync_sqlite.sql): it cannot change a CHECK in place.
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

ALTER TABLE enrollments DROP CONSTRAINT enrollments_source;
ALTER TABLE enrollments ADD CONSTRAINT enrollments_source CHECK (source IN (1, 2, 3, 4));
ALTER TABLE enrollments ADD COLUMN external_percent INTEGER NULL;
ALTER TABLE enrollments ADD COLUMN external_measured_at TIMESTAMPTZ NULL;
ALTER TABLE enrollments ADD CONSTRAINT enrollments_external_percent
    CHECK (external_percent IS NULL OR external_percent BETWEEN 0 AND 100);

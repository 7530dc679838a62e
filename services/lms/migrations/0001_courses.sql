-- lms's catalogue and enrollments: courses with their modules, lessons and live classes; who is
-- enrolled in what (one enrollment per student and course, however they came to it), which
-- lessons each has completed, and who joined which class. Portable between Postgres and SQLite.

CREATE TABLE courses (
    platform TEXT NOT NULL,
    id TEXT NOT NULL,
    title TEXT NOT NULL,
    summary TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    -- 1 draft, 2 published, 3 archived (CourseStatus in lms.proto).
    status INTEGER NOT NULL,
    -- 1 free, 2 paid (Pricing).
    pricing INTEGER NOT NULL,
    -- A JSON array of tags.
    tags TEXT NOT NULL DEFAULT '[]',
    lesson_count INTEGER NOT NULL DEFAULT 0,
    created_by TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    published_at TIMESTAMPTZ NULL,
    PRIMARY KEY (platform, id),
    CONSTRAINT courses_status CHECK (status IN (1, 2, 3)),
    CONSTRAINT courses_pricing CHECK (pricing IN (1, 2)),
    CONSTRAINT courses_published_at CHECK (status = 1 OR published_at IS NOT NULL),
    CONSTRAINT courses_lesson_count CHECK (lesson_count >= 0)
);
CREATE INDEX courses_by_status ON courses (platform, status, published_at);
CREATE INDEX courses_by_created ON courses (platform, created_at);

CREATE TABLE modules (
    platform TEXT NOT NULL,
    id TEXT NOT NULL,
    course_id TEXT NOT NULL,
    title TEXT NOT NULL,
    position INTEGER NOT NULL,
    PRIMARY KEY (platform, id),
    FOREIGN KEY (platform, course_id) REFERENCES courses (platform, id)
);
CREATE UNIQUE INDEX modules_in_order ON modules (platform, course_id, position);

CREATE TABLE lessons (
    platform TEXT NOT NULL,
    id TEXT NOT NULL,
    course_id TEXT NOT NULL,
    module_id TEXT NOT NULL,
    title TEXT NOT NULL,
    position INTEGER NOT NULL,
    duration_minutes INTEGER NOT NULL DEFAULT 0,
    body TEXT NOT NULL DEFAULT '',
    video_url TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (platform, id),
    FOREIGN KEY (platform, module_id) REFERENCES modules (platform, id)
);
CREATE UNIQUE INDEX lessons_in_order ON lessons (platform, module_id, position);
CREATE INDEX lessons_by_course ON lessons (platform, course_id);

CREATE TABLE live_classes (
    platform TEXT NOT NULL,
    id TEXT NOT NULL,
    course_id TEXT NOT NULL,
    title TEXT NOT NULL,
    starts_at TIMESTAMPTZ NOT NULL,
    duration_minutes INTEGER NOT NULL,
    join_url TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (platform, id),
    FOREIGN KEY (platform, course_id) REFERENCES courses (platform, id),
    CONSTRAINT live_classes_duration CHECK (duration_minutes > 0)
);
CREATE INDEX live_classes_by_course ON live_classes (platform, course_id, starts_at);

CREATE TABLE enrollments (
    platform TEXT NOT NULL,
    id TEXT NOT NULL,
    course_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    -- 1 free, 2 admin, 3 payment (EnrollmentSource).
    source INTEGER NOT NULL,
    -- The payment that bought it, or the admin who enrolled the student.
    reference TEXT NOT NULL DEFAULT '',
    lessons_completed INTEGER NOT NULL DEFAULT 0,
    enrolled_at TIMESTAMPTZ NOT NULL,
    completed_at TIMESTAMPTZ NULL,
    PRIMARY KEY (platform, id),
    FOREIGN KEY (platform, course_id) REFERENCES courses (platform, id),
    CONSTRAINT enrollments_source CHECK (source IN (1, 2, 3)),
    CONSTRAINT enrollments_progress CHECK (lessons_completed >= 0)
);
-- One enrollment per student and course: a payment delivered twice, or a student enrolling
-- while an admin does, lands once.
CREATE UNIQUE INDEX enrollments_once ON enrollments (platform, course_id, user_id);
CREATE INDEX enrollments_by_user ON enrollments (platform, user_id, enrolled_at);
CREATE INDEX enrollments_by_course ON enrollments (platform, course_id, enrolled_at);

CREATE TABLE lesson_completions (
    platform TEXT NOT NULL,
    user_id TEXT NOT NULL,
    lesson_id TEXT NOT NULL,
    course_id TEXT NOT NULL,
    completed_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (platform, user_id, lesson_id),
    FOREIGN KEY (platform, lesson_id) REFERENCES lessons (platform, id)
);
CREATE INDEX lesson_completions_by_course ON lesson_completions (platform, user_id, course_id);

-- source: 1 the student joined the class link, 2 a batch lead marked them.
CREATE TABLE class_attendance (
    platform TEXT NOT NULL,
    class_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    source INTEGER NOT NULL,
    joined_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (platform, class_id, user_id),
    FOREIGN KEY (platform, class_id) REFERENCES live_classes (platform, id),
    CONSTRAINT class_attendance_source CHECK (source IN (1, 2))
);

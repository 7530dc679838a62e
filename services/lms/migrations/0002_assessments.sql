-- lms's assessments: the platform's question bank, quizzes assembled from it, and attempts
-- held to their deadline by the server. Portable between Postgres and SQLite.

CREATE TABLE questions (
    platform TEXT NOT NULL,
    id TEXT NOT NULL,
    -- 1 single choice, 2 multiple choice, 3 short answer (QuestionKind).
    kind INTEGER NOT NULL,
    prompt TEXT NOT NULL,
    -- JSON arrays: the options, the right options' indexes, the accepted short answers, tags.
    options TEXT NOT NULL DEFAULT '[]',
    correct_options TEXT NOT NULL DEFAULT '[]',
    accepted_answers TEXT NOT NULL DEFAULT '[]',
    tags TEXT NOT NULL DEFAULT '[]',
    points INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (platform, id),
    CONSTRAINT questions_kind CHECK (kind IN (1, 2, 3)),
    CONSTRAINT questions_points CHECK (points > 0)
);
CREATE INDEX questions_by_created ON questions (platform, created_at);

CREATE TABLE quizzes (
    platform TEXT NOT NULL,
    id TEXT NOT NULL,
    course_id TEXT NOT NULL,
    title TEXT NOT NULL,
    time_limit_seconds INTEGER NOT NULL,
    pass_percent INTEGER NOT NULL,
    -- 0: no limit.
    max_attempts INTEGER NOT NULL DEFAULT 0,
    question_count INTEGER NOT NULL,
    total_points INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (platform, id),
    FOREIGN KEY (platform, course_id) REFERENCES courses (platform, id),
    CONSTRAINT quizzes_time_limit CHECK (time_limit_seconds > 0),
    CONSTRAINT quizzes_pass_percent CHECK (pass_percent BETWEEN 0 AND 100),
    CONSTRAINT quizzes_max_attempts CHECK (max_attempts >= 0)
);
CREATE INDEX quizzes_by_course ON quizzes (platform, course_id, created_at);

CREATE TABLE quiz_questions (
    platform TEXT NOT NULL,
    quiz_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    question_id TEXT NOT NULL,
    PRIMARY KEY (platform, quiz_id, position),
    FOREIGN KEY (platform, quiz_id) REFERENCES quizzes (platform, id),
    FOREIGN KEY (platform, question_id) REFERENCES questions (platform, id)
);

CREATE TABLE attempts (
    platform TEXT NOT NULL,
    id TEXT NOT NULL,
    quiz_id TEXT NOT NULL,
    course_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    -- 1 in progress, 2 graded, 3 expired (AttemptState).
    state INTEGER NOT NULL,
    started_at TIMESTAMPTZ NOT NULL,
    -- started_at + the quiz's time limit, by the server's clock.
    deadline TIMESTAMPTZ NOT NULL,
    submitted_at TIMESTAMPTZ NULL,
    score INTEGER NOT NULL DEFAULT 0,
    max_score INTEGER NOT NULL,
    passed BOOLEAN NOT NULL DEFAULT FALSE,
    -- JSON: the answers as submitted, and each question's result.
    answers TEXT NOT NULL DEFAULT '[]',
    results TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (platform, id),
    FOREIGN KEY (platform, quiz_id) REFERENCES quizzes (platform, id),
    CONSTRAINT attempts_state CHECK (state IN (1, 2, 3)),
    CONSTRAINT attempts_graded CHECK ((state = 2) = (submitted_at IS NOT NULL))
);
-- At most one attempt in progress per student and quiz: two starts at once give one.
CREATE UNIQUE INDEX attempts_one_in_progress ON attempts (platform, quiz_id, user_id) WHERE state = 1;
CREATE INDEX attempts_by_user ON attempts (platform, user_id, started_at);

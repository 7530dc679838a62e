-- meetings-signalling's schema. Portable between Postgres and SQLite; 0002 adds what only
-- Postgres can enforce (exclusion constraints over time ranges).
CREATE TABLE mentors (
    platform TEXT NOT NULL,
    user_id TEXT NOT NULL,
    name TEXT NOT NULL,
    bio TEXT NOT NULL DEFAULT '',
    -- JSON arrays of strings
    expertise TEXT NOT NULL DEFAULT '[]',
    languages TEXT NOT NULL DEFAULT '[]',
    time_zone TEXT NOT NULL,
    visible BOOLEAN NOT NULL DEFAULT TRUE,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (platform, user_id)
);

CREATE TABLE slots (
    id TEXT PRIMARY KEY,
    platform TEXT NOT NULL,
    mentor_id TEXT NOT NULL,
    starts_at TIMESTAMPTZ NOT NULL,
    ends_at TIMESTAMPTZ NOT NULL,
    -- available or booked
    status TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    CHECK (ends_at > starts_at),
    CHECK (status IN ('available', 'booked'))
);
CREATE UNIQUE INDEX slots_mentor_start ON slots (platform, mentor_id, starts_at);
CREATE INDEX slots_status_end ON slots (status, ends_at);

CREATE TABLE bookings (
    id TEXT PRIMARY KEY,
    platform TEXT NOT NULL,
    slot_id TEXT NOT NULL,
    mentor_id TEXT NOT NULL,
    student_id TEXT NOT NULL,
    starts_at TIMESTAMPTZ NOT NULL,
    ends_at TIMESTAMPTZ NOT NULL,
    -- accepted or cancelled
    status TEXT NOT NULL,
    cancel_reason TEXT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    CHECK (ends_at > starts_at),
    CHECK (status IN ('accepted', 'cancelled'))
);
-- One accepted booking per slot, on both backends.
CREATE UNIQUE INDEX bookings_one_per_slot ON bookings (slot_id) WHERE status = 'accepted';
CREATE INDEX bookings_student ON bookings (platform, student_id, starts_at);
CREATE INDEX bookings_mentor ON bookings (platform, mentor_id, starts_at);

-- A booking's meeting (same id as the booking).
CREATE TABLE meetings (
    id TEXT PRIMARY KEY,
    platform TEXT NOT NULL,
    mentor_id TEXT NOT NULL,
    student_id TEXT NOT NULL,
    starts_at TIMESTAMPTZ NOT NULL,
    ends_at TIMESTAMPTZ NOT NULL,
    -- scheduled, live, ended, cancelled or no_show
    status TEXT NOT NULL,
    started_at TIMESTAMPTZ NULL,
    ended_at TIMESTAMPTZ NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE meeting_logs (
    id TEXT PRIMARY KEY,
    meeting_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    -- join, leave, start or end
    action TEXT NOT NULL,
    at TIMESTAMPTZ NOT NULL
);
CREATE INDEX meeting_logs_meeting ON meeting_logs (meeting_id, at);

CREATE TABLE chat_messages (
    id TEXT PRIMARY KEY,
    meeting_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    body TEXT NOT NULL,
    sent_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX chat_messages_meeting ON chat_messages (meeting_id, sent_at);

CREATE TABLE recordings (
    id TEXT PRIMARY KEY,
    platform TEXT NOT NULL,
    meeting_id TEXT NOT NULL,
    object_key TEXT NOT NULL,
    content_type TEXT NOT NULL,
    -- pending or available
    status TEXT NOT NULL,
    size_bytes BIGINT NOT NULL DEFAULT 0,
    created_by TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX recordings_meeting ON recordings (meeting_id)

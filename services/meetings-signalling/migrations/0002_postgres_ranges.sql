-- Postgres only: a mentor never holds two overlapping slots, nor two overlapping accepted
-- bookings, whatever the code above does. btree_gist (a trusted extension) lets the text
-- mentor id take part in a GiST exclusion constraint; it lives in public, and the default
-- operator class is found without it being on the search path.
ALTER TABLE slots ADD CONSTRAINT slots_no_overlap
    EXCLUDE USING gist (platform WITH =, mentor_id WITH =, tstzrange(starts_at, ends_at) WITH &&);
ALTER TABLE bookings ADD CONSTRAINT bookings_no_overlap
    EXCLUDE USING gist (platform WITH =, mentor_id WITH =, tstzrange(starts_at, ends_at) WITH &&)
    WHERE (status = 'accepted')

-- WhatsApp: a template may name the approved message template it sends (its name, language code
-- and body parameters as a JSON array of minijinja sources), and the last inbound message of each
-- number, which opens the 24-hour window for free text. Portable between Postgres and SQLite.
ALTER TABLE templates ADD COLUMN whatsapp_template TEXT NOT NULL DEFAULT '';
ALTER TABLE templates ADD COLUMN whatsapp_language TEXT NOT NULL DEFAULT '';
ALTER TABLE templates ADD COLUMN whatsapp_parameters TEXT NOT NULL DEFAULT '[]';

CREATE TABLE whatsapp_inbound (
    platform TEXT NOT NULL,
    phone TEXT NOT NULL,
    last_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (platform, phone)
)

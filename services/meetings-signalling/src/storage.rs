//! Object storage for recordings: the kit's upload helper (mas_kit::uploads), with the
//! recordings' policy. In production S3 or any S3-compatible store; in `mas dev` a local
//! directory served on SIGNAL_ADDR under `/storage/`.

pub use mas_kit::uploads::{Op, Policy, Storage, StorageConfig, object_key, owned_by, valid_key};

/// What a recording may be: the browser's MediaRecorder formats, each kept under its extension.
pub const RECORDING_MEDIA: &[(&str, &str)] = &[
    ("video/webm", "webm"),
    ("video/mp4", "mp4"),
    ("audio/webm", "weba"),
];

/// The recordings' upload policy, with the size limit and URL lifetime from the configuration.
pub fn recordings(cfg: &crate::config::Config) -> Policy {
    Policy {
        media: RECORDING_MEDIA,
        max_bytes: cfg.recording_max_bytes,
        url_ttl: cfg.recording_url_ttl,
    }
}

//! notifier's use cases, transport-free.

pub mod deliveries;
pub mod email;
pub mod inapp;
pub mod meetings;
pub mod providers;
pub mod send;
pub mod templates;
pub mod webhook;
pub mod whatsapp;

use mas_bus::Bus;
use sea_orm::DatabaseConnection;

use crate::config::Config;

pub const CHANNELS: [&str; 4] = ["email", "whatsapp", "sms", "in_app"];

pub struct App {
    pub db: DatabaseConnection,
    pub cfg: Config,
    pub bus: Bus,
    /// The service's metrics (provider calls are counted per provider and outcome).
    pub metrics: std::sync::Arc<mas_kit::metrics::Metrics>,
}

impl App {
    /// The work queue of a delivery channel.
    pub fn queue(&self, channel: &str) -> String {
        format!("{}notifier.{channel}", self.cfg.bus_queue_prefix)
    }

    /// Why a channel cannot deliver (its credentials are unset); its jobs are held meanwhile.
    pub fn disabled_reason(&self, channel: &str) -> Option<&'static str> {
        match channel {
            "email" if self.cfg.smtp.is_none() => Some("SMTP_HOST is not set; email jobs are held"),
            "whatsapp" if self.cfg.whatsapp.is_none() => {
                Some("WHATSAPP_TOKEN is not set; WhatsApp jobs are held")
            }
            "sms" if self.cfg.exotel.is_none() => Some("EXOTEL_SID is not set; SMS jobs are held"),
            "email" | "in_app" | "whatsapp" | "sms" => None,
            _ => Some("unknown channel"),
        }
    }
}

pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

pub use mas_kit::timestamp;

//! RabbitMQ through lapin: one durable topic exchange for domain events, durable queues,
//! persistent messages, publisher confirms, per-consumer prefetch, and reconnection with backoff
//! after a broker restart (a lost connection is dropped and rebuilt on next use; consumers'
//! receivers close and their runners consume again).

use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use tokio::sync::{Mutex, mpsc};

use crate::broker::{Broker, BusError, Delivery, Dest, QueueSpec, Settle, Wire};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);

/// A RabbitMQ broker for one service.
pub struct Rabbit {
    url: String,
    exchange: String,
    name: String,
    publisher: Mutex<Option<(Connection, Channel)>>,
    consumers: Mutex<Option<std::sync::Arc<Connection>>>,
}

impl Rabbit {
    /// `url` is an `amqp://user:pass@host:port/vhost` URL (a secret: never logged); `exchange`
    /// is the domain-event exchange (`mas.events`); `name` names the connection in the
    /// management UI.
    pub fn new(
        url: impl Into<String>,
        exchange: impl Into<String>,
        name: impl Into<String>,
    ) -> Self {
        Rabbit {
            url: url.into(),
            exchange: exchange.into(),
            name: name.into(),
            publisher: Mutex::new(None),
            consumers: Mutex::new(None),
        }
    }

    async fn connect(&self, role: &str) -> Result<Connection, BusError> {
        let props = ConnectionProperties::default()
            .with_connection_name(format!("{}-{role}", self.name).into());
        match tokio::time::timeout(CONNECT_TIMEOUT, Connection::connect(&self.url, props)).await {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(BusError::Unavailable(e.to_string())),
            Err(_) => Err(BusError::Unavailable("connect timed out".into())),
        }
    }

    async fn declare_exchange(&self, ch: &Channel) -> Result<(), BusError> {
        ch.exchange_declare(
            self.exchange.as_str().into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(unavailable)
    }

    /// The publishing channel (confirm mode), reconnecting when the last one died.
    async fn publish_channel(&self) -> Result<Channel, BusError> {
        let mut guard = self.publisher.lock().await;
        if let Some((conn, ch)) = guard.as_ref()
            && conn.status().connected()
            && ch.status().connected()
        {
            return Ok(ch.clone());
        }
        *guard = None;
        let conn = self.connect("publish").await?;
        let ch = conn.create_channel().await.map_err(unavailable)?;
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(unavailable)?;
        self.declare_exchange(&ch).await?;
        tracing::info!(broker = "rabbitmq", "publisher connected");
        *guard = Some((conn, ch.clone()));
        Ok(ch)
    }

    async fn reset_publisher(&self) {
        *self.publisher.lock().await = None;
    }

    async fn consumer_connection(&self) -> Result<std::sync::Arc<Connection>, BusError> {
        let mut guard = self.consumers.lock().await;
        if let Some(conn) = guard.as_ref()
            && conn.status().connected()
        {
            return Ok(conn.clone());
        }
        let conn = std::sync::Arc::new(self.connect("consume").await?);
        *guard = Some(conn.clone());
        Ok(conn)
    }
}

impl Rabbit {
    /// Deletes a consumer's queues (work, retry and dead-letter) and, with `exchange`, the
    /// event exchange: for tests and for retiring a consumer.
    pub async fn delete(&self, spec: &QueueSpec, exchange: bool) -> Result<(), BusError> {
        use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
        let conn = self.consumer_connection().await?;
        let ch = conn.create_channel().await.map_err(unavailable)?;
        let mut names = vec![spec.name.clone(), spec.dead_queue()];
        names.extend(spec.retry_delays.iter().map(|d| spec.retry_queue(*d)));
        for n in names {
            ch.queue_delete(n.as_str().into(), QueueDeleteOptions::default())
                .await
                .map_err(unavailable)?;
        }
        if exchange {
            ch.exchange_delete(
                self.exchange.as_str().into(),
                ExchangeDeleteOptions::default(),
            )
            .await
            .map_err(unavailable)?;
        }
        let _ = ch.close(200, "deleted".into()).await;
        Ok(())
    }
}

fn unavailable(e: lapin::Error) -> BusError {
    BusError::Unavailable(e.to_string())
}

fn to_table(headers: &std::collections::BTreeMap<String, String>) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in headers {
        t.insert(k.as_str().into(), AMQPValue::LongString(v.as_str().into()));
    }
    t
}

fn from_table(t: Option<&FieldTable>) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    if let Some(t) = t {
        for (k, v) in t.inner() {
            let s = match v {
                AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
                AMQPValue::ShortString(s) => s.as_str().to_string(),
                AMQPValue::LongLongInt(n) => n.to_string(),
                AMQPValue::LongInt(n) => n.to_string(),
                _ => continue,
            };
            out.insert(k.as_str().to_string(), s);
        }
    }
    out
}

struct RabbitSettle {
    acker: lapin::Acker,
}

#[async_trait]
impl Settle for RabbitSettle {
    async fn ack(&self) -> Result<(), BusError> {
        self.acker
            .ack(BasicAckOptions::default())
            .await
            .map(|_| ())
            .map_err(unavailable)
    }
    async fn requeue(&self) -> Result<(), BusError> {
        self.acker
            .nack(BasicNackOptions {
                requeue: true,
                ..Default::default()
            })
            .await
            .map(|_| ())
            .map_err(unavailable)
    }
}

#[async_trait]
impl Broker for Rabbit {
    fn kind(&self) -> &'static str {
        "rabbitmq"
    }

    async fn declare(&self, spec: &QueueSpec) -> Result<(), BusError> {
        let conn = self.consumer_connection().await?;
        let ch = conn.create_channel().await.map_err(unavailable)?;
        self.declare_exchange(&ch).await?;
        let durable = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        ch.queue_declare(spec.name.as_str().into(), durable, FieldTable::default())
            .await
            .map_err(unavailable)?;
        ch.queue_declare(
            spec.dead_queue().as_str().into(),
            durable,
            FieldTable::default(),
        )
        .await
        .map_err(unavailable)?;
        for d in &spec.retry_delays {
            let mut args = FieldTable::default();
            let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
            args.insert("x-message-ttl".into(), AMQPValue::LongLongInt(ms));
            args.insert(
                "x-dead-letter-exchange".into(),
                AMQPValue::LongString("".into()),
            );
            args.insert(
                "x-dead-letter-routing-key".into(),
                AMQPValue::LongString(spec.name.as_str().into()),
            );
            ch.queue_declare(spec.retry_queue(*d).as_str().into(), durable, args)
                .await
                .map_err(unavailable)?;
        }
        for pattern in &spec.bindings {
            ch.queue_bind(
                spec.name.as_str().into(),
                self.exchange.as_str().into(),
                pattern.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(unavailable)?;
        }
        let _ = ch.close(200, "declared".into()).await;
        Ok(())
    }

    async fn publish(&self, dest: &Dest, wire: &Wire) -> Result<(), BusError> {
        let ch = self.publish_channel().await?;
        let (exchange, key): (ShortString, ShortString) = match dest {
            Dest::Events(k) => (self.exchange.as_str().into(), k.as_str().into()),
            Dest::Queue(q) => ("".into(), q.as_str().into()),
        };
        let props = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into())
            .with_message_id(wire.id.as_str().into())
            .with_headers(to_table(&wire.headers));
        // Straight to a queue is mandatory: a queue that does not exist (yet) returns the
        // message instead of dropping it, and the outbox keeps it. An event nobody is bound to
        // is simply not needed by anyone.
        let mandatory = matches!(dest, Dest::Queue(_));
        let sent = async {
            ch.basic_publish(
                exchange,
                key,
                BasicPublishOptions {
                    mandatory,
                    ..Default::default()
                },
                &wire.body,
                props,
            )
            .await?
            .await
        };
        match tokio::time::timeout(CONFIRM_TIMEOUT, sent).await {
            Ok(Ok(confirm)) if confirm.is_ack() => match confirm.take_message() {
                Some(returned) => Err(BusError::Nacked(format!(
                    "message {} returned: {}",
                    wire.id, returned.reply_text
                ))),
                None => Ok(()),
            },
            Ok(Ok(_)) => Err(BusError::Nacked(format!("message {} nacked", wire.id))),
            Ok(Err(e)) => {
                self.reset_publisher().await;
                Err(unavailable(e))
            }
            Err(_) => {
                self.reset_publisher().await;
                Err(BusError::Unavailable("publisher confirm timed out".into()))
            }
        }
    }

    async fn consume(
        &self,
        queue: &str,
        prefetch: u16,
    ) -> Result<mpsc::Receiver<Delivery>, BusError> {
        let conn = self.consumer_connection().await?;
        let ch = conn.create_channel().await.map_err(unavailable)?;
        ch.basic_qos(prefetch.max(1), BasicQosOptions::default())
            .await
            .map_err(unavailable)?;
        let tag = format!("{}-{}", self.name, uuid::Uuid::new_v4().simple());
        let mut consumer = ch
            .basic_consume(
                queue.into(),
                tag.as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(unavailable)?;
        let (tx, rx) = mpsc::channel(usize::from(prefetch.max(1)));
        let queue = queue.to_string();
        tokio::spawn(async move {
            // Keeps the channel alive as long as deliveries flow.
            let _ch = ch;
            while let Some(next) = consumer.next().await {
                match next {
                    Ok(d) => {
                        let wire = Wire {
                            id: d
                                .properties
                                .message_id()
                                .as_ref()
                                .map(|s| s.as_str().to_string())
                                .unwrap_or_default(),
                            headers: from_table(d.properties.headers().as_ref()),
                            body: d.data,
                        };
                        let delivery = Delivery {
                            wire,
                            redelivered: d.redelivered,
                            settle: Box::new(RabbitSettle { acker: d.acker }),
                        };
                        if tx.send(delivery).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(queue = %queue, error = %e, "consumer stream failed");
                        return;
                    }
                }
            }
        });
        Ok(rx)
    }

    async fn depth(&self, queue: &str) -> Result<u64, BusError> {
        let conn = self.consumer_connection().await?;
        let ch = conn.create_channel().await.map_err(unavailable)?;
        let q = ch
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(unavailable)?;
        let _ = ch.close(200, "depth".into()).await;
        Ok(u64::from(q.message_count()))
    }

    async fn ping(&self) -> Result<(), BusError> {
        self.publish_channel().await.map(|_| ())
    }
}

//! The ws transport module is responsible for handling websocket connections
//! The only public function is [`new_req`] which is used to upgrade a http request to a websocket connection
//!
//! Other functions are used internally to handle the websocket connection (one task per
//! connection in this vendored copy: see PATCHES.md)
//! and to handle upgrade from polling to ws

use std::{sync::Arc, time::Duration};

use futures_util::{SinkExt, StreamExt};
use http::{HeaderValue, Request, Response, StatusCode, request::Parts};
use smallvec::smallvec;
use tokio::{
    io::{AsyncRead, AsyncWrite},
    time::Instant,
};
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{
        self, Message,
        handshake::derive_accept_key,
        protocol::{Role, WebSocketConfig},
    },
};
use tokio_util::future::FutureExt as _;

use engineioxide_core::{Packet, PacketBuf, ProtocolVersion, Sid, Str, TransportType};

use crate::{
    DisconnectReason, Socket, body::ResponseBody, config::EngineIoConfig, engine::EngineIo,
    errors::Error, handler::EngineIoHandler, socket::InternalRx, transport::make_open_packet,
};

/// Create a response for websocket upgrade
fn ws_response<B>(ws_key: &HeaderValue) -> Response<ResponseBody<B>> {
    let derived = derive_accept_key(ws_key.as_bytes());
    let sec = derived.parse::<HeaderValue>().unwrap();
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(http::header::UPGRADE, HeaderValue::from_static("websocket"))
        .header(
            http::header::CONNECTION,
            HeaderValue::from_static("Upgrade"),
        )
        .header(http::header::SEC_WEBSOCKET_ACCEPT, sec)
        .body(ResponseBody::empty_response())
        .unwrap() // we are only using constants
}

/// Upgrade a websocket request to create a websocket connection.
///
/// If a sid is provided in the query it means that is is upgraded from an existing HTTP polling request.
/// In this case the http polling request is closed and the SID is kept for the websocket
pub fn new_req<R: Send + 'static, B, H: EngineIoHandler>(
    engine: Arc<EngineIo<H>>,
    protocol: ProtocolVersion,
    sid: Option<Sid>,
    req: Request<R>,
) -> Result<Response<ResponseBody<B>>, Error> {
    let (parts, body) = req.into_parts();
    let req = Request::from_parts(parts.clone(), body);

    let ws_key = parts
        .headers
        .get("Sec-WebSocket-Key")
        .ok_or(Error::InvalidWebSocketKey)?
        .clone();

    tokio::spawn(async move {
        let conn = hyper::upgrade::on(req)
            .await
            .map(hyper_util::rt::TokioIo::new);

        let res = match conn {
            Ok(conn) => on_init(engine.clone(), conn, protocol, sid, parts).await,
            Err(_e) => {
                #[cfg(feature = "tracing")]
                tracing::debug!("ws upgrade error: {}", _e);
                return;
            }
        };

        match res {
            Ok(_) => {
                #[cfg(feature = "tracing")]
                tracing::debug!(?sid, "ws closed")
            }
            Err(Error::MultipleWebsocketRequests) => {}
            Err(_e) => {
                #[cfg(feature = "tracing")]
                tracing::debug!(?sid, "ws closed with error: {_e}");
                if let Some(sid) = sid {
                    engine.close_session(sid, DisconnectReason::TransportError);
                }
            }
        }
    });

    Ok(ws_response(&ws_key))
}

/// Handle a websocket connection upgrade
///
/// Sends an open packet if it is not an upgrade from a polling request
///
/// Read packets from the websocket and handle them, it will block until the connection is closed
#[cfg_attr(
    feature = "tracing",
    tracing::instrument(level = "trace", name = "init_websocket", skip(engine, conn, req_data))
)]
pub async fn on_init<H: EngineIoHandler, S>(
    engine: Arc<EngineIo<H>>,
    conn: S,
    protocol: ProtocolVersion,
    sid: Option<Sid>,
    req_data: Parts,
) -> Result<(), Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let ws_config = WebSocketConfig::default()
        .read_buffer_size(engine.config.ws_read_buffer_size)
        .max_message_size(Some(engine.config.ws_max_message_size))
        .max_frame_size(Some(engine.config.ws_max_frame_size));

    let ws_init = move || WebSocketStream::from_raw_socket(conn, Role::Server, Some(ws_config));
    let (socket, ws, heartbeat) = if let Some(sid) = sid {
        match engine.get_socket(sid) {
            None => return Err(Error::UnknownSessionID(sid)),
            Some(socket) if socket.is_ws() => return Err(Error::MultipleWebsocketRequests),
            Some(socket) => {
                let mut ws = ws_init().await;

                let upgrade_fut = upgrade_handshake::<H, S>(&socket, &mut ws);
                match tokio::time::timeout(engine.config.upgrade_timeout, upgrade_fut)
                    .with_cancellation_token(&socket.cancellation_token)
                    .await
                {
                    Some(Ok(res)) => res?,
                    Some(Err(_)) => {
                        #[cfg(feature = "tracing")]
                        tracing::debug!(?sid, "ws upgrade timed out, closing session");
                        engine.close_session(socket.id, DisconnectReason::TransportError);
                        return Err(Error::Upgrade);
                    }
                    None => {
                        #[cfg(feature = "tracing")]
                        tracing::debug!(?sid, "socket is being closed");
                        return Err(Error::Upgrade);
                    }
                }
                (socket, ws, None)
            }
        }
    } else {
        let socket = engine.create_session(protocol, TransportType::Websocket, req_data, false);

        #[cfg(feature = "tracing")]
        tracing::debug!("new websocket connection");

        let mut ws = ws_init().await;
        if let Err(e) = init_handshake(socket.id, &mut ws, &engine.config).await {
            // No heartbeat runs yet to notice the session is dead: close it here.
            engine.close_session(socket.id, DisconnectReason::TransportError);
            return Err(e);
        }
        let heartbeat = (engine.config.ping_interval, engine.config.ping_timeout);
        if socket.protocol == ProtocolVersion::V4 {
            // Run by the connection's loop (`serve`).
            (socket, ws, Some(heartbeat))
        } else {
            socket.clone().spawn_heartbeat(heartbeat.0, heartbeat.1);
            (socket, ws, None)
        }
    };

    // The connection runs on in a task of its own, so the handshake's state (the request head,
    // the upgrade futures) is not carried for the socket's lifetime.
    tokio::spawn(run(engine, ws, socket, heartbeat));
    Ok(())
}

/// Serves an open websocket until it closes, then closes the session as upstream's reader did
/// (vendored change, see PATCHES.md).
async fn run<H: EngineIoHandler, S>(
    engine: Arc<EngineIo<H>>,
    mut ws: WebSocketStream<S>,
    socket: Arc<Socket<H::Data>>,
    heartbeat: Option<(Duration, Duration)>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    match serve(&engine, &mut ws, &socket, heartbeat).await {
        Some(Err(ref e)) => {
            let reason =
                Option::<DisconnectReason>::from(e).unwrap_or(DisconnectReason::TransportError);

            #[cfg(feature = "tracing")]
            tracing::debug!("error when handling packet: {:?}", e);
            engine.close_session(socket.id, reason);
        }
        Some(Ok(())) => {
            #[cfg(feature = "tracing")]
            tracing::debug!(sid = %socket.id, "ws transport was closed");
            engine.close_session(socket.id, DisconnectReason::TransportClose);
        }
        None => {
            #[cfg(feature = "tracing")]
            tracing::debug!(sid = %socket.id, "socket is closing");
        }
    }
    // As upstream's writer task ended: a close frame, bounded for a peer that no longer reads.
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        ws.flush().await.ok();
        ws.close(None).await.ok();
    })
    .await;
}

/// The connection's loop once it is open (vendored change, see PATCHES.md).
///
/// Upstream runs three tasks per websocket joined by channels: a reader, a writer and the
/// heartbeat. Here one loop reads frames and hands them to the handler, writes the packets
/// queued for the client, and runs the v4 heartbeat of a socket opened on the websocket (a
/// socket upgraded from polling keeps the heartbeat task it started with). Returns `None` when
/// the session was closed from the server side.
async fn serve<H: EngineIoHandler, S>(
    engine: &Arc<EngineIo<H>>,
    ws: &mut WebSocketStream<S>,
    socket: &Arc<Socket<H::Data>>,
    heartbeat: Option<(Duration, Duration)>,
) -> Option<Result<(), Error>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let token = &socket.cancellation_token;
    // A polling request that was in progress during the upgrade may still hold the lock.
    let mut internal_rx = socket
        .internal_rx
        .lock()
        .with_cancellation_token(token)
        .await?;
    let InternalRx {
        buffered_rx,
        volatile_rx,
        ..
    } = &mut *internal_rx;
    // Writes are boxed (`Box::pin(write_packets(..))`): a write's future (the packets and the
    // sink's send state, about 670 bytes) would otherwise be laid out in this loop's future at
    // each of its call sites, for every socket at rest.
    let mut beat = heartbeat.map(|(interval, timeout)| Heartbeat::new(interval, timeout));
    let sleep = tokio::time::sleep_until(beat.as_ref().map_or_else(Instant::now, |b| b.deadline));
    tokio::pin!(sleep);

    // Frames read since the queue was last written.
    let mut unwritten = 0_usize;
    // A peer that stops reading must not hold this loop (its reads and the heartbeat) in a
    // write forever: a write not done within the ping timeout ends the connection as a failed
    // one (vendored change 5, see PATCHES.md).
    let deadline = engine.config.ping_timeout;

    loop {
        tokio::select! {
            biased;
            _ = token.cancelled() => {
                // Whatever is queued already (a close packet) still goes out, if the peer takes it.
                let drain = async {
                    while let Ok(packets) = buffered_rx.try_recv() {
                        Box::pin(write_packets(socket, ws, packets)).await;
                    }
                };
                bounded(deadline, drain).await.ok();
                return None;
            }
            // Reads come before writes: a frame already received is handled first, so the
            // answers it queues (its ack) leave in the same write as whatever was queued for
            // this socket meanwhile (a relay from its peer). Under load this saves a system
            // call, and a TCP segment, per message. A client that pipelines many frames gets
            // its answers written after every `READS_BEFORE_WRITE` of them, so its queue stays
            // short.
            msg = ws.next() => {
                let msg = match msg {
                    None => return Some(Ok(())),
                    Some(Err(e)) => return Some(Err(e.into())),
                    Some(Ok(msg)) => msg,
                };
                match on_message(engine, socket, msg) {
                    Ok(Received::Packet) => {
                        unwritten += 1;
                        if unwritten >= READS_BEFORE_WRITE {
                            unwritten = 0;
                            let write = Box::pin(write_queued(socket, ws, buffered_rx, None));
                            if let Err(e) = bounded(deadline, write).await {
                                return Some(Err(e));
                            }
                        }
                    }
                    Ok(Received::Pong) => {
                        if let Some(b) = beat.as_mut() {
                            b.pong();
                            sleep.as_mut().reset(b.deadline);
                        } else {
                            // The heartbeat task of a socket upgraded from polling.
                            socket.heartbeat_tx.try_send(()).ok();
                        }
                    }
                    Ok(Received::Close) => return Some(Ok(())),
                    Err(e) => return Some(Err(e)),
                }
            }
            items = buffered_rx.recv() => {
                let Some(packets) = items else {
                    return Some(Ok(()));
                };
                unwritten = 0;
                let write = Box::pin(write_queued(socket, ws, buffered_rx, Some(packets)));
                if let Err(e) = bounded(deadline, write).await {
                    return Some(Err(e));
                }
            }
            Some(packets) = volatile_rx.take() => {
                let write = Box::pin(async {
                    write_packets(socket, ws, packets).await;
                    ws.flush().await.ok();
                });
                if let Err(e) = bounded(deadline, write).await {
                    return Some(Err(e));
                }
            }
            () = &mut sleep, if beat.is_some() => {
                if let Some(b) = beat.as_mut() {
                    if b.due(socket).is_err() {
                        #[cfg(feature = "tracing")]
                        tracing::debug!(sid = %socket.id, "heartbeat timeout");
                        // Queues a close packet and closes the session: the cancelled branch
                        // above writes it and ends the loop.
                        socket.close(DisconnectReason::HeartbeatTimeout);
                        beat = None;
                    } else {
                        sleep.as_mut().reset(b.deadline);
                    }
                }
            }
        }
    }
}

/// Runs one write of the connection's loop for at most `deadline` (vendored change 5, see
/// PATCHES.md): an error when the peer has not taken it by then (it stopped reading and its
/// receive window is full), which closes the session with `DisconnectReason::TransportError`.
async fn bounded(deadline: Duration, write: impl Future<Output = ()>) -> Result<(), Error> {
    tokio::time::timeout(deadline, write).await.map_err(|_| {
        #[cfg(feature = "tracing")]
        tracing::debug!("ws write deadline passed: the peer is not reading");
        let e = std::io::Error::new(std::io::ErrorKind::TimedOut, "ws write deadline passed");
        Error::WsTransport(Box::new(tungstenite::Error::Io(e)))
    })
}

/// Frames a socket reads in a row, while frames keep arriving, before it writes what they queued.
const READS_BEFORE_WRITE: usize = 16;

/// Writes `first` and every group of packets queued after it, then flushes them in one write.
async fn write_queued<D, S>(
    socket: &Socket<D>,
    ws: &mut WebSocketStream<S>,
    buffered_rx: &mut mas_mpsc::Receiver<PacketBuf>,
    first: Option<PacketBuf>,
) where
    D: Default + Send + Sync + 'static,
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    if let Some(packets) = first {
        write_packets(socket, ws, packets).await;
    }
    while let Ok(packets) = buffered_rx.try_recv() {
        write_packets(socket, ws, packets).await;
    }
    #[cfg(feature = "tracing")]
    tracing::trace!(sid = %socket.id, "ws flush");
    ws.flush().await.ok();
}

/// The v4 heartbeat of one socket, as upstream's heartbeat task runs it: a ping at once and then
/// every `interval`, each answered by a pong within `timeout`.
struct Heartbeat {
    interval: Duration,
    timeout: Duration,
    /// When the last ping was sent (or due).
    last_ping: Instant,
    awaiting_pong: bool,
    /// The next ping, or the end of the wait for a pong.
    deadline: Instant,
}

impl Heartbeat {
    fn new(interval: Duration, timeout: Duration) -> Self {
        let now = Instant::now();
        Self {
            interval,
            timeout,
            last_ping: now,
            awaiting_pong: false,
            deadline: now,
        }
    }

    /// The deadline has passed: send the ping that is due, or fail on a missing pong.
    fn due<D: Default + Send + Sync + 'static>(&mut self, socket: &Socket<D>) -> Result<(), Error> {
        if self.awaiting_pong {
            return Err(Error::HeartbeatTimeout);
        }
        let now = Instant::now();
        self.last_ping = now;
        if socket.is_upgrading() {
            self.deadline = now + self.interval;
            return Ok(());
        }
        #[cfg(feature = "tracing")]
        tracing::trace!(sid = ?socket.id, "emitting ping");
        socket
            .internal_tx
            .try_send(smallvec![Packet::Ping])
            .map_err(|_| Error::HeartbeatTimeout)?;
        self.awaiting_pong = true;
        self.deadline = now + self.timeout;
        Ok(())
    }

    /// A pong arrived; one that was not asked for is ignored.
    fn pong(&mut self) {
        if self.awaiting_pong {
            self.awaiting_pong = false;
            self.deadline = (self.last_ping + self.interval).max(Instant::now());
        }
    }
}

/// What a frame from the client was, for the connection loop.
enum Received {
    Packet,
    Pong,
    Close,
}

/// Hands one websocket message to the Engine.IO socket's handler.
fn on_message<H: EngineIoHandler>(
    engine: &Arc<EngineIo<H>>,
    socket: &Arc<Socket<H::Data>>,
    msg: Message,
) -> Result<Received, Error> {
    match msg {
        Message::Text(msg) => match Packet::parse(socket.protocol, ws_bytes_to_str(msg))? {
            Packet::Close => {
                #[cfg(feature = "tracing")]
                tracing::debug!("[sid={}] closing session", socket.id);
                Ok(Received::Close)
            }
            Packet::Pong | Packet::Ping => Ok(Received::Pong),
            Packet::Message(msg) => {
                engine.handler.on_message(msg, socket.clone());
                Ok(Received::Packet)
            }
            p => Err(Error::BadPacket(p)),
        },
        Message::Binary(mut data) => {
            if socket.protocol == ProtocolVersion::V3 && !data.is_empty() {
                // The first byte is the message type, which we don't need.
                data = data.split_off(1);
            }
            engine.handler.on_binary(data, socket.clone());
            Ok(Received::Packet)
        }
        Message::Close(_) => {
            #[cfg(feature = "tracing")]
            tracing::debug!("websocket closed, closing session");
            Ok(Received::Close)
        }
        _ => {
            #[cfg(feature = "tracing")]
            tracing::debug!(sid = ?socket.id, "unexpected ws message");
            Ok(Received::Packet)
        }
    }
}

/// Feeds one group of packets to the websocket (flushed by the caller).
async fn write_packets<D, S>(socket: &Socket<D>, ws: &mut WebSocketStream<S>, packets: PacketBuf)
where
    D: Default + Send + Sync + 'static,
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    for item in packets {
        let res = match item {
            Packet::Binary(bin) | Packet::BinaryV3(bin) => {
                if socket.protocol == ProtocolVersion::V3 {
                    // v3 protocol requires packet type as the first byte.
                    // This requires a new buffer. This is OK as it is only for the V3 protocol.
                    let mut buff = Vec::with_capacity(bin.len() + 1);
                    buff.push(0x04);
                    buff.extend(bin);
                    ws.feed(Message::Binary(buff.into())).await
                } else {
                    ws.feed(Message::Binary(bin)).await
                }
            }
            // A Noop Packet maybe sent by the server to upgrade from a polling connection
            // In the case that the packet was not poll in time it will remain in the buffer and therefore
            // it should be discarded here
            Packet::Noop => Ok(()),
            item => ws.feed(Message::Text(String::from(item).into())).await,
        };
        if let Err(_e) = res {
            #[cfg(feature = "tracing")]
            tracing::debug!("[sid={}] error sending packet: {}", socket.id, _e);
        }
    }
}

/// Send a Engine.IO [`OpenPacket`] to initiate a websocket connection
async fn init_handshake<S>(
    sid: Sid,
    ws: &mut WebSocketStream<S>,
    config: &EngineIoConfig,
) -> Result<(), Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let packet = Packet::Open(make_open_packet(TransportType::Websocket, sid, config));
    let packet: String = packet.into();
    ws.send(Message::Text(packet.into())).await?;
    Ok(())
}

/// Upgrade a session from a polling request to a websocket request.
///
/// Before upgrading the session the server should send a NOOP packet to any pending polling request.
///
/// ## Handshake :
/// ```text
/// CLIENT                                                 SERVER
///│                                                      │
///│   GET /engine.io/?EIO=4&transport=websocket&sid=...  │
///│ ───────────────────────────────────────────────────► │
///│  ◄─────────────────────────────────────────────────┘ │
///│            HTTP 101 (WebSocket handshake)            │
///│                                                      │
///│            -----  WebSocket frames -----             │
///│  ─────────────────────────────────────────────────►  │
///│                         2probe                       │ (ping packet)
///│  ◄─────────────────────────────────────────────────  │
///│                         3probe                       │ (pong packet)
///│  ─────────────────────────────────────────────────►  │
///│                         5                            │ (upgrade packet)
///│                                                      │
///│            -----  WebSocket frames -----             │
/// ```
#[cfg_attr(
    feature = "tracing",
    tracing::instrument(level = "trace", skip(socket, ws))
)]
async fn upgrade_handshake<H: EngineIoHandler, S>(
    socket: &Arc<Socket<H::Data>>,
    ws: &mut WebSocketStream<S>,
) -> Result<(), Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    #[cfg(feature = "tracing")]
    tracing::debug!("starting websocket connection upgrade");

    // The socket is upgrading, from now on all polling
    // request will return a `Packet::Noop`
    socket.start_upgrade();

    // We send a last Noop request to close a potential waiting polling request.
    socket
        .internal_tx
        .send(smallvec![Packet::Noop])
        .await
        .map_err(|_| Error::Upgrade)?;

    // wait for any current polling connection to finish by waiting for the socket to be unlocked
    // All other polling connection will be immediately closed with a NOOP packet.
    let _lock = socket.internal_rx.lock().await;

    // Fetch the next packet from the ws stream, it should be a PingUpgrade packet
    let msg = match ws.next().await {
        Some(Ok(Message::Text(d))) => d,
        _ => Err(Error::Upgrade)?,
    };
    match Packet::parse(socket.protocol, ws_bytes_to_str(msg))? {
        Packet::PingUpgrade => {
            #[cfg(feature = "tracing")]
            tracing::debug!("received first ping upgrade");
            // Respond with a PongUpgrade packet
            ws.send(Message::Text(String::from(Packet::PongUpgrade).into()))
                .await?;
        }
        p => Err(Error::BadPacket(p))?,
    };

    // Fetch the next packet from the ws stream, it should be an Upgrade packet
    let msg = match ws.next().await {
        Some(Ok(Message::Text(d))) => d,
        Some(Ok(Message::Close(_))) => {
            #[cfg(feature = "tracing")]
            tracing::debug!("ws stream closed before upgrade");
            Err(Error::Upgrade)?
        }
        _ => {
            #[cfg(feature = "tracing")]
            tracing::debug!("unexpected ws message before upgrade");
            Err(Error::Upgrade)?
        }
    };
    match Packet::parse(socket.protocol, ws_bytes_to_str(msg))? {
        Packet::Upgrade => {
            #[cfg(feature = "tracing")]
            tracing::debug!("ws upgraded successfully")
        }
        p => Err(Error::BadPacket(p))?,
    };

    socket.upgrade_to_websocket();
    Ok(())
}

fn ws_bytes_to_str(bytes: tungstenite::Utf8Bytes) -> Str {
    // SAFETY: the bytes are guaranteed to be valid UTF-8 by the tungstenite parser
    unsafe { Str::from_bytes_unchecked(bytes.into()) }
}

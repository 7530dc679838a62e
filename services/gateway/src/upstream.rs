//! The call to the service: a unary gRPC call with the dynamic codec, on a channel owned by the
//! HTTP worker thread that serves the request.

use std::collections::HashMap;

use mas_kit::grpc as kgrpc;
use prost_reflect::DynamicMessage;
use tonic::transport::Channel;

use crate::routes::Route;
use crate::{Gateway, package_segment, transcode};

pub(crate) async fn call(
    gw: &Gateway,
    route: &Route,
    req: tonic::Request<DynamicMessage>,
) -> Result<tonic::Response<DynamicMessage>, tonic::Status> {
    let channel = worker_channel(gw, &route.service)?;
    let mut grpc = tonic::client::Grpc::new(channel)
        .max_decoding_message_size(kgrpc::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(kgrpc::MAX_MESSAGE_BYTES);
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(format!("upstream not ready: {e}")))?;
    let path = http::uri::PathAndQuery::from_maybe_shared(route.grpc_path.clone())
        .map_err(|_| tonic::Status::internal("bad gRPC path"))?;
    grpc.unary(
        req,
        path,
        transcode::DynamicCodec {
            output: route.method.output(),
        },
    )
    .await
}

thread_local! {
    /// Channels owned by this HTTP worker thread: their connection tasks run on the worker's own
    /// runtime, so a call never hops threads on its way to the service.
    static WORKER_CHANNELS: std::cell::RefCell<HashMap<String, Channel>> = Default::default();
}

fn worker_channel(gw: &Gateway, service: &str) -> Result<Channel, tonic::Status> {
    if let Some(ch) = WORKER_CHANNELS.with(|c| c.borrow().get(service).cloned()) {
        return Ok(ch);
    }
    let url = gw
        .cfg
        .upstreams
        .get(package_segment(service))
        .ok_or_else(|| tonic::Status::unavailable("service not configured"))?;
    let ch = kgrpc::channel(url).map_err(tonic::Status::unavailable)?;
    WORKER_CHANNELS.with(|c| c.borrow_mut().insert(service.to_owned(), ch.clone()));
    Ok(ch)
}

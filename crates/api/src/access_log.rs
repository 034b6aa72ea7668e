//! The access log: one line per request at `info` on target `glance_api::access`, written when
//! the response body has been sent (or abandoned): request id, client address, request line,
//! status, body bytes sent, duration.
//!
//! actix-web's `Logger` counts the bytes it sees pass through the body; a download sent with
//! `sendfile` never passes through it, so this log also adds what [`crate::http1`] reports for
//! the response's [`SendFile`].

use std::cell::Cell;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Instant;

use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use bytes::Bytes;

use crate::http1::SendFile;

/// Log target of the access lines.
pub const TARGET: &str = "glance_api::access";

/// The middleware (`from_fn(access_log::log)`); outermost, so it sees the request id header.
pub async fn log(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<Logged>, actix_web::Error> {
    let start = Instant::now();
    let client = req
        .peer_addr()
        .map_or_else(|| "-".to_string(), |a| a.ip().to_string());
    let line = match req.query_string() {
        "" => format!("{} {} {:?}", req.method(), req.path(), req.version()),
        q => format!("{} {}?{q} {:?}", req.method(), req.path(), req.version()),
    };
    let res = match next.call(req).await {
        Ok(res) => res,
        Err(e) => {
            let entry = Entry {
                request_id: "-".to_string(),
                client,
                line,
                status: e.as_response_error().status_code().as_u16(),
                start,
            };
            entry.write(None);
            return Err(e);
        }
    };
    let request_id = res
        .headers()
        .get(glance_model::wire::HEADER_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_string();
    let sendfile_sent = res
        .response()
        .extensions()
        .get::<SendFile>()
        .map(|s| s.sent.clone());
    let entry = Entry {
        request_id,
        client,
        line,
        status: res.status().as_u16(),
        start,
    };
    Ok(res.map_body(|_, body| Logged {
        body: body.boxed(),
        bytes: 0,
        sendfile_sent,
        entry: Some(entry),
    }))
}

struct Entry {
    request_id: String,
    client: String,
    line: String,
    status: u16,
    start: Instant,
}

impl Entry {
    fn write(&self, bytes: Option<u64>) {
        let bytes = bytes.map_or_else(|| "-".to_string(), |b| b.to_string());
        log::info!(
            target: TARGET,
            "{} {} \"{}\" {} {bytes} {:.6}ms",
            self.request_id,
            self.client,
            self.line,
            self.status,
            self.start.elapsed().as_secs_f64() * 1000.0
        );
    }
}

/// A response body that writes the access line when it is dropped.
pub struct Logged {
    body: BoxBody,
    bytes: u64,
    sendfile_sent: Option<Rc<Cell<u64>>>,
    entry: Option<Entry>,
}

impl MessageBody for Logged {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let next = Pin::new(&mut self.body).poll_next(cx);
        if let Poll::Ready(Some(Ok(chunk))) = &next {
            self.bytes += chunk.len() as u64;
        }
        next
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        if let Some(entry) = self.entry.take() {
            let sent = self.sendfile_sent.as_ref().map_or(0, |s| s.get());
            entry.write(Some(self.bytes + sent));
        }
    }
}

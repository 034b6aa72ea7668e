//! The access log: one line per request at `info` on the daemon's target
//! ([`Daemon::ACCESS_LOG_TARGET`]), written when the response body has been sent (or
//! abandoned):
//!
//! ```text
//! <request id> <client address> "<method> <path>[?<query>] <version>" <status> <bytes> <ms>ms
//! ```
//!
//! The bytes are those that passed through the body plus what the daemon reports it sent
//! outside it ([`Daemon::sent_outside_body`]: glance-api's `sendfile` downloads). An error
//! raised by an inner middleware instead of a response is logged at once, with `-` for the
//! request id and the bytes.

use std::cell::Cell;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Instant;

use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use bytes::Bytes;

use crate::Daemon;

/// The middleware (`from_fn(access_log::log::<D>)`); outermost, so it sees the request id the
/// response carries.
pub async fn log<D: Daemon>(
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
                target: D::ACCESS_LOG_TARGET,
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
    let sent_outside = D::sent_outside_body(&res.response().extensions());
    let entry = Entry {
        target: D::ACCESS_LOG_TARGET,
        request_id,
        client,
        line,
        status: res.status().as_u16(),
        start,
    };
    Ok(res.map_body(|_, body| Logged {
        body: body.boxed(),
        bytes: 0,
        sent_outside,
        entry: Some(entry),
    }))
}

struct Entry {
    target: &'static str,
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
            target: self.target,
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
    sent_outside: Option<Rc<Cell<u64>>>,
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
            let sent = self.sent_outside.as_ref().map_or(0, |s| s.get());
            entry.write(Some(self.bytes + sent));
        }
    }
}

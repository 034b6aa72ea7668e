//! glance-api's HTTP/1.1 connections.
//!
//! actix-web's own connection handler copies every body chunk into its write buffer before it
//! reaches the socket, so a download from the file store cost three copies in glance-api
//! (`pread`, that copy, the socket write) where a `sendfile` costs none. This module drives each
//! connection itself, with actix-http's HTTP/1 codec for parsing and framing and the same actix
//! `App` for everything above it (routing, middleware, handlers). It differs from actix-web's
//! handler in two ways:
//!
//! - a response that carries a [`SendFile`] extension (a download from the file store) has its
//!   body sent with `sendfile(2)` straight from the page cache to the socket; what a handler
//!   that sets it must do is written on [`SendFile`];
//! - a body of known length is written from the chunks themselves, not copied into a buffer
//!   first.
//!
//! A request body nobody read is thrown away by [`discard`], the one drain, within the bounds
//! of a [`Drain`]: by the upload handler before it answers an upload it refused, and by the
//! connection after any answer that left a body unread. A connection whose request body was
//! not read to its end is closed after the answer, so what [`discard`] leaves is never taken
//! for the next request; an error answer to a request with a body closes its connection too
//! (glance-api's error middleware marks it, as Glance does).
//!
//! Requests on a connection are served one after the other; a pipelined request waits in the
//! read buffer. The request head must arrive within [`REQUEST_HEAD_TIMEOUT`] (actix-web's
//! default) and heads over actix-http's limit get 431. Between requests a connection is kept
//! as [`KeepAlive`] says: Glance's `http_keepalive` and `client_socket_timeout`.

use std::cell::Cell;
use std::future::{Future, poll_fn};
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::rc::Rc;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use actix_web::body::{BodySize, MessageBody};
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{HOST, HeaderValue};
use bytes::{Bytes, BytesMut};
use futures_util::{FutureExt as _, Stream, StreamExt as _};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, Interest};
use tokio::net::TcpStream;

use actix_http::error::{ParseError, PayloadError};
use actix_http::h1::{Codec, Message, MessageType};
use actix_http::{ConnectionType, HttpMessage as _, Payload, Request, Response, ServiceConfig};

/// How long a client has to send a whole request head (actix-web's default).
pub const REQUEST_HEAD_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether a connection is kept open between requests, and how long it waits for one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeepAlive {
    /// Whether a response may leave its connection open (`http_keepalive`); when not, every
    /// response closes its connection.
    pub enabled: bool,
    /// How long a connection waits for the first byte of a request, its first included;
    /// `None` waits as long as the client does (`client_socket_timeout = 0`).
    pub idle: Option<Duration>,
}

/// Longest request line (method, target, version) read: the `http` crate holds a URI of at
/// most 65,534 bytes. A longer line is answered 414 (as Glance answers an overlong URI) as
/// soon as that much has arrived, before the rest is read.
pub const MAX_REQUEST_LINE_BYTES: usize = 65_534;

/// Below this, body chunks are gathered in the write buffer; from it on, written as they are.
const DIRECT_WRITE_BYTES: usize = 16 << 10;
/// Most bytes one `sendfile` call is asked for.
const SENDFILE_STEP_BYTES: usize = 1 << 30;
/// How long a sending thread waits for a full socket to take bytes before it gives the
/// thread back and waits on the event loop instead: a slow client holds no thread.
const SENDFILE_STALL: Duration = Duration::from_millis(100);
/// Request body chunks waiting for the handler, per connection.
const BODY_QUEUE_CHUNKS: usize = 4;

/// A zero-copy download: the file region a response's body is made of, set as a response
/// extension (`res.extensions_mut().insert(SendFile { .. })`). The connection then sends bytes
/// `offset..offset + length` of `file` with `sendfile(2)` instead of reading the body.
///
/// The contract for a handler that sets it:
/// - The response must also have a body of exactly `length` bytes with the same content
///   (`SizedStream::new(length, stream)`). That body is what is sent wherever the region is
///   not: a `HEAD` request, actix's test harness, and any response whose body length is not
///   `length` (then the extension is ignored, never half used). When the region is sent, the
///   body is not read but lives until the last byte is out, so middleware that wraps it (the
///   access log) sees the response end when it is dropped.
/// - The region's bytes must not change while the response lives: store files are written
///   once, under another name, and renamed into place.
/// - `sent` starts at zero; the connection adds what it sends, for the access log.
///
/// A file that ends before `offset + length` ends the connection mid-body: the client sees a
/// short body against its `Content-Length`, as with any download that fails midway.
#[derive(Clone, Debug)]
pub struct SendFile {
    /// The open file (shared: the store may hand the same one to several responses).
    pub file: Arc<std::fs::File>,
    /// Where the region starts in the file.
    pub offset: u64,
    /// How many bytes the region has: the response body's exact length.
    pub length: u64,
    /// Bytes sent so far, for the access log.
    pub sent: Rc<Cell<u64>>,
}

/// How much of a request body nobody read [`discard`] reads and throws away, and for how long.
/// Draining lets a client that sends its whole body before it reads the answer
/// (python-requests, hence glanceclient) get that answer instead of a connection reset; the
/// bounds keep a client from holding the connection with an endless body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Drain {
    /// Most bytes read; the rest stays unread and the connection is closed.
    pub limit_bytes: u64,
    /// Longest time spent; `None` reads for as long as the client sends.
    pub within: Option<Duration>,
}

impl Drain {
    /// Before answering an upload refused before any byte was stored (`routes::data`): enough
    /// for the body a client typically sends with it, before the answer, however slowly.
    pub const REFUSED_UPLOAD: Self = Self {
        limit_bytes: 64 << 20,
        within: None,
    };
    /// After answering any request whose body was left unread (the connection's `linger`),
    /// while the client may already be reading the answer.
    pub const AFTER_ANSWER: Self = Self {
        limit_bytes: 16 << 20,
        within: Some(Duration::from_secs(2)),
    };
}

/// The one drain of unread request bodies: reads `body` and throws it away until it ends,
/// fails, or `drain`'s bytes or time run out.
pub async fn discard<S, E>(body: S, drain: Drain)
where
    S: Stream<Item = Result<Bytes, E>>,
{
    let read = async {
        let mut body = pin!(body);
        let mut seen = 0u64;
        while seen < drain.limit_bytes {
            match body.next().await {
                Some(Ok(chunk)) => seen += chunk.len() as u64,
                Some(Err(_)) | None => break,
            }
        }
    };
    match drain.within {
        Some(within) => {
            let _ = tokio::time::timeout(within, read).await;
        }
        None => read.await,
    }
}

/// Serves the app that `app` builds (once per worker) on `listener` with `workers` workers;
/// on SIGTERM/SIGINT or `stop(true)`, in-flight requests get up to `drain_secs` to finish.
pub fn serve<F, T, B>(
    listener: std::net::TcpListener,
    name: &str,
    workers: usize,
    drain_secs: u64,
    keep_alive: KeepAlive,
    app: F,
) -> io::Result<actix_server::Server>
where
    F: Fn() -> actix_web::App<T> + Send + Clone + 'static,
    T: actix_service::ServiceFactory<
            actix_web::dev::ServiceRequest,
            Config = (),
            Response = ServiceResponse<B>,
            Error = actix_web::Error,
            InitError = (),
        > + 'static,
    B: MessageBody + 'static,
{
    use actix_service::{IntoServiceFactory as _, ServiceFactory as _, fn_factory, fn_service};
    let local_addr = listener.local_addr()?;
    let builder = actix_server::Server::build();
    let shutdown = builder.graceful_shutdown_signal();
    let server = builder
        .workers(workers)
        .shutdown_timeout(drain_secs)
        .listen(name, listener, move || {
            let (app, shutdown) = (app.clone(), shutdown.clone());
            fn_factory(move || {
                let setup = ConnSetup {
                    config: service_config(local_addr, keep_alive.enabled),
                    idle: keep_alive.idle,
                    local_addr,
                    shutdown: shutdown.clone(),
                };
                let app = app().into_factory();
                async move {
                    let app = Rc::new(
                        app.new_service(actix_web::dev::AppConfig::default())
                            .await
                            .map_err(|()| log::error!("cannot build the app of a worker"))?,
                    );
                    Ok::<_, ()>(fn_service(move |stream: TcpStream| {
                        let (app, setup) = (app.clone(), setup.clone());
                        async move {
                            drive(stream, app, setup).await;
                            Ok::<(), ()>(())
                        }
                    }))
                }
            })
        })?
        .run();
    Ok(server)
}

/// The HTTP settings of the connections of one listener. actix-http's keep-alive setting
/// decides only whether a response may leave its connection open; the idle wait is ours
/// ([`ConnSetup::idle`]).
pub fn service_config(local_addr: SocketAddr, keep_alive: bool) -> ServiceConfig {
    let ka = if keep_alive {
        actix_http::KeepAlive::Os
    } else {
        actix_http::KeepAlive::Disabled
    };
    actix_http::ServiceConfigBuilder::new()
        .keep_alive(ka)
        .client_request_timeout(REQUEST_HEAD_TIMEOUT)
        .local_addr(Some(local_addr))
        .build()
}

/// What every connection of a worker shares.
#[derive(Clone)]
pub struct ConnSetup {
    pub config: ServiceConfig,
    /// How long a connection waits for a request's first byte; `None`: as long as it takes.
    pub idle: Option<Duration>,
    pub local_addr: SocketAddr,
    /// Fires when the server starts a graceful shutdown: idle connections close at once and
    /// busy ones after their current response.
    pub shutdown: actix_server::GracefulShutdownSignal,
}

/// Why a connection ended early; logged at debug (clients hang up all the time).
#[derive(Debug, thiserror::Error)]
enum ConnError {
    #[error("socket: {0}")]
    Io(#[from] io::Error),
    #[error("response body: {0}")]
    Body(String),
}

/// Serves one connection until the client closes it, a timeout, or an error.
pub async fn drive<S, B>(io: TcpStream, app: Rc<S>, setup: ConnSetup)
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody + 'static,
{
    let peer = io.peer_addr().ok();
    if let Err(e) = io.set_nodelay(true) {
        log::debug!("connection from {peer:?}: cannot set TCP_NODELAY: {e}");
    }
    let host = HeaderValue::from_str(&setup.local_addr.to_string()).ok();
    let mut conn = Conn {
        io,
        codec: Codec::new(setup.config),
        shutdown: setup.shutdown,
        idle: setup.idle,
        rbuf: BytesMut::with_capacity(16 << 10),
        wbuf: BytesMut::with_capacity(16 << 10),
    };
    if let Err(e) = conn.run(&*app, peer, host).await {
        log::debug!("connection from {peer:?} ended: {e}");
    }
}

struct Conn {
    io: TcpStream,
    codec: Codec,
    shutdown: actix_server::GracefulShutdownSignal,
    idle: Option<Duration>,
    rbuf: BytesMut,
    wbuf: BytesMut,
}

/// What became of a request's body by the time its response was ready.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum BodyState {
    /// No body, or all of it was read.
    Done,
    /// The handler did not read all of it; the rest is still on the socket.
    Unread,
    /// The body was malformed or the socket failed: the connection cannot go on.
    Broken,
}

impl Conn {
    async fn run<S, B>(
        &mut self,
        app: &S,
        peer: Option<SocketAddr>,
        host: Option<HeaderValue>,
    ) -> Result<(), ConnError>
    where
        S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
        B: MessageBody + 'static,
    {
        loop {
            let Some(mut req) = self.read_head().await? else {
                return Ok(());
            };
            req.head_mut().peer_addr = peer;
            // Without a Host header (HTTP/1.0), links are built from the address served on,
            // as actix-web does.
            if let Some(host) = &host
                && !req.headers().contains_key(HOST)
            {
                req.headers_mut().insert(HOST, host.clone());
            }
            let is_head = req.method() == actix_web::http::Method::HEAD;
            let (mut res, body_state) = self.call(app, req).await?;
            let stopping = self.shutdown.notified().now_or_never().is_some();
            if body_state != BodyState::Done || stopping {
                res.head_mut().set_connection_type(ConnectionType::Close);
            }
            self.respond(res, is_head).await?;
            match body_state {
                BodyState::Done if self.codec.keep_alive() => {}
                BodyState::Unread => {
                    self.linger().await;
                    return Ok(());
                }
                _ => {
                    let _ = self.io.shutdown().await;
                    return Ok(());
                }
            }
        }
    }

    /// Reads the next request head; `None` when the client closed or went idle.
    async fn read_head(&mut self) -> Result<Option<Request>, ConnError> {
        let mut started = !self.rbuf.is_empty();
        let now = tokio::time::Instant::now();
        // Waiting for a head's first byte is idle time; once it has begun, the head is due.
        let mut deadline = if started {
            Some(now + REQUEST_HEAD_TIMEOUT)
        } else {
            self.idle.map(|idle| now + idle)
        };
        loop {
            if request_line_len(&self.rbuf) > MAX_REQUEST_LINE_BYTES {
                log::debug!("request line over {MAX_REQUEST_LINE_BYTES} bytes");
                self.reject(StatusCode::URI_TOO_LONG).await?;
                return Ok(None);
            }
            match self.codec.decode_head(&mut self.rbuf) {
                Ok(Some(req)) => return Ok(Some(req)),
                Ok(None) => {}
                Err(e) => {
                    let status = match e {
                        ParseError::TooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                        _ => StatusCode::BAD_REQUEST,
                    };
                    log::debug!("malformed request head: {e}");
                    self.reject(status).await?;
                    return Ok(None);
                }
            }
            self.rbuf.reserve(8 << 10);
            let (io, rbuf) = (&mut self.io, &mut self.rbuf);
            let read = async move {
                match deadline {
                    Some(at) => tokio::time::timeout_at(at, io.read_buf(rbuf)).await,
                    None => Ok(io.read_buf(rbuf).await),
                }
            };
            let read = if started {
                read.await
            } else {
                // Idle between requests: a graceful shutdown closes the connection now.
                tokio::select! {
                    read = read => read,
                    () = self.shutdown.notified() => return Ok(None),
                }
            };
            match read {
                Err(_elapsed) if started => {
                    self.reject(StatusCode::REQUEST_TIMEOUT).await?;
                    return Ok(None);
                }
                Err(_elapsed) => return Ok(None),
                Ok(Ok(0)) => return Ok(None),
                Ok(Ok(_)) => {
                    if !started {
                        deadline = Some(tokio::time::Instant::now() + REQUEST_HEAD_TIMEOUT);
                    }
                    started = true;
                }
                Ok(Err(e)) => return Err(e.into()),
            }
        }
    }

    /// Answers a request that cannot be served (bad head, timeout) with a JSON error body, as
    /// every error is answered, and ends the connection.
    async fn reject(&mut self, status: StatusCode) -> Result<(), ConnError> {
        let reason = status.canonical_reason().unwrap_or("Error");
        let message = match status {
            StatusCode::URI_TOO_LONG => format!(
                "The request line is longer than {MAX_REQUEST_LINE_BYTES} bytes; send a shorter \
                 query (fewer filters)"
            ),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => {
                "The request headers are too large; send fewer or shorter ones".to_string()
            }
            StatusCode::REQUEST_TIMEOUT => {
                "The request head did not arrive in time; send it again".to_string()
            }
            _ => "The request head is malformed: it is not valid HTTP/1.1".to_string(),
        };
        let body = serde_json::to_vec(&glance_model::wire::ErrorBody {
            message,
            code: format!("{} {reason}", status.as_u16()),
            title: reason.to_string(),
        })
        .unwrap_or_default();
        let mut res = Response::with_body(status, ());
        res.head_mut().set_connection_type(ConnectionType::Close);
        res.headers_mut().insert(
            actix_web::http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        self.codec
            .encode_head(res, BodySize::Sized(body.len() as u64), &mut self.wbuf)?;
        self.wbuf.extend_from_slice(&body);
        self.flush().await?;
        let _ = self.io.shutdown().await;
        Ok(())
    }

    /// Calls the app with the request, feeding it the request body as the handler asks for it.
    async fn call<S, B>(
        &mut self,
        app: &S,
        req: Request,
    ) -> Result<(Response<actix_web::body::BoxBody>, BodyState), ConnError>
    where
        S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
        B: MessageBody + 'static,
    {
        let has_body = self.codec.message_type() != MessageType::None;
        let (req, mut feed) = if has_body {
            if req.head().expect() {
                self.io.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
            }
            let (tx, rx) = futures_channel::mpsc::channel(BODY_QUEUE_CHUNKS);
            let stream: actix_http::BoxedPayloadStream = Box::pin(rx);
            let (req, _) = req.replace_payload(Payload::Stream { payload: stream });
            (req, Some(tx))
        } else {
            (req, None)
        };
        let mut state = if has_body {
            BodyState::Unread
        } else {
            BodyState::Done
        };
        use tokio_util::codec::Decoder as _;
        let mut fut = pin!(app.call(req));
        let result = poll_fn(|cx| {
            loop {
                if let Poll::Ready(r) = fut.as_mut().poll(cx) {
                    return Poll::Ready(r);
                }
                let Some(tx) = feed.as_mut() else {
                    return Poll::Pending;
                };
                match tx.poll_ready(cx) {
                    Poll::Ready(Ok(())) => {}
                    // The handler dropped the body: the rest stays unread.
                    Poll::Ready(Err(_)) => {
                        feed = None;
                        continue;
                    }
                    Poll::Pending => return Poll::Pending,
                }
                let failure = match self.codec.decode(&mut self.rbuf) {
                    Ok(Some(Message::Chunk(Some(chunk)))) => {
                        let _ = tx.start_send(Ok(chunk));
                        continue;
                    }
                    Ok(Some(Message::Chunk(None))) => {
                        tx.close_channel();
                        feed = None;
                        state = BodyState::Done;
                        continue;
                    }
                    // The codec only yields chunks while a body is open.
                    Ok(Some(Message::Item(_))) => PayloadError::EncodingCorrupted,
                    Err(e) => {
                        log::debug!("malformed request body: {e}");
                        PayloadError::EncodingCorrupted
                    }
                    Ok(None) => {
                        self.rbuf.reserve(64 << 10);
                        match tokio_util::io::poll_read_buf(
                            Pin::new(&mut self.io),
                            cx,
                            &mut self.rbuf,
                        ) {
                            Poll::Ready(Ok(0)) => PayloadError::Incomplete(None),
                            Poll::Ready(Ok(_)) => continue,
                            Poll::Ready(Err(e)) => PayloadError::Io(e),
                            Poll::Pending => return Poll::Pending,
                        }
                    }
                };
                let _ = tx.start_send(Err(failure));
                feed = None;
                state = BodyState::Broken;
            }
        })
        .await;
        let res = match result {
            Ok(res) => res.map_into_boxed_body().into_parts().1,
            Err(e) => e.error_response(),
        };
        Ok((Response::from(res), state))
    }

    /// Writes a response: its head, then its body by `sendfile`, as written chunks, or chunked.
    async fn respond(
        &mut self,
        res: Response<actix_web::body::BoxBody>,
        is_head: bool,
    ) -> Result<(), ConnError> {
        let (mut head, body) = res.into_parts();
        let sendfile = head.extensions_mut().remove::<SendFile>();
        let size = body.size();
        self.codec.encode_head(head, size, &mut self.wbuf)?;
        if is_head || matches!(size, BodySize::None | BodySize::Sized(0)) {
            return self.flush().await;
        }
        match (size, sendfile) {
            (BodySize::Sized(n), Some(region)) if region.length == n => {
                // The body is not read, but lives until the file is sent: middleware that
                // wraps it (the access log) sees the response end when it is dropped.
                self.flush().await?;
                let sent = self.send_file(&region).await;
                drop(body);
                sent
            }
            (BodySize::Sized(n), _) => self.write_sized(body, n).await,
            _ => self.write_chunked(body).await,
        }
    }

    /// Sends a file region with `sendfile(2)`, waiting for the socket whenever it is full.
    async fn send_file(&mut self, region: &SendFile) -> Result<(), ConnError> {
        use std::os::fd::AsFd as _;
        let mut offset = region.offset;
        let end = region.offset + region.length;
        while offset < end {
            self.io.writable().await?;
            // One attempt on the event loop first: when the socket is still full (a client
            // that stalled the sending thread), tokio learns it and the next wait is real.
            let at = offset;
            match self.io.try_io(Interest::WRITABLE, || {
                let step = usize::try_from(end - offset)
                    .map_or(SENDFILE_STEP_BYTES, |n| n.min(SENDFILE_STEP_BYTES));
                rustix::fs::sendfile(&self.io, &*region.file, Some(&mut offset), step)
                    .map_err(io::Error::from)
            }) {
                Ok(0) => {
                    return Err(ConnError::Body(format!(
                        "the image file ends at byte {offset}, before byte {end}"
                    )));
                }
                Ok(_) => region.sent.set(region.sent.get() + (offset - at)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e.into()),
            }
            if offset >= end {
                break;
            }
            // The rest from a blocking thread, on a second descriptor of the socket.
            let sock = self.io.as_fd().try_clone_to_owned()?;
            let file = Arc::clone(&region.file);
            let from = offset;
            let (at, sent) =
                tokio::task::spawn_blocking(move || send_blocking(&sock, &file, from, end))
                    .await
                    .map_err(|e| io::Error::other(format!("the sendfile thread failed: {e}")))?;
            region.sent.set(region.sent.get() + (at - offset));
            offset = at;
            sent?;
        }
        Ok(())
    }

    /// Writes a body of known length: small chunks gathered, large ones written as they are.
    async fn write_sized(
        &mut self,
        body: actix_web::body::BoxBody,
        length: u64,
    ) -> Result<(), ConnError> {
        let mut body = pin!(body);
        let mut left = length;
        while let Some(chunk) = next_chunk(body.as_mut()).await? {
            let take = usize::try_from(left).map_or(chunk.len(), |l| l.min(chunk.len()));
            let chunk = chunk.slice(..take);
            left -= take as u64;
            if chunk.len() >= DIRECT_WRITE_BYTES {
                self.flush().await?;
                self.io.write_all(&chunk).await?;
            } else {
                self.wbuf.extend_from_slice(&chunk);
                if self.wbuf.len() >= DIRECT_WRITE_BYTES {
                    self.flush().await?;
                }
            }
            if left == 0 {
                break;
            }
        }
        self.flush().await?;
        if left != 0 {
            return Err(ConnError::Body(format!(
                "the body ended {left} bytes short of its length {length}"
            )));
        }
        Ok(())
    }

    /// Writes a body of unknown length with chunked transfer encoding.
    async fn write_chunked(&mut self, body: actix_web::body::BoxBody) -> Result<(), ConnError> {
        let mut body = pin!(body);
        while let Some(chunk) = next_chunk(body.as_mut()).await? {
            if chunk.is_empty() {
                continue;
            }
            self.codec.encode_chunk(chunk, &mut self.wbuf)?;
            if self.wbuf.len() >= DIRECT_WRITE_BYTES {
                self.flush().await?;
            }
        }
        self.codec.encode_eof(&mut self.wbuf)?;
        self.flush().await
    }

    async fn flush(&mut self) -> Result<(), ConnError> {
        if !self.wbuf.is_empty() {
            self.io.write_all(&self.wbuf).await?;
            self.wbuf.clear();
        }
        Ok(())
    }

    /// After answering a request whose body was not read: stop sending, read and discard what
    /// the client is still sending ([`Drain::AFTER_ANSWER`]), then close, so the client reads
    /// the answer instead of a connection reset.
    async fn linger(&mut self) {
        let _ = self.io.shutdown().await;
        let socket = tokio_util::io::ReaderStream::with_capacity(&mut self.io, 64 << 10);
        discard(socket, Drain::AFTER_ANSWER).await;
    }
}

async fn next_chunk(
    mut body: Pin<&mut actix_web::body::BoxBody>,
) -> Result<Option<Bytes>, ConnError> {
    match poll_fn(|cx| body.as_mut().poll_next(cx)).await {
        None => Ok(None),
        Some(Ok(b)) => Ok(Some(b)),
        Some(Err(e)) => Err(ConnError::Body(e.to_string())),
    }
}

/// actix-http's codec, spoken one message kind at a time.
trait CodecExt {
    fn decode_head(&mut self, src: &mut BytesMut) -> Result<Option<Request>, ParseError>;
    fn encode_head(
        &mut self,
        head: Response<()>,
        size: BodySize,
        dst: &mut BytesMut,
    ) -> io::Result<()>;
    fn encode_chunk(&mut self, chunk: Bytes, dst: &mut BytesMut) -> io::Result<()>;
    fn encode_eof(&mut self, dst: &mut BytesMut) -> io::Result<()>;
}

impl CodecExt for Codec {
    fn decode_head(&mut self, src: &mut BytesMut) -> Result<Option<Request>, ParseError> {
        use tokio_util::codec::Decoder as _;
        match self.decode(src)? {
            Some(Message::Item(req)) => Ok(Some(req)),
            // Between requests the codec has no body open, so it yields only heads.
            Some(Message::Chunk(_)) => Err(ParseError::Incomplete),
            None => Ok(None),
        }
    }

    fn encode_head(
        &mut self,
        head: Response<()>,
        size: BodySize,
        dst: &mut BytesMut,
    ) -> io::Result<()> {
        use tokio_util::codec::Encoder as _;
        self.encode(Message::Item((head, size)), dst)
    }

    fn encode_chunk(&mut self, chunk: Bytes, dst: &mut BytesMut) -> io::Result<()> {
        use tokio_util::codec::Encoder as _;
        self.encode(Message::Chunk(Some(chunk)), dst)
    }

    fn encode_eof(&mut self, dst: &mut BytesMut) -> io::Result<()> {
        use tokio_util::codec::Encoder as _;
        self.encode(Message::Chunk(None), dst)
    }
}

/// Length of the first line in `buf` (all of it while no line end has arrived).
fn request_line_len(buf: &[u8]) -> usize {
    buf.iter().position(|&b| b == b'\n').unwrap_or(buf.len())
}

/// Sends `[offset, end)` of `file` on `sock` with `sendfile(2)` from a blocking thread,
/// sleeping in `poll(2)` whenever the socket is full, as a blocking server would. Returns
/// where it got to, with `Ok` also when the client took nothing for [`SENDFILE_STALL`]: the
/// caller then waits for the socket without holding the thread, and calls again.
fn send_blocking(
    sock: &std::os::fd::OwnedFd,
    file: &std::fs::File,
    mut offset: u64,
    end: u64,
) -> (u64, io::Result<()>) {
    use rustix::event::{PollFd, PollFlags, Timespec};
    use rustix::io::Errno;
    let stall = Timespec {
        tv_sec: 0,
        tv_nsec: i64::from(SENDFILE_STALL.subsec_nanos()),
    };
    while offset < end {
        let step = usize::try_from(end - offset)
            .map_or(SENDFILE_STEP_BYTES, |n| n.min(SENDFILE_STEP_BYTES));
        match rustix::fs::sendfile(sock, file, Some(&mut offset), step) {
            Ok(0) => {
                let e = io::Error::other(format!(
                    "the image file ends at byte {offset}, before byte {end}"
                ));
                return (offset, Err(e));
            }
            Ok(_) | Err(Errno::INTR) => {}
            Err(Errno::AGAIN) => {
                let mut fds = [PollFd::new(sock, PollFlags::OUT)];
                match rustix::event::poll(&mut fds, Some(&stall)) {
                    Ok(0) => return (offset, Ok(())),
                    Ok(_) | Err(Errno::INTR) => {}
                    Err(e) => return (offset, Err(e.into())),
                }
            }
            Err(e) => return (offset, Err(e.into())),
        }
    }
    (offset, Ok(()))
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use actix_web::body::SizedStream;
    use actix_web::{App, HttpRequest, HttpResponse, web};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    const FILE_BYTES: usize = 12 << 20;

    fn file_bytes() -> Vec<u8> {
        (0..FILE_BYTES).map(|i| (i * 7 % 251) as u8).collect()
    }

    /// A body that fails if it is ever read.
    fn unreadable(
        len: u64,
    ) -> SizedStream<impl futures_util::Stream<Item = Result<Bytes, actix_web::Error>>> {
        SizedStream::new(
            len,
            futures_util::stream::once(async {
                Err(actix_web::error::ErrorInternalServerError(
                    "the body of a sendfile response was read",
                ))
            }),
        )
    }

    #[derive(serde::Deserialize)]
    struct Region {
        off: u64,
        len: u64,
    }

    async fn region(file: web::Data<Arc<std::fs::File>>, q: web::Query<Region>) -> HttpResponse {
        let mut res = HttpResponse::Ok();
        res.extensions_mut().insert(SendFile {
            file: Arc::clone(&file),
            offset: q.off,
            length: q.len,
            sent: Rc::default(),
        });
        res.body(unreadable(q.len))
    }

    /// A sendfile extension whose length is not the body's: the body is sent instead.
    async fn mismatch(file: web::Data<Arc<std::fs::File>>) -> HttpResponse {
        let mut res = HttpResponse::Ok();
        res.extensions_mut().insert(SendFile {
            file: Arc::clone(&file),
            offset: 0,
            length: 10,
            sent: Rc::default(),
        });
        res.body("from the body")
    }

    async fn short() -> HttpResponse {
        HttpResponse::Ok().body(SizedStream::new(
            1000,
            futures_util::stream::iter([Ok::<_, actix_web::Error>(Bytes::from_static(
                b"0123456789",
            ))]),
        ))
    }

    async fn echo(body: web::Bytes) -> HttpResponse {
        HttpResponse::Ok().body(body)
    }

    async fn host(req: HttpRequest) -> HttpResponse {
        let host = req.headers().get(HOST).map(|h| h.as_bytes().to_vec());
        HttpResponse::Ok().body(host.unwrap_or_default())
    }

    async fn chunks() -> HttpResponse {
        let parts = (0..3).map(|i| Ok::<_, actix_web::Error>(Bytes::from(format!("part{i};"))));
        HttpResponse::Ok().streaming(futures_util::stream::iter(parts))
    }

    struct TestServer {
        addr: SocketAddr,
        handle: actix_server::ServerHandle,
        _dir: tempfile::TempDir,
    }

    async fn start() -> TestServer {
        start_with(kept(Some(TEST_IDLE))).await
    }

    /// How long the test server keeps an idle connection (actix-web's default).
    const TEST_IDLE: Duration = Duration::from_secs(5);

    fn kept(idle: Option<Duration>) -> KeepAlive {
        KeepAlive {
            enabled: true,
            idle,
        }
    }

    fn closing(idle: Option<Duration>) -> KeepAlive {
        KeepAlive {
            enabled: false,
            idle,
        }
    }

    async fn start_with(keep_alive: KeepAlive) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("image");
        std::fs::File::create(&path)
            .and_then(|mut f| f.write_all(&file_bytes()))
            .expect("write the test file");
        let file = Arc::new(std::fs::File::open(&path).expect("open the test file"));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = serve(listener, "http1-test", 1, 5, keep_alive, move || {
            App::new()
                .app_data(web::Data::new(file.clone()))
                .route("/region", web::route().to(region))
                .route("/mismatch", web::get().to(mismatch))
                .route("/short", web::get().to(short))
                .route("/echo", web::post().to(echo))
                .route("/host", web::get().to(host))
                .route("/chunks", web::get().to(chunks))
                .route(
                    "/reject",
                    web::post().to(|| async { HttpResponse::Conflict().body("no") }),
                )
        })
        .expect("serve");
        let handle = server.handle();
        actix_web::rt::spawn(server);
        TestServer {
            addr,
            handle,
            _dir: dir,
        }
    }

    /// Sends `request` on a new connection and reads until the server closes it.
    /// The server still answers a new connection with the right bytes.
    async fn assert_still_serves(addr: SocketAddr) {
        let res = parse_all(
            &exchange(
                addr,
                b"GET /region?off=0&len=10 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            )
            .await,
        );
        assert_eq!(res[0].body, file_bytes()[..10]);
    }

    async fn exchange(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.write_all(request).await.expect("send");
        read_to_close(&mut s).await
    }

    async fn read_to_close(s: &mut TcpStream) -> Vec<u8> {
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
            .await
            .expect("the server closes the connection")
            .expect("read");
        out
    }

    /// One parsed response: status, lower-cased headers, body (de-chunked).
    #[derive(Debug)]
    struct Parsed {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    }

    impl Parsed {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        }
    }

    /// Splits a byte stream into the responses it holds.
    fn parse_all(mut raw: &[u8]) -> Vec<Parsed> {
        let mut out = Vec::new();
        while !raw.is_empty() {
            let end = raw
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .expect("a complete head");
            let head = std::str::from_utf8(&raw[..end]).expect("ASCII head");
            raw = &raw[end + 4..];
            let mut lines = head.split("\r\n");
            let status = lines.next().expect("status line")[9..12]
                .parse()
                .expect("status");
            let headers: Vec<(String, String)> = lines
                .map(|l| {
                    let (n, v) = l.split_once(':').expect("header");
                    (n.trim().to_ascii_lowercase(), v.trim().to_string())
                })
                .collect();
            let mut p = Parsed {
                status,
                headers,
                body: Vec::new(),
            };
            if let Some(len) = p.header("content-length") {
                let len: usize = len.parse().expect("length");
                p.body = raw[..len].to_vec();
                raw = &raw[len..];
            } else if p.header("transfer-encoding") == Some("chunked") {
                loop {
                    let eol = raw.windows(2).position(|w| w == b"\r\n").expect("size");
                    let size =
                        usize::from_str_radix(std::str::from_utf8(&raw[..eol]).expect("hex"), 16)
                            .expect("chunk size");
                    raw = &raw[eol + 2..];
                    p.body.extend_from_slice(&raw[..size]);
                    raw = &raw[size + 2..];
                    if size == 0 {
                        break;
                    }
                }
            }
            out.push(p);
        }
        out
    }

    #[actix_web::test]
    async fn a_file_region_is_sent_without_reading_the_body() {
        let srv = start().await;
        let raw = exchange(
            srv.addr,
            b"GET /region?off=1000&len=250000 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        let res = parse_all(&raw);
        assert_eq!(res.len(), 1, "{res:?}");
        assert_eq!(res[0].status, 200);
        assert_eq!(res[0].header("content-length"), Some("250000"));
        // The body stream fails when read, so these bytes can only have come from the file.
        assert!(res[0].body == file_bytes()[1000..251_000], "wrong bytes");
        // A region whose length is not the body's is ignored: the body is sent.
        let res = parse_all(
            &exchange(
                srv.addr,
                b"GET /mismatch HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            )
            .await,
        );
        assert_eq!(res[0].body, b"from the body");
        // HEAD answers the head only.
        let res = exchange(
            srv.addr,
            b"HEAD /region?off=0&len=5 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        let text = String::from_utf8(res).expect("ASCII");
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(text.ends_with("\r\n\r\n"), "HEAD sent a body: {text:?}");
        srv.handle.stop(false).await;
    }

    #[actix_web::test]
    async fn a_body_shorter_than_its_length_ends_the_connection() {
        let srv = start().await;
        // Keep-alive asked for, but the short body leaves the client no way to find the next
        // response: the connection is closed after what there was.
        let started = std::time::Instant::now();
        let raw = exchange(srv.addr, b"GET /short HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(
            started.elapsed() < TEST_IDLE / 2,
            "closed at once, not by the idle timeout"
        );
        let text = String::from_utf8(raw).expect("ASCII");
        assert!(text.contains("content-length: 1000"), "{text}");
        assert!(text.ends_with("\r\n\r\n0123456789"), "{text:?}");
        // The server goes on serving.
        assert_still_serves(srv.addr).await;
        srv.handle.stop(false).await;
    }

    /// A client that stops reading for longer than a sending thread waits: the thread is
    /// given back, the send resumes when the client reads again, and every byte arrives in
    /// order. A client that goes away mid-file costs the server nothing further: the next
    /// connection is served.
    #[actix_web::test]
    async fn a_file_region_survives_a_stalled_reader_and_a_vanished_one() {
        let srv = start().await;
        let len = FILE_BYTES - 7;
        let request =
            format!("GET /region?off=7&len={len} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let sock = tokio::net::TcpSocket::new_v4().expect("socket");
        sock.set_recv_buffer_size(4096).expect("SO_RCVBUF");
        let mut s = sock.connect(srv.addr).await.expect("connect");
        s.write_all(request.as_bytes()).await.expect("send");
        let mut first = vec![0u8; 4096];
        let n = s.read(&mut first).await.expect("read");
        first.truncate(n);
        // Longer than SENDFILE_STALL, twice, with the server's socket full.
        for _ in 0..2 {
            tokio::time::sleep(SENDFILE_STALL * 3).await;
            let mut more = vec![0u8; 64 << 10];
            let n = s.read(&mut more).await.expect("read");
            first.extend_from_slice(&more[..n]);
        }
        first.extend(read_to_close(&mut s).await);
        let res = parse_all(&first);
        assert_eq!(res.len(), 1);
        assert_eq!(res[0].status, 200);
        assert!(res[0].body == file_bytes()[7..], "wrong bytes after stalls");

        let mut gone = TcpStream::connect(srv.addr).await.expect("connect");
        gone.write_all(request.as_bytes()).await.expect("send");
        let mut some = vec![0u8; 1024];
        let _ = gone.read(&mut some).await.expect("read");
        drop(gone);
        assert_still_serves(srv.addr).await;
        srv.handle.stop(false).await;
    }

    #[actix_web::test]
    async fn keep_alive_and_pipelined_requests_are_answered_in_order() {
        let srv = start().await;
        let mut req = Vec::new();
        req.extend_from_slice(b"GET /region?off=0&len=100000 HTTP/1.1\r\nHost: x\r\n\r\n");
        req.extend_from_slice(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
              5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        );
        req.extend_from_slice(b"GET /chunks HTTP/1.1\r\nHost: x\r\n\r\n");
        req.extend_from_slice(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc");
        req.extend_from_slice(
            b"GET /region?off=5&len=10 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        let res = parse_all(&exchange(srv.addr, &req).await);
        let statuses: Vec<u16> = res.iter().map(|r| r.status).collect();
        assert_eq!(statuses, [200, 200, 200, 200, 200]);
        assert!(res[0].body == file_bytes()[..100_000], "first download");
        assert_eq!(res[1].body, b"hello world");
        assert_eq!(res[2].header("transfer-encoding"), Some("chunked"));
        assert_eq!(res[2].body, b"part0;part1;part2;");
        assert_eq!(res[3].body, b"abc");
        assert_eq!(res[4].body, file_bytes()[5..15]);
        srv.handle.stop(false).await;
    }

    #[actix_web::test]
    async fn expect_100_continue_is_answered_before_the_body_is_sent() {
        let srv = start().await;
        let mut s = TcpStream::connect(srv.addr).await.expect("connect");
        s.write_all(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\
              Content-Length: 4\r\nConnection: close\r\n\r\n",
        )
        .await
        .expect("send head");
        let mut interim = [0u8; 25];
        tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut interim))
            .await
            .expect("100 Continue arrives without the body")
            .expect("read");
        assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
        s.write_all(b"data").await.expect("send body");
        let res = parse_all(&read_to_close(&mut s).await);
        assert_eq!((res[0].status, res[0].body.as_slice()), (200, &b"data"[..]));
        srv.handle.stop(false).await;
    }

    #[actix_web::test]
    async fn bad_heads_get_400_or_431_and_the_connection_closes() {
        let srv = start().await;
        let raw = exchange(srv.addr, b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n").await;
        let text = String::from_utf8(raw).expect("ASCII");
        assert!(text.starts_with("HTTP/1.1 400 "), "{text}");
        assert!(text.contains("connection: close"), "{text}");
        let huge = format!(
            "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
            "a".repeat(200_000)
        );
        let text = String::from_utf8(exchange(srv.addr, huge.as_bytes()).await).expect("ASCII");
        assert!(text.starts_with("HTTP/1.1 431 "), "{text}");
        srv.handle.stop(false).await;
    }

    #[actix_web::test]
    async fn discard_stops_at_its_bound_at_the_end_at_an_error_or_in_time() {
        let kib = Bytes::from_static(&[0u8; 1024]);
        // An endless body: read up to the bound, not one chunk more.
        let pulled = Rc::new(Cell::new(0u32));
        let count = Rc::clone(&pulled);
        let endless = futures_util::stream::repeat_with(move || {
            count.set(count.get() + 1);
            Ok::<_, io::Error>(kib.clone())
        });
        let ten_kib = Drain {
            limit_bytes: 10 << 10,
            within: None,
        };
        discard(endless, ten_kib).await;
        assert_eq!(pulled.get(), 10);
        // A body that ends or fails first: read to there.
        let pulled = Rc::new(Cell::new(0u32));
        let count = Rc::clone(&pulled);
        let failing = futures_util::stream::iter([
            Ok(Bytes::from_static(b"abc")),
            Err(io::Error::other("reset")),
            Ok(Bytes::from_static(b"never read")),
        ])
        .inspect(move |_| count.set(count.get() + 1));
        discard(failing, Drain::REFUSED_UPLOAD).await;
        assert_eq!(pulled.get(), 2);
        let short = futures_util::stream::iter([Ok::<_, io::Error>(Bytes::from_static(b"abc"))]);
        tokio::time::timeout(
            Duration::from_secs(5),
            discard(short, Drain::REFUSED_UPLOAD),
        )
        .await
        .expect("the end of the body ends the drain");
        // A client that sends nothing more: the time bound ends the drain.
        let silent = futures_util::stream::pending::<Result<Bytes, io::Error>>();
        let quick = Drain {
            limit_bytes: 1 << 20,
            within: Some(Duration::from_millis(50)),
        };
        tokio::time::timeout(Duration::from_secs(5), discard(silent, quick))
            .await
            .expect("the time bound ends the drain");
    }

    #[actix_web::test]
    async fn a_body_left_unread_does_not_cost_the_client_its_answer() {
        let srv = start().await;
        let body = vec![b'z'; 4 << 20];
        let mut s = TcpStream::connect(srv.addr).await.expect("connect");
        let head = format!(
            "POST /reject HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).await.expect("head");
        // The server answers at once and reads what is still coming; the whole body can be
        // written and the answer read afterwards.
        s.write_all(&body)
            .await
            .expect("the body is accepted while the server drains it");
        let res = parse_all(&read_to_close(&mut s).await);
        assert_eq!(res[0].status, 409);
        assert_eq!(res[0].header("connection"), Some("close"));
        assert_eq!(res[0].body, b"no");
        srv.handle.stop(false).await;
    }

    #[actix_web::test]
    async fn a_head_without_host_gets_the_served_address() {
        let srv = start().await;
        let res = parse_all(&exchange(srv.addr, b"GET /host HTTP/1.0\r\n\r\n").await);
        assert_eq!(res[0].body, srv.addr.to_string().as_bytes());
        srv.handle.stop(false).await;
    }

    #[actix_web::test]
    async fn a_graceful_stop_closes_idle_connections_at_once() {
        let srv = start().await;
        let mut s = TcpStream::connect(srv.addr).await.expect("connect");
        s.write_all(b"GET /host HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("send");
        let mut first = vec![0u8; 256];
        let n = s.read(&mut first).await.expect("answer");
        assert!(first[..n].starts_with(b"HTTP/1.1 200"));
        let started = std::time::Instant::now();
        let stop = srv.handle.stop(true);
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut rest))
            .await
            .expect("the idle connection is closed well before the keep-alive timeout")
            .expect("read");
        assert!(rest.is_empty());
        assert!(started.elapsed() < TEST_IDLE);
        stop.await;
    }

    /// Sends a keep-alive `GET /host` on `s` and reads its one answer (`host` echoes `x`).
    async fn one_request(s: &mut TcpStream) -> String {
        s.write_all(b"GET /host HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("send");
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        while !got.ends_with(b"\r\n\r\nx") {
            let n = s.read(&mut buf).await.expect("read");
            assert!(
                n > 0,
                "closed before the answer: {:?}",
                String::from_utf8_lossy(&got)
            );
            got.extend_from_slice(&buf[..n]);
        }
        String::from_utf8(got).expect("ASCII")
    }

    #[actix_web::test]
    async fn an_idle_connection_is_closed_after_the_configured_time() {
        let srv = start_with(kept(Some(Duration::from_secs(1)))).await;
        let mut s = TcpStream::connect(srv.addr).await.expect("connect");
        let head = one_request(&mut s).await;
        assert!(!head.contains("connection: close"), "{head}");
        let idle_from = std::time::Instant::now();
        let rest = read_to_close(&mut s).await;
        assert!(rest.is_empty(), "{rest:?}");
        let waited = idle_from.elapsed();
        assert!(
            waited >= Duration::from_millis(900) && waited < Duration::from_secs(4),
            "closed after {waited:?}"
        );
        srv.handle.stop(false).await;
    }

    #[actix_web::test]
    async fn without_an_idle_limit_a_connection_waits_for_its_client() {
        let srv = start_with(kept(None)).await;
        let mut s = TcpStream::connect(srv.addr).await.expect("connect");
        one_request(&mut s).await;
        // Longer than actix-web's own default (5 s), which used to close it.
        tokio::time::sleep(TEST_IDLE + Duration::from_secs(1)).await;
        let head = one_request(&mut s).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        srv.handle.stop(false).await;
    }

    #[actix_web::test]
    async fn with_keep_alive_off_every_response_closes_its_connection() {
        let srv = start_with(closing(Some(Duration::from_secs(1)))).await;
        let started = std::time::Instant::now();
        // The client asks to keep the connection; the server says close and closes.
        let raw = exchange(srv.addr, b"GET /host HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(started.elapsed() < TEST_IDLE / 2, "closed at once");
        let res = parse_all(&raw);
        assert_eq!(res.len(), 1, "{res:?}");
        assert_eq!(res[0].status, 200);
        assert_eq!(res[0].header("connection"), Some("close"));
        assert_eq!(res[0].body, b"x");
        srv.handle.stop(false).await;
    }

    #[actix_web::test]
    async fn with_keep_alive_off_a_silent_connection_is_still_closed_after_the_idle_time() {
        let srv = start_with(closing(Some(Duration::from_secs(1)))).await;
        let mut s = TcpStream::connect(srv.addr).await.expect("connect");
        let started = std::time::Instant::now();
        let rest = read_to_close(&mut s).await;
        assert!(rest.is_empty(), "{rest:?}");
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{:?}",
            started.elapsed()
        );
        srv.handle.stop(false).await;
    }

    #[actix_web::test]
    async fn a_head_begun_after_a_long_idle_still_has_its_own_deadline() {
        let srv = start_with(kept(None)).await;
        let mut s = TcpStream::connect(srv.addr).await.expect("connect");
        s.write_all(b"GET /host HTTP/1.1\r\nHo")
            .await
            .expect("send");
        let started = std::time::Instant::now();
        let raw = read_to_close(&mut s).await;
        let text = String::from_utf8(raw).expect("ASCII");
        assert!(text.starts_with("HTTP/1.1 408 "), "{text}");
        assert!(started.elapsed() < REQUEST_HEAD_TIMEOUT + Duration::from_secs(2));
        srv.handle.stop(false).await;
    }

    #[actix_web::test]
    async fn a_head_that_stalls_gets_408() {
        let srv = start().await;
        let raw = exchange(srv.addr, b"GET /host HTTP/1.1\r\nHost").await;
        let text = String::from_utf8(raw).expect("ASCII");
        assert!(text.starts_with("HTTP/1.1 408 "), "{text}");
        srv.handle.stop(false).await;
    }
}

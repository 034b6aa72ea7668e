//! The plumbing in a real actix app, asserting the bytes each daemon's clients get.

use std::sync::{Mutex, OnceLock};

use actix_web::http::header::{ALLOW, CONTENT_TYPE};
use actix_web::http::{ConnectionType, StatusCode};
use actix_web::middleware::from_fn;
use actix_web::{App, HttpResponse, test, web};
use glance_model::ErrorKind;

use super::{Daemon, access_log, errors, json_config, not_allowed, path_config, request_id};

/// A header's value as text ("" when absent).
fn hdr(headers: &actix_web::http::header::HeaderMap, name: impl AsRef<str>) -> &str {
    headers
        .get(name.as_ref())
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// Answers only in JSON, as glance-registry does (with wording of its own: the tests check
/// the mechanism; each daemon's wording is checked by its end-to-end tests).
struct Plain;

impl Daemon for Plain {
    const ACCESS_LOG_TARGET: &'static str = "test_plain::access";
    const NEGOTIATES_ERROR_FORMAT: bool = false;
    const CLOSES_AFTER_UNREAD_BODY: bool = false;
    const JSON_NEEDS_CONTENT_TYPE: bool = true;
    const MALFORMED_JSON: &'static str = "Unreadable JSON";

    fn method_not_allowed(allow: &str) -> String {
        format!("Only {allow} here")
    }
}

/// Negotiates JSON or HTML and closes after an unread body, as glance-api does.
struct Negotiating;

impl Daemon for Negotiating {
    const ACCESS_LOG_TARGET: &'static str = "test_negotiating::access";
    const NEGOTIATES_ERROR_FORMAT: bool = true;
    const CLOSES_AFTER_UNREAD_BODY: bool = true;
    const JSON_NEEDS_CONTENT_TYPE: bool = false;
    const MALFORMED_JSON: &'static str = "Bad JSON body";

    fn method_not_allowed(allow: &str) -> String {
        format!("Use one of {allow}")
    }

    fn plain_error_message(status: StatusCode, text: &str) -> String {
        format!("{}: {text}", status.as_u16())
    }
}

async fn plain_error() -> HttpResponse {
    HttpResponse::BadRequest()
        .content_type("text/plain")
        .body("  bad header  ")
}

async fn json_echo(body: web::Json<serde_json::Value>) -> HttpResponse {
    HttpResponse::Ok().json(body.into_inner())
}

async fn numbered(n: web::Path<u32>) -> HttpResponse {
    HttpResponse::Ok().body(n.to_string())
}

macro_rules! app {
    ($d:ty) => {
        test::init_service(
            App::new()
                .wrap(from_fn(errors::shape::<$d>))
                .wrap(from_fn(request_id))
                .wrap(from_fn(access_log::log::<$d>))
                .app_data(json_config::<$d>())
                .app_data(path_config())
                .service(
                    web::resource("/things")
                        .route(web::get().to(plain_error))
                        .route(web::post().to(json_echo))
                        .default_service(web::to(not_allowed::<$d>("GET, POST"))),
                )
                .service(web::resource("/n/{n}").route(web::get().to(numbered))),
        )
        .await
    };
}

#[actix_web::test]
async fn every_kind_has_its_status() {
    for (kind, status) in [
        (ErrorKind::BadRequest, 400),
        (ErrorKind::Unauthorized, 401),
        (ErrorKind::Forbidden, 403),
        (ErrorKind::NotFound, 404),
        (ErrorKind::Conflict, 409),
        (ErrorKind::Gone, 410),
        (ErrorKind::TooLarge, 413),
        (ErrorKind::UnsupportedMediaType, 415),
        (ErrorKind::RangeNotSatisfiable, 416),
        (ErrorKind::Unavailable, 503),
        (ErrorKind::Internal, 500),
    ] {
        assert_eq!(errors::status_of(kind).as_u16(), status, "{kind:?}");
    }
}

#[actix_web::test]
async fn an_error_response_is_glance_json() {
    let res = errors::error_response(StatusCode::NOT_FOUND, "No image found with ID x");
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(hdr(res.headers(), CONTENT_TYPE), "application/json");
    let body = actix_web::body::to_bytes(res.into_body())
        .await
        .unwrap_or_default();
    assert_eq!(
        body,
        r#"{"message":"No image found with ID x","code":"404 Not Found","title":"Not Found"}"#
    );
}

#[actix_web::test]
async fn a_wrong_method_gets_405_with_allow_and_the_daemons_message() {
    let app = app!(Plain);
    let res = test::call_service(
        &app,
        test::TestRequest::delete().uri("/things").to_request(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(hdr(res.headers(), ALLOW), "GET, POST");
    assert!(res.headers().contains_key("x-openstack-request-id"));
    assert_eq!(
        test::read_body(res).await,
        r#"{"message":"Only GET, POST here","code":"405 Method Not Allowed","title":"Method Not Allowed"}"#
    );
    let app = app!(Negotiating);
    let req = test::TestRequest::put()
        .uri("/things")
        .insert_header(("accept", "application/json"))
        .to_request();
    let res = test::call_service(&app, req).await;
    assert_eq!(hdr(res.headers(), ALLOW), "GET, POST");
    assert_eq!(
        test::read_body(res).await,
        r#"{"message":"Use one of GET, POST","code":"405 Method Not Allowed","title":"Method Not Allowed"}"#
    );
}

#[actix_web::test]
async fn the_request_id_is_kept_when_usable_and_made_otherwise() {
    let app = app!(Plain);
    let id = |res: &actix_web::dev::ServiceResponse<_>| {
        hdr(res.headers(), "x-openstack-request-id").to_string()
    };
    let req = test::TestRequest::get()
        .uri("/n/1")
        .insert_header(("x-openstack-request-id", "req-mine"))
        .to_request();
    assert_eq!(id(&test::call_service(&app, req).await), "req-mine");
    let long = "x".repeat(super::MAX_REQUEST_ID + 1);
    let req = test::TestRequest::get()
        .uri("/n/1")
        .insert_header(("x-openstack-request-id", long.as_str()))
        .to_request();
    let made = id(&test::call_service(&app, req).await);
    assert!(made.starts_with("req-") && made.len() == 40, "{made}");
    let req = test::TestRequest::get().uri("/n/1").to_request();
    let other = id(&test::call_service(&app, req).await);
    assert!(other.starts_with("req-") && other != made, "{other}");
}

#[actix_web::test]
async fn plain_text_errors_take_the_daemons_shape() {
    // Always JSON, the text as the message, other headers kept.
    let app = app!(Plain);
    let res = test::call_service(&app, test::TestRequest::get().uri("/things").to_request()).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(hdr(res.headers(), CONTENT_TYPE), "application/json");
    assert!(res.headers().contains_key("x-openstack-request-id"));
    assert_eq!(
        test::read_body(res).await,
        r#"{"message":"bad header","code":"400 Bad Request","title":"Bad Request"}"#
    );
    // A HEAD answer keeps its empty body.
    let req = test::TestRequest::default()
        .method(actix_web::http::Method::HEAD)
        .uri("/things")
        .to_request();
    let res = test::call_service(&app, req).await;
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    // Negotiated: JSON to a JSON client, with the daemon's wording of plain text...
    let app = app!(Negotiating);
    let req = test::TestRequest::get()
        .uri("/things")
        .insert_header(("accept", "application/json"))
        .to_request();
    let res = test::call_service(&app, req).await;
    assert_eq!(hdr(res.headers(), CONTENT_TYPE), "application/json");
    assert_eq!(
        test::read_body(res).await,
        r#"{"message":"400: bad header","code":"400 Bad Request","title":"Bad Request"}"#
    );
    // ...and webob's HTML page to others, also for errors written as JSON.
    let req = test::TestRequest::delete().uri("/things").to_request();
    let res = test::call_service(&app, req).await;
    assert_eq!(hdr(res.headers(), CONTENT_TYPE), "text/html; charset=UTF-8");
    assert_eq!(
        test::read_body(res).await,
        "<html>\n <head>\n  <title>405 Method Not Allowed</title>\n </head>\n <body>\n  \
         <h1>405 Method Not Allowed</h1>\n  Use one of GET, POST<br /><br />\n\n\n\n </body>\n</html>"
    );
}

#[actix_web::test]
async fn an_error_to_a_request_with_a_body_closes_only_where_the_daemon_says() {
    let with_body = || {
        test::TestRequest::get()
            .uri("/things")
            .insert_header(("content-length", "5"))
            .set_payload("hello")
            .to_request()
    };
    let app = app!(Plain);
    let res = test::call_service(&app, with_body()).await;
    assert_ne!(
        res.response().head().connection_type(),
        ConnectionType::Close
    );
    let app = app!(Negotiating);
    let res = test::call_service(&app, with_body()).await;
    assert_eq!(
        res.response().head().connection_type(),
        ConnectionType::Close
    );
}

#[actix_web::test]
async fn bad_bodies_and_paths_get_json_errors() {
    let app = app!(Plain);
    let req = test::TestRequest::post()
        .uri("/things")
        .insert_header(("content-type", "application/json"))
        .set_payload("{nope")
        .to_request();
    let res = test::call_service(&app, req).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let body: glance_model::wire::ErrorBody =
        serde_json::from_slice(&test::read_body(res).await).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        body.message.starts_with("Unreadable JSON: "),
        "{}",
        body.message
    );
    let req = test::TestRequest::post()
        .uri("/things")
        .insert_header(("content-type", "application/json"))
        .set_payload(vec![b' '; (1 << 20) + 1])
        .to_request();
    let res = test::call_service(&app, req).await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // glance-api takes JSON without a JSON content type; the registry does not.
    let req = test::TestRequest::post()
        .uri("/things")
        .set_payload("{}")
        .to_request();
    assert_eq!(
        test::call_service(&app, req).await.status(),
        StatusCode::BAD_REQUEST
    );
    let app = app!(Negotiating);
    let req = test::TestRequest::post()
        .uri("/things")
        .set_payload("{}")
        .to_request();
    assert_eq!(test::call_service(&app, req).await.status(), StatusCode::OK);
    let res = test::call_service(&app, test::TestRequest::get().uri("/n/x").to_request()).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

/// Keeps the lines written on the test daemons' access targets.
struct Capture(Mutex<Vec<(String, String)>>);

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        if record.target().ends_with("::access")
            && let Ok(mut lines) = self.0.lock()
        {
            lines.push((record.target().to_string(), record.args().to_string()));
        }
    }

    fn flush(&self) {}
}

fn captured() -> &'static Capture {
    static CAPTURE: OnceLock<&'static Capture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let capture: &'static Capture = Box::leak(Box::new(Capture(Mutex::new(Vec::new()))));
        let _ = log::set_logger(capture);
        log::set_max_level(log::LevelFilter::Info);
        capture
    })
}

#[actix_web::test]
async fn the_access_line_has_the_one_format() {
    let capture = captured();
    let app = app!(Plain);
    let req = test::TestRequest::get()
        .uri("/n/12345?x=1")
        .peer_addr("192.0.2.7:5555".parse().unwrap_or_else(|e| panic!("{e}")))
        .insert_header(("x-openstack-request-id", "req-access-test"))
        .to_request();
    let res = test::call_service(&app, req).await;
    assert_eq!(test::read_body(res).await, "12345");
    let lines = capture.0.lock().map(|l| l.clone()).unwrap_or_default();
    let (target, line) = lines
        .iter()
        .find(|(_, l)| l.starts_with("req-access-test "))
        .unwrap_or_else(|| panic!("no access line in {lines:?}"));
    assert_eq!(target, "test_plain::access");
    let (head, ms) = line.rsplit_once(' ').unwrap_or_default();
    assert_eq!(
        head,
        "req-access-test 192.0.2.7 \"GET /n/12345?x=1 HTTP/1.1\" 200 5"
    );
    let ms = ms.strip_suffix("ms").unwrap_or_else(|| panic!("{line}"));
    assert_eq!(ms.split_once('.').map(|(_, f)| f.len()), Some(6), "{line}");
}

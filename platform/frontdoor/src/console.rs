//! `GET /console`: the live console, static files built into the binary (nothing is fetched
//! at run time), served with a Content-Security-Policy that lets the page load only its own
//! script and style and talk only to this origin.

use http::{HeaderValue, Response, StatusCode};

use crate::body::{ResponseBody, full_body};
use crate::error::ApiError;

const INDEX: &str = include_str!("../console/index.html");
const SCRIPT: &str = include_str!("../console/console.js");
const STYLE: &str = include_str!("../console/console.css");

/// No inline script or style, no other origin, no framing, no form posts elsewhere.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// `file` is the path after `/console` (`""`, `/`, `/console.js`, ...).
pub fn serve(file: &str) -> Result<Response<ResponseBody>, ApiError> {
    let (body, content_type) = match file {
        "" | "/" | "/index.html" => (INDEX, "text/html; charset=utf-8"),
        "/console.js" => (SCRIPT, "text/javascript; charset=utf-8"),
        "/console.css" => (STYLE, "text/css; charset=utf-8"),
        _ => return Err(ApiError::not_found(format!("no console file `{file}`"))),
    };
    let mut response = Response::new(full_body(body));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        http::header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        http::header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        http::header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(http::header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // The files change with the binary: check again on each load.
    headers.insert(http::header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}

//! `GET /api/openapi.json`: the OpenAPI 3 description of this API, checked in beside the
//! router (a test holds the two to each other).

use http::{HeaderValue, Response};

use crate::body::{ResponseBody, full_body};

pub const DOCUMENT: &str = include_str!("../openapi.json");

pub fn document() -> Response<ResponseBody> {
    let mut response = Response::new(full_body(DOCUMENT));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

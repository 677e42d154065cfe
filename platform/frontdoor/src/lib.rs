//! The front door: hyper 1 (HTTP/1.1 and HTTP/2) serving Kiln's HTTP API.
//!
//! **Invariant:** only the front door knows HTTP status codes. Every error of every part is
//! classified here, once, by who is at fault (client 4xx, function 502/504, platform
//! 500/503), logged with its real cause, and answered as
//! `{"error": {"code": "...", "message": "..."}}`.

mod admin_api;
mod app;
mod audit;
mod auth_failures;
mod body;
mod client_addr;
mod connection_limit;
mod console;
mod error;
mod events_sse;
mod events_ws;
mod functions_api;
mod health;
mod instances_api;
mod invoke;
mod lingering_close;
mod logs_api;
mod openapi;
mod routes;
mod server;
mod unread_body;
mod upload_body;
mod webhook_api;
mod webhook_cache;

pub use app::{App, AppConfig, AppParts};
pub use client_addr::TrustedProxies;
pub use openapi::DOCUMENT as OPENAPI_DOCUMENT;
pub use routes::{ROUTES, Route};
pub use server::{ServerConfig, serve};

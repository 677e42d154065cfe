//! The end-to-end harness: starts a real `kilnd` on a free port with its own fresh
//! PostgreSQL database and data folder, and talks to it over HTTP.
//!
//! Inputs from the environment (set by `scripts/test.sh`): `DATABASE_URL` (a role that may
//! create databases), `KILND_BIN`, `KILN_TESTBED` and `KILN_IMAGES` (default: this workspace's
//! build outputs).

mod browser;
#[cfg(test)]
mod cgroup_layouts;
mod cgroups;
mod client;
mod fake_internet;
mod instances;
mod kiln;
mod metrics;
mod oci_registry;
mod private_postgres;
mod raw_http;
mod store_fixtures;

pub use browser::Browser;
pub use cgroups::cgroup_dirs;
pub use client::{Reply, Streaming};
pub use fake_internet::{FAKE_HTTP_PORTS, FakeInternet};
pub use kiln::{
    ADMIN_TOKEN, Kiln, TestDatabase, function_path, image_path, kiln_cli_path, kilnd_path, run_sql,
    tenant_secret, testbed_path,
};
pub use metrics::sample;
pub use oci_registry::OciRegistry;
pub use private_postgres::PrivatePostgres;
pub use raw_http::{RawConnection, RawResponse, request_head};
pub use store_fixtures::{create_test_tenant, durable_function, migrated_store, test_key, test_version};

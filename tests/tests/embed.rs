//! Kiln embedded in another program (`platform/kiln/examples/embed.rs`, sharing the host's
//! PostgreSQL pool): it serves the same API, runs real containers, and stops cleanly.

use std::path::PathBuf;

use e2e::Kiln;
use http::Method;

/// The example's executable (`cargo build -p kiln --example embed`).
fn embed_path() -> PathBuf {
    std::env::var_os("KILN_EMBED_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| e2e::kilnd_path().with_file_name("examples").join("embed"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_kiln_serves_functions_and_shuts_down_cleanly() {
    // Three starts and stops in the same process first: each must leave nothing that keeps
    // the next from serving (or the process from exiting at the end).
    let mut kiln = Kiln::start_program(&embed_path(), &[("KILN_EMBED_RESTARTS", "3")]).await;
    assert_eq!(kiln.log().matches("kiln stopped").count(), 3, "{}", kiln.log());
    let token = kiln.create_tenant("acme").await;
    assert_eq!(kiln.upload_testbed(&token, "hello", "").await.status, 201);
    let reply = kiln
        .request(Method::POST, "/fn/acme/hello/echo", Some(&token), "embedded")
        .await;
    assert_eq!((reply.status, reply.text().as_str()), (200, "embedded"));
    assert_eq!(kiln.containers().await["warm"], 1);
    assert_eq!(kiln.youki_containers().len(), 1, "one real container runs");
    // The host's shutdown stops Kiln in order: containers deleted, exit status 0.
    assert_eq!(kiln.stop().await, Some(0), "log: {}", kiln.log());
    assert!(
        kiln.youki_containers().is_empty(),
        "{:?}",
        kiln.youki_containers()
    );
    kiln.finish().await;
}

//! Uploads through a real kilnd: versions, bad uploads that leave nothing behind, deletes.

use bytes::Bytes;
use e2e::{Kiln, testbed_path};
use http::Method;

fn entries(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_uploads_get_clear_errors_and_leave_nothing_behind() {
    let kiln = Kiln::start(&[("KILN_MAX_UPLOAD_BYTES", "4096")]).await;
    let token = kiln.create_tenant("acme").await;
    let script = kiln
        .request(
            Method::PUT,
            "/v1/functions/script",
            Some(&token),
            b"#!/bin/sh\necho hi\n".to_vec(),
        )
        .await;
    assert_eq!(
        (script.status, script.error_code().as_str()),
        (400, "invalid_executable"),
        "{}",
        script.text()
    );
    // Just over the limit: small enough that the client finishes sending before kilnd
    // answers 413 and closes, so the test reads the answer rather than a reset.
    let mut oversized = std::fs::read(testbed_path()).unwrap();
    oversized.truncate(8192);
    let too_big = kiln
        .request(Method::PUT, "/v1/functions/huge", Some(&token), oversized)
        .await;
    assert_eq!(
        (too_big.status, too_big.error_code().as_str()),
        (413, "upload_too_large"),
        "{}",
        too_big.text()
    );
    let bad_name = kiln
        .request(
            Method::PUT,
            "/v1/functions/Bad_Name",
            Some(&token),
            b"\x7fELF".to_vec(),
        )
        .await;
    assert_eq!(
        (bad_name.status, bad_name.error_code().as_str()),
        (400, "invalid_name")
    );
    let bad_setting = kiln
        .request(
            Method::PUT,
            "/v1/functions/ok?memory_mb=1",
            Some(&token),
            b"\x7fELF".to_vec(),
        )
        .await;
    assert_eq!(
        (bad_setting.status, bad_setting.error_code().as_str()),
        (400, "invalid_setting")
    );
    assert!(
        bad_setting.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("memory_mb")
    );

    let list = kiln
        .request(Method::GET, "/v1/functions", Some(&token), Bytes::new())
        .await;
    assert_eq!(list.json()["functions"], serde_json::json!([]));
    assert_eq!(entries(&kiln.data_dir.join("blobs")), Vec::<String>::new());
    assert_eq!(entries(&kiln.data_dir.join("rootfs")), Vec::<String>::new());
    kiln.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_are_content_addressed_and_old_ones_stay_invocable() {
    let kiln = Kiln::start(&[]).await;
    let token = kiln.create_tenant("acme").await;
    let first = kiln.upload_testbed(&token, "app", "env=COLOUR=blue").await.json();
    let second = kiln
        .upload_testbed(&token, "app", "env=COLOUR=green")
        .await
        .json();
    assert_eq!(first["version"], 1);
    assert_eq!(second["version"], 2);
    assert_eq!(first["digest"], second["digest"], "same executable, same digest");
    assert_eq!(entries(&kiln.data_dir.join("blobs")).len(), 1, "stored once");

    let show = kiln
        .request(Method::GET, "/v1/functions/app", Some(&token), Bytes::new())
        .await
        .json();
    assert_eq!(show["current_version"], 2);
    assert_eq!(show["versions"].as_array().unwrap().len(), 2);
    let old = kiln
        .request(Method::GET, "/fn/acme/app@1/instance", Some(&token), Bytes::new())
        .await;
    assert_eq!(old.status, 200, "{}", old.text());

    let rollback = kiln
        .request(
            Method::PUT,
            "/v1/functions/app/current",
            Some(&token),
            r#"{"version":1}"#,
        )
        .await;
    assert_eq!(rollback.json()["current_version"], 1);

    let delete = kiln
        .request(Method::DELETE, "/v1/functions/app", Some(&token), Bytes::new())
        .await;
    assert_eq!(delete.status, 204);
    let gone = kiln
        .request(Method::GET, "/fn/acme/app/instance", Some(&token), Bytes::new())
        .await;
    assert_eq!(gone.status, 404);
    assert_eq!(entries(&kiln.data_dir.join("blobs")), Vec::<String>::new());
    let containers = kiln.containers().await;
    assert_eq!(
        containers["warm"], 0,
        "deleting retires the function's containers: {containers}"
    );
    kiln.finish().await;
}

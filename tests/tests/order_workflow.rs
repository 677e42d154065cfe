//! The `order-workflow` example as its README walks through it, on a real kilnd: reserve,
//! cool off, wait for approval, charge; and the expiry path without an approval.

use std::time::Duration;

use e2e::{Kiln, function_path};
use http::Method;
use serde_json::json;

const WITHIN: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_order_is_charged_and_an_unapproved_one_expires() {
    let kiln = Kiln::start(&[]).await;
    let token = kiln.create_tenant("shop").await;
    let executable = std::fs::read(function_path("order-workflow"))
        .expect("order-workflow built (scripts/build-function.sh order-workflow)");
    let upload = kiln
        .request(
            Method::PUT,
            "/v1/functions/order-workflow",
            Some(&token),
            executable,
        )
        .await;
    assert_eq!(upload.status, 201, "{}", upload.text());

    let reply = kiln
        .start_instance(
            &token,
            "order-workflow",
            &json!({"order": 42, "amount_cents": 1999, "cool_off_s": 1}),
            Some("order-42"),
        )
        .await;
    assert_eq!(reply.status, 202, "{}", reply.text());
    let id = reply.json()["id"].as_str().unwrap().to_owned();
    let waiting = kiln
        .wait_instance(&token, &id, WITHIN, |instance| {
            instance["waiting_for"] == "approved"
        })
        .await;
    assert_eq!(waiting["status"], "sleeping");
    assert_eq!(
        kiln.checkpoints(&token, &id).await["reserve"],
        json!({"reservation": "r-42"})
    );
    let signal = kiln.signal(&token, &id, "approved", json!({"by": "ana"})).await;
    assert_eq!(signal.status, 202, "{}", signal.text());
    let done = kiln.wait_status(&token, &id, "completed", WITHIN).await;
    let output = &done["output"];
    assert_eq!(output["status"], "charged", "{done}");
    assert_eq!(output["approved_by"], "ana");
    assert_eq!(output["order"], 42);
    assert_eq!(
        kiln.count_events(&token, &id, "dispatched").await,
        3,
        "reserve+sleep, wait, charge"
    );

    let unapproved = kiln
        .started_instance(
            &token,
            "order-workflow",
            json!({"order": 43, "amount_cents": 500, "cool_off_s": 1, "approval_timeout_s": 1}),
        )
        .await;
    let expired = kiln.wait_status(&token, &unapproved, "completed", WITHIN).await;
    assert_eq!(expired["output"]["status"], "expired", "{expired}");
    assert!(
        kiln.checkpoints(&token, &unapproved)
            .await
            .get("release")
            .is_some()
    );
    kiln.finish().await;
}

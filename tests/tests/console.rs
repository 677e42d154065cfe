//! The live console in a real browser: headless Chromium loads `/console` from kilnd, a
//! tenant pastes a token, and the page shows the tenant's functions, an invocation arriving
//! live over the WebSocket, a function's versions and log tail, and an instance with its
//! history and checkpoints. Screenshots are kept in `target/test-artifacts/`.

use std::path::PathBuf;
use std::time::Duration;

use e2e::{Browser, Kiln};
use http::Method;
use serde_json::json;

fn artifact(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/test-artifacts")
        .join(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_a_tenants_functions_invocations_and_instances_live() {
    let kiln = Kiln::start(&[]).await;
    let acme = kiln.create_tenant("acme").await;
    assert_eq!(kiln.upload_testbed(&acme, "hello", "").await.status, 201);
    let instance = kiln
        .started_instance(&acme, "hello", json!({"scenario": "replay", "sleep_ms": 1}))
        .await;
    kiln.wait_status(&acme, &instance, "completed", Duration::from_secs(30))
        .await;

    // The page and its files come with a strict policy: nothing inline, nothing from elsewhere.
    let page = kiln.request(Method::GET, "/console", None, "").await;
    assert_eq!(page.status, 200);
    let policy = page
        .header("content-security-policy")
        .unwrap_or_default()
        .to_owned();
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(policy.contains(directive), "{directive} missing from {policy}");
    }
    assert!(
        !page.text().contains("<script>"),
        "an inline script would need a looser policy"
    );
    let missing = kiln.request(Method::GET, "/console/secrets.txt", None, "").await;
    assert_eq!(
        (missing.status, missing.error_code().as_str()),
        (404, "not_found")
    );

    let browser = Browser::start().await;
    browser.goto(&format!("{}/console", kiln.url)).await;
    browser
        .wait_for_text("#status", "Not connected", Duration::from_secs(10))
        .await;
    browser.type_into("#token", &acme).await;
    browser.click("#connect").await;
    browser
        .wait_for_text("#status", "Connected", Duration::from_secs(10))
        .await;
    browser
        .wait_for_text("#functions", "hello", Duration::from_secs(10))
        .await;
    // The token is kept for the tab only, and not left in the field.
    let stored = browser
        .execute("return [sessionStorage.getItem('kiln.token'), localStorage.length, document.getElementById('token').value]")
        .await;
    assert_eq!(stored, json!([acme, 0, ""]));

    // An invocation made elsewhere appears in the page as it happens.
    assert_eq!(
        kiln.request(Method::POST, "/fn/acme/hello/echo", Some(&acme), "hi")
            .await
            .status,
        200
    );
    browser
        .wait_for_text("#invocations", "hello", Duration::from_secs(10))
        .await;
    browser
        .wait_for_text("#invocations", "200", Duration::from_secs(5))
        .await;
    browser.screenshot(&artifact("console-live-invocation.png")).await;

    // A function's versions and log tail; an instance's history and checkpoints.
    // A log line carrying markup is shown as text, never parsed as HTML.
    let markup = "%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E";
    let path = format!("/fn/acme/hello/log?lines=2&tag=console{markup}");
    let logged = kiln.request(Method::GET, &path, Some(&acme), "").await;
    assert_eq!(logged.text(), "logged 2");
    // Output reaches the log through a pipe: give it a moment before the tail is read.
    tokio::time::sleep(Duration::from_millis(500)).await;
    browser.click("#functions tr").await;
    let shown = "console<img src=x onerror=alert(1)> out 1";
    browser
        .wait_for_text("#logs", shown, Duration::from_secs(10))
        .await;
    let images = browser
        .execute("return document.querySelectorAll('img').length")
        .await;
    assert_eq!(images, json!(0), "a log line became markup");
    browser
        .wait_for_text("#versions", "executable", Duration::from_secs(10))
        .await;
    browser
        .wait_for_text("#instances", &instance, Duration::from_secs(10))
        .await;
    browser.click("#instances tr").await;
    browser
        .wait_for_text("#instance-events", "completed", Duration::from_secs(10))
        .await;
    // The instance's first checkpoint value, as the page shows it (JSON).
    let stored = kiln.checkpoints(&acme, &instance).await;
    let first = stored["a"].to_string();
    browser
        .wait_for_text("#checkpoints", &first, Duration::from_secs(10))
        .await;
    browser.screenshot(&artifact("console-instance.png")).await;
    assert!(artifact("console-instance.png").metadata().unwrap().len() > 1000);

    // Forgetting the token clears it from the tab.
    browser.click("#forget").await;
    assert_eq!(
        browser
            .execute("return sessionStorage.getItem('kiln.token')")
            .await,
        json!(null)
    );
    browser.quit().await;
    kiln.finish().await;
}

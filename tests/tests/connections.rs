//! Connection limits on a real kilnd: 2,000 idle connections leave calls unaffected, one
//! past `KILN_MAX_CONNECTIONS` gets a clean `503 too_many_connections`, a client that never
//! finishes its headers is cut after `KILN_HEADER_TIMEOUT_MS`; each refusal is counted.

use std::time::{Duration, Instant};

use e2e::{Kiln, RawConnection, RawResponse, sample};
use http::Method;

const IDLE: usize = 2_000;

/// This process and the kilnd it starts hold thousands of sockets.
fn allow_many_open_files() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = limit.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
    assert!(
        limit.rlim_cur as usize > 2 * IDLE + 1000,
        "RLIMIT_NOFILE too low: {limit:?}",
        limit = limit.rlim_cur
    );
}

async fn health(connection: &mut RawConnection) -> std::io::Result<RawResponse> {
    connection
        .send(b"GET /api/health HTTP/1.1\r\nhost: kiln\r\n\r\n")
        .await?;
    connection.response().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_do_not_disturb_calls_and_the_cap_refuses_cleanly() {
    allow_many_open_files();
    let cap = IDLE + 10;
    let kiln = Kiln::start(&[("KILN_MAX_CONNECTIONS", &cap.to_string())]).await;
    let token = kiln.create_tenant("acme").await;
    assert_eq!(kiln.upload_testbed(&token, "hello", "").await.status, 201);
    let mut idle = Vec::with_capacity(IDLE);
    for _ in 0..IDLE {
        idle.push(RawConnection::open(&kiln.url).await.unwrap());
    }
    for call in 0..50 {
        let reply = kiln
            .request(
                Method::POST,
                "/fn/acme/hello/echo",
                Some(&token),
                format!("call {call}"),
            )
            .await;
        assert_eq!((reply.status, reply.text()), (200, format!("call {call}")));
    }
    // Up to the cap (the harness's own connections count too), then one refusal.
    let mut admitted = Vec::new();
    let refused = loop {
        let mut connection = RawConnection::open(&kiln.url).await.unwrap();
        let answer = health(&mut connection).await.unwrap();
        if answer.status != 200 {
            break (answer, connection);
        }
        admitted.push(connection);
        assert!(admitted.len() <= 10, "more connections admitted than the cap");
    };
    let (answer, mut connection) = refused;
    assert_eq!(
        (answer.status, answer.error_code().as_str()),
        (503, "too_many_connections"),
        "{answer:?}"
    );
    assert_eq!(answer.header("retry-after"), Some("1"));
    assert!(answer.closes(), "{answer:?}");
    assert!(connection.closed_cleanly().await.unwrap());
    // An admitted connection still serves, and /metrics tells what happened.
    let metrics = kiln.request(Method::GET, "/metrics", None, "").await.text();
    assert!(
        sample(&metrics, "kiln_connections_open") >= IDLE as f64,
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, "kiln_connection_refusals_total{reason=\"limit\"}"),
        1.0
    );
    // Closed connections give their place back.
    drop(idle);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut connection = RawConnection::open(&kiln.url).await.unwrap();
        if health(&mut connection).await.unwrap().status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "places were not given back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    kiln.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_finishes_its_headers_is_cut() {
    let kiln = Kiln::start(&[("KILN_HEADER_TIMEOUT_MS", "300")]).await;
    let mut slow = RawConnection::open(&kiln.url).await.unwrap();
    let started = Instant::now();
    slow.send(b"GET /api/health HTTP/1.1\r\n").await.unwrap();
    // One header line every 100 ms: never a whole head.
    let cut = loop {
        if slow.closed_within(Duration::from_millis(100)).await {
            break started.elapsed();
        }
        assert!(started.elapsed() < Duration::from_secs(5), "never cut");
        let _ = slow.send(b"x-slow: 1\r\n").await;
    };
    assert!(cut < Duration::from_secs(2), "still open after {cut:?}");
    let metrics = kiln.request(Method::GET, "/metrics", None, "").await.text();
    assert!(
        sample(
            &metrics,
            "kiln_connection_refusals_total{reason=\"header_timeout\"}"
        ) >= 1.0,
        "{metrics}"
    );
    kiln.finish().await;
}

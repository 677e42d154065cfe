//! SIGTERM drains in-flight invocations, answers requests that arrive meanwhile with a clean
//! `503 shutting_down`, and leaves no container, youki state or cgroup behind.

use std::time::Duration;

use bytes::Bytes;
use e2e::{Kiln, RawConnection, RawResponse, request_head};
use http::Method;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_calls_and_deletes_every_container() {
    let mut kiln = Kiln::start(&[]).await;
    let token = kiln.create_tenant("acme").await;
    assert_eq!(kiln.upload_testbed(&token, "slow", "").await.status, 201);
    assert_eq!(kiln.upload_testbed(&token, "idle", "").await.status, 201);
    assert_eq!(
        kiln.request(Method::GET, "/fn/acme/idle/instance", Some(&token), Bytes::new())
            .await
            .status,
        200
    );
    let in_flight = kiln.request(
        Method::GET,
        "/fn/acme/slow/sleep?ms=2000",
        Some(&token),
        Bytes::new(),
    );
    let terminate = async {
        kiln.wait_busy(1, Duration::from_secs(10)).await;
        let containers = kiln.youki_containers();
        assert_eq!(containers.len(), 2, "{containers:?}");
        let cgroups: Vec<_> = containers
            .iter()
            .flat_map(|id| kiln.container_cgroups(id))
            .collect();
        assert!(
            cgroups.len() >= 2 && cgroups.iter().all(|dir| dir.is_dir()),
            "{cgroups:?}"
        );
        let mut kept_alive = RawConnection::open(&kiln.url).await.unwrap();
        assert_eq!(health(&mut kept_alive).await.status, 200);
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(kiln.pid()),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        // While the slow call runs, new connections are still accepted and answered.
        let refused = loop {
            let mut fresh = RawConnection::open(&kiln.url).await.unwrap();
            let answer = health(&mut fresh).await;
            if answer.status == 503 {
                break answer;
            }
            assert_eq!(answer.status, 200, "{answer:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        assert_refused_cleanly(&refused);
        let answer = health(&mut kept_alive).await;
        assert_refused_cleanly(&answer);
        assert!(kept_alive.closed_cleanly().await.unwrap());
        let mut fresh = RawConnection::open(&kiln.url).await.unwrap();
        let call = request_head(
            "POST",
            "/fn/acme/idle/echo",
            &[&format!("authorization: Bearer {token}")],
            2,
        );
        fresh.send(&call).await.unwrap();
        fresh.send(b"hi").await.unwrap();
        assert_refused_cleanly(&fresh.response().await.unwrap());
        cgroups
    };
    let (reply, cgroups) = tokio::join!(in_flight, terminate);
    assert_eq!(
        reply.status,
        200,
        "the in-flight call must finish: {}",
        reply.text()
    );
    assert_eq!(reply.text(), "slept 2000");
    let code = kiln.wait_exit().await;
    assert_eq!(code, Some(0), "{}", kiln.log());
    assert_eq!(
        kiln.youki_containers(),
        Vec::<String>::new(),
        "youki state left behind"
    );
    for cgroup in cgroups {
        assert!(!cgroup.exists(), "{} left behind", cgroup.display());
    }
    let leftovers = std::fs::read_dir(kiln.data_dir.join("run")).unwrap().count();
    assert_eq!(leftovers, 0, "runtime sockets left behind");
    kiln.finish().await;
}

async fn health(connection: &mut RawConnection) -> RawResponse {
    connection
        .send(b"GET /api/health HTTP/1.1\r\nhost: kiln\r\n\r\n")
        .await
        .unwrap();
    connection.response().await.unwrap()
}

fn assert_refused_cleanly(answer: &RawResponse) {
    assert_eq!(
        (answer.status, answer.error_code().as_str()),
        (503, "shutting_down"),
        "{answer:?}"
    );
    assert_eq!(answer.header("retry-after"), Some("1"), "{answer:?}");
    assert!(answer.closes(), "{answer:?}");
}

//! SIGTERM drains in-flight invocations and leaves no container, youki state or cgroup behind.

use std::time::Duration;

use bytes::Bytes;
use e2e::Kiln;
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
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(kiln.pid()),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
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

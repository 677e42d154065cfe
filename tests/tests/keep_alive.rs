//! Keep-alive after early answers, on bare sockets against a real kilnd: a small body kilnd
//! did not need is drained and the connection serves the next request; a large one gets
//! `Connection: close` and a clean close, never a reset that destroys the answer.

use std::time::Duration;

use e2e::{Kiln, RawConnection, RawResponse, request_head};

/// Sends a request whose body arrives in two pieces, the second after kilnd could answer.
async fn send_in_pieces(connection: &mut RawConnection, head: &[u8], body: &[u8]) -> RawResponse {
    connection.send(head).await.unwrap();
    connection.send(&body[..1000]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;
    connection.send(&body[1000..]).await.unwrap();
    connection.response().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_answers_keep_the_connection_when_the_body_is_small() {
    let kiln = Kiln::start(&[]).await;
    let token = kiln.create_tenant("acme").await;
    assert_eq!(kiln.upload_testbed(&token, "hello", "").await.status, 201);
    let good = format!("authorization: Bearer {token}");
    let forged = "authorization: Bearer not.a.token";
    let body = vec![b'x'; 40 * 1024];
    let early = [
        ("POST", "/fn/acme/hello/echo", forged, 401, "malformed_token"),
        ("POST", "/fn/acme/missing/echo", good.as_str(), 404, "not_found"),
        // A webhook setting is at most 4 KiB.
        (
            "PUT",
            "/v1/functions/hello/webhook",
            good.as_str(),
            413,
            "body_too_large",
        ),
        ("POST", "/api/health", good.as_str(), 405, "method_not_allowed"),
    ];
    let mut connection = RawConnection::open(&kiln.url).await.unwrap();
    for (method, path, authorization, status, code) in early {
        let head = request_head(method, path, &[authorization], body.len());
        let answer = send_in_pieces(&mut connection, &head, &body).await;
        assert_eq!(
            (answer.status, answer.error_code().as_str()),
            (status, code),
            "{path}"
        );
        assert!(!answer.closes(), "{path}: {answer:?}");
        // The same connection serves the next call, undisturbed by the unread bytes.
        connection
            .send(&request_head("POST", "/fn/acme/hello/echo", &[&good], 5))
            .await
            .unwrap();
        connection.send(b"hello").await.unwrap();
        let echoed = connection.response().await.unwrap();
        assert_eq!(
            (echoed.status, echoed.body.as_slice()),
            (200, &b"hello"[..]),
            "after {path}"
        );
    }
    kiln.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_answers_to_large_bodies_close_the_connection_cleanly() {
    let kiln = Kiln::start(&[]).await;
    let token = kiln.create_tenant("acme").await;
    assert_eq!(kiln.upload_testbed(&token, "hello", "").await.status, 201);
    let good = format!("authorization: Bearer {token}");
    // Past what kilnd drains to keep a connection, and past the 6 MiB body limit.
    let body = vec![b'x'; 8 << 20];
    let early = [
        ("authorization: Bearer not.a.token", 401, "malformed_token"),
        (good.as_str(), 413, "body_too_large"),
    ];
    for (authorization, status, code) in early {
        let mut connection = RawConnection::open(&kiln.url).await.unwrap();
        let head = request_head("POST", "/fn/acme/hello/echo", &[authorization], body.len());
        connection.send(&head).await.unwrap();
        // A simple client sends its whole body before it reads the answer.
        connection.send(&body).await.unwrap();
        let answer = connection.response().await.unwrap();
        assert_eq!((answer.status, answer.error_code().as_str()), (status, code));
        assert!(answer.closes(), "{answer:?}");
        assert!(
            connection.closed_cleanly().await.unwrap(),
            "bytes after the answer"
        );
    }
    kiln.finish().await;
}

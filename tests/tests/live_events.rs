//! Live events against a real kilnd: over the WebSocket, the token in a header or a
//! subprotocol, tenant scoping and filters, resuming after a reconnect (and the gap when that
//! is no longer possible), refusals with their codes, and a consumer that stops reading being
//! closed; over SSE, ids and `Last-Event-ID`. (Scoping over SSE: `edge.rs`.)

use std::time::Duration;

use e2e::Kiln;
use futures_util::StreamExt;
use http::Method;
use serde_json::Value;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error, Message};

type Socket = WebSocketStream<TcpStream>;
/// A finished handshake: the socket and Kiln's 101 answer, or why it failed.
type Opened = Result<(Socket, http::Response<Option<Vec<u8>>>), Error>;

/// Opens `/v1/events/ws?{query}` with these extra handshake headers, over a socket with a
/// receive buffer of `receive_buffer` bytes when given.
async fn open(kiln: &Kiln, query: &str, headers: &[(&str, &str)], receive_buffer: Option<u32>) -> Opened {
    let address = kiln.url.trim_start_matches("http://");
    let mut request = format!("ws://{address}/v1/events/ws?{query}").into_client_request()?;
    for (name, value) in headers {
        request.headers_mut().insert(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    let socket = TcpSocket::new_v4().unwrap();
    if let Some(size) = receive_buffer {
        socket.set_recv_buffer_size(size).unwrap();
    }
    let stream = socket.connect(address.parse().unwrap()).await.unwrap();
    tokio_tungstenite::client_async(request, stream).await
}

/// The next event message, skipping pings; panics after 10 s.
async fn next_event(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("an event within 10 s")
            .expect("the socket open")
            .expect("a readable message");
        if let Message::Text(text) = message {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

async fn invoke(kiln: &Kiln, token: &str, tenant: &str, function: &str) {
    let path = format!("/fn/{tenant}/{function}/echo");
    assert_eq!(
        kiln.request(Method::POST, &path, Some(token), "x").await.status,
        200
    );
}

fn refused_status(result: Opened) -> (u16, String) {
    match result {
        Err(Error::Http(response)) => {
            let body = response.body().clone().unwrap_or_default();
            let json: Value = serde_json::from_slice(&body).unwrap_or_default();
            (
                response.status().as_u16(),
                json["error"]["code"].as_str().unwrap_or_default().to_owned(),
            )
        }
        Err(other) => panic!("not an HTTP refusal: {other}"),
        Ok(_) => panic!("the handshake was accepted"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_arrive_scoped_filtered_and_resumable() {
    let kiln = Kiln::start(&[]).await;
    let acme = kiln.create_tenant("acme").await;
    let other = kiln.create_tenant("other").await;
    for (token, function) in [(&acme, "hello"), (&acme, "noise"), (&other, "theirs")] {
        assert_eq!(kiln.upload_testbed(token, function, "").await.status, 201);
    }

    // A browser's way: the token as a subprotocol entry beside Kiln's protocol.
    let offered = format!("kiln.events.v1, kiln.token.{acme}");
    let (mut socket, handshake) = open(
        &kiln,
        "types=invocation&function=hello",
        &[("sec-websocket-protocol", &offered)],
        None,
    )
    .await
    .expect("the handshake");
    assert_eq!(handshake.headers()["sec-websocket-protocol"], "kiln.events.v1");
    let bearer = format!("Bearer {acme}");
    let (mut everything, _) = open(&kiln, "", &[("authorization", &bearer)], None)
        .await
        .expect("the handshake");
    invoke(&kiln, &other, "other", "theirs").await;
    invoke(&kiln, &acme, "acme", "noise").await;
    invoke(&kiln, &acme, "acme", "hello").await;
    // Unfiltered, the tenant's own two in order; never the other tenant's.
    let seen = [
        next_event(&mut everything).await,
        next_event(&mut everything).await,
    ];
    let functions: Vec<_> = seen
        .iter()
        .map(|event| event["data"]["function"].as_str().unwrap())
        .collect();
    assert_eq!(functions, ["noise", "hello"], "{seen:?}");
    drop(everything);
    let first = next_event(&mut socket).await;
    assert_eq!(first["type"], "invocation");
    assert_eq!(
        first["data"]["function"], "hello",
        "filtered or scoped wrongly: {first}"
    );
    assert_eq!(first["data"]["status"], 200);
    let first_id = first["id"].as_str().unwrap().to_owned();
    drop(socket);

    // Missed while away, then resumed with `after`: exactly the two, in order.
    invoke(&kiln, &acme, "acme", "hello").await;
    invoke(&kiln, &acme, "acme", "noise").await;
    invoke(&kiln, &acme, "acme", "hello").await;
    let (mut resumed, _) = open(
        &kiln,
        &format!("function=hello&after={first_id}"),
        &[("authorization", &bearer)],
        None,
    )
    .await
    .expect("the handshake");
    let (second, third) = (next_event(&mut resumed).await, next_event(&mut resumed).await);
    let seq = |event: &Value| -> u64 {
        event["id"]
            .as_str()
            .unwrap()
            .rsplit('-')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(
        seq(&first) < seq(&second) && seq(&second) < seq(&third),
        "{first} {second} {third}"
    );
    assert_eq!(
        (
            second["data"]["function"].as_str(),
            third["data"]["function"].as_str()
        ),
        (Some("hello"), Some("hello"))
    );
    invoke(&kiln, &acme, "acme", "hello").await;
    assert!(
        seq(&next_event(&mut resumed).await) > seq(&third),
        "live after the backlog"
    );

    // An id of another kilnd life cannot be resumed: the stream says so first.
    let (mut stale, _) = open(&kiln, "after=1-5", &[("authorization", &bearer)], None)
        .await
        .expect("the handshake");
    assert_eq!(next_event(&mut stale).await["type"], "gap");

    // Refusals, each with its code.
    assert_eq!(
        refused_status(open(&kiln, "", &[], None).await),
        (401, "missing_token".to_owned())
    );
    let wrong_protocol = [
        ("sec-websocket-protocol", "chat"),
        ("authorization", bearer.as_str()),
    ];
    assert_eq!(
        refused_status(open(&kiln, "", &wrong_protocol, None).await),
        (400, "websocket_protocol".to_owned())
    );
    assert_eq!(
        refused_status(open(&kiln, "types=logs", &[("authorization", &bearer)], None).await),
        (400, "invalid_filter".to_owned())
    );
    let plain = kiln.request(Method::GET, "/v1/events/ws", Some(&acme), "").await;
    assert_eq!(
        (plain.status, plain.error_code().as_str()),
        (426, "websocket_required")
    );
    assert_eq!(plain.header("upgrade"), Some("websocket"));
    kiln.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_that_stops_reading_is_closed() {
    let kiln = Kiln::start(&[]).await;
    let acme = kiln.create_tenant("acme").await;
    assert_eq!(
        kiln.upload_testbed(&acme, "hello", "max_concurrency=4")
            .await
            .status,
        201
    );
    let bearer = format!("Bearer {acme}");
    let (mut stalled, _) = open(&kiln, "", &[("authorization", &bearer)], Some(4096))
        .await
        .expect("the handshake");
    // More events than a subscriber may fall behind by, while it reads nothing.
    let sent = 6000;
    let callers: Vec<_> = (0..4)
        .map(|_| {
            let (kiln, acme) = (&kiln, &acme);
            async move {
                for _ in 0..sent / 4 {
                    invoke(kiln, acme, "acme", "hello").await;
                }
            }
        })
        .collect();
    futures_util::future::join_all(callers).await;
    let mut received = 0;
    // Pings would keep a per-message timeout from ever firing: one deadline for the whole read.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let ending = loop {
        match tokio::time::timeout_at(deadline, stalled.next())
            .await
            .expect("the stalled consumer was not closed within 30 s")
        {
            Some(Ok(Message::Text(_))) => received += 1,
            Some(Ok(Message::Close(frame))) => break frame.map(|frame| frame.code),
            Some(Ok(_)) => {}
            Some(Err(_)) | None => break None,
        }
    };
    assert!(
        received < sent,
        "the stalled consumer got all {received} events: it was never cut"
    );
    // A consumer that reads nothing cannot take a close frame either: with its socket full,
    // kilnd drops the connection (None) rather than wait to send 1008.
    assert!(
        matches!(ending, Some(CloseCode::Policy) | None),
        "closed with {ending:?}"
    );
    // Others are unaffected.
    let (mut fresh, _) = open(&kiln, "", &[("authorization", &bearer)], None)
        .await
        .expect("the handshake");
    invoke(&kiln, &acme, "acme", "hello").await;
    assert_eq!(next_event(&mut fresh).await["type"], "invocation");
    kiln.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sse_stream_gives_ids_and_resumes_with_last_event_id() {
    let kiln = Kiln::start(&[]).await;
    let acme = kiln.create_tenant("acme").await;
    assert_eq!(kiln.upload_testbed(&acme, "hello", "").await.status, 201);
    let mut events = kiln.stream("/v1/events?types=invocation", &acme).await;
    events.read_until(": connected", Duration::from_secs(5)).await;
    invoke(&kiln, &acme, "acme", "hello").await;
    events
        .read_until("event: invocation\ndata: ", Duration::from_secs(10))
        .await;
    let id = events
        .received
        .lines()
        .find_map(|line| line.strip_prefix("id: "))
        .expect("an id line before the event")
        .to_owned();
    drop(events);
    invoke(&kiln, &acme, "acme", "hello").await;
    let bearer = format!("Bearer {acme}");
    let mut resumed = kiln
        .stream_with(
            "/v1/events",
            &[("authorization", &bearer), ("last-event-id", &id)],
        )
        .await;
    resumed
        .read_until("event: invocation", Duration::from_secs(10))
        .await;
    assert!(
        !resumed.received.contains(&format!("id: {id}\n")),
        "the event already seen came again"
    );
    let refused = kiln
        .request_with(
            Method::GET,
            "/v1/events",
            &[("authorization", &bearer), ("last-event-id", "yesterday")],
            "",
        )
        .await;
    assert_eq!(
        (refused.status, refused.error_code().as_str()),
        (400, "invalid_event_id")
    );
    kiln.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_holds_at_most_its_share_of_live_streams() {
    let kiln = Kiln::start(&[("KILN_LIVE_STREAMS_PER_TENANT", "2")]).await;
    let acme = kiln.create_tenant("acme").await;
    let other = kiln.create_tenant("other").await;
    let bearer = format!("Bearer {acme}");
    let first = open(&kiln, "", &[("authorization", &bearer)], None)
        .await
        .expect("the first");
    let sse = kiln.stream("/v1/events", &acme).await;
    assert_eq!(sse.status, 200, "an SSE stream counts as one");
    assert_eq!(
        refused_status(open(&kiln, "", &[("authorization", &bearer)], None).await),
        (429, "too_many_live_streams".to_owned())
    );
    let refused = kiln.request(Method::GET, "/v1/events", Some(&acme), "").await;
    assert_eq!(
        (refused.status, refused.error_code().as_str()),
        (429, "too_many_live_streams")
    );
    // Another tenant is not held back by this one's streams.
    let theirs = format!("Bearer {other}");
    assert!(open(&kiln, "", &[("authorization", &theirs)], None).await.is_ok());
    // A stream that ends gives its place back.
    drop(first);
    let mut reopened = None;
    for _ in 0..50 {
        if let Ok(socket) = open(&kiln, "", &[("authorization", &bearer)], None).await {
            reopened = Some(socket);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        reopened.is_some(),
        "the place of a closed stream was never given back"
    );
    drop(sse);
    kiln.finish().await;
}

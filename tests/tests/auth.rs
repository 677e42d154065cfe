//! Tokens through a real kilnd: every bad token is refused before the function runs, a
//! tenant reaches only its own functions, and RS256, ES256 and EdDSA keys verify tokens.

use bytes::Bytes;
use e2e::{ADMIN_TOKEN, Kiln, sample, tenant_secret};
use http::Method;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode, get_current_timestamp};
use serde_json::{Value, json};

fn sign(algorithm: Algorithm, kid: &str, claims: &Value, secret: &str) -> String {
    let header = Header {
        kid: Some(kid.into()),
        ..Header::new(algorithm)
    };
    encode(&header, claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
}

fn claims(tenant: &str) -> Value {
    let now = get_current_timestamp();
    json!({"tenant": tenant, "iss": "kiln", "aud": format!("kiln:{tenant}"), "exp": now + 300, "nbf": now - 1})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_are_refused_and_the_function_never_runs() {
    let kiln = Kiln::start(&[]).await;
    let token = kiln.create_tenant("acme").await;
    assert_eq!(kiln.upload_testbed(&token, "echo", "").await.status, 201);
    let secret = tenant_secret("acme");
    let now = get_current_timestamp();
    let mut expired = claims("acme");
    expired["exp"] = json!(now - 120);
    let mut future = claims("acme");
    future["nbf"] = json!(now + 300);
    let mut wrong_audience = claims("acme");
    wrong_audience["aud"] = json!("kiln:globex");
    let mut wrong_issuer = claims("acme");
    wrong_issuer["iss"] = json!("someone-else");
    let unsigned = format!(
        "eyJhbGciOiJub25lIiwia2lkIjoiazEifQ.{}.",
        "eyJ0ZW5hbnQiOiJhY21lIiwiaXNzIjoia2lsbiIsImF1ZCI6ImtpbG46YWNtZSIsImV4cCI6OTk5OTk5OTk5OX0"
    );
    let cases: Vec<(Option<String>, u16, &str)> = vec![
        (None, 401, "missing_token"),
        (Some("not.a.jwt".into()), 401, "malformed_token"),
        (Some(unsigned), 401, "malformed_token"),
        (
            Some(sign(
                Algorithm::HS256,
                "k1",
                &claims("acme"),
                "a-different-secret-of-32-bytes-or-more",
            )),
            401,
            "invalid_signature",
        ),
        (
            Some(sign(Algorithm::HS256, "k1", &expired, &secret)),
            401,
            "token_expired",
        ),
        (
            Some(sign(Algorithm::HS256, "k1", &future, &secret)),
            401,
            "token_not_yet_valid",
        ),
        (
            Some(sign(Algorithm::HS256, "k1", &wrong_audience, &secret)),
            401,
            "invalid_audience",
        ),
        (
            Some(sign(Algorithm::HS256, "k1", &wrong_issuer, &secret)),
            401,
            "invalid_issuer",
        ),
        (
            Some(sign(Algorithm::HS384, "k1", &claims("acme"), &secret)),
            401,
            "algorithm_mismatch",
        ),
        (
            Some(sign(Algorithm::HS256, "k9", &claims("acme"), &secret)),
            401,
            "unknown_key",
        ),
    ];
    for (token, status, code) in cases {
        let reply = kiln
            .request(Method::POST, "/fn/acme/echo/echo", token.as_deref(), "x")
            .await;
        assert_eq!(
            (reply.status, reply.error_code().as_str()),
            (status, code),
            "token {token:?}: {}",
            reply.text()
        );
    }
    let containers = kiln.containers().await;
    assert_eq!(
        containers["cold_starts_total"], 0,
        "a refused call started a container: {containers}"
    );
    assert_eq!(containers["warm_starts_total"], 0, "{containers}");
    kiln.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_cannot_reach_another_tenants_functions() {
    let kiln = Kiln::start(&[]).await;
    let acme = kiln.create_tenant("acme").await;
    let globex = kiln.create_tenant("globex").await;
    assert_eq!(kiln.upload_testbed(&acme, "private", "").await.status, 201);

    let invoke = kiln
        .request(
            Method::GET,
            "/fn/acme/private/instance",
            Some(&globex),
            Bytes::new(),
        )
        .await;
    assert_eq!(
        (invoke.status, invoke.error_code().as_str()),
        (403, "wrong_tenant"),
        "{}",
        invoke.text()
    );
    let list = kiln
        .request(Method::GET, "/v1/functions", Some(&globex), Bytes::new())
        .await;
    assert_eq!(list.status, 200);
    assert_eq!(list.json()["functions"], json!([]));
    let show = kiln
        .request(Method::GET, "/v1/functions/private", Some(&globex), Bytes::new())
        .await;
    assert_eq!(show.status, 404);
    let delete = kiln
        .request(
            Method::DELETE,
            "/v1/functions/private",
            Some(&globex),
            Bytes::new(),
        )
        .await;
    assert_eq!(delete.status, 404);
    // A token minted with acme's name but signed with globex's key does not pass as acme.
    let forged = sign(Algorithm::HS256, "k1", &claims("acme"), &tenant_secret("globex"));
    let forged = kiln
        .request(Method::GET, "/v1/functions", Some(&forged), Bytes::new())
        .await;
    assert_eq!(forged.error_code(), "invalid_signature");

    let own = kiln
        .request(Method::GET, "/v1/functions", Some(&acme), Bytes::new())
        .await;
    assert_eq!(own.json()["functions"][0]["name"], "private");
    let containers = kiln.containers().await;
    assert_eq!(containers["cold_starts_total"], 0, "{containers}");
    kiln.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_needs_the_admin_token() {
    let kiln = Kiln::start(&[]).await;
    let body = json!({"name": "acme"}).to_string();
    let refused = kiln
        .request(Method::POST, "/v1/admin/tenants", Some("wrong"), body.clone())
        .await;
    assert_eq!(
        (refused.status, refused.error_code().as_str()),
        (401, "invalid_admin_token")
    );
    let short_key = json!({"name": "acme", "keys": [{"kid": "k1", "algorithm": "HS256", "secret": "short"}]});
    let bad_key = kiln
        .request(
            Method::POST,
            "/v1/admin/tenants",
            Some(ADMIN_TOKEN),
            short_key.to_string(),
        )
        .await;
    assert_eq!(
        (bad_key.status, bad_key.error_code().as_str()),
        (400, "invalid_key")
    );
    let created = kiln
        .request(Method::POST, "/v1/admin/tenants", Some(ADMIN_TOKEN), body.clone())
        .await;
    assert_eq!(created.status, 201, "{}", created.text());
    let again = kiln
        .request(Method::POST, "/v1/admin/tenants", Some(ADMIN_TOKEN), body)
        .await;
    assert_eq!((again.status, again.error_code().as_str()), (409, "conflict"));
    kiln.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_key_refuses_its_tokens_at_once() {
    let kiln = Kiln::start(&[]).await;
    let token = kiln.create_tenant("acme").await;
    assert_eq!(
        kiln.request(Method::GET, "/v1/functions", Some(&token), Bytes::new())
            .await
            .status,
        200
    );
    let removed = kiln
        .request(
            Method::DELETE,
            "/v1/admin/tenants/acme/keys/k1",
            Some(ADMIN_TOKEN),
            Bytes::new(),
        )
        .await;
    assert_eq!(removed.status, 204, "{}", removed.text());
    let refused = kiln
        .request(Method::GET, "/v1/functions", Some(&token), Bytes::new())
        .await;
    assert_eq!(
        (refused.status, refused.error_code().as_str()),
        (401, "unknown_key"),
        "{}",
        refused.text()
    );
    kiln.finish().await;
}

/// A key pair made by openssl: the private key (PKCS#8 PEM) and the public key (PEM).
fn openssl_key_pair(folder: &std::path::Path, name: &str, genpkey: &[&str]) -> (Vec<u8>, String) {
    let private = folder.join(format!("{name}.key"));
    let public = folder.join(format!("{name}.pub"));
    let run = |args: &[&str]| {
        let status = std::process::Command::new("openssl")
            .args(args)
            .current_dir(folder)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl installed (scripts/test.sh installs it)");
        assert!(status.success(), "openssl {args:?}");
    };
    let mut generate = vec!["genpkey"];
    generate.extend_from_slice(genpkey);
    generate.extend_from_slice(&["-out", private.to_str().unwrap()]);
    run(&generate);
    run(&[
        "pkey",
        "-in",
        private.to_str().unwrap(),
        "-pubout",
        "-out",
        public.to_str().unwrap(),
    ]);
    (
        std::fs::read(&private).unwrap(),
        std::fs::read_to_string(&public).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_signed_by_an_identity_provider_verify_with_its_public_keys() {
    let kiln = Kiln::start(&[]).await;
    let token = kiln.create_tenant("acme").await;
    assert_eq!(kiln.upload_testbed(&token, "echo", "").await.status, 201);
    let folder = std::env::temp_dir().join(format!("kiln-auth-keys-{}", std::process::id()));
    std::fs::create_dir_all(&folder).unwrap();
    let pairs = [
        (
            "rsa",
            "RS256",
            Algorithm::RS256,
            vec!["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
        ),
        (
            "ec",
            "ES256",
            Algorithm::ES256,
            vec!["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
        ),
        ("ed", "EdDSA", Algorithm::EdDSA, vec!["-algorithm", "ED25519"]),
    ];
    for (kid, name, algorithm, genpkey) in pairs {
        let (private, public) = openssl_key_pair(&folder, kid, &genpkey);
        let added = kiln
            .request(
                Method::POST,
                "/v1/admin/tenants/acme/keys",
                Some(ADMIN_TOKEN),
                json!({"kid": kid, "algorithm": name, "public_key": public}).to_string(),
            )
            .await;
        assert_eq!(added.status, 201, "{name}: {}", added.text());
        let signing_key = match algorithm {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(&private),
            Algorithm::ES256 => EncodingKey::from_ec_pem(&private),
            _ => EncodingKey::from_ed_pem(&private),
        }
        .unwrap();
        let header = Header {
            kid: Some(kid.into()),
            ..Header::new(algorithm)
        };
        let signed = encode(&header, &claims("acme"), &signing_key).unwrap();
        let reply = kiln
            .request(Method::POST, "/fn/acme/echo/echo", Some(&signed), name)
            .await;
        assert_eq!((reply.status, reply.text()), (200, name.to_owned()), "{name}");

        // The signature is checked: another key pair of the same kind, same kid, is refused.
        let (forger, _) = openssl_key_pair(&folder, &format!("{kid}-forger"), &genpkey);
        let forging_key = match algorithm {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(&forger),
            Algorithm::ES256 => EncodingKey::from_ec_pem(&forger),
            _ => EncodingKey::from_ed_pem(&forger),
        }
        .unwrap();
        let forged = encode(&header, &claims("acme"), &forging_key).unwrap();
        let refused = kiln
            .request(Method::POST, "/fn/acme/echo/echo", Some(&forged), name)
            .await;
        assert_eq!(
            (refused.status, refused.error_code().as_str()),
            (401, "invalid_signature"),
            "{name}: {}",
            refused.text()
        );

        // The algorithm is the key's, never the token's: HS256 "signed" with the public key
        // as the secret (the classic confusion attack) is refused.
        let confused = sign(Algorithm::HS256, kid, &claims("acme"), &public);
        let refused = kiln
            .request(Method::POST, "/fn/acme/echo/echo", Some(&confused), name)
            .await;
        assert_eq!(
            (refused.status, refused.error_code().as_str()),
            (401, "algorithm_mismatch"),
            "{name}: {}",
            refused.text()
        );
    }

    // A public key that does not parse is refused when added, not at first use.
    let bad = kiln
        .request(
            Method::POST,
            "/v1/admin/tenants/acme/keys",
            Some(ADMIN_TOKEN),
            json!({"kid": "bad", "algorithm": "ES256", "public_key": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"}).to_string(),
        )
        .await;
    assert_eq!(
        (bad.status, bad.error_code().as_str()),
        (400, "invalid_key"),
        "{}",
        bad.text()
    );
    let _ = std::fs::remove_dir_all(&folder);
    kiln.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_that_keeps_failing_is_refused_unchecked() {
    let kiln = Kiln::start(&[
        ("KILN_TRUSTED_PROXIES", "127.0.0.1"),
        ("KILN_AUTH_FAILURES_PER_MINUTE", "5"),
    ])
    .await;
    let token = kiln.create_tenant("acme").await;
    assert_eq!(kiln.upload_testbed(&token, "echo", "").await.status, 201);
    let list = |client: &'static str, token: String| {
        let kiln = &kiln;
        async move {
            let bearer = format!("Bearer {token}");
            let headers = [("authorization", bearer.as_str()), ("x-forwarded-for", client)];
            kiln.request_with(Method::GET, "/v1/functions", &headers, Bytes::new())
                .await
        }
    };
    // A function's own 401s are its callers' business: they never count.
    for attempt in 0..8 {
        let bearer = format!("Bearer {token}");
        let headers = [
            ("authorization", bearer.as_str()),
            ("x-forwarded-for", "203.0.113.7"),
        ];
        let reply = kiln
            .request_with(
                Method::GET,
                "/fn/acme/echo/status?code=401",
                &headers,
                Bytes::new(),
            )
            .await;
        assert_eq!(reply.status, 401, "attempt {attempt}: {}", reply.text());
    }
    assert_eq!(list("203.0.113.7", token.clone()).await.status, 200);
    let forged = |tenant: usize| {
        sign(
            Algorithm::HS256,
            "k1",
            &claims(&format!("made-up-{tenant}")),
            "x".repeat(32).as_str(),
        )
    };
    for attempt in 0..5 {
        let reply = list("203.0.113.7", forged(attempt)).await;
        assert_eq!(
            (reply.status, reply.error_code()),
            (401, "unknown_tenant".to_owned()),
            "attempt {attempt}"
        );
    }
    let key_loads = |metrics: &str| {
        sample(
            metrics,
            r#"kiln_cache_lookups_total{cache="tenant_keys",outcome="load"}"#,
        )
    };
    let loads_before = key_loads(&kiln.request(Method::GET, "/metrics", None, "").await.text());
    // Past the limit, even a valid token from that address is not checked.
    for token in [forged(5), forged(6), token.clone()] {
        let refused = list("203.0.113.7", token).await;
        assert_eq!(
            (refused.status, refused.error_code()),
            (429, "too_many_auth_failures".to_owned())
        );
        let wait: u64 = refused
            .header("retry-after")
            .expect("Retry-After")
            .parse()
            .unwrap();
        assert!((1..=12).contains(&wait), "Retry-After {wait}");
    }
    let metrics = kiln.request(Method::GET, "/metrics", None, "").await.text();
    assert_eq!(
        key_loads(&metrics),
        loads_before,
        "a refused request looked a tenant up"
    );
    assert_eq!(
        sample(&metrics, r#"kiln_auth_failures_total{outcome="refused"}"#),
        3.0
    );
    assert!(sample(&metrics, r#"kiln_auth_failures_total{outcome="failed"}"#) >= 5.0);
    // Other addresses, and loopback (a local proxy speaks for many), are not held back.
    assert_eq!(list("203.0.113.8", token.clone()).await.status, 200);
    for attempt in 0..10 {
        let reply = kiln
            .request(Method::GET, "/v1/functions", Some(&forged(100 + attempt)), "")
            .await;
        assert_eq!(reply.status, 401, "loopback attempt {attempt}");
    }
    assert_eq!(
        kiln.request(Method::GET, "/v1/functions", Some(&token), "")
            .await
            .status,
        200
    );
    // Health and metrics need no credential and are never refused.
    assert_eq!(list("203.0.113.7", forged(7)).await.status, 429);
    let health = kiln
        .request_with(
            Method::GET,
            "/api/health",
            &[("x-forwarded-for", "203.0.113.7")],
            Bytes::new(),
        )
        .await;
    assert_eq!(health.status, 200);
    kiln.finish().await;
}

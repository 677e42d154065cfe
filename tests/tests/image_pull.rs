//! Pulling images from a real OCI registry (Debian's docker-registry on loopback, with
//! basic auth) through kilnd: by tag and by digest, and every refusal with its own code,
//! leaving nothing behind.

use e2e::{Kiln, OciRegistry, image_path};
use http::Method;

async fn pull(kiln: &Kiln, token: &str, function: &str, reference: &str) -> e2e::Reply {
    let path = format!("/v1/functions/{function}?image={}", reference.replace(' ', "%20"));
    kiln.request(Method::PUT, &path, Some(token), "").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_are_pulled_by_tag_and_by_digest_from_allowed_registries_only() {
    let registry = OciRegistry::start();
    let archive = format!("oci-archive:{}", image_path("python-hello", "oci").display());
    let manifest_digest = registry.push(&archive, "demo/python-hello:1");
    let auth_file = registry.auth_file();
    let auth_file = auth_file.to_string_lossy();
    let kiln = Kiln::start(&[
        ("KILN_REGISTRIES", &registry.address),
        ("KILN_INSECURE_REGISTRIES", &registry.address),
        ("KILN_REGISTRY_AUTH_FILE", &auth_file),
    ])
    .await;
    let token = kiln.create_tenant("pulls").await;

    let by_tag = format!("{}/demo/python-hello:1", registry.address);
    let reply = pull(&kiln, &token, "py", &by_tag).await;
    assert_eq!(reply.status, 201, "{}", reply.text());
    let pulled = reply.json();
    assert_eq!(pulled["kind"], "image");
    assert_eq!(pulled["image"]["reference"], by_tag.as_str());
    let bearer = format!("Bearer {token}");
    let call = kiln
        .request_with(Method::POST, "/fn/pulls/py/", &[("authorization", &bearer)], "hi")
        .await;
    assert_eq!(call.status, 200, "{}", call.text());
    assert_eq!(call.json()["greeting"], "from-image");
    assert_eq!(call.json()["user"], 1000);

    let by_digest = format!("{}/demo/python-hello@{manifest_digest}", registry.address);
    let reply = pull(&kiln, &token, "py-pinned", &by_digest).await;
    assert_eq!(reply.status, 201, "{}", reply.text());
    assert_eq!(reply.json()["digest"], pulled["digest"], "the same image");

    for (reference, status, code) in [
        (
            format!("{}/demo/python-hello:missing", registry.address),
            400,
            "image_not_found",
        ),
        (
            format!("{}/demo/nothing-here:1", registry.address),
            400,
            "image_not_found",
        ),
        ("ghcr.io/acme/app:1".to_owned(), 400, "registry_not_allowed"),
        ("Not A Reference".to_owned(), 400, "invalid_image_reference"),
    ] {
        let reply = pull(&kiln, &token, "refused", &reference).await;
        assert_eq!(
            (reply.status, reply.error_code().as_str()),
            (status, code),
            "{reference}: {}",
            reply.text()
        );
    }
    let functions = kiln.request(Method::GET, "/v1/functions", Some(&token), "").await;
    let listed = functions.json();
    let names: Vec<&str> = listed["functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|function| function["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["py", "py-pinned"], "refused pulls recorded nothing");
    assert_eq!(
        std::fs::read_dir(kiln.data_dir.join("uploads")).unwrap().count(),
        0,
        "no staged pull left"
    );
    kiln.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_that_refuses_kilns_credentials_is_reported_as_such() {
    let registry = OciRegistry::start();
    let archive = format!("oci-archive:{}", image_path("python-hello", "oci").display());
    registry.push(&archive, "demo/python-hello:1");
    let kiln = Kiln::start(&[
        ("KILN_REGISTRIES", &registry.address),
        ("KILN_INSECURE_REGISTRIES", &registry.address),
    ])
    .await;
    let token = kiln.create_tenant("pulls").await;
    let reply = pull(
        &kiln,
        &token,
        "py",
        &format!("{}/demo/python-hello:1", registry.address),
    )
    .await;
    assert_eq!(reply.status, 400, "{}", reply.text());
    assert_eq!(reply.error_code(), "registry_unauthorized");
    assert!(
        reply.text().contains("KILN_REGISTRY_AUTH_FILE"),
        "{}",
        reply.text()
    );
    for folder in ["layers", "roots", "records"] {
        let stored = std::fs::read_dir(kiln.data_dir.join("images").join(folder))
            .unwrap()
            .count();
        assert_eq!(stored, 0, "{folder} holds nothing");
    }
    kiln.finish().await;
}

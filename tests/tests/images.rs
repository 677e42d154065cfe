//! Functions deployed as container images on a real kilnd, in real youki containers: the
//! Python and Node examples as oci-archives and docker-archives, cold and warm, with the
//! image's Env, WorkingDir and User honoured; layers shared between images and freed with
//! the last function using them; refused archives leave nothing.

use std::path::Path;

use e2e::{Kiln, image_path};
use http::Method;
use serde_json::json;

fn archive(example: &str, format: &str) -> Vec<u8> {
    let path = image_path(example, format);
    std::fs::read(&path).unwrap_or_else(|error| {
        panic!(
            "{}: {error} (scripts/build-image.sh {example} --docker-archive)",
            path.display()
        )
    })
}

/// Names directly under the image store's `folder` (`layers`, `roots`, `records`).
fn stored(kiln: &Kiln, folder: &str) -> Vec<String> {
    let dir = kiln.data_dir.join("images").join(folder);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Uploads an example image as `function` (which may carry a query of settings); expects `201`.
async fn deploy(kiln: &Kiln, token: &str, function: &str, example: &str, format: &str) -> serde_json::Value {
    let upload = kiln
        .request(
            Method::PUT,
            &format!("/v1/functions/{function}"),
            Some(token),
            archive(example, format),
        )
        .await;
    assert_eq!(upload.status, 201, "{function}: {}", upload.text());
    upload.json()
}

async fn invoke(kiln: &Kiln, token: &str, function: &str) -> serde_json::Value {
    let path = format!("/fn/images/{function}/hi?a=1");
    let bearer = format!("Bearer {token}");
    let reply = kiln
        .request_with(
            Method::POST,
            &path,
            &[("authorization", &bearer), ("x-echo", "yo")],
            "payload",
        )
        .await;
    if reply.status != 200 {
        let logs = kiln
            .request(
                Method::GET,
                &format!("/v1/functions/{function}/logs"),
                Some(token),
                "",
            )
            .await;
        panic!(
            "{function}: {} {}\nlogs: {}",
            reply.status,
            reply.text(),
            logs.text()
        );
    }
    assert_eq!(reply.header("x-echo"), Some("yo"), "{function}");
    reply.json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_and_node_images_serve_invocations_as_their_config_says() {
    let kiln = Kiln::start(&[]).await;
    let token = kiln.create_tenant("images").await;

    let body = deploy(&kiln, &token, "py", "python-hello", "oci").await;
    assert_eq!(body["kind"], "image");
    assert_eq!(body["image"]["reference"], "python-hello:latest");
    assert_eq!(
        body["image"]["process"]["args"],
        json!(["python3", "/app/handler.py"])
    );

    for round in ["cold", "warm"] {
        let answer = invoke(&kiln, &token, "py").await;
        assert_eq!(
            answer["args"],
            json!([]),
            "{round}: the image's Cmd, nothing more"
        );
        assert_eq!(answer["greeting"], "from-image", "{round}: the image's Env");
        assert_eq!(answer["user"], 1000, "{round}: the image's User `app`");
        assert_eq!(answer["cwd"], "/app", "{round}: the image's WorkingDir");
        assert_eq!(answer["method"], "POST");
        assert_eq!(answer["path"], "/hi");
        assert_eq!(answer["query"], "a=1");
        assert_eq!(answer["body"], "payload");
    }

    // The function's settings win over the image's Env; cmd= replaces its Cmd.
    let settings = "py?env=GREETING=from-settings&cmd=/app/handler.py&cmd=--verbose";
    assert_eq!(
        deploy(&kiln, &token, settings, "python-hello", "oci").await["version"],
        2
    );
    let answer = invoke(&kiln, &token, "py").await;
    assert_eq!(answer["greeting"], "from-settings");
    assert_eq!(
        answer["args"],
        json!(["--verbose"]),
        "python3 /app/handler.py --verbose"
    );

    deploy(&kiln, &token, "js", "node-hello", "oci").await;
    let answer = invoke(&kiln, &token, "js").await;
    assert_eq!(answer["greeting"], "hello from node");
    assert_eq!(answer["body"], "payload");
    kiln.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_share_layers_and_deleting_the_last_user_frees_them() {
    let kiln = Kiln::start(&[]).await;
    let token = kiln.create_tenant("images").await;
    for (function, example, format) in [
        ("py", "python-hello", "oci"),
        ("py-docker", "python-hello", "docker"),
    ] {
        deploy(&kiln, &token, function, example, format).await;
    }
    assert_eq!(
        stored(&kiln, "layers").len(),
        2,
        "the docker-archive's layers are the oci-archive's, stored once: {:?}",
        stored(&kiln, "layers")
    );
    assert_eq!(invoke(&kiln, &token, "py-docker").await["greeting"], "from-image");
    deploy(&kiln, &token, "js", "node-hello", "oci").await;
    let with_node = stored(&kiln, "layers");
    assert_eq!(
        with_node.len(),
        4,
        "node's own base and app layers: {with_node:?}"
    );

    let delete = kiln
        .request(Method::DELETE, "/v1/functions/js", Some(&token), "")
        .await;
    assert_eq!(delete.status, 204, "{}", delete.text());
    assert_eq!(
        stored(&kiln, "layers").len(),
        2,
        "node's layers freed, python's kept"
    );
    for function in ["py", "py-docker"] {
        let delete = kiln
            .request(
                Method::DELETE,
                &format!("/v1/functions/{function}"),
                Some(&token),
                "",
            )
            .await;
        assert_eq!(delete.status, 204, "{}", delete.text());
    }
    for folder in ["layers", "roots", "records"] {
        assert_eq!(stored(&kiln, folder), Vec::<String>::new(), "{folder} emptied");
    }
    kiln.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_archives_leave_nothing_behind() {
    let kiln = Kiln::start(&[("KILN_MAX_IMAGE_BYTES", "40000000")]).await;
    let token = kiln.create_tenant("images").await;

    // A real archive with one byte of its app layer changed: caught by the layer's digest.
    let mut tampered = archive("python-hello", "oci");
    let position = find_member(&tampered, |size| (1_000..200_000).contains(&size));
    tampered[position] ^= 0x01;
    let reply = kiln
        .request(Method::PUT, "/v1/functions/bad", Some(&token), tampered)
        .await;
    assert_eq!(reply.status, 400, "{}", reply.text());
    assert_eq!(reply.error_code(), "invalid_image");
    assert!(
        reply.text().contains("does not match its digest"),
        "{}",
        reply.text()
    );

    let reply = kiln
        .request(
            Method::PUT,
            "/v1/functions/big",
            Some(&token),
            archive("node-hello", "oci"),
        )
        .await;
    assert_eq!(reply.status, 413, "{}", reply.text());
    assert_eq!(reply.error_code(), "image_too_large");

    let reply = kiln.upload_testbed(&token, "binary", "cmd=--flag").await;
    assert_eq!(reply.status, 400, "{}", reply.text());
    assert_eq!(reply.error_code(), "invalid_setting", "cmd= is for images");

    let reply = kiln
        .request(Method::PUT, "/v1/functions/empty", Some(&token), "")
        .await;
    assert_eq!(reply.status, 400, "{}", reply.text());
    assert_eq!(reply.error_code(), "empty_upload");

    for folder in ["layers", "roots", "records"] {
        assert_eq!(
            stored(&kiln, folder),
            Vec::<String>::new(),
            "{folder} holds nothing"
        );
    }
    assert_eq!(
        std::fs::read_dir(kiln.data_dir.join("uploads")).unwrap().count(),
        0,
        "no staged upload left"
    );
    let list = kiln.request(Method::GET, "/v1/functions", Some(&token), "").await;
    assert_eq!(list.json()["functions"], json!([]), "no function recorded");
    assert!(
        !Path::new(&kiln.data_dir.join("images/roots"))
            .join("bad")
            .exists()
    );
    kiln.finish().await;
}

/// The offset of a byte in the middle of the first archive member whose size `fits`.
fn find_member(archive: &[u8], fits: impl Fn(u64) -> bool) -> usize {
    let mut offset = 0;
    while offset + 512 <= archive.len() {
        let header = &archive[offset..offset + 512];
        if header.iter().all(|&byte| byte == 0) {
            break;
        }
        let size_field = std::str::from_utf8(&header[124..136])
            .unwrap()
            .trim_matches(|c: char| c == '\0' || c == ' ');
        let size = u64::from_str_radix(size_field, 8).unwrap();
        let name = String::from_utf8_lossy(&header[..100])
            .trim_end_matches('\0')
            .to_owned();
        if name.trim_start_matches("./").starts_with("blobs/") && fits(size) {
            return offset + 512 + size as usize / 2;
        }
        offset += 512 + (size as usize).div_ceil(512) * 512;
    }
    panic!("no member of the wanted size");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_durable_instance_finishes_exactly_once_across_a_kill_of_kilnd() {
    let mut kiln = Kiln::start(&[]).await;
    let token = kiln.create_tenant("images").await;
    deploy(&kiln, &token, "orders", "python-workflow", "oci").await;
    let within = std::time::Duration::from_secs(30);

    let approved = kiln
        .started_instance(
            &token,
            "orders",
            json!({"order": 42, "amount_cents": 1999, "cool_off_s": 2}),
        )
        .await;
    kiln.wait_status(&token, &approved, "sleeping", within).await;
    let reserved = kiln.checkpoints(&token, &approved).await["reserve"].clone();
    assert_eq!(reserved, json!({"reservation": "r-42"}));

    kiln.kill();
    kiln.wait_exit().await;
    // Down past the cool-off: the instance is overdue when kilnd comes back.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    kiln.restart().await;

    kiln.wait_instance(&token, &approved, within, |instance| {
        instance["waiting_for"] == "approved"
    })
    .await;
    let signal = kiln
        .signal(&token, &approved, "approved", json!({"by": "ana"}))
        .await;
    assert_eq!(signal.status, 202, "{}", signal.text());
    let done = kiln.wait_status(&token, &approved, "completed", within).await;
    assert_eq!(done["output"]["status"], "charged", "{done}");
    assert_eq!(done["output"]["approved_by"], "ana");
    assert_eq!(
        kiln.checkpoints(&token, &approved).await["reserve"],
        reserved,
        "reserve ran once"
    );
    assert_eq!(kiln.count_events(&token, &approved, "completed").await, 1);

    let unapproved = kiln
        .started_instance(
            &token,
            "orders",
            json!({"order": 43, "amount_cents": 500, "cool_off_s": 1, "approval_timeout_s": 1}),
        )
        .await;
    let expired = kiln.wait_status(&token, &unapproved, "completed", within).await;
    assert_eq!(expired["output"]["status"], "expired", "{expired}");
    kiln.finish().await;
}

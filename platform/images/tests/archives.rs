//! The image store against real archives on a real disk: formats, layer rules, sharing,
//! removal, and crafted archives that must be refused without leaving anything behind.

mod support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use images::{ImageError, ImageLimits, ImageStore};
use serde_json::json;
use support::{
    Compression, Entry, Scratch, TestImage, config, docker_archive, layer, oci_archive, tree, write_archive,
};

const PASSWD: &[u8] = b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/app:/bin/sh\n";
const GROUP: &[u8] = b"root:x:0:\napp:x:1000:\nstaff:x:50:app\n";

fn base_layer(compression: Compression) -> support::Layer {
    layer(
        &[
            Entry::Dir("etc/"),
            Entry::File("etc/passwd", PASSWD, 0o644),
            Entry::File("etc/group", GROUP, 0o644),
            Entry::File("etc/hosts", b"10.0.0.1 image-host\n", 0o644),
            Entry::Dir("bin/"),
            Entry::File("bin/tool", b"old tool", 0o755),
            Entry::Dir("data/"),
            Entry::File("data/a", b"a", 0o644),
            Entry::File("data/b", b"b", 0o644),
            Entry::Dir("old/"),
            Entry::File("old/x", b"x", 0o644),
            Entry::File("bin/setuid", b"s", 0o4755),
            Entry::Fifo("bin/fifo"),
            Entry::CharDevice("bin/mem"),
            Entry::Symlink("bin/sh", "tool".to_owned()),
        ],
        compression,
    )
}

fn app_process() -> serde_json::Value {
    json!({"Entrypoint": ["python3"], "Cmd": ["/app/handler.py"], "Env": ["PATH=/usr/bin", "GREETING=hi"],
           "WorkingDir": "/app", "User": "app"})
}

fn open(scratch: &Scratch) -> ImageStore {
    ImageStore::open(&scratch.0.join("store"), ImageLimits::default()).unwrap()
}

/// The store holds no layer, root or record, finished or partial.
fn assert_empty(scratch: &Scratch) {
    for dir in ["layers", "roots", "records"] {
        assert_eq!(
            tree(&scratch.0.join("store").join(dir)),
            Vec::<String>::new(),
            "{dir} is not empty"
        );
    }
}

#[test]
fn layers_merge_with_whiteouts_opaque_folders_and_replacements() {
    let scratch = Scratch::new("merge");
    let base = base_layer(Compression::Gzip);
    let top = layer(
        &[
            Entry::File(".wh.old", b"", 0o644),
            Entry::Dir("data/"),
            Entry::File("data/.wh..wh..opq", b"", 0o644),
            Entry::File("data/c", b"c", 0o644),
            Entry::File("bin/tool", b"new tool", 0o755),
            Entry::Dir("app/"),
            Entry::File("app/handler.py", b"print('hi')", 0o644),
        ],
        Compression::Zstd,
    );
    let image = TestImage {
        reference: "app:1",
        config: config(&[&base, &top], app_process()),
        layers: vec![&base, &top],
    };
    let archive = oci_archive(&scratch.0, &[image]);
    let store = open(&scratch);
    let stored = store.ingest(&archive, None).unwrap();
    let root = store.root_path(&stored.digest);

    assert!(!root.join("old").exists(), "the whiteout removed old/");
    assert_eq!(tree(&root.join("data")), ["c"], "the opaque folder hid a and b");
    assert_eq!(std::fs::read(root.join("bin/tool")).unwrap(), b"new tool");
    assert_eq!(
        std::fs::read_link(root.join("bin/sh")).unwrap(),
        Path::new("tool")
    );
    assert!(!root.join("bin/fifo").exists(), "FIFOs are skipped");
    assert!(!root.join("bin/mem").exists(), "device nodes are skipped");
    assert!(!root.join(".wh.old").exists() && !root.join("data/.wh..wh..opq").exists());
    let setuid = std::fs::metadata(root.join("bin/setuid")).unwrap();
    assert_eq!(setuid.permissions().mode() & 0o7777, 0o755, "setuid dropped");
    assert_eq!((setuid.uid(), setuid.gid()), (1000, 1000), "owners kept");
    assert_eq!(setuid.mtime(), 1_600_000_000, "modification times kept");
    for mount_point in ["proc", "dev", "tmp", "run/kiln"] {
        assert!(root.join(mount_point).is_dir(), "{mount_point} exists");
    }
    let hosts = std::fs::read_to_string(root.join("etc/hosts")).unwrap();
    assert!(
        hosts.contains("localhost") && !hosts.contains("image-host"),
        "Kiln's own /etc/hosts: {hosts}"
    );
    let layer_hosts = scratch
        .0
        .join("store/layers")
        .join(&stored.layers[0])
        .join("etc/hosts");
    assert_eq!(
        std::fs::read(layer_hosts).unwrap(),
        b"10.0.0.1 image-host\n",
        "the layer's file is untouched"
    );

    assert_eq!(stored.reference.as_deref(), Some("app:1"));
    assert_eq!(stored.process.args, ["python3", "/app/handler.py"]);
    assert_eq!(stored.process.env, ["PATH=/usr/bin", "GREETING=hi"]);
    assert_eq!(stored.process.cwd, "/app");
    assert_eq!((stored.process.uid, stored.process.gid), (1000, 1000));
    assert_eq!(stored.process.additional_gids, [50]);
    assert!(store.contains(&stored.digest));
}

#[test]
fn plain_layers_and_docker_archives_load_too() {
    let scratch = Scratch::new("docker");
    let base = base_layer(Compression::Plain);
    let image = TestImage {
        reference: "app:2",
        config: config(&[&base], json!({"Cmd": ["/bin/tool"], "User": "1000:50"})),
        layers: vec![&base],
    };
    let archive = docker_archive(&scratch.0, &image);
    let store = open(&scratch);
    let stored = store.ingest(&archive, Some("app:2")).unwrap();
    assert_eq!(stored.digest, support::sha256(&image.config));
    assert_eq!(stored.process.args, ["/bin/tool"]);
    assert_eq!((stored.process.uid, stored.process.gid), (1000, 50));
    assert_eq!(stored.process.cwd, "/");
    assert!(
        stored.process.env[0].starts_with("PATH="),
        "a default PATH: {:?}",
        stored.process.env
    );
    assert_eq!(
        std::fs::read(store.root_path(&stored.digest).join("data/a")).unwrap(),
        b"a"
    );
}

#[test]
fn images_share_layers_and_removal_frees_only_unused_ones() {
    let scratch = Scratch::new("share");
    let base = base_layer(Compression::Gzip);
    let top = layer(&[Entry::File("extra", b"second image", 0o644)], Compression::Gzip);
    let first = TestImage {
        reference: "one",
        config: config(&[&base], app_process()),
        layers: vec![&base],
    };
    let second = TestImage {
        reference: "two",
        config: config(&[&base, &top], app_process()),
        layers: vec![&base, &top],
    };
    let store = open(&scratch);
    let one = store.ingest(&oci_archive(&scratch.0, &[first]), None).unwrap();
    let two = store.ingest(&oci_archive(&scratch.0, &[second]), None).unwrap();
    assert_eq!(
        tree(&scratch.0.join("store/layers"))
            .iter()
            .filter(|name| !name.contains('/'))
            .count(),
        2
    );
    let inode = |digest: &str| {
        std::fs::metadata(store.root_path(digest).join("etc/passwd"))
            .unwrap()
            .ino()
    };
    assert_eq!(
        inode(&one.digest),
        inode(&two.digest),
        "both roots link the one stored file"
    );

    store.remove(&one.digest).unwrap();
    assert!(!store.root_path(&one.digest).exists());
    assert_eq!(
        std::fs::read(store.root_path(&two.digest).join("etc/passwd")).unwrap(),
        PASSWD
    );
    store.remove(&two.digest).unwrap();
    assert_empty(&scratch);
}

#[test]
fn several_images_need_a_choice() {
    let scratch = Scratch::new("choose");
    let base = base_layer(Compression::Gzip);
    let images = [
        TestImage {
            reference: "localhost/api:1",
            config: config(&[&base], json!({"Cmd": ["/bin/tool"]})),
            layers: vec![&base],
        },
        TestImage {
            reference: "localhost/worker:1",
            config: config(&[&base], json!({"Cmd": ["/bin/sh"]})),
            layers: vec![&base],
        },
    ];
    let archive = oci_archive(&scratch.0, &images);
    let store = open(&scratch);
    match store.ingest(&archive, None) {
        Err(ImageError::Ambiguous(choices)) => assert_eq!(choices, ["localhost/api:1", "localhost/worker:1"]),
        other => panic!("expected a choice to be asked for, got {other:?}"),
    }
    match store.ingest(&archive, Some("cron:1")) {
        Err(error @ ImageError::NotInArchive { .. }) => assert_eq!(error.code(), "image_not_in_archive"),
        other => panic!("expected image_not_in_archive, got {other:?}"),
    }
    assert_empty(&scratch);
    let worker = store.ingest(&archive, Some("worker:1")).unwrap();
    assert_eq!(
        worker.reference.as_deref(),
        Some("localhost/worker:1"),
        "recorded by the archive's name"
    );
    assert_eq!(worker.process.args, ["/bin/sh"]);
}

/// Ingests a one-layer image whose layer is `entries`, expecting `invalid_image` with
/// `message` in its text and an empty store afterwards.
fn assert_refused(test: &str, entries: &[Entry], message: &str) {
    let scratch = Scratch::new(test);
    let bad = layer(entries, Compression::Gzip);
    let image = TestImage {
        reference: "bad",
        config: config(&[&bad], json!({"Cmd": ["/x"]})),
        layers: vec![&bad],
    };
    let archive = oci_archive(&scratch.0, &[image]);
    let store = open(&scratch);
    match store.ingest(&archive, None) {
        Err(error @ ImageError::Invalid(_)) => {
            assert!(error.to_string().contains(message), "{error}");
            assert_eq!(error.code(), "invalid_image");
        }
        other => panic!("{test}: expected invalid_image, got {other:?}"),
    }
    assert_empty(&scratch);
}

#[test]
fn entries_climbing_out_are_refused() {
    assert_refused(
        "dotdot",
        &[Entry::File("../../escaped", b"x", 0o644)],
        "climbs out",
    );
    assert_refused(
        "dotdot-inner",
        &[Entry::Dir("a/"), Entry::File("a/../../escaped", b"x", 0o644)],
        "climbs out",
    );
    assert!(!std::env::temp_dir().join("escaped").exists());
}

#[test]
fn nothing_is_written_through_a_symbolic_link() {
    let outside = Scratch::new("outside");
    let target = outside.0.display().to_string();
    assert_refused(
        "through-link",
        &[
            Entry::Symlink("etc", target),
            Entry::File("etc/pwned", b"x", 0o644),
        ],
        "symbolic link or a file",
    );
    assert_eq!(
        tree(&outside.0),
        Vec::<String>::new(),
        "nothing written where the link points"
    );
}

#[test]
fn hard_links_only_reach_earlier_files_of_the_same_layer() {
    assert_refused(
        "link-out",
        &[Entry::HardLink("shadow", "../../etc/shadow")],
        "climbs out",
    );
    assert_refused(
        "link-missing",
        &[Entry::HardLink("passwd", "/etc/passwd")],
        "not a regular file earlier",
    );
    let outside = Scratch::new("outside-link");
    assert_refused(
        "link-through",
        &[
            Entry::Symlink("up", outside.0.display().to_string()),
            Entry::HardLink("copy", "up/file"),
        ],
        "symbolic link or a file",
    );
}

#[test]
fn blobs_must_match_their_digests() {
    let scratch = Scratch::new("digests");
    let base = base_layer(Compression::Gzip);
    let good = TestImage {
        reference: "app",
        config: config(&[&base], app_process()),
        layers: vec![&base],
    };
    let archive = oci_archive(&scratch.0, &[good]);
    // Same members, but the layer blob's bytes swapped for another gzip of other files.
    let other = layer(&[Entry::File("evil", b"evil", 0o644)], Compression::Gzip);
    let mut members = read_members(&archive);
    let layer_name = format!("blobs/sha256/{}", support::sha256(&base.blob));
    for (name, bytes) in &mut members {
        if *name == layer_name {
            *bytes = other.blob.clone();
        }
    }
    let tampered = write_archive(&scratch.0, "tampered.tar", &members);
    let store = open(&scratch);
    let error = store.ingest(&tampered, None).unwrap_err();
    assert!(error.to_string().contains(&layer_name[13..]), "{error}");
    assert_eq!(error.code(), "invalid_image");
    // Same length, other bytes: caught by the digest, not the size.
    let mut flipped = base.blob.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    for (name, bytes) in &mut members {
        if *name == layer_name {
            *bytes = flipped.clone();
        }
    }
    let flipped_archive = write_archive(&scratch.0, "flipped.tar", &members);
    let error = store.ingest(&flipped_archive, None).unwrap_err();
    assert!(error.to_string().contains("does not match its digest"), "{error}");

    // A layer that matches its blob digest but not the config's diff id.
    let wrong_config = config(&[&other], app_process());
    let lying = TestImage {
        reference: "app",
        config: wrong_config,
        layers: vec![&base],
    };
    let error = store
        .ingest(&oci_archive(&scratch.0, &[lying]), None)
        .unwrap_err();
    assert!(error.to_string().contains("but the config says"), "{error}");
    assert_empty(&scratch);
}

#[test]
fn limits_and_foreign_platforms_are_refused() {
    let scratch = Scratch::new("limits");
    let base = base_layer(Compression::Gzip);
    let image = TestImage {
        reference: "app",
        config: config(&[&base], app_process()),
        layers: vec![&base],
    };
    let archive = oci_archive(&scratch.0, &[image]);
    let small = ImageLimits {
        max_rootfs_bytes: 20,
        ..ImageLimits::default()
    };
    let store = ImageStore::open(&scratch.0.join("store"), small).unwrap();
    let error = store.ingest(&archive, None).unwrap_err();
    assert_eq!(error.code(), "image_too_large", "{error}");
    assert_empty(&scratch);

    let mut arm: serde_json::Value = serde_json::from_slice(&config(&[&base], app_process())).unwrap();
    arm["architecture"] = json!("arm64");
    let arm = TestImage {
        reference: "app",
        config: serde_json::to_vec(&arm).unwrap(),
        layers: vec![&base],
    };
    let error = open(&scratch)
        .ingest(&oci_archive(&scratch.0, &[arm]), None)
        .unwrap_err();
    assert!(error.to_string().contains("linux/arm64"), "{error}");

    let not_image = write_archive(
        &scratch.0,
        "plain.tar",
        &[("hello.txt".to_owned(), b"hi".to_vec())],
    );
    let error = open(&scratch).ingest(&not_image, None).unwrap_err();
    assert!(
        error.to_string().contains("neither an OCI image layout"),
        "{error}"
    );
    assert_empty(&scratch);
}

#[test]
fn an_unknown_user_is_refused() {
    let scratch = Scratch::new("user");
    let base = base_layer(Compression::Gzip);
    let image = TestImage {
        reference: "app",
        config: config(&[&base], json!({"Cmd": ["/x"], "User": "nobody"})),
        layers: vec![&base],
    };
    let error = open(&scratch)
        .ingest(&oci_archive(&scratch.0, &[image]), None)
        .unwrap_err();
    assert!(
        error.to_string().contains("`nobody` is not in its /etc/passwd"),
        "{error}"
    );
    assert_empty(&scratch);
}

fn read_members(archive: &Path) -> Vec<(String, Vec<u8>)> {
    let mut members = Vec::new();
    let mut reader = tar::Archive::new(std::fs::File::open(archive).unwrap());
    for entry in reader.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().display().to_string();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
        members.push((name, bytes));
    }
    members
}

#[test]
fn a_gzip_bomb_stops_at_the_unpacked_limit() {
    let scratch = Scratch::new("bomb");
    let zeros: &'static [u8] = Box::leak(vec![0u8; 64 << 20].into_boxed_slice());
    let bomb = layer(&[Entry::File("zeros", zeros, 0o644)], Compression::Gzip);
    assert!(
        bomb.blob.len() < 1 << 20,
        "64 MiB of zeros compress to {} bytes",
        bomb.blob.len()
    );
    let image = TestImage {
        reference: "bomb",
        config: config(&[&bomb], json!({"Cmd": ["/x"]})),
        layers: vec![&bomb],
    };
    let archive = oci_archive(&scratch.0, &[image]);
    let limits = ImageLimits {
        max_rootfs_bytes: 8 << 20,
        ..ImageLimits::default()
    };
    let store = ImageStore::open(&scratch.0.join("store"), limits).unwrap();
    let error = store.ingest(&archive, None).unwrap_err();
    assert_eq!(error.code(), "image_too_large", "{error}");
    assert_empty(&scratch);
}

#[test]
fn too_many_files_are_refused() {
    let scratch = Scratch::new("many");
    let names: Vec<&'static str> = (0..300)
        .map(|n| &*Box::leak(format!("f{n}").into_boxed_str()))
        .collect();
    let entries: Vec<Entry> = names.iter().map(|name| Entry::File(name, b"", 0o644)).collect();
    let many = layer(&entries, Compression::Gzip);
    let image = TestImage {
        reference: "many",
        config: config(&[&many], json!({"Cmd": ["/x"]})),
        layers: vec![&many],
    };
    let archive = oci_archive(&scratch.0, &[image]);
    let limits = ImageLimits {
        max_entries: 200,
        ..ImageLimits::default()
    };
    let store = ImageStore::open(&scratch.0.join("store"), limits).unwrap();
    let error = store.ingest(&archive, None).unwrap_err();
    assert_eq!(error.code(), "image_too_large", "{error}");
    assert!(error.to_string().contains("too many files"), "{error}");
    assert_empty(&scratch);
}

#[test]
fn pieces_left_by_a_crash_are_removed_when_the_store_opens() {
    let scratch = Scratch::new("crash");
    let base = base_layer(Compression::Gzip);
    let image = TestImage {
        reference: "app",
        config: config(&[&base], app_process()),
        layers: vec![&base],
    };
    let store = open(&scratch);
    let kept = store.ingest(&oci_archive(&scratch.0, &[image]), None).unwrap();
    drop(store);
    // What a kill -9 in the middle of an unpack, a root build or a record write leaves.
    for partial in ["layers/.partial-abc-1-0/etc", "roots/.partial-def-1-1/bin"] {
        std::fs::create_dir_all(scratch.0.join("store").join(partial)).unwrap();
    }
    std::fs::write(scratch.0.join("store/records/.partial-def-1-2"), b"{").unwrap();
    // ... and in the middle of removing an image: its record gone, its root and layer not yet.
    std::fs::create_dir_all(scratch.0.join("store/roots/0123/etc")).unwrap();
    std::fs::create_dir_all(scratch.0.join("store/layers/4567/etc")).unwrap();
    let store = open(&scratch);
    for dir in ["layers", "roots", "records"] {
        let names = tree(&scratch.0.join("store").join(dir));
        assert!(
            names.iter().all(|name| !name.contains(".partial-")
                && !name.starts_with("0123")
                && !name.starts_with("4567")),
            "{dir}: {names:?}"
        );
    }
    assert!(store.contains(&kept.digest), "finished images survive");
    assert_eq!(
        std::fs::read(store.root_path(&kept.digest).join("etc/passwd")).unwrap(),
        PASSWD
    );
}

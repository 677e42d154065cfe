//! Builds image archives byte by byte for the tests, crafted ones included: layers with any
//! entry names, OCI layouts and docker-archives around them.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// One entry of a test layer; names are written as given, `..` and all.
pub enum Entry {
    Dir(&'static str),
    File(&'static str, &'static [u8], u32),
    Symlink(&'static str, String),
    HardLink(&'static str, &'static str),
    Fifo(&'static str),
    CharDevice(&'static str),
}

pub enum Compression {
    Plain,
    Gzip,
    Zstd,
}

pub struct Layer {
    /// The uncompressed tar.
    pub tar: Vec<u8>,
    /// The blob as stored in the archive.
    pub blob: Vec<u8>,
    pub media_type: &'static str,
}

pub fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

pub fn layer(entries: &[Entry], compression: Compression) -> Layer {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut header = tar::Header::new_ustar();
        let (name, kind, data, mode, link): (&str, tar::EntryType, &[u8], u32, Option<String>) = match entry {
            Entry::Dir(name) => (name, tar::EntryType::Directory, b"", 0o755, None),
            Entry::File(name, data, mode) => (name, tar::EntryType::Regular, data, *mode, None),
            Entry::Symlink(name, target) => (name, tar::EntryType::Symlink, b"", 0o777, Some(target.clone())),
            Entry::HardLink(name, target) => {
                (name, tar::EntryType::Link, b"", 0o644, Some((*target).to_owned()))
            }
            Entry::Fifo(name) => (name, tar::EntryType::Fifo, b"", 0o644, None),
            Entry::CharDevice(name) => (name, tar::EntryType::Char, b"", 0o666, None),
        };
        header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(link) = link {
            header.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_size(data.len() as u64);
        header.set_uid(1000);
        header.set_gid(1000);
        header.set_mtime(1_600_000_000);
        header.set_cksum();
        builder.append(&header, data).unwrap();
    }
    let tar = builder.into_inner().unwrap();
    let (blob, media_type) = match compression {
        Compression::Plain => (tar.clone(), "application/vnd.oci.image.layer.v1.tar"),
        Compression::Gzip => {
            let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            encoder.write_all(&tar).unwrap();
            (
                encoder.finish().unwrap(),
                "application/vnd.oci.image.layer.v1.tar+gzip",
            )
        }
        Compression::Zstd => (
            ruzstd::encoding::compress_to_vec(tar.as_slice(), ruzstd::encoding::CompressionLevel::Fastest),
            "application/vnd.oci.image.layer.v1.tar+zstd",
        ),
    };
    Layer {
        tar,
        blob,
        media_type,
    }
}

/// An image config for `layers` with the given `config` section.
pub fn config(layers: &[&Layer], process: Value) -> Vec<u8> {
    let diff_ids: Vec<String> = layers
        .iter()
        .map(|layer| format!("sha256:{}", sha256(&layer.tar)))
        .collect();
    serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "config": process,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap()
}

/// One image of an archive: its reference, config bytes and layers.
pub struct TestImage<'a> {
    pub reference: &'a str,
    pub config: Vec<u8>,
    pub layers: Vec<&'a Layer>,
}

/// Writes an OCI image layout as a tar (what `skopeo copy ... oci-archive:` makes).
pub fn oci_archive(dir: &Path, images: &[TestImage<'_>]) -> PathBuf {
    let mut blobs: Vec<(String, Vec<u8>)> = Vec::new();
    let mut manifests = Vec::new();
    for image in images {
        let layers: Vec<Value> = image
            .layers
            .iter()
            .map(|layer| {
                blobs.push((sha256(&layer.blob), layer.blob.clone()));
                json!({"mediaType": layer.media_type, "digest": format!("sha256:{}", sha256(&layer.blob)), "size": layer.blob.len()})
            })
            .collect();
        blobs.push((sha256(&image.config), image.config.clone()));
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": format!("sha256:{}", sha256(&image.config)), "size": image.config.len()},
            "layers": layers,
        }))
        .unwrap();
        manifests.push(json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{}", sha256(&manifest)),
            "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": image.reference},
        }));
        blobs.push((sha256(&manifest), manifest));
    }
    let index = serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": manifests})).unwrap();
    let mut members = vec![
        (
            "oci-layout".to_owned(),
            br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
        ),
        ("index.json".to_owned(), index),
    ];
    members.extend(
        blobs
            .into_iter()
            .map(|(hex, bytes)| (format!("blobs/sha256/{hex}"), bytes)),
    );
    write_archive(dir, "image.oci.tar", &members)
}

/// Writes a docker-archive (what `docker save` makes): `manifest.json`, `<hex>.json`,
/// `<n>/layer.tar`.
pub fn docker_archive(dir: &Path, image: &TestImage<'_>) -> PathBuf {
    let config_name = format!("{}.json", sha256(&image.config));
    let mut members = vec![(config_name.clone(), image.config.clone())];
    let mut layer_names = Vec::new();
    for (position, layer) in image.layers.iter().enumerate() {
        let name = format!("layer{position}/layer.tar");
        members.push((name.clone(), layer.blob.clone()));
        layer_names.push(name);
    }
    let manifest = json!([{"Config": config_name, "RepoTags": [image.reference], "Layers": layer_names}]);
    members.insert(
        0,
        ("manifest.json".to_owned(), serde_json::to_vec(&manifest).unwrap()),
    );
    write_archive(dir, "image.docker.tar", &members)
}

pub fn write_archive(dir: &Path, name: &str, members: &[(String, Vec<u8>)]) -> PathBuf {
    let path = dir.join(name);
    let mut builder = tar::Builder::new(std::fs::File::create(&path).unwrap());
    for (member, bytes) in members {
        let mut header = tar::Header::new_ustar();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        builder
            .append_data(&mut header, member, bytes.as_slice())
            .unwrap();
    }
    builder.finish().unwrap();
    path
}

/// A fresh folder for one test, removed when dropped.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(test: &str) -> Scratch {
        let path = std::env::temp_dir().join(format!("kiln-images-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Scratch(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Names under `dir`, recursively, relative to it, sorted.
pub fn tree(dir: &Path) -> Vec<String> {
    let mut names = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            names.push(path.strip_prefix(dir).unwrap().display().to_string());
            if entry.file_type().unwrap().is_dir() {
                pending.push(path);
            }
        }
    }
    names.sort();
    names
}

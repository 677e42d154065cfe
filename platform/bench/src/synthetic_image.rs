//! A synthetic image of a chosen size for the upload figures: one gzip layer holding one file
//! of random (so incompressible) bytes, written as an oci-archive.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;

use anyhow::Context;
use serde_json::json;
use sha2::{Digest, Sha256};

/// Passes bytes on to `inner` and hashes them.
struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(bytes)?;
        self.hasher.update(&bytes[..written]);
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Writes the archive to `path`; `work` holds the layer meanwhile.
pub fn write(path: &Path, work: &Path, megabytes: u64) -> anyhow::Result<()> {
    std::fs::create_dir_all(work)?;
    let layer_path = work.join("layer.tar.gz");
    let compressed = HashingWriter {
        inner: BufWriter::new(File::create(&layer_path)?),
        hasher: Sha256::new(),
    };
    let gzip = flate2::write::GzEncoder::new(compressed, flate2::Compression::fast());
    let mut tar = tar::Builder::new(HashingWriter {
        inner: gzip,
        hasher: Sha256::new(),
    });
    let mut header = tar::Header::new_ustar();
    header.set_size(megabytes << 20);
    header.set_mode(0o644);
    header.set_mtime(0);
    let random = File::open("/dev/urandom")?.take(megabytes << 20);
    tar.append_data(&mut header, "data/random", random)
        .context("writing the layer")?;
    let uncompressed = tar.into_inner()?;
    let diff_id = hex(&uncompressed.hasher.finalize());
    let mut compressed = uncompressed.inner.finish()?;
    compressed.flush()?;
    let layer_digest = hex(&compressed.hasher.finalize());
    let layer_size = std::fs::metadata(&layer_path)?.len();

    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/data/random"]},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{diff_id}")]},
    }))?;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": format!("sha256:{}", hex(&Sha256::digest(&config))), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": format!("sha256:{layer_digest}"), "size": layer_size}],
    }))?;
    let index = serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": format!("sha256:{}", hex(&Sha256::digest(&manifest))), "size": manifest.len(),
        "annotations": {"org.opencontainers.image.ref.name": format!("synthetic:{megabytes}mb")},
    }]}))?;

    let mut archive = tar::Builder::new(BufWriter::new(File::create(path)?));
    let mut member = |name: String, bytes: &[u8]| -> io::Result<()> {
        let mut header = tar::Header::new_ustar();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        archive.append_data(&mut header, name, bytes)
    };
    member("oci-layout".into(), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    member("index.json".into(), &index)?;
    member(format!("blobs/sha256/{}", hex(&Sha256::digest(&config))), &config)?;
    member(
        format!("blobs/sha256/{}", hex(&Sha256::digest(&manifest))),
        &manifest,
    )?;
    let mut header = tar::Header::new_ustar();
    header.set_size(layer_size);
    header.set_mode(0o644);
    archive.append_data(
        &mut header,
        format!("blobs/sha256/{layer_digest}"),
        File::open(&layer_path)?,
    )?;
    archive.into_inner()?.flush()?;
    std::fs::remove_file(&layer_path)?;
    Ok(())
}

//! An oci-archive around one uncompressed layer, digests and all, so that an image target's
//! input reaches unpacking instead of stopping at a digest the fuzzer cannot forge.

use serde_json::json;
use sha2::{Digest, Sha256};

/// The archive of an image made of `layer` (a tar, as it is) run as `user`.
pub(crate) fn oci_archive(user: &str, layer: &[u8]) -> Vec<u8> {
    let layer_digest = sha256(layer);
    let config = json!({
        "architecture": "amd64", "os": "linux",
        "config": {"User": user, "Entrypoint": ["/bin/app"], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    })
    .to_string();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": sha256(config.as_bytes()), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest, "size": layer.len()}],
    })
    .to_string();
    let index = json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": sha256(manifest.as_bytes()), "size": manifest.len(),
        "annotations": {"org.opencontainers.image.ref.name": "fuzz:1"},
    }]})
    .to_string();
    let mut archive = tar::Builder::new(Vec::new());
    let members: [(String, &[u8]); 5] = [
        ("oci-layout".into(), br#"{"imageLayoutVersion":"1.0.0"}"#),
        ("index.json".into(), index.as_bytes()),
        (blob_name(config.as_bytes()), config.as_bytes()),
        (blob_name(manifest.as_bytes()), manifest.as_bytes()),
        (blob_name(layer), layer),
    ];
    for (name, bytes) in members {
        let mut header = tar::Header::new_ustar();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        archive
            .append_data(&mut header, name, bytes)
            .expect("writing to memory");
    }
    archive.into_inner().expect("writing to memory")
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn blob_name(bytes: &[u8]) -> String {
    format!("blobs/sha256/{}", hex::encode(Sha256::digest(bytes)))
}

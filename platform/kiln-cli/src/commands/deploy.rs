//! `kiln deploy NAME PATH [--set key=value ...]`: uploads a static executable or an image
//! archive as the new current version, with a progress bar on stderr for uploads over 1 MiB
//! when stderr is a terminal and the output is not `--json`.

use std::io::IsTerminal;

use anyhow::Context as _;
use bytes::Bytes;

use crate::args::DeployArgs;
use crate::context::Context;
use crate::output::print_json;
use crate::progress;

pub async fn run(context: &Context, args: DeployArgs) -> anyhow::Result<()> {
    let client = context.client()?;
    let upload = tokio::fs::read(&args.path)
        .await
        .with_context(|| format!("cannot read {}", args.path.display()))?;
    let visible =
        std::io::stderr().is_terminal() && !context.json() && upload.len() as u64 >= progress::MIN_BYTES;
    let then = if is_tar(&upload) {
        "sent; kilnd is checking every layer against its digest and unpacking the image"
    } else {
        "sent; kilnd is checking the executable"
    };
    let uploaded = client
        .upload_function(
            &args.name,
            &args.settings,
            Bytes::from(upload),
            progress::bar(visible, then),
        )
        .await
        .with_context(|| format!("deploying {}", args.name))?;
    if context.json() {
        return print_json(&uploaded);
    }
    println!("deployed {} version {}", uploaded.name, uploaded.version.version);
    println!("digest {}", uploaded.version.digest);
    Ok(())
}

/// A tar archive (an image): the `ustar` magic at offset 257.
fn is_tar(bytes: &[u8]) -> bool {
    bytes.get(257..262) == Some(b"ustar".as_slice())
}

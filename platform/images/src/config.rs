//! The image config: what the layers must hash to, and how the image's process starts.

use std::path::Path;

use kiln_types::ProcessSpec;
use serde::Deserialize;

use crate::ImageError;
use crate::root::read_root_file;

#[derive(Debug, Deserialize)]
pub(crate) struct ImageConfig {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
    #[serde(default)]
    config: Option<ProcessConfig>,
    rootfs: RootFs,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ProcessConfig {
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    env: Option<Vec<String>>,
    #[serde(default)]
    entrypoint: Option<Vec<String>>,
    #[serde(default)]
    cmd: Option<Vec<String>>,
    #[serde(default)]
    working_dir: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RootFs {
    #[serde(rename = "type")]
    kind: String,
    diff_ids: Vec<String>,
}

impl ImageConfig {
    pub(crate) fn parse(bytes: &[u8]) -> Result<ImageConfig, ImageError> {
        let config: ImageConfig = serde_json::from_slice(bytes)
            .map_err(|error| ImageError::invalid(format!("the image config is not valid: {error}")))?;
        if config.os != "linux" || config.architecture != "amd64" {
            return Err(ImageError::invalid(format!(
                "the image is built for {}/{}; Kiln runs linux/amd64 images",
                config.os, config.architecture
            )));
        }
        if config.rootfs.kind != "layers" {
            return Err(ImageError::invalid(format!(
                "rootfs type `{}` is not `layers`",
                config.rootfs.kind
            )));
        }
        Ok(config)
    }

    /// The image's Entrypoint alone (a function's `cmd=` setting replaces only its Cmd).
    pub(crate) fn entrypoint(&self) -> Vec<String> {
        self.config
            .as_ref()
            .and_then(|config| config.entrypoint.clone())
            .unwrap_or_default()
    }

    /// `sha256:<hex>` of each layer once decompressed, lowest first.
    pub(crate) fn diff_ids(&self) -> &[String] {
        &self.rootfs.diff_ids
    }

    /// Entrypoint then Cmd, Env, WorkingDir and User, the user looked up in the image's own
    /// `/etc/passwd` and `/etc/group` when it is given by name.
    pub(crate) fn process(&self, root: &Path) -> Result<ProcessSpec, ImageError> {
        let config = self.config.as_ref();
        let mut args = config
            .and_then(|config| config.entrypoint.clone())
            .unwrap_or_default();
        args.extend(config.and_then(|config| config.cmd.clone()).unwrap_or_default());
        if args.is_empty() {
            return Err(ImageError::invalid(
                "the image has neither Entrypoint nor Cmd: Kiln does not know what to start",
            ));
        }
        let mut env = config.and_then(|config| config.env.clone()).unwrap_or_default();
        if !env.iter().any(|pair| pair.starts_with("PATH=")) {
            env.insert(
                0,
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned(),
            );
        }
        let cwd = config
            .and_then(|config| config.working_dir.clone())
            .filter(|dir| !dir.is_empty())
            .unwrap_or_else(|| "/".to_owned());
        if !cwd.starts_with('/') {
            return Err(ImageError::invalid(format!(
                "WorkingDir `{cwd}` is not an absolute path"
            )));
        }
        let user = config.and_then(|config| config.user.clone()).unwrap_or_default();
        let (uid, gid, additional_gids) = resolve_user(root, &user)?;
        Ok(ProcessSpec {
            args,
            env,
            cwd,
            uid,
            gid,
            additional_gids,
        })
    }
}

/// `""`, `uid`, `uid:gid`, `name`, `name:group`: numbers as they are, names from the image.
fn resolve_user(root: &Path, user: &str) -> Result<(u32, u32, Vec<u32>), ImageError> {
    if user.is_empty() {
        return Ok((0, 0, Vec::new()));
    }
    let (user_part, group_part) = match user.split_once(':') {
        Some((user, group)) => (user, Some(group)),
        None => (user, None),
    };
    let passwd = read_root_file(root, "etc/passwd")?.unwrap_or_default();
    let groups = read_root_file(root, "etc/group")?.unwrap_or_default();
    let passwd_entry = |predicate: &dyn Fn(&[&str]) -> bool| {
        passwd
            .lines()
            .map(|line| line.split(':').collect::<Vec<_>>())
            .find(|fields| fields.len() >= 4 && predicate(fields))
    };
    let (uid, name, primary_gid) = match user_part.parse::<u32>() {
        Ok(uid) => {
            let entry = passwd_entry(&|fields| fields[2] == user_part);
            (
                uid,
                entry.as_ref().map(|fields| fields[0].to_owned()),
                entry.and_then(|fields| fields[3].parse().ok()),
            )
        }
        Err(_) => {
            let fields = passwd_entry(&|fields| fields[0] == user_part).ok_or_else(|| {
                ImageError::invalid(format!(
                    "the image's User `{user_part}` is not in its /etc/passwd"
                ))
            })?;
            let uid = fields[2].parse().map_err(|_| {
                ImageError::invalid(format!("/etc/passwd gives user `{user_part}` no numeric uid"))
            })?;
            (uid, Some(user_part.to_owned()), fields[3].parse().ok())
        }
    };
    let group_entries: Vec<Vec<&str>> = groups
        .lines()
        .map(|line| line.split(':').collect::<Vec<_>>())
        .filter(|fields| fields.len() >= 3)
        .collect();
    let gid = match group_part {
        None => primary_gid.unwrap_or(0),
        Some(group) => match group.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => group_entries
                .iter()
                .find(|fields| fields[0] == group)
                .and_then(|fields| fields[2].parse().ok())
                .ok_or_else(|| {
                    ImageError::invalid(format!("the image's group `{group}` is not in its /etc/group"))
                })?,
        },
    };
    let additional_gids = match &name {
        Some(name) => group_entries
            .iter()
            .filter(|fields| {
                fields
                    .get(3)
                    .is_some_and(|members| members.split(',').any(|member| member == name))
            })
            .filter_map(|fields| fields[2].parse().ok())
            .filter(|&group| group != gid)
            .collect(),
        None => Vec::new(),
    };
    Ok((uid, gid, additional_gids))
}

//! Where the CLI's settings come from: flags, then `KILN_*` environment variables, then the
//! config file (`KILN_CONFIG`, else `$XDG_CONFIG_HOME/kiln/config.json`, else
//! `~/.config/kiln/config.json`), which `kiln login` writes with mode 0600.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::args::GlobalArgs;

/// The config file's contents; every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<PathBuf>,
}

/// The settings in force for this run, each from the first source that has it.
pub type Settings = ConfigFile;

/// The config file's path, from the environment (read through `env`).
pub fn config_path(env: impl Fn(&str) -> Option<String>) -> anyhow::Result<PathBuf> {
    if let Some(path) = env("KILN_CONFIG").filter(|path| !path.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    let base = match env("XDG_CONFIG_HOME").filter(|dir| Path::new(dir).is_absolute()) {
        Some(dir) => PathBuf::from(dir),
        None => match env("HOME").filter(|home| !home.is_empty()) {
            Some(home) => Path::new(&home).join(".config"),
            None => bail!("cannot find the config file: set KILN_CONFIG, XDG_CONFIG_HOME or HOME"),
        },
    };
    Ok(base.join("kiln").join("config.json"))
}

/// Reads the config file; a missing file is an empty config.
pub fn load(path: &Path) -> anyhow::Result<ConfigFile> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(ConfigFile::default()),
        Err(error) => return Err(error).with_context(|| format!("cannot read {}", path.display())),
    };
    serde_json::from_str(&text).with_context(|| format!("{} is not a valid kiln config", path.display()))
}

/// Writes the config file (and its folder, mode 0700) with mode 0600, replacing it atomically.
pub fn save(path: &Path, config: &ConfigFile) -> anyhow::Result<()> {
    let folder = path
        .parent()
        .filter(|folder| !folder.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(folder)
        .with_context(|| format!("cannot create {}", folder.display()))?;
    let temporary = folder.join(format!(".config.json.{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temporary)?;
        let mut text = serde_json::to_string_pretty(config).map_err(std::io::Error::other)?;
        text.push('\n');
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)
    };
    write().map_err(|error| {
        let _ = std::fs::remove_file(&temporary);
        anyhow::Error::new(error).context(format!("cannot write {}", path.display()))
    })
}

/// Flags first, then the environment, then the file; empty values count as unset.
pub fn resolve(flags: &GlobalArgs, env: impl Fn(&str) -> Option<String>, file: ConfigFile) -> Settings {
    let pick = |flag: &Option<String>, variable: &str, saved: Option<String>| {
        flag.clone()
            .or_else(|| env(variable))
            .or(saved)
            .filter(|value| !value.is_empty())
    };
    Settings {
        url: pick(&flags.url, "KILN_URL", file.url),
        token: pick(&flags.token, "KILN_TOKEN", file.token),
        admin_token: pick(&flags.admin_token, "KILN_ADMIN_TOKEN", file.admin_token),
        ca_cert: file.ca_cert,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn flags(url: Option<&str>, token: Option<&str>) -> GlobalArgs {
        GlobalArgs {
            url: url.map(str::to_owned),
            token: token.map(str::to_owned),
            admin_token: None,
            json: false,
            verbose: false,
            timeout: 300,
        }
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("kiln-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn the_config_path_follows_kiln_config_then_xdg_then_home() {
        let path = |pairs: &[(&str, &str)]| config_path(env(pairs)).ok();
        assert_eq!(
            path(&[
                ("KILN_CONFIG", "/etc/k.json"),
                ("XDG_CONFIG_HOME", "/x"),
                ("HOME", "/h")
            ]),
            Some(PathBuf::from("/etc/k.json"))
        );
        assert_eq!(
            path(&[("XDG_CONFIG_HOME", "/x"), ("HOME", "/h")]),
            Some(PathBuf::from("/x/kiln/config.json"))
        );
        assert_eq!(
            path(&[("XDG_CONFIG_HOME", "relative"), ("HOME", "/h")]),
            Some(PathBuf::from("/h/.config/kiln/config.json")),
            "a relative XDG_CONFIG_HOME is ignored, as the spec says"
        );
        assert_eq!(path(&[]), None);
    }

    #[test]
    fn flags_beat_the_environment_which_beats_the_file() {
        let file = ConfigFile {
            url: Some("http://file".into()),
            token: Some("file-token".into()),
            admin_token: Some("file-admin".into()),
            ca_cert: Some("/ca.pem".into()),
        };
        let environment = env(&[("KILN_URL", "http://env"), ("KILN_TOKEN", "env-token")]);
        let settings = resolve(&flags(Some("http://flag"), None), &environment, file.clone());
        assert_eq!(settings.url.as_deref(), Some("http://flag"));
        assert_eq!(settings.token.as_deref(), Some("env-token"));
        assert_eq!(settings.admin_token.as_deref(), Some("file-admin"));
        assert_eq!(settings.ca_cert, Some(PathBuf::from("/ca.pem")));
        let from_file = resolve(&flags(None, None), env(&[("KILN_TOKEN", "")]), file);
        assert_eq!(from_file.url.as_deref(), Some("http://file"));
        assert_eq!(from_file.token, None, "an empty KILN_TOKEN unsets the token");
        assert_eq!(
            resolve(&flags(None, None), env(&[]), ConfigFile::default()),
            Settings::default()
        );
    }

    #[test]
    fn saved_configs_are_private_and_load_back() {
        let dir = scratch("save");
        let path = dir.join("kiln/config.json");
        assert_eq!(load(&path).unwrap(), ConfigFile::default(), "no file yet");
        let config = ConfigFile {
            url: Some("https://kiln.example.com".into()),
            token: Some("t".into()),
            admin_token: None,
            ca_cert: None,
        };
        save(&path, &config).unwrap();
        save(&path, &config).unwrap();
        assert_eq!(load(&path).unwrap(), config);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let folder_mode = std::fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(folder_mode & 0o777, 0o700);
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1,
            "no temporary left"
        );
        std::fs::write(&path, "{\"url\": 3}").unwrap();
        assert!(
            load(&path)
                .unwrap_err()
                .to_string()
                .contains("not a valid kiln config")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! What every command gets: the settings in force, the output mode, and API clients built
//! from them (with the tenant token or the admin token).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use kiln_client::{Client, ClientConfig};

use crate::args::GlobalArgs;
use crate::config::{self, Settings};

pub struct Context {
    pub global: GlobalArgs,
    pub settings: Settings,
    /// Where `kiln login` saves, and where the settings above were read from.
    pub config_path: PathBuf,
}

impl Context {
    /// Reads the config file and the environment once.
    pub fn load(global: GlobalArgs) -> anyhow::Result<Context> {
        let env = |name: &str| std::env::var(name).ok();
        let config_path = config::config_path(env)?;
        let file = config::load(&config_path)?;
        let settings = config::resolve(&global, env, file);
        Ok(Context {
            global,
            settings,
            config_path,
        })
    }

    pub fn json(&self) -> bool {
        self.global.json
    }

    /// The tenant token, or an error saying how to provide one.
    pub fn token(&self) -> anyhow::Result<&str> {
        self.settings
            .token
            .as_deref()
            .context("no tenant token: run `kiln login`, set KILN_TOKEN or pass --token")
    }

    /// A client calling with the tenant token.
    pub fn client(&self) -> anyhow::Result<Client> {
        self.client_with(Some(self.token()?.to_owned()))
    }

    /// A client calling with the admin token.
    pub fn admin_client(&self) -> anyhow::Result<Client> {
        let token = self
            .settings
            .admin_token
            .clone()
            .context("no admin token: set KILN_ADMIN_TOKEN or pass --admin-token")?;
        self.client_with(Some(token))
    }

    pub fn client_with(&self, token: Option<String>) -> anyhow::Result<Client> {
        let url = self
            .settings
            .url
            .clone()
            .context("no server url: run `kiln login`, set KILN_URL or pass --url")?;
        Ok(Client::new(ClientConfig {
            url,
            token,
            ca_cert: self.settings.ca_cert.clone(),
            timeout: Duration::from_secs(self.global.timeout),
        })?)
    }
}

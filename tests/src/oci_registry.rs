//! A real OCI distribution registry for pull tests: Debian's `docker-registry` on a free
//! loopback port with htpasswd (basic) auth, its storage in a folder of its own; images are
//! pushed to it with `skopeo`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const REGISTRY_USER: &str = "kiln";
pub const REGISTRY_PASSWORD: &str = "s3cret-pull";

pub struct OciRegistry {
    /// `127.0.0.1:PORT`, as `KILN_REGISTRIES` names it.
    pub address: String,
    pub dir: PathBuf,
    child: Child,
}

impl OciRegistry {
    pub fn start() -> OciRegistry {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let address = format!("127.0.0.1:{port}");
        let dir = std::env::temp_dir().join(format!("kiln-registry-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let htpasswd = Command::new("htpasswd")
            .args(["-Bbn", REGISTRY_USER, REGISTRY_PASSWORD])
            .output()
            .expect("htpasswd (apache2-utils) is installed");
        assert!(htpasswd.status.success());
        std::fs::write(dir.join("htpasswd"), htpasswd.stdout).unwrap();
        let config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {data}\n\
             http:\n  addr: {address}\nauth:\n  htpasswd:\n    realm: kiln-test\n    path: {htpasswd}\n",
            data = dir.join("data").display(),
            htpasswd = dir.join("htpasswd").display(),
        );
        std::fs::write(dir.join("config.yml"), config).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.join("config.yml"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("registry.log")).unwrap())
            .spawn()
            .expect("docker-registry is installed");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(&address).is_err() {
            assert!(Instant::now() < deadline, "docker-registry did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        OciRegistry { address, dir, child }
    }

    /// Pushes an image archive (`oci-archive:` or `docker-archive:` prefix included) as
    /// `repository:tag`; returns the manifest digest the registry stores.
    pub fn push(&self, source: &str, repository_tag: &str) -> String {
        let destination = format!("docker://{}/{repository_tag}", self.address);
        let credentials = format!("{REGISTRY_USER}:{REGISTRY_PASSWORD}");
        let pushed = Command::new("skopeo")
            .args([
                "copy",
                "-q",
                "--dest-tls-verify=false",
                "--dest-creds",
                &credentials,
                source,
                &destination,
            ])
            .status()
            .expect("skopeo is installed");
        assert!(pushed.success(), "skopeo copy {source} {destination}");
        let inspected = Command::new("skopeo")
            .args([
                "inspect",
                "--tls-verify=false",
                "--creds",
                &credentials,
                &destination,
            ])
            .output()
            .unwrap();
        assert!(inspected.status.success(), "skopeo inspect {destination}");
        let details: serde_json::Value = serde_json::from_slice(&inspected.stdout).unwrap();
        details["Digest"].as_str().unwrap().to_owned()
    }

    /// An `auth.json` (podman's format) with this registry's credentials; returns its path.
    pub fn auth_file(&self) -> PathBuf {
        use base64::Engine;
        let auth =
            base64::engine::general_purpose::STANDARD.encode(format!("{REGISTRY_USER}:{REGISTRY_PASSWORD}"));
        let path = self.dir.join("auth.json");
        let file = serde_json::json!({"auths": {self.address.clone(): {"auth": auth}}});
        std::fs::write(&path, file.to_string()).unwrap();
        path
    }
}

impl Drop for OciRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

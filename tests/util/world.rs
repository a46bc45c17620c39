//! The handler tests' world: a unit's filesystem root in a temp dir, a
//! fake `systemctl` that logs its calls (and says etcd is not active), the
//! hook or action context Juju would give `etcd/0`, and a fake hook-tools
//! state for a unit of `etcd` with its peer relation. Shared by
//! tests/handlers.rs and tests/backup_handlers.rs, which run the real
//! handlers against it; only Juju and `systemctl` are faked.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use etcd_charm::charm::{self, Charm};
use etcd_charm::etcd::{Root, Service};
use etcd_charm::juju::fake::{FakeHookTools, FakeState};
use etcd_charm::juju::{Context, Dispatch};

/// A unit's root and a logging fake `systemctl`, removed on drop.
pub struct World {
    _dir: tempfile::TempDir,
    pub root: Root,
    pub systemctl: PathBuf,
    /// Every `systemctl` call, one line each.
    pub log: PathBuf,
}

/// A fresh world: an empty unit root and a `systemctl` that records its
/// arguments, answers `is-active` with 3 (inactive) and everything else
/// with 0.
pub fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("systemctl.log");
    let systemctl = dir.path().join("systemctl");
    fs::write(
        &systemctl,
        format!(
            "#!/bin/sh\necho \"$@\" >> {}\ncase \"$1\" in is-active) exit 3;; esac\nexit 0\n",
            log.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&systemctl, fs::Permissions::from_mode(0o755)).unwrap();
    let root = Root::new(dir.path().join("root"));
    fs::create_dir_all(root.base()).unwrap();
    World {
        _dir: dir,
        root,
        systemctl,
        log,
    }
}

/// The context Juju 3.5 gives `etcd/0` for `dispatch`.
pub fn ctx(dispatch: Dispatch) -> Context {
    Context {
        dispatch,
        unit_name: "etcd/0".into(),
        app_name: "etcd".into(),
        charm_dir: ".".into(),
        model_name: "test".into(),
        juju_version: "3.5.0".into(),
        relation: None,
    }
}

/// The context of the hook `name` on `etcd/0`.
pub fn hook(name: &str) -> Context {
    ctx(Dispatch::Hook(name.into()))
}

/// `etcd/0` of `etcd` at 127.9.9.9, the leader or not, with no config and
/// its peer relation `cluster:0` (Juju creates it before the first hook
/// that needs it) holding no other unit.
pub fn unit_state(leader: bool) -> FakeState {
    let mut s = FakeState {
        leader,
        unit_name: "etcd/0".into(),
        app_name: "etcd".into(),
        address: "127.9.9.9".into(),
        ..FakeState::default()
    };
    s.relations.insert("cluster:0".into(), vec![]);
    s
}

/// Runs the real dispatcher for `c` in `w`, with `w`'s `systemctl`.
pub fn run(w: &World, tools: &FakeHookTools, c: &Context) -> anyhow::Result<()> {
    let mut charm = Charm::new(c, tools, w.root.clone());
    charm.service = Service::with_systemctl(&w.systemctl);
    charm::dispatch(&charm)
}

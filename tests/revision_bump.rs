//! The revision bump, proven on etcd 3.5.30 (Debian sid's binaries attached
//! as a release-shaped `etcd` resource): a restore in place moves the
//! revision past every revision a client saw, so a watcher that resumes
//! from where it was is told its revision is compacted instead of waiting
//! in silence for revisions that will never come again (etcd-io/etcd#16028).
//! On etcd 3.5.1, which cannot bump, the results and status say so.

mod util;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use etcd_client::{WatchOptions, WatchResponse};
use util::act::{completed, host_path, result, run_action, sim_here};
use util::kv;
use util::Model;

fn charm() -> String {
    util::charm_dir().display().to_string()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Writes `n` keys under `w/` from `from`; returns the highest revision
/// the writer saw in its responses.
async fn write(c: &mut etcd_client::Client, from: usize, n: usize) -> i64 {
    let mut max = 0;
    for i in from..from + n {
        let r = c
            .put(format!("w/{i:05}"), format!("v{i}"), None)
            .await
            .unwrap();
        max = max.max(r.header().unwrap().revision());
    }
    max
}

/// The next watch response within `secs`, or `None`.
async fn next(stream: &mut etcd_client::WatchStream, secs: u64) -> Option<WatchResponse> {
    match tokio::time::timeout(Duration::from_secs(secs), stream.message()).await {
        Ok(Ok(Some(r))) => Some(r),
        _ => None,
    }
}

/// Deploys with `resource`, writes, snapshots, writes more (revisions that
/// the restore takes away), restores the snapshot in place; returns the
/// model, the highest revision any client saw before the restore, and the
/// restore's output.
fn restore_in_place(resource: &Path) -> (Model, i64, serde_yaml::Value) {
    let m = Model::new();
    let res = format!("etcd={}", resource.display());
    sim_here(&m, &["deploy", &charm(), "--resource", &res]).ok();
    let ep = kv::Conn::to(&m, "etcd/0");
    let rt = rt();
    // A live watcher from the start, and a writer.
    let (mut watch_stream, mut seen) = rt.block_on(async {
        let mut c = ep.client().await;
        let mut stream = c
            .watch("w/", Some(WatchOptions::new().with_prefix()))
            .await
            .unwrap();
        let wrote = write(&mut c, 0, 200).await;
        let mut seen = wrote;
        // The watcher sees every one of those revisions.
        let mut last = 0;
        while last < wrote {
            let r = next(&mut stream, 10)
                .await
                .expect("the watcher fell silent");
            for e in r.events() {
                last = last.max(e.kv().unwrap().mod_revision());
            }
        }
        seen = seen.max(last);
        (stream, seen)
    });
    let out = run_action(&m, "etcd/0", "snapshot", &[], &[]);
    completed(&out);
    let snap_rev: i64 = result(&out, "snapshot.revision").parse().unwrap();
    let archive = host_path(&m, "etcd/0", result(&out, "snapshot.path"));
    // Writes after the snapshot: a client saw these revisions; the restore
    // takes them away.
    seen = seen.max(rt.block_on(async {
        let mut c = ep.client().await;
        write(&mut c, 200, 150).await
    }));
    assert!(seen > snap_rev + 100, "seen {seen}, snapshot at {snap_rev}");
    let name = archive.file_name().unwrap().to_str().unwrap().to_string();
    std::fs::copy(&archive, m.scratch.path().join(&name)).unwrap();
    sim_here(
        &m,
        &["attach-resource", "etcd", &format!("snapshot=./{name}")],
    )
    .ok();
    let out = run_action(&m, "etcd/0", "restore", &["skip-backup=true"], &[]);
    completed(&out);
    // The live watcher's stream ended with its etcd: it does not go on
    // delivering events from the old history.
    rt.block_on(async {
        while let Some(r) = next(&mut watch_stream, 5).await {
            for e in r.events() {
                assert!(e.kv().unwrap().mod_revision() <= seen);
            }
        }
    });
    (m, seen, out)
}

#[test]
fn on_etcd_3_5_30_the_restore_moves_revisions_forward_and_old_watches_are_compacted() {
    let dir = tempfile::tempdir().unwrap();
    let res = util::etcd3530_resource(dir.path());
    let (m, seen, out) = restore_in_place(&res);
    assert_eq!(result(&out, "restore.version"), "3.5.30");
    assert_eq!(
        result(&out, "restore.revision-bump"),
        "1000000000 (marked compacted)"
    );
    assert_eq!(result(&out, "restore.tool"), "etcdutl");
    let restored: i64 = result(&out, "restore.revision").parse().unwrap();
    assert!(
        restored > seen,
        "restored revision {restored} is not past {seen}, the highest a client saw"
    );
    assert!(restored > 1_000_000_000);
    let (state, msg) = m.workload("etcd/0");
    assert_eq!(state, "active");
    assert!(!msg.contains("restart watchers"), "{msg}");
    // Every key the snapshot held is back.
    let ep = kv::Conn::to(&m, "etcd/0");
    assert_eq!(kv::read_prefix(&ep, "w/").len(), 200);

    // A watcher resuming from where it was (kube-apiserver's reflectors do)
    // is cancelled as compacted, not left waiting.
    rt().block_on(async {
        let mut c = ep.client().await;
        let mut stream = c
            .watch(
                "w/",
                Some(
                    WatchOptions::new()
                        .with_prefix()
                        .with_start_revision(seen + 1),
                ),
            )
            .await
            .unwrap();
        let mut compacted = None;
        while let Some(r) = next(&mut stream, 10).await {
            assert!(r.events().is_empty(), "events from the old history");
            if r.compact_revision() > 0 {
                assert!(r.canceled());
                compacted = Some(r.compact_revision());
                break;
            }
        }
        let at = compacted.expect("the old watch was not cancelled as compacted");
        assert!(at > seen, "compacted at {at}, not past {seen}");
    });
    // etcdctl says it in etcd's words.
    let creds = &ep.creds;
    let out = Command::new("timeout")
        .arg("20")
        .arg(util::etcd3530_dir().join("etcdctl"))
        .args(creds_flags(creds))
        .arg(format!("--endpoints={}", ep.endpoint))
        .args(["watch", "--prefix", "w/", "--rev", "10"])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("required revision has been compacted"),
        "{text}"
    );
}

fn creds_flags(c: &util::Creds) -> Vec<String> {
    vec![
        format!("--cacert={}", c.ca().display()),
        format!("--cert={}", c.cert().display()),
        format!("--key={}", c.key().display()),
    ]
}

/// etcd 3.5.1's etcdutl has no `--bump-revision`: the results and the
/// status say what that means for watchers.
#[test]
fn on_etcd_3_5_1_the_results_say_the_bump_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let res = util::etcd35_resource(dir.path());
    let (m, seen, out) = restore_in_place(&res);
    assert_eq!(
        result(&out, "restore.revision-bump"),
        "unavailable with etcd 3.5.1"
    );
    let restored: i64 = result(&out, "restore.revision").parse().unwrap();
    assert!(restored < seen, "{restored} vs {seen}: no bump happened");
    let (state, msg) = m.workload("etcd/0");
    assert_eq!(state, "active");
    assert!(
        msg.contains("restart watchers such as kube-apiserver")
            && msg.contains("3.4.27+, 3.5.10+ and 3.6"),
        "{msg}"
    );
}

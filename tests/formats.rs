//! End-to-end restores of other tools' backups through the `restore` action
//! (the `snapshot` resource), on real etcd: each file is made the way its
//! tool makes it (Python's `gzip`, `zlib`, `zipfile` and `tarfile`; a port
//! of Go's `compress/lzw` writer for Gardener's `.Z`), and each restore must
//! bring back every key. The refused kinds (Gardener incrementals, the
//! original charm's v2 archives) and a 10 GB gzip bomb are refused before
//! anything is touched.

mod util;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use util::act::{completed, etcdctl_snapshot_save, failure, result, run_action, sim_here};
use util::kv;
use util::{makers, Model};

fn charm() -> String {
    util::charm_dir().display().to_string()
}

fn python(script: &str, args: &[&Path]) {
    let st = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .status()
        .unwrap();
    assert!(st.success(), "python3 failed: {script}");
}

/// A source etcd with data, and a plain `etcdctl snapshot save` of it.
fn source(m: &Model) -> (kv::Conn, PathBuf) {
    sim_here(m, &["deploy", &charm()]).ok();
    let ep = kv::Conn::to(m, "etcd/0");
    kv::fill(&ep, 400, 20_000);
    let saved = m.scratch.path().join("plain.db");
    etcdctl_snapshot_save(Path::new("/usr/bin/etcdctl"), &ep, &saved);
    (ep, saved)
}

/// Every peer's format, made by its tool's means, restores every key.
#[test]
fn peers_formats_restore_every_key() {
    let m = Model::new();
    let (ep, saved) = source(&m);
    let want = kv::digest(&ep);
    let s = m.scratch.path();

    // charmed-etcd: the raw snapshot with no extension.
    let charmed = s.join("charmed-etcd-snapshot");
    fs::copy(&saved, &charmed).unwrap();
    // Gardener: Full-<start>-<last>-<unix>, raw, .gz, .zlib and .Z.
    let full = s.join("Full-00000000-00000401-1704067200");
    fs::copy(&saved, &full).unwrap();
    let gardener_gz = s.join("Full-00000000-00000401-1704067200.gz");
    python(
        "import gzip, shutil, sys\nwith open(sys.argv[1], 'rb') as i, gzip.open(sys.argv[2], 'wb') as o: shutil.copyfileobj(i, o)",
        &[&saved, &gardener_gz],
    );
    let gardener_zlib = s.join("Full-00000000-00000401-1704067200.zlib");
    python(
        "import zlib, sys\nc = zlib.compressobj()\nwith open(sys.argv[1], 'rb') as i, open(sys.argv[2], 'wb') as o:\n    while b := i.read(1 << 20): o.write(c.compress(b))\n    o.write(c.flush())",
        &[&saved, &gardener_zlib],
    );
    let gardener_z = s.join("Full-00000000-00000401-1704067200.Z");
    fs::write(&gardener_z, makers::go_lzw(&fs::read(&saved).unwrap())).unwrap();
    // k3s/RKE2: <name>-<node>-<unix>.zip with one deflate entry; written
    // to a pipe-like file object so that zipfile uses a data descriptor as
    // Go's archive/zip does.
    let k3s_zip = s.join("on-demand-node1-1704067200.zip");
    python(
        "import zipfile, sys\nclass W:\n    def __init__(s, f): s.f = f\n    def write(s, b): return s.f.write(b)\n    def flush(s): s.f.flush()\nwith open(sys.argv[2], 'wb') as f, zipfile.ZipFile(W(f), 'w', zipfile.ZIP_DEFLATED) as z:\n    z.write(sys.argv[1], arcname='on-demand-node1-1704067200')",
        &[&saved, &k3s_zip],
    );
    let zip_flags = fs::read(&k3s_zip).unwrap();
    assert_eq!(zip_flags[6] & 8, 8, "the zip uses a data descriptor");
    // kops etcd-manager: etcd.backup.gz alone, and a tar.gz of its backup
    // directory with _etcd_backup.meta.
    let kops_dir = s.join("2024-01-01T00:00:00Z-000001");
    fs::create_dir_all(&kops_dir).unwrap();
    let kops_gz = kops_dir.join("etcd.backup.gz");
    python(
        "import gzip, shutil, sys\nwith open(sys.argv[1], 'rb') as i, gzip.open(sys.argv[2], 'wb') as o: shutil.copyfileobj(i, o)",
        &[&saved, &kops_gz],
    );
    fs::write(
        kops_dir.join("_etcd_backup.meta"),
        r#"{"etcdVersion":"3.4.13","timestamp":"1704067200","clusterSpec":{"memberCount":1,"etcdVersion":"3.4.13"}}"#,
    )
    .unwrap();
    let kops_tar = s.join("kops-backup.tar.gz");
    python(
        "import tarfile, sys, os\nwith tarfile.open(sys.argv[1], 'w:gz') as t: t.add(sys.argv[2], arcname=os.path.basename(sys.argv[2]))",
        &[&kops_tar, &kops_dir],
    );

    let cases: [(&Path, &str); 8] = [
        (&charmed, "etcdctl-snapshot"),
        (&full, "etcdctl-snapshot"),
        (&gardener_gz, "gzip-snapshot"),
        (&gardener_zlib, "zlib-snapshot"),
        (&gardener_z, "lzw-snapshot"),
        (&k3s_zip, "zip-snapshot"),
        (&kops_gz, "gzip-snapshot"),
        (&kops_tar, "kops-backup"),
    ];
    for (i, (file, kind)) in cases.into_iter().enumerate() {
        let app = format!("peer{i}");
        let res = format!("snapshot={}", file.display());
        sim_here(&m, &["deploy", "etcd", &app, "--resource", &res]).ok();
        let unit = format!("{app}/0");
        let out = run_action(&m, &unit, "restore", &["skip-backup=true"], &[]);
        completed(&out);
        assert_eq!(result(&out, "restore.source.kind"), kind, "{file:?}");
        assert_eq!(result(&out, "restore.skip-hash-check"), "false");
        // etcd 3.4.23 cannot bump the revision: the results and the status
        // say so.
        assert_eq!(
            result(&out, "restore.revision-bump"),
            "unavailable with etcd 3.4.23"
        );
        if kind == "kops-backup" {
            assert_eq!(result(&out, "restore.source.etcd-version"), "3.4.13");
            assert_eq!(result(&out, "restore.source.timestamp"), "1704067200");
            assert_eq!(
                result(&out, "restore.source.created"),
                "2024-01-01T00:00:00Z"
            );
        }
        let (state, msg) = m.workload(&unit);
        assert_eq!(state, "active");
        assert!(
            msg.contains("restart watchers such as kube-apiserver")
                && msg.contains("3.4.27+, 3.5.10+ and 3.6"),
            "{msg}"
        );
        let got = kv::digest(&kv::Conn::to(&m, &unit));
        assert!(got == want, "{kind} from {file:?}: keys differ");
        sim_here(&m, &["remove-application", &app]).ok();
    }
}

/// A unit with data whose restore must change nothing.
fn target(m: &Model, app: &str, archive: &Path) -> (kv::Conn, String) {
    let res = format!("snapshot={}", archive.display());
    sim_here(m, &["deploy", &charm(), app, "--resource", &res]).ok();
    let unit = format!("{app}/0");
    let ep = kv::Conn::to(m, &unit);
    kv::put(&ep, "keep/me", "here");
    (ep, unit)
}

fn staging(m: &Model, unit: &str) -> PathBuf {
    m.unit_root(unit).join("var/lib/etcd-charm/restore-staging")
}

#[test]
fn incrementals_and_v2_archives_are_refused() {
    let m = Model::new();
    let s = m.scratch.path();
    // Gardener's incremental: json.Marshal(events) + its sha256, gzip'd.
    let events = br#"[{"etcdEvent":{"kv":{"key":"Zm9v","create_revision":2,"mod_revision":2,"version":1,"value":"YmFy"}},"time":"2024-01-01T00:00:00Z"}]"#;
    let raw = s.join("events");
    fs::write(&raw, events).unwrap();
    let incr = s.join("Incr-00000402-00000410-1704067500.gz");
    python(
        "import gzip, hashlib, sys\nd = open(sys.argv[1], 'rb').read()\nwith gzip.open(sys.argv[2], 'wb') as o: o.write(d + hashlib.sha256(d).digest())",
        &[&raw, &incr],
    );
    // The original charm's v2 archive: `etcdctl backup`'s data dir, tarred.
    let v2 = s.join("v2");
    fs::create_dir_all(v2.join("member/snap")).unwrap();
    fs::create_dir_all(v2.join("member/wal")).unwrap();
    fs::write(
        v2.join("member/snap/0000000000000002-0000000000000001.snap"),
        b"snap",
    )
    .unwrap();
    fs::write(
        v2.join("member/wal/0000000000000000-0000000000000000.wal"),
        b"wal",
    )
    .unwrap();
    let v2_tar = s.join("etcd-snapshot-2016-11-09-02.41.47.tar.gz");
    let st = Command::new("tar")
        .arg("czf")
        .arg(&v2_tar)
        .arg("-C")
        .arg(&v2)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());

    for (i, (file, words)) in [
        (&incr, "incremental snapshot from Gardener"),
        (&v2_tar, "v2 data is not supported"),
    ]
    .into_iter()
    .enumerate()
    {
        let (ep, unit) = target(&m, &format!("refuse{i}"), file);
        let out = run_action(&m, &unit, "restore", &[], &[]);
        let msg = failure(&out);
        assert!(msg.contains(words), "{msg}");
        assert!(msg.contains("Nothing was changed"), "{msg}");
        assert_eq!(kv::read_prefix(&ep, "keep/").len(), 1);
        assert!(!staging(&m, &unit).exists());
    }
}

/// A gzip that would expand to 10 GB (a bbolt head, then zeros) is refused
/// by its ratio: the staged copy never grows past ~100 MiB and is removed,
/// and the unit's data is as it was.
#[test]
fn a_10_gb_gzip_bomb_is_refused_with_the_disk_untouched() {
    let m = Model::new();
    let bomb = m.scratch.path().join("etcd.backup.gz");
    {
        let mut f = std::io::BufWriter::new(fs::File::create(&bomb).unwrap());
        let mut first = vec![0u8; 1 << 20];
        first[16..20].copy_from_slice(&[0xED, 0xDA, 0x0C, 0xED]);
        // 10,000 MiB of zeros after the head: 10.5 GB.
        makers::gzip_bomb(&mut f, &first, 10_000).unwrap();
        std::io::Write::flush(&mut f).unwrap();
    }
    let size = fs::metadata(&bomb).unwrap().len();
    assert!(size < 16 << 20, "the bomb file is {size} bytes");
    let (ep, unit) = target(&m, "bombed", &bomb);
    let root = m.unit_root(&unit);
    let free_before = fs2::available_space(&root).unwrap();
    let out = run_action(&m, &unit, "restore", &["skip-backup=true"], &[]);
    let msg = failure(&out);
    assert!(msg.contains("decompression bomb"), "{msg}");
    assert!(msg.contains("Nothing was changed"), "{msg}");
    let free_after = fs2::available_space(&root).unwrap();
    // Other tests write meanwhile; 10 GB would show.
    assert!(
        free_after + (1 << 30) > free_before,
        "{free_before} -> {free_after}"
    );
    assert!(!staging(&m, &unit).exists());
    assert_eq!(kv::read_prefix(&ep, "keep/").len(), 1);
    let (state, _) = m.workload(&unit);
    assert_eq!(state, "active");
}

/// A db shaped like etcd's snapshot stream (bbolt's magic on the meta
/// pages, pseudo-random pages, etcd's sha256 appended), for checks that
/// need no etcd.
fn synthetic_db(pages: usize) -> Vec<u8> {
    use sha2::Digest;
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut db = vec![0u8; pages * 4096];
    for (id, page) in db.chunks_mut(4096).enumerate() {
        page[..8].copy_from_slice(&(id as u64).to_le_bytes());
        for b in page[16..1024].iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        if id < 2 {
            page[16..20].copy_from_slice(&[0xED, 0xDA, 0x0C, 0xED]);
        }
    }
    let h = sha2::Sha256::digest(&db);
    db.extend_from_slice(&h);
    db
}

/// Python's own writers, byte for byte as the tools' Python and Go
/// counterparts lay them out: zipfile with the sizes in the local header
/// (a seekable file) and with a data descriptor (a stream), gzip, zlib.
/// Each is read back to exactly the db, by content alone.
#[test]
fn pythons_zip_gzip_and_zlib_are_read_by_content() {
    use etcd_charm::snapshot::{self, Kind, Limits, NoProgress};
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("snap");
    let db = synthetic_db(300);
    fs::write(&db_path, &db).unwrap();
    let out = |name: &str| dir.path().join(name);
    python(
        "import zipfile, sys\nwith zipfile.ZipFile(sys.argv[2], 'w', zipfile.ZIP_DEFLATED) as z: z.write(sys.argv[1], arcname='etcd-snapshot-n1-1704067200')",
        &[&db_path, &out("seekable.zip")],
    );
    python(
        "import zipfile, sys\nclass W:\n    def __init__(s, f): s.f = f\n    def write(s, b): return s.f.write(b)\n    def flush(s): s.f.flush()\nwith open(sys.argv[2], 'wb') as f, zipfile.ZipFile(W(f), 'w', zipfile.ZIP_DEFLATED) as z:\n    z.write(sys.argv[1], arcname='etcd-snapshot-n1-1704067200')",
        &[&db_path, &out("streamed.zip")],
    );
    python(
        "import gzip, sys\nopen(sys.argv[2], 'wb').write(gzip.compress(open(sys.argv[1], 'rb').read()))",
        &[&db_path, &out("Full.gz")],
    );
    python(
        "import zlib, sys\nopen(sys.argv[2], 'wb').write(zlib.compress(open(sys.argv[1], 'rb').read(), 9))",
        &[&db_path, &out("Full.zlib")],
    );
    fs::write(out("Full.Z"), makers::go_lzw(&db)).unwrap();
    // The two zips differ where it matters: bit 3 of the flags says the
    // sizes follow the data.
    assert_eq!(fs::read(out("seekable.zip")).unwrap()[6] & 8, 0);
    assert_eq!(fs::read(out("streamed.zip")).unwrap()[6] & 8, 8);
    for (name, kind) in [
        ("seekable.zip", Kind::ZipSnapshot),
        ("streamed.zip", Kind::ZipSnapshot),
        ("Full.gz", Kind::GzipSnapshot),
        ("Full.zlib", Kind::ZlibSnapshot),
        ("Full.Z", Kind::LzwSnapshot),
        ("snap", Kind::EtcdctlSnapshot),
    ] {
        // Renamed to something that says nothing: the kind is in the bytes.
        let anon = out("anonymous");
        fs::copy(out(name), &anon).unwrap();
        let mut extracted = Vec::new();
        let i = snapshot::inspect(
            fs::File::open(&anon).unwrap(),
            Some(&mut extracted),
            Limits::default(),
            &mut NoProgress,
        )
        .unwrap();
        assert_eq!(i.refused(), None, "{name}: {:#?}", i.findings);
        assert_eq!(i.kind, kind, "{name}");
        assert!(extracted == db, "{name}: the db differs");
        assert!(i.has_etcd_hash, "{name}");
    }
}

/// Another tool's backup (no manifest) on etcd 3.5.30: restored with the
/// revision bump, every key back.
#[test]
fn a_gardener_lzw_snapshot_restores_on_etcd_3530_with_the_bump() {
    let m = Model::new();
    let (ep, saved) = source(&m);
    let want = kv::digest(&ep);
    let z = m.scratch.path().join("Full-00000000-00000401-1704067200.Z");
    fs::write(&z, makers::go_lzw(&fs::read(&saved).unwrap())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let etcd = format!("etcd={}", util::etcd3530_resource(dir.path()).display());
    let snap = format!("snapshot={}", z.display());
    sim_here(
        &m,
        &[
            "deploy",
            "etcd",
            "new",
            "--resource",
            &etcd,
            "--resource",
            &snap,
        ],
    )
    .ok();
    let out = run_action(&m, "new/0", "restore", &["skip-backup=true"], &[]);
    completed(&out);
    assert_eq!(result(&out, "restore.source.kind"), "lzw-snapshot");
    assert_eq!(result(&out, "restore.version"), "3.5.30");
    assert_eq!(
        result(&out, "restore.revision-bump"),
        "1000000000 (marked compacted)"
    );
    let rev: i64 = result(&out, "restore.revision").parse().unwrap();
    assert!(rev > 1_000_000_000, "{rev}");
    assert!(kv::digest(&kv::Conn::to(&m, "new/0")) == want);
}

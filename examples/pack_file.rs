//! Packs a file as if etcd had streamed it, and reports the time: a probe
//! for profiling the snapshot's CPU path without etcd.
//!
//! `cargo run --release --example pack_file -- DB OUT` where DB is an
//! `etcdctl snapshot save` file (a bbolt file ending in its sha256).

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::time::Instant;

use anyhow::{Context, Result};
use etcd_charm::snapshot::{pack, ManifestFields, NoProgress};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (src, dst) = match (args.get(1), args.get(2)) {
        (Some(s), Some(d)) => (s, d),
        _ => anyhow::bail!("usage: pack_file DB OUT"),
    };
    let f = File::open(src).with_context(|| format!("cannot open {src}"))?;
    let size = f.metadata()?.len();
    let out = File::create(dst).with_context(|| format!("cannot create {dst}"))?;
    let fields = ManifestFields {
        etcd_version: "3.5.1".into(),
        cluster_id: "0000000000000001".into(),
        member_id: "0000000000000002".into(),
        revision: 1,
        key_count: 1,
        created: "2026-11-22T00:00:00Z".into(),
        source_unit: "etcd/0".into(),
    };
    let t = Instant::now();
    let packed = pack(
        BufReader::with_capacity(1 << 20, f),
        size,
        fields,
        BufWriter::with_capacity(1 << 20, out),
        &mut NoProgress,
    )?;
    let s = t.elapsed().as_secs_f64();
    println!(
        "{} bytes -> {} bytes ({:.3}) in {:.2} s, {:.0} MB/s, sha256 {}",
        size,
        packed.archive_size,
        packed.archive_size as f64 / size as f64,
        s,
        size as f64 / s / 1e6,
        packed.archive_sha256
    );
    Ok(())
}

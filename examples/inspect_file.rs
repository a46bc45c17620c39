//! Verifies an archive as the restore action does, staging its db, and
//! reports the time: a probe for profiling the restore's CPU path.
//!
//! `cargo run --release --example inspect_file -- ARCHIVE STAGED_DB`

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::time::Instant;

use anyhow::{Context, Result};
use etcd_charm::snapshot::{inspect, Limits, NoProgress};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (src, dst) = match (args.get(1), args.get(2)) {
        (Some(s), Some(d)) => (s, d),
        _ => anyhow::bail!("usage: inspect_file ARCHIVE STAGED_DB"),
    };
    let input = File::open(src).with_context(|| format!("cannot open {src}"))?;
    let out = File::create(dst).with_context(|| format!("cannot create {dst}"))?;
    let mut out = BufWriter::with_capacity(1 << 20, out);
    let t = Instant::now();
    let i = inspect(
        BufReader::with_capacity(1 << 20, input),
        Some(&mut out),
        Limits::default(),
        &mut NoProgress,
    )?;
    let s = t.elapsed().as_secs_f64();
    println!(
        "{:?}: {} bytes in, db {} bytes in {:.2} s ({:.0} MB/s of db); refused: {:?}",
        i.kind,
        i.input_size,
        i.db_size,
        s,
        i.db_size as f64 / s / 1e6,
        i.refused()
    );
    Ok(())
}

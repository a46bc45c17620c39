//! Which deflate and sha256 backend is fastest here, in CPU seconds of one
//! thread (so a busy machine skews it less than wall time would), on one
//! input file cut into the snapshot writer's 1 MiB blocks.
//!
//! `cargo run --release -- FILE` prints one line per backend: MB of input
//! per CPU second and the compressed size as a fraction of the input.

use std::io::Write;

const BLOCK: usize = 1 << 20;

fn thread_cpu() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0.0;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// How many runs each backend gets: `BACKEND_RUNS`, default 5.
fn runs() -> usize {
    std::env::var("BACKEND_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
}

/// Best of [`runs`] of `f`, as (MB per CPU second, output bytes).
fn measure(data: &[u8], mut f: impl FnMut(&[u8]) -> usize) -> (f64, usize) {
    let mut best = 0.0f64;
    let mut out = 0;
    for _ in 0..runs() {
        let t = thread_cpu();
        out = data.chunks(BLOCK).map(&mut f).sum();
        let s = (thread_cpu() - t).max(1e-9);
        best = best.max(data.len() as f64 / s / 1e6);
    }
    (best, out)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: etcd-charm-backends FILE")?;
    let data = std::fs::read(&path)?;
    let n = data.len() as f64;
    println!(
        "input: {path}, {} bytes, 1 MiB blocks, best of {} runs",
        data.len(),
        runs()
    );
    println!("{:<28} {:>10} {:>8}", "backend", "MB/cpu-s", "ratio");
    let row = |name: &str, (speed, out): (f64, usize)| {
        println!("{name:<28} {speed:>10.0} {:>8.3}", out as f64 / n);
    };
    for level in [1u32, 6] {
        row(
            &format!("deflate zlib-rs level {level}"),
            measure(&data, |c| {
                let mut e = flate2::write::DeflateEncoder::new(
                    Vec::with_capacity(c.len()),
                    flate2::Compression::new(level),
                );
                e.write_all(c).map(|_| ()).ok();
                e.finish().map(|v| v.len()).unwrap_or(0)
            }),
        );
        row(
            &format!("deflate miniz_oxide level {level}"),
            measure(&data, |c| {
                miniz_oxide::deflate::compress_to_vec(c, level as u8).len()
            }),
        );
        let mut z = libdeflater::Compressor::new(
            libdeflater::CompressionLvl::new(level as i32).map_err(|_| "bad level")?,
        );
        let mut buf = vec![0u8; z.deflate_compress_bound(BLOCK)];
        row(
            &format!("deflate libdeflate level {level}"),
            measure(&data, |c| z.deflate_compress(c, &mut buf).unwrap_or(0)),
        );
    }
    row(
        "sha256 sha2 (pure Rust)",
        measure(&data, |c| {
            use sha2::Digest;
            sha2::Sha256::digest(c).len()
        }),
    );
    row(
        "sha256 ring",
        measure(&data, |c| {
            ring::digest::digest(&ring::digest::SHA256, c)
                .as_ref()
                .len()
        }),
    );
    Ok(())
}

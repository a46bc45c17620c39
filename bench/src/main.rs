//! `etcd-bench`: the benchmark's helpers (`bench/run` drives them).
//!
//! ```text
//! etcd-bench fill --endpoint URL --cacert F --cert F --key F --kind k8s|random --bytes N
//!                 [--seed S] [--concurrency C]
//!     fills etcd until its db is N bytes (suffixes K, M, G: powers of 1024);
//!     prints a JSON summary
//! etcd-bench rss-exec --out FILE -- PROG [ARGS…]
//!     runs PROG, writes the peak RSS of that process alone to FILE (JSON),
//!     exits with PROG's code
//! ```

mod fill;
mod k8s;
mod rng;
mod rss;

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context as _, Result};

use fill::{DataKind, FillOptions};

/// `100M`, `1G`, `512K` or plain bytes; powers of 1024.
fn parse_size(s: &str) -> Result<u64> {
    let s = s.trim();
    let (num, mult) = match s.chars().last() {
        Some('K' | 'k') => (&s[..s.len() - 1], 1u64 << 10),
        Some('M' | 'm') => (&s[..s.len() - 1], 1 << 20),
        Some('G' | 'g') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    let n: u64 = num
        .parse()
        .with_context(|| format!("{s:?} is not a size (such as 100M or 1G)"))?;
    n.checked_mul(mult)
        .ok_or_else(|| anyhow!("{s:?} is too large"))
}

fn usage() -> &'static str {
    "usage: etcd-bench fill --endpoint URL --cacert F --cert F --key F --kind k8s|random --bytes N [--seed S] [--concurrency C]\n       etcd-bench rss-exec --out FILE -- PROG [ARGS...]"
}

fn fill_cmd(args: &[String]) -> Result<()> {
    let mut endpoint = None;
    let (mut cacert, mut cert, mut key) = (None, None, None);
    let mut kind = None;
    let mut bytes = None;
    let mut seed = 1u64;
    let mut concurrency = 8usize;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| anyhow!("{flag} needs a value\n{}", usage()))
        };
        match flag.as_str() {
            "--endpoint" => endpoint = Some(value()?),
            "--cacert" => cacert = Some(PathBuf::from(value()?)),
            "--cert" => cert = Some(PathBuf::from(value()?)),
            "--key" => key = Some(PathBuf::from(value()?)),
            "--kind" => {
                kind = Some(match value()?.as_str() {
                    "k8s" => DataKind::K8s,
                    "random" => DataKind::Random,
                    other => bail!("--kind {other:?}: expected k8s or random"),
                })
            }
            "--bytes" => bytes = Some(parse_size(&value()?)?),
            "--seed" => seed = value()?.parse().context("--seed must be a number")?,
            "--concurrency" => {
                concurrency = value()?.parse().context("--concurrency must be a number")?
            }
            other => bail!("unknown flag {other:?}\n{}", usage()),
        }
    }
    let missing = |what: &str| anyhow!("{what} is required\n{}", usage());
    let o = FillOptions {
        endpoint: endpoint.ok_or_else(|| missing("--endpoint"))?,
        cacert: cacert.ok_or_else(|| missing("--cacert"))?,
        cert: cert.ok_or_else(|| missing("--cert"))?,
        key: key.ok_or_else(|| missing("--key"))?,
        kind: kind.ok_or_else(|| missing("--kind"))?,
        bytes: bytes.ok_or_else(|| missing("--bytes"))?,
        seed,
        concurrency,
    };
    let summary = fill::fill(&o)?;
    println!("{summary}");
    Ok(())
}

fn rss_cmd(args: &[OsString]) -> Result<i32> {
    let mut out = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.to_str() {
            Some("--out") => {
                out = Some(PathBuf::from(
                    it.next().ok_or_else(|| anyhow!("--out needs a file"))?,
                ))
            }
            Some("--") => break,
            _ => bail!("unexpected {a:?}\n{}", usage()),
        }
    }
    let out = out.ok_or_else(|| anyhow!("--out is required\n{}", usage()))?;
    let rest: Vec<OsString> = it.cloned().collect();
    let (prog, prog_args) = rest
        .split_first()
        .ok_or_else(|| anyhow!("no program to run\n{}", usage()))?;
    rss::rss_exec(&out, prog, prog_args)
}

fn main() {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let result = match args.first().and_then(|a| a.to_str()) {
        Some("fill") => args[1..]
            .iter()
            .map(|a| {
                a.to_str()
                    .map(str::to_string)
                    .ok_or_else(|| anyhow!("arguments must be UTF-8"))
            })
            .collect::<Result<Vec<_>>>()
            .and_then(|a| fill_cmd(&a))
            .map(|()| 0),
        Some("rss-exec") => rss_cmd(&args[1..]),
        _ => Err(anyhow!("{}", usage())),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("etcd-bench: {e:#}");
            std::process::exit(2);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("100M").ok(), Some(100 << 20));
        assert_eq!(parse_size("1G").ok(), Some(1 << 30));
        assert_eq!(parse_size("4096").ok(), Some(4096));
        assert!(parse_size("1T").is_err());
        assert!(parse_size("").is_err());
    }
}

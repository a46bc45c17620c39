//! Fills a real etcd over TLS until its backend db reaches a target size,
//! with concurrent transactions of puts (each ≤ 128 ops and ≤ 1 MiB, under
//! etcd's `--max-txn-ops` and 1.5 MiB request limits).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context as _, Result};
use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions, Txn, TxnOp};
use serde_json::json;
use tokio::task::JoinSet;

use crate::k8s::{self, Generator};
use crate::rng::Rng;

/// What to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataKind {
    /// JSON pods, configmaps, secrets and events (see `k8s`).
    K8s,
    /// Incompressible values: random bytes, 2–16 KiB each.
    Random,
}

#[derive(Debug, Clone)]
pub struct FillOptions {
    pub endpoint: String,
    pub cacert: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub kind: DataKind,
    /// Stop once etcd's db size (its Status `dbSize`) reaches this.
    pub bytes: u64,
    pub seed: u64,
    /// Transactions in flight at once.
    pub concurrency: usize,
}

const MAX_OPS: usize = 128;
const MAX_TXN_BYTES: usize = 1 << 20;
/// etcd's default backend quota; writes beyond it raise a NOSPACE alarm.
const DEFAULT_QUOTA: u64 = 2 << 30;

async fn connect(o: &FillOptions) -> Result<Client> {
    let read =
        |p: &PathBuf| std::fs::read(p).with_context(|| format!("cannot read {}", p.display()));
    let tls = TlsOptions::new()
        .ca_certificate(Certificate::from_pem(read(&o.cacert)?))
        .identity(Identity::from_pem(read(&o.cert)?, read(&o.key)?));
    Client::connect(
        [o.endpoint.as_str()],
        Some(ConnectOptions::new().with_tls(tls)),
    )
    .await
    .with_context(|| format!("cannot connect to {}", o.endpoint))
}

/// Makes the key-value pairs for one kind of data.
enum Source {
    K8s(Generator),
    Random { rng: Rng, n: u64 },
}

impl Source {
    /// The next pair and the index of its kind in the summary.
    fn next_pair(&mut self) -> (usize, String, Vec<u8>) {
        match self {
            Source::K8s(g) => {
                let (kind, key, value) = g.next_object();
                let i = k8s::Kind::ALL.iter().position(|k| *k == kind).unwrap_or(0);
                (i, key, value.into_bytes())
            }
            Source::Random { rng, n } => {
                *n += 1;
                let len = rng.range(2 << 10, 16 << 10) as usize;
                let mut v = vec![0u8; len];
                rng.fill_bytes(&mut v);
                (
                    0,
                    format!("/registry/random/ns-{}/obj-{:09}", *n % 16, *n),
                    v,
                )
            }
        }
    }

    fn kind_names(&self) -> Vec<&'static str> {
        match self {
            Source::K8s(_) => k8s::Kind::ALL.iter().map(|k| k.name()).collect(),
            Source::Random { .. } => vec!["random"],
        }
    }
}

pub fn fill(o: &FillOptions) -> Result<serde_json::Value> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(fill_async(o))
}

async fn fill_async(o: &FillOptions) -> Result<serde_json::Value> {
    let client = connect(o).await?;
    let mut maint = client.maintenance_client();
    let status = maint.status().await.context("cannot read etcd's status")?;
    let quota = u64::try_from(status.db_size_quota())
        .ok()
        .filter(|q| *q > 0)
        .unwrap_or(DEFAULT_QUOTA);
    if o.bytes > quota / 10 * 9 {
        bail!(
            "{} bytes would come too close to etcd's backend quota ({quota} bytes); ask for less",
            o.bytes
        );
    }
    let mut db_size = u64::try_from(status.db_size()).unwrap_or(0);
    let start_db = db_size;

    let mut source = match o.kind {
        DataKind::K8s => Source::K8s(Generator::new(o.seed)),
        DataKind::Random => Source::Random {
            rng: Rng::new(o.seed),
            n: 0,
        },
    };
    let names = source.kind_names();
    let mut counts = vec![0u64; names.len()];
    let mut byte_counts = vec![0u64; names.len()];
    // Ask etcd for its db size every so often; near the end, more often.
    let check_every = (o.bytes / 64).clamp(1 << 20, 16 << 20);
    let mut since_check = 0u64;
    let mut logical = 0u64;
    let mut txns = 0u64;
    let started = Instant::now();
    let mut inflight: JoinSet<Result<()>> = JoinSet::new();

    while db_size < o.bytes {
        let mut ops = Vec::with_capacity(MAX_OPS);
        let mut batch = 0usize;
        while ops.len() < MAX_OPS && batch < MAX_TXN_BYTES {
            let (kind, key, value) = source.next_pair();
            let n = key.len() + value.len();
            batch += n;
            counts[kind] += 1;
            byte_counts[kind] += n as u64;
            ops.push(TxnOp::put(key, value, None));
        }
        while inflight.len() >= o.concurrency.max(1) {
            if let Some(done) = inflight.join_next().await {
                done.context("a put task panicked")??;
            }
        }
        let mut kv = client.kv_client();
        inflight.spawn(async move {
            kv.txn(Txn::new().and_then(ops))
                .await
                .map(|_| ())
                .context("a put transaction failed")
        });
        txns += 1;
        logical += batch as u64;
        since_check += batch as u64;
        if since_check >= check_every {
            since_check = 0;
            let s = maint.status().await.context("cannot read etcd's status")?;
            db_size = u64::try_from(s.db_size()).unwrap_or(0);
        }
    }
    while let Some(done) = inflight.join_next().await {
        done.context("a put task panicked")??;
    }
    let s = maint.status().await.context("cannot read etcd's status")?;
    db_size = u64::try_from(s.db_size()).unwrap_or(0);
    let secs = started.elapsed().as_secs_f64();
    let kinds: serde_json::Map<String, serde_json::Value> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            (
                n.to_string(),
                json!({
                    "count": counts[i],
                    "bytes": byte_counts[i],
                    "avg_bytes": byte_counts[i].checked_div(counts[i]).unwrap_or(0),
                }),
            )
        })
        .collect();
    Ok(json!({
        "kind": match o.kind { DataKind::K8s => "k8s", DataKind::Random => "random" },
        "target_bytes": o.bytes,
        "db_size_before": start_db,
        "db_size": db_size,
        "keys": counts.iter().sum::<u64>(),
        "logical_bytes": logical,
        "txns": txns,
        "seconds": secs,
        "mib_per_s": logical as f64 / (1 << 20) as f64 / secs.max(1e-9),
        "kinds": kinds,
        "revision": s.header().map(|h| h.revision()).unwrap_or(0),
    }))
}

//! Filling etcd with data and reading all of it back, through etcd-client,
//! so that tests compare whole keyspaces rather than a sample.

use std::collections::BTreeMap;

use etcd_client::{Certificate, Client, ConnectOptions, GetOptions, Identity, TlsOptions};
use sha2::{Digest, Sha256};

use super::{Creds, Model};

/// Where and how to reach one unit's etcd: its https endpoint and client
/// credentials packaged by the application's `package-client-credentials`.
#[derive(Debug, Clone)]
pub struct Conn {
    pub endpoint: String,
    pub creds: Creds,
}

impl Conn {
    /// The unit's endpoint with credentials from the unit's application.
    pub fn to(m: &Model, unit: &str) -> Conn {
        Conn {
            endpoint: m.endpoint(unit),
            creds: m.credentials(unit),
        }
    }

    /// The same credentials against another unit of the application.
    pub fn with_unit(&self, m: &Model, unit: &str) -> Conn {
        Conn {
            endpoint: m.endpoint(unit),
            creds: self.creds.clone(),
        }
    }

    pub async fn client(&self) -> Client {
        let read = |p: std::path::PathBuf| std::fs::read(p).unwrap();
        let tls = TlsOptions::new()
            .ca_certificate(Certificate::from_pem(read(self.creds.ca())))
            .identity(Identity::from_pem(
                read(self.creds.cert()),
                read(self.creds.key()),
            ));
        Client::connect(
            [self.endpoint.as_str()],
            Some(ConnectOptions::new().with_tls(tls)),
        )
        .await
        .unwrap()
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// `len` bytes of xorshift noise from `seed` (nonzero): deterministic, and
/// gzip cannot shrink them.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len + 8);
    let mut x = seed;
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// A deterministic value for key `i`: mostly small JSON-ish objects, every
/// 500th one large (`big` bytes), as Kubernetes data has a few big secrets
/// and configmaps among many small objects.
pub fn value_for(i: usize, big: usize) -> Vec<u8> {
    if i % 500 == 7 {
        noise(i as u64 ^ 0x9e37_79b9_7f4a_7c15, big)
    } else {
        format!(
            "{{\"kind\":\"ConfigMap\",\"metadata\":{{\"name\":\"cm-{i}\",\"namespace\":\"ns-{}\"}},\"data\":{{\"k\":\"{}\"}}}}",
            i % 17,
            "x".repeat(i % 300)
        )
        .into_bytes()
    }
}

/// Puts `n` keys `/registry/test/NNNNNN` (plus overwrites and a delete, so
/// history is not trivial).
pub fn fill(conn: &Conn, n: usize, big: usize) {
    rt().block_on(async {
        let mut c = conn.client().await;
        for i in 0..n {
            c.put(format!("/registry/test/{i:06}"), value_for(i, big), None)
                .await
                .unwrap();
        }
        // Overwrite some and delete one: the latest value must come back.
        for i in (0..n).step_by(97) {
            c.put(
                format!("/registry/test/{i:06}"),
                format!("rewritten-{i}"),
                None,
            )
            .await
            .unwrap();
        }
        c.delete("/registry/test/000001", None).await.unwrap();
    })
}

/// Calls `each` with every key from `from` up to `end` (every key after
/// `from` when `end` is `None`) and its value, a page at a time.
fn scan(conn: &Conn, from: &[u8], end: Option<Vec<u8>>, mut each: impl FnMut(&[u8], &[u8])) {
    rt().block_on(async {
        let mut c = conn.client().await;
        let mut from = from.to_vec();
        loop {
            let opts = match &end {
                Some(e) => GetOptions::new().with_range(e.clone()),
                None => GetOptions::new().with_from_key(),
            };
            let r = c
                .get(from.clone(), Some(opts.with_limit(100)))
                .await
                .unwrap();
            for kv in r.kvs() {
                each(kv.key(), kv.value());
            }
            match r.kvs().last() {
                Some(last) if r.more() => {
                    from = last.key().to_vec();
                    from.push(0);
                }
                _ => break,
            }
        }
    })
}

/// Every key with the sha256 of its value.
pub fn digest(conn: &Conn) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    scan(conn, &[0], None, |k, v| {
        out.insert(
            String::from_utf8_lossy(k).into_owned(),
            hex::encode(Sha256::digest(v)),
        );
    });
    out
}

/// (cluster ID, member ID, revision) of the member at `endpoint`.
pub fn ids(conn: &Conn) -> (u64, u64, i64) {
    rt().block_on(async {
        let mut c = conn.client().await;
        let s = c.status().await.unwrap();
        let h = s.header().unwrap();
        (h.cluster_id(), h.member_id(), h.revision())
    })
}

/// Puts `n` keys `/bulk/NNNNNN` of `size` random (incompressible) bytes,
/// a few at a time: a big db, quickly.
pub fn fill_bulk(conn: &Conn, n: usize, size: usize) {
    rt().block_on(async {
        let c = conn.client().await;
        let mut pending = Vec::new();
        for i in 0..n {
            let v = noise(0x2545_f491_4f6c_dd1d ^ (i as u64) << 32, size);
            let mut c = c.clone();
            pending.push(tokio::spawn(async move {
                c.put(format!("/bulk/{i:06}"), v, None).await.unwrap();
            }));
            if pending.len() == 8 {
                for p in pending.drain(..) {
                    p.await.unwrap();
                }
            }
        }
        for p in pending {
            p.await.unwrap();
        }
    })
}

/// How many keys start with `prefix`.
pub fn count_prefix(conn: &Conn, prefix: &str) -> i64 {
    rt().block_on(async {
        let mut c = conn.client().await;
        c.get(
            prefix,
            Some(GetOptions::new().with_prefix().with_count_only()),
        )
        .await
        .unwrap()
        .count()
    })
}

/// Every key under `prefix` with its value (as text).
pub fn read_prefix(conn: &Conn, prefix: &str) -> BTreeMap<String, String> {
    let mut end = prefix.as_bytes().to_vec();
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    let mut out = BTreeMap::new();
    scan(conn, prefix.as_bytes(), Some(end), |k, v| {
        out.insert(
            String::from_utf8_lossy(k).into_owned(),
            String::from_utf8_lossy(v).into_owned(),
        );
    });
    out
}

/// Puts one key.
pub fn put(conn: &Conn, key: &str, value: &str) {
    rt().block_on(async {
        let mut c = conn.client().await;
        c.put(key, value, None).await.unwrap();
    })
}

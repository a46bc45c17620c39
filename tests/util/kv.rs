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

    async fn client(&self) -> Client {
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

/// A deterministic value for key `i`: mostly small JSON-ish objects, every
/// 500th one large (`big` bytes), as Kubernetes data has a few big secrets
/// and configmaps among many small objects.
pub fn value_for(i: usize, big: usize) -> Vec<u8> {
    if i % 500 == 7 {
        let mut v = Vec::with_capacity(big);
        let mut x = i as u64 ^ 0x9e37_79b9_7f4a_7c15;
        while v.len() < big {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v.extend_from_slice(&x.to_le_bytes());
        }
        v.truncate(big);
        v
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

/// Every key with the sha256 of its value.
pub fn digest(conn: &Conn) -> BTreeMap<String, String> {
    rt().block_on(async {
        let mut c = conn.client().await;
        let mut out = BTreeMap::new();
        let mut from = vec![0u8];
        loop {
            let r = c
                .get(
                    from.clone(),
                    Some(GetOptions::new().with_from_key().with_limit(100)),
                )
                .await
                .unwrap();
            for kv in r.kvs() {
                out.insert(
                    String::from_utf8_lossy(kv.key()).into_owned(),
                    hex::encode(Sha256::digest(kv.value())),
                );
            }
            match r.kvs().last() {
                Some(last) if r.more() => {
                    from = last.key().to_vec();
                    from.push(0);
                }
                _ => break,
            }
        }
        out
    })
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

//! Filling etcd with data and reading all of it back, through etcd-client,
//! so that tests compare whole keyspaces rather than a sample.

use std::collections::BTreeMap;

use etcd_client::{Client, GetOptions};
use sha2::{Digest, Sha256};

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
pub fn fill(endpoint: &str, n: usize, big: usize) {
    rt().block_on(async {
        let mut c = Client::connect([endpoint], None).await.unwrap();
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
pub fn digest(endpoint: &str) -> BTreeMap<String, String> {
    rt().block_on(async {
        let mut c = Client::connect([endpoint], None).await.unwrap();
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
pub fn ids(endpoint: &str) -> (u64, u64, i64) {
    rt().block_on(async {
        let mut c = Client::connect([endpoint], None).await.unwrap();
        let s = c.status().await.unwrap();
        let h = s.header().unwrap();
        (h.cluster_id(), h.member_id(), h.revision())
    })
}

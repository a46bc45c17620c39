//! A blocking facade over `etcd-client`: status, membership, health and the
//! maintenance calls the charm's actions need.
//!
//! The charm is a short-lived, sequential program, so each [`EtcdClient`]
//! owns a current-thread tokio runtime and blocks on every call. Every call
//! has a timeout, so a dead member costs seconds, not minutes.
//!
//! etcd runs with client-certificate auth, so every connection carries a
//! [`ClientTls`]: the CA to trust and the client identity to present.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use etcd_client::{
    AlarmAction, AlarmType, Certificate, Client, CompactionOptions, ConnectOptions, GetOptions,
    Identity, MemberAddOptions, SnapshotStreaming, TlsOptions,
};

use super::config::TlsFiles;

/// The CA and client identity a connection uses, read from files. The key
/// is held only as long as the connection is being set up; `Debug` never
/// prints it.
#[derive(Clone)]
pub struct ClientTls {
    ca_pem: String,
    cert_pem: String,
    key_pem: zeroize::Zeroizing<String>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientTls { key: [redacted] }")
    }
}

impl ClientTls {
    /// Reads the CA certificate, the client certificate and its key.
    pub fn load(files: &TlsFiles) -> Result<Self, ClientError> {
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|source| ClientError::Credentials {
                path: p.to_path_buf(),
                source,
            })
        };
        Ok(ClientTls {
            ca_pem: read(&files.ca)?,
            cert_pem: read(&files.cert)?,
            key_pem: zeroize::Zeroizing::new(read(&files.key)?),
        })
    }

    fn options(&self) -> TlsOptions {
        TlsOptions::new()
            .ca_certificate(Certificate::from_pem(&self.ca_pem))
            .identity(Identity::from_pem(&self.cert_pem, self.key_pem.as_bytes()))
    }
}

/// A call to etcd that failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot read the TLS credentials {}: {source}", path.display())]
    Credentials {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("cannot reach etcd at {endpoint}: {source}")]
    Connect {
        endpoint: String,
        #[source]
        source: etcd_client::Error,
    },
    #[error("etcd {call} failed: {source}")]
    Call {
        call: &'static str,
        #[source]
        source: etcd_client::Error,
    },
    #[error("etcd {call} timed out after {secs} s")]
    Timeout { call: &'static str, secs: u64 },
    #[error("etcd did not become healthy within {secs} s: {last}")]
    NotHealthy { secs: u64, last: String },
    #[error("etcd answered without a response header to {0}")]
    NoHeader(&'static str),
    #[error("etcd's snapshot stream ended before its first message")]
    EmptySnapshot,
}

/// What `Maintenance.Status` says about the member we talk to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberStatus {
    pub version: String,
    pub cluster_id: u64,
    pub member_id: u64,
    pub leader: u64,
    pub revision: i64,
    pub db_size: i64,
    pub raft_index: u64,
    /// This member is a learner: it replicates but does not vote, and
    /// answers only serializable reads until it is promoted.
    pub is_learner: bool,
}

/// One member of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: u64,
    pub name: String,
    pub peer_urls: Vec<String>,
    pub client_urls: Vec<String>,
    pub is_learner: bool,
}

/// The health of the member we talk to and the cluster it sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    pub status: MemberStatus,
    pub members: Vec<Member>,
    /// Active alarms, e.g. `NOSPACE`; empty when healthy.
    pub alarms: Vec<String>,
}

impl Health {
    pub fn is_healthy(&self) -> bool {
        self.alarms.is_empty() && self.status.leader != 0
    }
}

/// A connection to one etcd endpoint.
pub struct EtcdClient {
    rt: tokio::runtime::Runtime,
    client: Client,
    timeout: Duration,
    /// Key counts read this member's own data (serializable) rather than
    /// going through raft: a member without quorum can still count what
    /// it holds (see [`EtcdClient::local_reads`]).
    local_reads: bool,
}

impl EtcdClient {
    /// Connects to `endpoint` (e.g. `https://127.1.2.3:2379`) with `tls`.
    pub fn connect(
        endpoint: &str,
        tls: &ClientTls,
        timeout: Duration,
    ) -> Result<Self, ClientError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(ClientError::Runtime)?;
        let opts = ConnectOptions::new()
            .with_connect_timeout(timeout)
            .with_timeout(timeout)
            .with_tls(tls.options());
        let client = rt
            .block_on(async {
                tokio::time::timeout(timeout, Client::connect([endpoint], Some(opts))).await
            })
            .map_err(|_| ClientError::Timeout {
                call: "connect",
                secs: timeout.as_secs(),
            })?
            .map_err(|source| ClientError::Connect {
                endpoint: endpoint.to_string(),
                source,
            })?;
        Ok(EtcdClient {
            rt,
            client,
            timeout,
            local_reads: false,
        })
    }

    fn call<T, F>(&mut self, call: &'static str, f: F) -> Result<T, ClientError>
    where
        F: FnOnce(
            Client,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<T, etcd_client::Error>>>,
        >,
    {
        let timeout = self.timeout;
        let fut = f(self.client.clone());
        self.rt
            .block_on(async { tokio::time::timeout(timeout, fut).await })
            .map_err(|_| ClientError::Timeout {
                call,
                secs: timeout.as_secs(),
            })?
            .map_err(|source| ClientError::Call { call, source })
    }

    /// `Maintenance.Status` of the member we are connected to.
    pub fn status(&mut self) -> Result<MemberStatus, ClientError> {
        let r = self.call("status", |mut c| Box::pin(async move { c.status().await }))?;
        let h = r.header().ok_or(ClientError::NoHeader("status"))?;
        Ok(MemberStatus {
            version: r.version().to_string(),
            cluster_id: h.cluster_id(),
            member_id: h.member_id(),
            leader: r.leader(),
            revision: h.revision(),
            db_size: r.db_size(),
            raft_index: r.raft_index(),
            is_learner: r.is_learner(),
        })
    }

    /// The cluster's members.
    pub fn members(&mut self) -> Result<Vec<Member>, ClientError> {
        let r = self.call("member list", |mut c| {
            Box::pin(async move { c.member_list().await })
        })?;
        Ok(r.members()
            .iter()
            .map(|m| Member {
                id: m.id(),
                name: m.name().to_string(),
                peer_urls: m.peer_urls().to_vec(),
                client_urls: m.client_urls().to_vec(),
                is_learner: m.is_learner(),
            })
            .collect())
    }

    /// Changes a member's peer URLs (used when `management_port` changes).
    pub fn member_update(&mut self, id: u64, peer_urls: Vec<String>) -> Result<(), ClientError> {
        self.call("member update", move |mut c| {
            Box::pin(async move { c.member_update(id, peer_urls).await })
        })
        .map(drop)
    }

    /// Adds a member with `peer_urls`, as a learner when `learner` (it
    /// does not count towards quorum until promoted); returns its id. The
    /// new member must then start with `initial-cluster-state: existing`.
    pub fn member_add(
        &mut self,
        peer_urls: Vec<String>,
        learner: bool,
    ) -> Result<u64, ClientError> {
        let opts = learner.then(|| MemberAddOptions::new().with_is_learner());
        let r = self.call("member add", move |mut c| {
            Box::pin(async move { c.member_add(peer_urls, opts).await })
        })?;
        r.member()
            .map(|m| m.id())
            .ok_or(ClientError::NoHeader("member add"))
    }

    /// Makes a learner a voting member. etcd refuses until the learner has
    /// caught up with the leader.
    pub fn member_promote(&mut self, id: u64) -> Result<(), ClientError> {
        self.call("member promote", move |mut c| {
            Box::pin(async move { c.member_promote(id).await })
        })
        .map(drop)
    }

    /// Removes a member. etcd refuses it when the rest would lose quorum.
    pub fn member_remove(&mut self, id: u64) -> Result<(), ClientError> {
        self.call("member remove", move |mut c| {
            Box::pin(async move { c.member_remove(id).await })
        })
        .map(drop)
    }

    /// Health as `etcdctl endpoint health` judges it: a linearizable read
    /// goes through raft, and no alarm is raised.
    pub fn health(&mut self) -> Result<Health, ClientError> {
        let status = self.status()?;
        self.call("linearizable get", |mut c| {
            Box::pin(async move {
                c.get("health", Some(GetOptions::new().with_count_only()))
                    .await
            })
        })?;
        let alarms = self.call("alarm list", |mut c| {
            Box::pin(async move { c.alarm(AlarmAction::Get, AlarmType::None, None).await })
        })?;
        let members = self.members()?;
        Ok(Health {
            status,
            members,
            alarms: alarms
                .alarms()
                .iter()
                .map(|a| a.alarm().as_str_name().to_string())
                .collect(),
        })
    }

    /// Compacts history up to `revision`.
    pub fn compact(&mut self, revision: i64, physical: bool) -> Result<(), ClientError> {
        let opts = physical.then(|| CompactionOptions::new().with_physical());
        self.call("compact", move |mut c| {
            Box::pin(async move { c.compact(revision, opts).await })
        })
        .map(drop)
    }

    /// The store's compaction revision, found cheaply (about 30 count-only
    /// reads): a read at revision `r` fails as compacted exactly when `r`
    /// is below it. `upper` is a revision known to exist (the current
    /// one). Returns 0 or 1 when nothing was compacted (the two are the
    /// same for every purpose).
    pub fn compact_revision(&mut self, upper: i64) -> Result<i64, ClientError> {
        let (mut lo, mut hi) = (1i64, upper.max(1));
        // Invariant: a read at `hi` succeeds; find the smallest that does.
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let r = self.call("compaction probe", move |mut c| {
                Box::pin(async move {
                    c.get(
                        "\0etcd-charm-probe",
                        Some(GetOptions::new().with_count_only().with_revision(mid)),
                    )
                    .await
                })
            });
            match r {
                Ok(_) => hi = mid,
                Err(ClientError::Call { source, .. })
                    if source.to_string().contains("compacted") =>
                {
                    lo = mid + 1
                }
                Err(e) => return Err(e),
            }
        }
        Ok(hi)
    }

    /// `HashKV` at exactly `revision`: etcd's CRC-32C over every key
    /// revision up to it (from the compaction revision on), and the
    /// compaction revision it was computed under. It walks the whole
    /// keyspace, so it may take longer than other calls: up to `within`.
    pub fn hash_kv(
        &mut self,
        revision: i64,
        within: Duration,
    ) -> Result<crate::snapshot::HashKv, ClientError> {
        let fut = {
            let mut c = self.client.clone();
            async move { c.hash_kv(revision).await }
        };
        let r = self
            .rt
            .block_on(async { tokio::time::timeout(within, fut).await })
            .map_err(|_| ClientError::Timeout {
                call: "hashkv",
                secs: within.as_secs(),
            })?
            .map_err(|source| ClientError::Call {
                call: "hashkv",
                source,
            })?;
        Ok(crate::snapshot::HashKv {
            hash: r.hash(),
            compact_revision: r.compact_version(),
        })
    }

    /// Defragments the member we are connected to.
    pub fn defragment(&mut self) -> Result<(), ClientError> {
        self.call("defragment", |mut c| {
            Box::pin(async move { c.defragment().await })
        })
        .map(drop)
    }
}

/// etcd's Maintenance snapshot stream as a blocking [`io::Read`]: the bbolt
/// file followed by etcd's 32-byte sha256, exactly the bytes `etcdctl
/// snapshot save` writes. Each message has its own timeout, so a stalled
/// server fails the read instead of hanging.
pub struct SnapshotStream<'a> {
    client: &'a mut EtcdClient,
    stream: SnapshotStreaming,
    /// The current message's bytes not yet handed out.
    pending: Vec<u8>,
    pos: usize,
    size: u64,
    ended: bool,
}

/// The trailing sha256 etcd sends after the db.
const ETCD_HASH_LEN: u64 = 32;

impl SnapshotStream<'_> {
    /// The stream's total length in bytes: the db etcd announced in its
    /// first message plus the 32-byte hash it sends last.
    pub fn size(&self) -> u64 {
        self.size
    }

    fn next_message(&mut self) -> io::Result<Option<Vec<u8>>> {
        let timeout = self.client.timeout;
        let fut = self.stream.message();
        match self
            .client
            .rt
            .block_on(async { tokio::time::timeout(timeout, fut).await })
        {
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("etcd sent no snapshot data for {} s", timeout.as_secs()),
            )),
            Ok(Err(e)) => Err(io::Error::other(format!("etcd snapshot stream: {e}"))),
            Ok(Ok(None)) => Ok(None),
            Ok(Ok(Some(m))) => Ok(Some(m.blob().to_vec())),
        }
    }
}

impl io::Read for SnapshotStream<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.pending.len() {
            if self.ended {
                return Ok(0);
            }
            match self.next_message()? {
                Some(blob) => {
                    self.pending = blob;
                    self.pos = 0;
                }
                None => {
                    self.ended = true;
                    return Ok(0);
                }
            }
        }
        let n = buf.len().min(self.pending.len() - self.pos);
        buf[..n].copy_from_slice(&self.pending[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl EtcdClient {
    /// Opens etcd's Maintenance snapshot stream. The first message is read
    /// here, so the stream's size is known before the first byte is used.
    pub fn snapshot(&mut self) -> Result<SnapshotStream<'_>, ClientError> {
        let mut stream = self.call("snapshot", |mut c| {
            Box::pin(async move { c.snapshot().await })
        })?;
        let timeout = self.timeout;
        let first = self
            .rt
            .block_on(async { tokio::time::timeout(timeout, stream.message()).await })
            .map_err(|_| ClientError::Timeout {
                call: "snapshot",
                secs: timeout.as_secs(),
            })?
            .map_err(|source| ClientError::Call {
                call: "snapshot",
                source,
            })?
            .ok_or(ClientError::EmptySnapshot)?;
        // `remaining_bytes` counts the db bytes after this message; etcd
        // then sends its 32-byte sha256 in a message of its own.
        let size = first.blob().len() as u64 + first.remaining_bytes() + ETCD_HASH_LEN;
        Ok(SnapshotStream {
            pending: first.blob().to_vec(),
            pos: 0,
            size,
            ended: false,
            stream,
            client: self,
        })
    }

    /// The number of keys at `revision` (0 for the current revision).
    pub fn key_count(&mut self, revision: i64) -> Result<u64, ClientError> {
        let local = self.local_reads;
        let r = self.call("count keys", move |mut c| {
            Box::pin(async move {
                let opts = GetOptions::new()
                    .with_from_key()
                    .with_count_only()
                    .with_revision(revision);
                let opts = if local {
                    opts.with_serializable()
                } else {
                    opts
                };
                c.get(vec![0u8], Some(opts)).await
            })
        })?;
        u64::try_from(r.count()).map_err(|_| ClientError::NoHeader("count keys"))
    }
}

/// Connects to `endpoint` and asks `probe` until it says `Ok`, or
/// `within` has passed; `Err(why)` from the probe means "not yet".
fn poll<T>(
    endpoint: &str,
    tls: &ClientTls,
    within: Duration,
    mut probe: impl FnMut(&mut EtcdClient) -> Result<Result<T, String>, ClientError>,
) -> Result<T, ClientError> {
    let deadline = Instant::now() + within;
    let per_try = Duration::from_secs(2);
    loop {
        let last = match EtcdClient::connect(endpoint, tls, per_try).and_then(|mut c| probe(&mut c))
        {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(why)) => why,
            Err(e) => e.to_string(),
        };
        if Instant::now() >= deadline {
            return Err(ClientError::NotHealthy {
                secs: within.as_secs(),
                last,
            });
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Polls `endpoint` until it answers a status request (a learner does,
/// though it cannot serve a linearizable read yet) or `within` has passed.
pub fn wait_ready(
    endpoint: &str,
    tls: &ClientTls,
    within: Duration,
) -> Result<MemberStatus, ClientError> {
    poll(endpoint, tls, within, |c| c.status().map(Ok))
}

/// Polls `endpoint` until it is healthy or `within` has passed.
pub fn wait_healthy(
    endpoint: &str,
    tls: &ClientTls,
    within: Duration,
) -> Result<Health, ClientError> {
    poll(endpoint, tls, within, |c| {
        c.health().map(|h| {
            if h.is_healthy() {
                Ok(h)
            } else {
                Err(format!("alarms {:?}, leader {}", h.alarms, h.status.leader))
            }
        })
    })
}

/// One raised alarm: the member that raised it and etcd's name for it
/// (`NOSPACE`, `CORRUPT`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alarm {
    pub member_id: u64,
    pub kind: String,
}

impl EtcdClient {
    /// Makes key counts read this member's own data without raft, so they
    /// work on a member that has lost quorum (the snapshot stream and
    /// status never need raft).
    pub fn local_reads(mut self) -> Self {
        self.local_reads = true;
        self
    }

    /// The alarms raised in the cluster, as `etcdctl alarm list` shows them.
    pub fn alarms(&mut self) -> Result<Vec<Alarm>, ClientError> {
        let r = self.call("alarm list", |mut c| {
            Box::pin(async move { c.alarm(AlarmAction::Get, AlarmType::None, None).await })
        })?;
        Ok(r.alarms()
            .iter()
            .map(|a| Alarm {
                member_id: a.member_id(),
                kind: a.alarm().as_str_name().to_string(),
            })
            .collect())
    }

    /// Disarms every raised alarm, as `etcdctl alarm disarm` does; returns
    /// the alarms it disarmed. etcd raises `NOSPACE` again at once if the
    /// database is still over its quota.
    pub fn alarm_disarm_all(&mut self) -> Result<Vec<Alarm>, ClientError> {
        let raised = self.alarms()?;
        for a in &raised {
            let kind = AlarmType::from_str_name(&a.kind).unwrap_or(AlarmType::None);
            let member = a.member_id;
            self.call("alarm disarm", move |mut c| {
                Box::pin(async move {
                    let mut opts = etcd_client::AlarmOptions::new();
                    opts.with_member(member);
                    c.alarm(AlarmAction::Deactivate, kind, Some(opts)).await
                })
            })?;
        }
        Ok(raised)
    }

    /// The member serves: it answers status and a linearizable read (which
    /// goes through raft, so it has a leader). Unlike [`Self::health`],
    /// raised alarms do not count: a member under `NOSPACE` still serves
    /// reads and keeps quorum.
    pub fn serving(&mut self) -> Result<MemberStatus, ClientError> {
        let status = self.status()?;
        self.call("linearizable get", |mut c| {
            Box::pin(async move {
                c.get("health", Some(GetOptions::new().with_count_only()))
                    .await
            })
        })?;
        Ok(status)
    }
}

/// Polls `endpoint` until the member serves (see [`EtcdClient::serving`])
/// or `within` has passed.
pub fn wait_serving(
    endpoint: &str,
    tls: &ClientTls,
    within: Duration,
) -> Result<MemberStatus, ClientError> {
    poll(endpoint, tls, within, |c| c.serving().map(Ok))
}

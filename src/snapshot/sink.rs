//! Where an inspected db goes: hashed and written on a thread of its own.
//!
//! Reading an archive splits into two loads of about the same size: the
//! caller's thread reads the input, hashes it and decompresses it; the
//! db's own sha256 (and etcd's trailing-hash check) and the write of the
//! staged copy happen here, on a second thread, so a restore verifies at
//! the speed of the slower of the two rather than of their sum. At most
//! [`DEPTH`] chunks are in flight, so memory stays flat.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::Arc;
use std::thread::Scope;

use super::db::{DbDigest, DbScanner};
use super::inspect::InspectError;

/// Chunks queued to the sink thread at most.
const DEPTH: usize = 4;

enum Msg {
    Begin,
    Chunk(Vec<u8>),
    End,
}

/// The main thread's handle on the sink thread.
pub(crate) struct DbSink {
    tx: SyncSender<Msg>,
    digests: Receiver<io::Result<DbDigest>>,
    spent: Receiver<Vec<u8>>,
    failed: Arc<AtomicBool>,
}

impl DbSink {
    /// Starts the sink thread in `scope`; it writes to `out` when given.
    pub fn spawn<'scope, 'env>(
        scope: &'scope Scope<'scope, 'env>,
        out: Option<&'env mut (dyn Write + Send)>,
    ) -> DbSink {
        let (tx, rx) = mpsc::sync_channel(DEPTH);
        let (digest_tx, digests) = mpsc::channel();
        let (spent_tx, spent) = mpsc::channel();
        let failed = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&failed);
        scope.spawn(move || run(rx, out, digest_tx, spent_tx, flag));
        DbSink {
            tx,
            digests,
            spent,
            failed,
        }
    }

    fn send(&self, m: Msg) -> Result<(), InspectError> {
        self.tx
            .send(m)
            .map_err(|_| InspectError::WriteDb(io::Error::other("the db writer thread stopped")))
    }

    /// A new db begins: the scanner starts over.
    pub fn begin(&mut self) -> Result<(), InspectError> {
        self.send(Msg::Begin)
    }

    /// The next bytes of the db. A write that already failed is reported
    /// here, so the caller stops reading early.
    pub fn chunk(&mut self, data: &[u8]) -> Result<(), InspectError> {
        if self.failed.load(Ordering::Relaxed) {
            return self.end().map(|_| ());
        }
        let mut buf = self.spent.try_recv().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(data);
        self.send(Msg::Chunk(buf))
    }

    /// The db ended: its digest, or the error writing it.
    pub fn end(&mut self) -> Result<DbDigest, InspectError> {
        self.send(Msg::End)?;
        match self.digests.recv() {
            Ok(Ok(d)) => Ok(d),
            Ok(Err(e)) => Err(InspectError::WriteDb(e)),
            Err(_) => Err(InspectError::WriteDb(io::Error::other(
                "the db writer thread stopped",
            ))),
        }
    }
}

fn run(
    rx: Receiver<Msg>,
    mut out: Option<&mut (dyn Write + Send)>,
    digests: Sender<io::Result<DbDigest>>,
    spent: Sender<Vec<u8>>,
    failed: Arc<AtomicBool>,
) {
    let mut scanner = DbScanner::new();
    let mut error: Option<io::Error> = None;
    while let Ok(m) = rx.recv() {
        match m {
            Msg::Begin => {
                scanner = DbScanner::new();
                error = None;
            }
            Msg::Chunk(buf) => {
                if error.is_none() {
                    scanner.update(&buf);
                    if let Some(w) = out.as_mut() {
                        if let Err(e) = w.write_all(&buf) {
                            error = Some(e);
                            failed.store(true, Ordering::Relaxed);
                        }
                    }
                }
                // The main thread may have stopped listening; that is fine.
                let _ = spent.send(buf);
            }
            Msg::End => {
                let result = match error.take() {
                    Some(e) => Err(e),
                    None => Ok(std::mem::replace(&mut scanner, DbScanner::new()).finish()),
                };
                if digests.send(result).is_err() {
                    return;
                }
            }
        }
    }
}

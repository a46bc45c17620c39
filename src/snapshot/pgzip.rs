//! A gzip writer that compresses blocks on several threads, pigz-style.
//!
//! Compression is most of a snapshot's CPU time, so [`ParGzWriter`] cuts
//! its input into [`BLOCK_SIZE`] blocks and deflates them on worker
//! threads while the caller goes on streaming and hashing. Each block is a
//! run of raw deflate blocks ended by a sync flush, so the blocks
//! concatenate into **one** deflate stream; the writer puts the gzip header
//! in front, a final empty block and the combined CRC-32 and size behind.
//! The result is a single-member gzip, byte-for-byte valid RFC 1952, that
//! `gzip -d`, `tar xzf`, Python's `tarfile` and `flate2`'s `GzDecoder`
//! read like any other.
//!
//! A block whose first [`SAMPLE`] bytes do not compress (random data,
//! already-compressed values) is stored rather than compressed: deflating
//! incompressible bytes costs the most CPU and saves nothing. A block that
//! compresses to more than its own size is stored too, so the output is
//! never more than a few bytes per block larger than the input.
//!
//! Memory is bounded: at most `2 × workers` blocks are in flight, each
//! with its input and its output, whatever the size of the stream.
//! Output goes to the inner writer in order, on the caller's thread.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use flate2::{Compress, Compression, FlushCompress, Status};

/// Bytes per block handed to a worker.
pub const BLOCK_SIZE: usize = 1 << 20;
/// The most worker threads, whatever the machine has.
pub const MAX_WORKERS: usize = 4;
/// How much of a block is test-compressed to decide whether to store it.
const SAMPLE: usize = 16 << 10;
/// A sample that deflates to more than this fraction (in 1/64ths) of its
/// size marks the block as incompressible.
const STORE_ABOVE_64THS: usize = 62;
/// The largest stored deflate block.
const MAX_STORED: usize = 0xffff;
/// gzip's header: magic, deflate, no flags, no mtime, "fastest" (XFL 4),
/// OS 3 (Unix).
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 3];
/// A final, empty, fixed-Huffman deflate block: what ends the stream
/// after the last sync-flushed block.
const FINAL_BLOCK: [u8; 2] = [0x03, 0x00];

struct Job {
    seq: u64,
    data: Vec<u8>,
}

/// Output buffers handed back by the writer for the workers to reuse:
/// allocating a fresh megabyte per block costs page faults and, for
/// allocators that map big blocks, an munmap (and a TLB shootdown) each.
type Pool = Arc<Mutex<Vec<Vec<u8>>>>;

/// Room for one block's deflate output without growing: deflate's worst
/// case is a few bytes per 16 KiB over the input.
const OUT_CAPACITY: usize = BLOCK_SIZE + BLOCK_SIZE / 64 + 1024;

struct Done {
    seq: u64,
    deflated: io::Result<Vec<u8>>,
    crc: crc32fast::Hasher,
    /// The input buffer, returned for reuse.
    spent: Vec<u8>,
}

/// A parallel gzip writer; see the module doc. Call [`ParGzWriter::finish`]
/// to end the stream: dropping it without `finish` leaves a truncated gzip.
pub struct ParGzWriter<W: Write> {
    inner: Option<W>,
    jobs: Option<mpsc::SyncSender<Job>>,
    done: mpsc::Receiver<Done>,
    workers: Vec<JoinHandle<()>>,
    pool: Pool,
    block: Vec<u8>,
    spare: Vec<Vec<u8>>,
    next_seq: u64,
    next_write: u64,
    in_flight: usize,
    max_in_flight: usize,
    pending: BTreeMap<u64, Done>,
    crc: crc32fast::Hasher,
    /// Input bytes accepted so far.
    size: u64,
    header_written: bool,
}

/// How many workers to use: the machine's parallelism, at most
/// [`MAX_WORKERS`].
pub fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, MAX_WORKERS)
}

impl<W: Write> ParGzWriter<W> {
    /// A writer compressing at `level` (1–9) on `workers` threads.
    pub fn new(inner: W, level: u32, workers: usize) -> io::Result<Self> {
        let workers = workers.max(1);
        let max_in_flight = 2 * workers;
        let (job_tx, job_rx) = mpsc::sync_channel::<Job>(max_in_flight);
        let job_rx = Arc::new(Mutex::new(job_rx));
        let (done_tx, done_rx) = mpsc::channel::<Done>();
        let pool: Pool = Arc::new(Mutex::new(Vec::new()));
        let mut handles = Vec::with_capacity(workers);
        for i in 0..workers {
            let rx = Arc::clone(&job_rx);
            let tx = done_tx.clone();
            let pool = Arc::clone(&pool);
            let h = std::thread::Builder::new()
                .name(format!("gzip-{i}"))
                .spawn(move || worker(rx, tx, pool, level))?;
            handles.push(h);
        }
        Ok(ParGzWriter {
            inner: Some(inner),
            jobs: Some(job_tx),
            done: done_rx,
            workers: handles,
            pool,
            block: Vec::with_capacity(BLOCK_SIZE),
            spare: Vec::new(),
            next_seq: 0,
            next_write: 0,
            in_flight: 0,
            max_in_flight,
            pending: BTreeMap::new(),
            crc: crc32fast::Hasher::new(),
            size: 0,
            header_written: false,
        })
    }

    fn inner(&mut self) -> io::Result<&mut W> {
        self.inner
            .as_mut()
            .ok_or_else(|| io::Error::other("the gzip stream is already finished"))
    }

    /// Hands the current block to the workers.
    fn submit(&mut self) -> io::Result<()> {
        if self.block.is_empty() {
            return Ok(());
        }
        while self.in_flight >= self.max_in_flight {
            self.wait_one()?;
        }
        let fresh = self
            .spare
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(BLOCK_SIZE));
        let data = std::mem::replace(&mut self.block, fresh);
        let seq = self.next_seq;
        let jobs = self
            .jobs
            .as_ref()
            .ok_or_else(|| io::Error::other("the gzip stream is already finished"))?;
        jobs.send(Job { seq, data })
            .map_err(|_| io::Error::other("a gzip worker thread stopped"))?;
        self.next_seq += 1;
        self.in_flight += 1;
        // Write whatever is already done, without waiting.
        while let Ok(d) = self.done.try_recv() {
            self.accept(d)?;
        }
        Ok(())
    }

    /// Waits for one block to come back and writes what is in order.
    fn wait_one(&mut self) -> io::Result<()> {
        let d = self
            .done
            .recv()
            .map_err(|_| io::Error::other("a gzip worker thread stopped"))?;
        self.accept(d)
    }

    fn accept(&mut self, d: Done) -> io::Result<()> {
        self.in_flight -= 1;
        self.pending.insert(d.seq, d);
        while let Some(d) = self.pending.remove(&self.next_write) {
            let out = d.deflated?;
            if !self.header_written {
                self.inner()?.write_all(&HEADER)?;
                self.header_written = true;
            }
            self.inner()?.write_all(&out)?;
            self.crc.combine(&d.crc);
            if let Ok(mut pool) = self.pool.lock() {
                if pool.len() <= self.max_in_flight {
                    pool.push(out);
                }
            }
            let mut spent = d.spent;
            spent.clear();
            if self.spare.len() <= self.max_in_flight {
                self.spare.push(spent);
            }
            self.next_write += 1;
        }
        Ok(())
    }

    /// Compresses what is left, writes the end of the stream and returns
    /// the inner writer (flushed, not synced).
    pub fn finish(mut self) -> io::Result<W> {
        self.submit()?;
        while self.in_flight > 0 {
            self.wait_one()?;
        }
        self.jobs = None;
        for h in self.workers.drain(..) {
            if h.join().is_err() {
                return Err(io::Error::other("a gzip worker thread panicked"));
            }
        }
        let crc = std::mem::replace(&mut self.crc, crc32fast::Hasher::new());
        let header_written = self.header_written;
        let mut inner = self
            .inner
            .take()
            .ok_or_else(|| io::Error::other("the gzip stream is already finished"))?;
        if !header_written {
            inner.write_all(&HEADER)?;
        }
        inner.write_all(&FINAL_BLOCK)?;
        let size = self.size;
        inner.write_all(&crc.finalize().to_le_bytes())?;
        // ISIZE is the input size modulo 2^32 (RFC 1952).
        inner.write_all(&(size as u32).to_le_bytes())?;
        inner.flush()?;
        Ok(inner)
    }
}

impl<W: Write> Write for ParGzWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = BLOCK_SIZE - self.block.len();
        let n = room.min(buf.len());
        self.block.extend_from_slice(&buf[..n]);
        self.size += n as u64;
        if self.block.len() == BLOCK_SIZE {
            self.submit()?;
        }
        Ok(n)
    }

    /// Blocks are only compressed when full or at `finish`; `flush` flushes
    /// what is already compressed.
    fn flush(&mut self) -> io::Result<()> {
        self.inner()?.flush()
    }
}

impl<W: Write> Drop for ParGzWriter<W> {
    fn drop(&mut self) {
        // Closing the job channel ends the workers; results are discarded.
        self.jobs = None;
        for h in self.workers.drain(..) {
            let _ = h.join();
        }
    }
}

fn worker(jobs: Arc<Mutex<mpsc::Receiver<Job>>>, done: mpsc::Sender<Done>, pool: Pool, level: u32) {
    let mut z = Compress::new(Compression::new(level), false);
    let mut sample_out = Vec::with_capacity(SAMPLE + SAMPLE / 8 + 64);
    loop {
        let job = {
            let Ok(rx) = jobs.lock() else { return };
            match rx.recv() {
                Ok(j) => j,
                Err(_) => return,
            }
        };
        let mut crc = crc32fast::Hasher::new();
        crc.update(&job.data);
        // A panic must come back as an error: the writer waits for every
        // block it handed out.
        let mut out = pool
            .lock()
            .ok()
            .and_then(|mut p| p.pop())
            .unwrap_or_else(|| Vec::with_capacity(OUT_CAPACITY));
        let deflated = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            deflate_block(&mut z, &job.data, &mut sample_out, &mut out).map(|()| out)
        }))
        .unwrap_or_else(|_| Err(io::Error::other("a gzip worker thread panicked")));
        let msg = Done {
            seq: job.seq,
            deflated,
            crc,
            spent: job.data,
        };
        if done.send(msg).is_err() {
            return;
        }
    }
}

/// One block into `out` as raw deflate ending in a sync flush
/// (byte-aligned, not final), or as stored blocks when it does not
/// compress.
fn deflate_block(
    z: &mut Compress,
    data: &[u8],
    scratch: &mut Vec<u8>,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    out.clear();
    if data.len() > SAMPLE {
        z.reset();
        scratch.clear();
        run(z, &data[..SAMPLE], scratch, FlushCompress::Sync)?;
        if scratch.len() * 64 > SAMPLE * STORE_ABOVE_64THS {
            stored(data, out);
            return Ok(());
        }
    }
    z.reset();
    run(z, data, out, FlushCompress::Sync)?;
    if out.len() > data.len() + data.len() / MAX_STORED * 5 + 5 {
        out.clear();
        stored(data, out);
    }
    Ok(())
}

/// Compresses all of `input` into `out` (growing it as needed) and
/// performs `flush`.
fn run(z: &mut Compress, input: &[u8], out: &mut Vec<u8>, flush: FlushCompress) -> io::Result<()> {
    let start_in = z.total_in();
    loop {
        if out.capacity() - out.len() < 1024 {
            out.reserve(out.capacity().max(64 << 10));
        }
        let consumed = (z.total_in() - start_in) as usize;
        let status = z
            .compress_vec(&input[consumed..], out, flush)
            .map_err(io::Error::other)?;
        let consumed = (z.total_in() - start_in) as usize;
        // A sync flush is complete once all input is consumed and the
        // output buffer was not filled up.
        if consumed == input.len() && out.capacity() - out.len() >= 1024 {
            return Ok(());
        }
        if matches!(status, Status::BufError) && consumed == input.len() {
            return Ok(());
        }
    }
}

/// Appends `data` to `out` as non-final stored deflate blocks.
fn stored(data: &[u8], out: &mut Vec<u8>) {
    out.reserve(data.len() + (data.len() / MAX_STORED + 1) * 5);
    for chunk in data.chunks(MAX_STORED) {
        let len = chunk.len() as u16;
        out.push(0); // BFINAL=0, BTYPE=00; the rest of the byte is padding
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn gz(data: &[u8], workers: usize, writes: usize) -> Vec<u8> {
        let mut w = ParGzWriter::new(Vec::new(), 1, workers).unwrap();
        for c in data.chunks(writes.max(1)) {
            w.write_all(c).unwrap();
        }
        w.finish().unwrap()
    }

    fn gunzip(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(data)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    fn mixed(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        let mut v = Vec::with_capacity(n);
        while v.len() < n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if (x >> 20).is_multiple_of(3) {
                // an incompressible stretch
                for _ in 0..(x % 5000) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    v.push(x as u8);
                }
            } else {
                let s = format!(
                    "{{\"kind\":\"Pod\",\"name\":\"web-{}\",\"n\":{}}}",
                    x % 97,
                    x % 13
                );
                v.extend_from_slice(s.as_bytes());
            }
        }
        v.truncate(n);
        v
    }

    #[test]
    fn round_trips_at_every_shape() {
        for (n, workers, writes) in [
            (0, 1, 1),
            (1, 2, 1),
            (SAMPLE, 2, 100),
            (BLOCK_SIZE - 1, 2, 4096),
            (BLOCK_SIZE, 3, BLOCK_SIZE),
            (BLOCK_SIZE + 1, 1, 7777),
            (5 * BLOCK_SIZE + 12345, 4, 300_000),
        ] {
            let data = mixed(n, n as u64 + 7);
            let out = gz(&data, workers, writes);
            assert_eq!(gunzip(&out), data, "n={n} workers={workers}");
            // The same bytes, one member: the trailer's size is the input's.
            let isize = u32::from_le_bytes(out[out.len() - 4..].try_into().unwrap());
            assert_eq!(isize as usize, n % (1 << 32));
        }
    }

    #[test]
    fn incompressible_blocks_are_stored_and_barely_grow() {
        let mut x = 0x9e3779b97f4a7c15u64;
        let data: Vec<u8> = (0..3 * BLOCK_SIZE)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let out = gz(&data, 2, 65536);
        assert_eq!(gunzip(&out), data);
        assert!(out.len() < data.len() + data.len() / 1000, "{}", out.len());
        let text = b"etcd snapshot ".repeat(200_000);
        let out = gz(&text, 2, 65536);
        assert_eq!(gunzip(&out), text);
        assert!(out.len() < text.len() / 50, "{}", out.len());
    }

    #[test]
    fn gzip_and_tar_read_it() {
        let data = mixed(3 * BLOCK_SIZE + 99, 3);
        let out = gz(&data, 2, 1 << 16);
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x.gz");
        std::fs::write(&f, &out).unwrap();
        let o = std::process::Command::new("gzip")
            .arg("-dc")
            .arg(&f)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(o.stdout, data);
        let o = std::process::Command::new("gzip")
            .arg("-t")
            .arg(&f)
            .output()
            .unwrap();
        assert!(o.status.success());
    }

    #[test]
    fn write_errors_surface() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::from_raw_os_error(28))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut w = ParGzWriter::new(Full, 1, 2).unwrap();
        let data = mixed(6 * BLOCK_SIZE, 5);
        let r = w.write_all(&data).and_then(|_| w.finish().map(|_| ()));
        assert_eq!(r.unwrap_err().raw_os_error(), Some(28));
    }
}

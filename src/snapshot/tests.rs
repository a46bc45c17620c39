//! Tests across the module: pack → inspect round trips, everything inspect
//! must refuse, the inputs it must accept, and a property test over random
//! damage to a valid archive.

use std::io::{self, Read};
use std::time::Instant;

use proptest::prelude::*;
use sha2::{Digest, Sha256};
use tar::EntryType;

use super::testutil::*;
use super::*;

fn sha(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

fn assert_refused(input: &[u8], limits: Limits, needle: &str) -> Inspection {
    let (i, _) = inspect_with(input, limits);
    let msg = i
        .refused()
        .unwrap_or_else(|| panic!("accepted, wanted a refusal mentioning {needle:?}: {i:#?}"));
    assert!(
        msg.contains(needle),
        "refusal does not mention {needle:?}: {msg}"
    );
    assert_eq!(i.input_sha256, sha(input), "input hash covers the input");
    assert_eq!(i.input_size, input.len() as u64);
    i
}

/// pax records with their lengths computed, as tar tools write them.
fn pax(records: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in records {
        let body = format!(" {k}={v}\n");
        let mut len = body.len() + 1;
        while format!("{len}").len() + body.len() != len {
            len += 1;
        }
        out.extend_from_slice(format!("{len}{body}").as_bytes());
    }
    out
}

fn inspect_ok(input: &[u8]) -> Inspection {
    let (i, _) = inspect_vec(input);
    assert_eq!(i.refused(), None, "{:#?}", i.findings);
    i
}

// ---- pack → inspect ----------------------------------------------------

#[test]
fn round_trip() {
    let db = synth_db(6, 42);
    let (archive, packed) = pack_vec(&db);

    assert_eq!(packed.archive_sha256, sha(&archive));
    assert_eq!(packed.archive_size, archive.len() as u64);
    assert_eq!(packed.manifest.db_sha256, sha(&db));
    assert_eq!(packed.manifest.db_size, db.len() as u64);
    assert_eq!(packed.manifest.format, FORMAT);
    assert_eq!(packed.manifest.revision, 4242);
    assert_eq!(&archive[..2], &[0x1f, 0x8b]);

    let (i, extracted) = inspect_vec(&archive);
    assert_eq!(i.refused(), None, "{:#?}", i.findings);
    assert_eq!(i.kind, Kind::Charm);
    assert_eq!(extracted, db);
    assert_eq!(i.db_sha256, sha(&db));
    assert_eq!(i.db_size, db.len() as u64);
    assert_eq!(i.input_sha256, packed.archive_sha256);
    assert_eq!(i.input_size, packed.archive_size);
    assert_eq!(i.manifest.as_ref(), Some(&packed.manifest));
    assert!(i.has_etcd_hash);
    assert!(!i.needs_skip_hash_check);
    assert!(i.findings.iter().all(|f| f.level == Level::Info));
}

#[test]
fn archive_lists_exactly_db_then_manifest_0600() {
    let db = synth_db(3, 5);
    let (archive, packed) = pack_vec(&db);
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(&archive[..]));
    let mut listed = Vec::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let h = e.header();
        assert_eq!(h.entry_type(), EntryType::Regular);
        assert_eq!(h.mode().unwrap(), 0o600);
        assert_eq!(h.mtime().unwrap(), 1_478_659_307);
        assert_eq!(h.uid().unwrap(), 0);
        let name = String::from_utf8(e.path_bytes().into_owned()).unwrap();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        listed.push((name, data));
    }
    let names: Vec<&str> = listed.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["db", "manifest.json"]);
    assert_eq!(listed[0].1, db);
    let m = Manifest::from_json(&listed[1].1).unwrap();
    assert_eq!(m, packed.manifest);
}

#[test]
fn pack_reports_progress_against_db_size() {
    let db = synth_db(300, 9); // > 1 MiB, so several chunks
    let mut seen = Vec::new();
    let mut progress = |done: u64, total: Option<u64>| seen.push((done, total));
    pack(
        &db[..],
        db.len() as u64,
        fields(),
        io::sink(),
        &mut progress,
    )
    .unwrap();
    assert!(seen.len() >= 2, "{seen:?}");
    assert!(seen.windows(2).all(|w| w[0].0 < w[1].0));
    assert_eq!(seen.last(), Some(&(db.len() as u64, Some(db.len() as u64))));

    let (archive, _) = pack_vec(&db);
    let mut last = 0;
    let mut progress = |done: u64, total: Option<u64>| {
        assert_eq!(total, None);
        last = done;
    };
    inspect(&archive[..], None, Limits::default(), &mut progress).unwrap();
    assert_eq!(last, archive.len() as u64);
}

#[test]
fn pack_with_tiny_chunks() {
    let db = synth_db(4, 11);
    let reader = TinyChunks {
        inner: &db[..],
        rng: Rng(3),
    };
    let mut out = Vec::new();
    let packed = pack(reader, db.len() as u64, fields(), &mut out, &mut NoProgress).unwrap();
    assert_eq!(packed.archive_sha256, sha(&out));
    let (i, extracted) = inspect_vec(&out);
    assert_eq!(i.refused(), None);
    assert_eq!(extracted, db);

    // And inspect reading the archive in tiny chunks too.
    let reader = TinyChunks {
        inner: &out[..],
        rng: Rng(8),
    };
    let mut extracted = Vec::new();
    let i = inspect(
        reader,
        Some(&mut extracted),
        Limits::default(),
        &mut NoProgress,
    )
    .unwrap();
    assert_eq!(i.refused(), None);
    assert_eq!(i.kind, Kind::Charm);
    assert_eq!(extracted, db);
    assert_eq!(i.input_sha256, packed.archive_sha256);
}

/// 64 MiB streamed from a generator, never held in memory as a db; the
/// archive is kept (mostly-empty pages compress about 4:1) and inspected
/// into a hashing sink.
#[test]
fn pack_64_mib_streamed() {
    let pages = 64 * 256;
    let gen = SynthDb::new(pages, 77);
    let size = gen.size();
    let mut want = Sha256::new();
    io::copy(&mut SynthDb::new(pages, 77), &mut HashSink(&mut want)).unwrap();
    let want = hex::encode(want.finalize());

    let start = Instant::now();
    let mut archive = Vec::new();
    let packed = pack(gen, size, fields(), &mut archive, &mut NoProgress).unwrap();
    let packed_in = start.elapsed();
    assert_eq!(packed.manifest.db_sha256, want);
    assert_eq!(packed.manifest.db_size, size);
    assert_eq!(packed.archive_sha256, sha(&archive));
    assert!(archive.len() < (size / 2) as usize, "{}", archive.len());

    let mut got = Sha256::new();
    let i = inspect(
        &archive[..],
        Some(&mut HashSink(&mut got)),
        Limits::default(),
        &mut NoProgress,
    )
    .unwrap();
    assert_eq!(i.refused(), None);
    assert_eq!(i.db_size, size);
    assert_eq!(hex::encode(got.finalize()), want);
    assert!(
        start.elapsed().as_secs() < 60,
        "pack {packed_in:?}, total {:?}",
        start.elapsed()
    );
}

struct HashSink<'a>(&'a mut Sha256);

impl io::Write for HashSink<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

// ---- pack refuses ------------------------------------------------------

#[test]
fn pack_refuses_a_wrong_trailing_hash() {
    let mut db = synth_db(3, 1);
    let n = db.len();
    db[n - 5] ^= 0x01;
    let e = pack(&db[..], n as u64, fields(), io::sink(), &mut NoProgress).unwrap_err();
    assert!(matches!(e, PackError::HashMismatch { .. }), "{e}");
    assert!(
        e.to_string().contains("run the snapshot action again"),
        "{e}"
    );

    // A flipped byte in the body, not the trailer.
    let mut db = synth_db(3, 1);
    db[5000] ^= 0x80;
    let e = pack(&db[..], n as u64, fields(), io::sink(), &mut NoProgress).unwrap_err();
    assert!(matches!(e, PackError::HashMismatch { .. }), "{e}");

    // A raw db (no trailer) of the announced size.
    let raw = raw_db(3, 1);
    let e = pack(
        &raw[..],
        raw.len() as u64,
        fields(),
        io::sink(),
        &mut NoProgress,
    )
    .unwrap_err();
    assert!(matches!(e, PackError::HashMismatch { .. }), "{e}");
}

#[test]
fn pack_refuses_short_and_long_streams() {
    let db = synth_db(3, 2);
    let n = db.len() as u64;
    let e = pack(
        &db[..db.len() - 1],
        n,
        fields(),
        io::sink(),
        &mut NoProgress,
    )
    .unwrap_err();
    assert!(
        matches!(e, PackError::Short { expected, got } if expected == n && got == n - 1),
        "{e}"
    );
    let e = pack(&db[..100], n, fields(), io::sink(), &mut NoProgress).unwrap_err();
    assert!(matches!(e, PackError::Short { got: 100, .. }), "{e}");
    let e = pack(&db[..], n - 1, fields(), io::sink(), &mut NoProgress).unwrap_err();
    assert!(matches!(e, PackError::Long { .. }), "{e}");
    let e = pack(&db[..10], 10, fields(), io::sink(), &mut NoProgress).unwrap_err();
    assert!(matches!(e, PackError::TooSmall { size: 10 }), "{e}");
}

#[test]
fn pack_refuses_non_bbolt_and_misaligned_streams() {
    let mut body = vec![7u8; 3 * PAGE];
    let h: [u8; 32] = Sha256::digest(&body).into();
    body.extend_from_slice(&h);
    let e = pack(
        &body[..],
        body.len() as u64,
        fields(),
        io::sink(),
        &mut NoProgress,
    )
    .unwrap_err();
    assert!(matches!(e, PackError::NotBbolt), "{e}");

    // Valid hash, but etcd would not see it (size % 512 != 32).
    let mut body = raw_db(1, 3);
    body.push(0);
    let h: [u8; 32] = Sha256::digest(&body).into();
    body.extend_from_slice(&h);
    let e = pack(
        &body[..],
        body.len() as u64,
        fields(),
        io::sink(),
        &mut NoProgress,
    )
    .unwrap_err();
    assert!(matches!(e, PackError::NotHashAligned { .. }), "{e}");
}

#[test]
fn pack_refuses_invalid_fields_before_reading() {
    let mut f = fields();
    f.created = "yesterday".into();
    let mut untouched = &b"never read"[..];
    let e = pack(&mut untouched, 100, f, io::sink(), &mut NoProgress).unwrap_err();
    assert!(
        matches!(
            e,
            PackError::Manifest(ManifestError::Field {
                field: "created",
                ..
            })
        ),
        "{e}"
    );
    assert_eq!(untouched, b"never read");
}

#[test]
fn pack_errors_tell_read_from_write() {
    let db = synth_db(300, 4);
    let out = FailAfter {
        after: 1000,
        kind: io::ErrorKind::StorageFull,
    };
    let e = pack(&db[..], db.len() as u64, fields(), out, &mut NoProgress).unwrap_err();
    assert!(matches!(e, PackError::Write(_)), "{e}");
    assert!(e.to_string().contains("has room"), "{e}");

    struct Broken;
    impl Read for Broken {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "stream reset",
            ))
        }
    }
    let e = pack(Broken, 10_000, fields(), io::sink(), &mut NoProgress).unwrap_err();
    assert!(matches!(e, PackError::Read(_)), "{e}");
}

// ---- inspect refuses ----------------------------------------------------

#[test]
fn flipped_bytes_anywhere_are_refused() {
    let db = synth_db(4, 21);
    let (archive, _) = pack_vec(&db);
    let n = archive.len();
    // The gzip magic and method, header flags (not FTEXT, a mere hint),
    // compressed data at several places, the CRC and the length in the
    // 8-byte trailer. (The header's mtime, XFL and OS bytes are covered by
    // no check, by design of gzip; the property test below allows for
    // them.)
    let positions = [
        0,
        1,
        2,
        3,
        10,
        11,
        40,
        n / 3,
        n / 2,
        n - 200,
        n - 10,
        n - 8,
        n - 5,
        n - 4,
        n - 1,
    ];
    for &pos in &positions {
        for bit in [0x02u8, 0x04, 0x80] {
            let mut bad = archive.clone();
            bad[pos] ^= bit;
            let (i, _) = inspect_vec(&bad);
            assert!(
                i.refused().is_some(),
                "flip {bit:#x} at {pos}/{n} accepted: {:#?}",
                i.findings
            );
        }
    }
    // Every bit of every byte from the last stretch of compressed data to
    // the end: refused, or harmless with the exact db. Harmless flips
    // exist: the deflate stream's final padding bits, or a back-reference
    // distance moved within a run of zeros, decode to the same bytes.
    let mut refused = 0;
    for pos in n - 64..n {
        for bit in 0..8 {
            let mut bad = archive.clone();
            bad[pos] ^= 1 << bit;
            let (i, out) = inspect_vec(&bad);
            if i.refused().is_some() {
                refused += 1;
            } else {
                assert_eq!(out, db, "flip bit {bit} at {pos}/{n}");
                assert_eq!(i.kind, Kind::Charm);
            }
        }
    }
    assert!(refused >= 64 * 8 * 9 / 10, "{refused}");
}

#[test]
fn truncations_are_refused() {
    let db = synth_db(4, 22);
    let (archive, _) = pack_vec(&db);
    let n = archive.len();
    for len in [1, 2, 10, 19, 20, 100, n / 2, n - 9, n - 8, n - 4, n - 1] {
        let i = assert_refused(&archive[..len], Limits::default(), "");
        assert!(
            i.refused().unwrap().contains("damaged or truncated")
                || i.refused().unwrap().contains("neither a gzip"),
            "{len}: {:?}",
            i.refused()
        );
    }
    assert_refused(&[], Limits::default(), "empty");
}

#[test]
fn a_tar_truncated_inside_an_intact_gzip_is_refused() {
    // `tar c … | head -c N | gzip`: the gzip stream is fine, the tar is not.
    let db = synth_db(3, 45);
    let (dbe, _) = charm_parts(&db);
    for (cut, says) in [
        (512 + 100, "ends after 100 of its 12320 bytes"),
        (512 + 4096, "ends after 4096 of its 12320 bytes"),
        // In the padding after the data.
        (dbe.len() - 40, "damaged or truncated"),
    ] {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        io::Write::write_all(&mut gz, &dbe[..cut]).unwrap();
        let input = gz.finish().unwrap();
        assert_refused(&input, Limits::default(), says);
    }
}

#[test]
fn trailing_bytes_after_gzip_are_refused() {
    let db = synth_db(2, 23);
    let (mut archive, _) = pack_vec(&db);
    archive.extend_from_slice(b"\0");
    assert_refused(
        &archive,
        Limits::default(),
        "follow the end of the gzip stream",
    );
    // A second gzip member is refused too.
    let (mut archive, _) = pack_vec(&db);
    let second = tar_gz(&[file(b"db", b"x")]);
    archive.extend_from_slice(&second);
    assert_refused(
        &archive,
        Limits::default(),
        "follow the end of the gzip stream",
    );
}

#[test]
fn unsafe_names_are_refused() {
    let db = synth_db(2, 24);
    let (_, manifest) = charm_parts(&db);
    for name in [
        &b"../db"[..],
        b"/db",
        b"./../db",
        b"db/../../etc/passwd",
        b"/etc/cron.d/x",
    ] {
        let input = tar_gz(&[file(name, &db), manifest.clone()]);
        let i = assert_refused(&input, Limits::default(), "never safe to extract");
        assert!(i.refused().unwrap().contains("Attach an archive made by"));
    }
}

#[test]
fn links_devices_and_fifos_are_refused() {
    let db = synth_db(2, 25);
    let (db_entry, manifest) = charm_parts(&db);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            raw_entry(
                b"db",
                EntryType::Symlink,
                b"",
                Some(b"/var/lib/etcd/member/snap/db"),
            ),
            "a symbolic link",
        ),
        (
            raw_entry(b"./db", EntryType::Link, b"", Some(b"manifest.json")),
            "a hard link",
        ),
        (
            raw_entry(b"db", EntryType::Char, b"", None),
            "a character device",
        ),
        (
            raw_entry(b"db", EntryType::Block, b"", None),
            "a block device",
        ),
        (raw_entry(b"db", EntryType::Fifo, b"", None), "a FIFO"),
        (
            raw_entry(b"db", EntryType::Directory, b"", None),
            "a directory",
        ),
    ];
    for (entry, what) in cases {
        let input = tar_gz(&[entry.clone(), manifest.clone()]);
        let i = assert_refused(&input, Limits::default(), what);
        assert!(i.refused().unwrap().contains("not a regular file"));
        // Even next to a genuine db.
        let input = tar_gz(&[db_entry.clone(), manifest.clone(), entry]);
        assert_refused(&input, Limits::default(), what);
    }
    // A hard link under an unexpected name.
    let input = tar_gz(&[
        db_entry.clone(),
        manifest.clone(),
        raw_entry(b"evil", EntryType::Link, b"", Some(b"db")),
    ]);
    assert_refused(
        &input,
        Limits::default(),
        "unexpected entry \"evil\" (a hard link)",
    );
}

/// What Python's tarfile and GNU tar write: pax headers with metadata, a
/// pax path, a GNU long name. All are read as a tar tool reads them.
#[test]
fn pax_and_long_name_headers_from_common_tools_are_read() {
    let db = synth_db(2, 26);
    let (db_entry, manifest) = charm_parts(&db);
    let python_pax = pax(&[("mtime", "1478659307.1234567"), ("uname", "ubuntu")]);
    let input = tar_gz(&[
        raw_entry(b"././@PaxHeader", EntryType::XHeader, &python_pax, None),
        db_entry.clone(),
        raw_entry(
            b"pax_global_header",
            EntryType::XGlobalHeader,
            &pax(&[("comment", "ab12cd")]),
            None,
        ),
        manifest.clone(),
    ]);
    let i = inspect_ok(&input);
    assert_eq!(i.kind, Kind::Charm);
    // The raw name is a placeholder; the pax path names the db.
    let mut renamed = db_entry.clone();
    renamed[..100].fill(0);
    renamed[..12].copy_from_slice(b"placeholder1");
    let mut h = tar::Header::from_byte_slice(&renamed[..512]).clone();
    h.set_cksum();
    renamed[..512].copy_from_slice(h.as_bytes());
    let input = tar_gz(&[
        raw_entry(
            b"PaxHeader/x",
            EntryType::XHeader,
            &pax(&[("path", "db")]),
            None,
        ),
        renamed,
        raw_entry(
            b"././@LongLink",
            EntryType::GNULongName,
            b"./manifest.json\0",
            None,
        ),
        manifest,
    ]);
    let i = inspect_ok(&input);
    assert_eq!(i.kind, Kind::Charm);
    assert_eq!(i.db_size, db.len() as u64);
}

#[test]
fn an_etcd_release_tarball_is_named_as_such() {
    let input = tar_gz(&[
        raw_entry(b"etcd-v3.5.1-linux-amd64/", EntryType::Directory, b"", None),
        file(b"etcd-v3.5.1-linux-amd64/README.md", b"readme"),
        file(b"etcd-v3.5.1-linux-amd64/etcd", b"\x7fELF"),
        file(b"etcd-v3.5.1-linux-amd64/etcdctl", b"\x7fELF"),
        file(b"etcd-v3.5.1-linux-amd64/etcdutl", b"\x7fELF"),
    ]);
    let i = assert_refused(&input, Limits::default(), "etcd release tarball");
    let msg = i.refused().unwrap();
    assert!(msg.contains("and 2 more unexpected entries"), "{msg}");
    assert!(
        !msg.contains("etcdutl"),
        "only the first entries are named: {msg}"
    );
}

#[test]
fn extra_and_duplicate_entries_are_refused() {
    let db = synth_db(2, 26);
    let (db_entry, manifest) = charm_parts(&db);
    let input = tar_gz(&[db_entry.clone(), manifest.clone(), file(b"README", b"hi")]);
    assert_refused(&input, Limits::default(), "unexpected entry \"README\"");
    let input = tar_gz(&[db_entry.clone(), manifest.clone(), file(b"./db", &db)]);
    assert_refused(&input, Limits::default(), "more than once");
    let input = tar_gz(&[db_entry.clone(), manifest.clone(), manifest.clone()]);
    assert_refused(&input, Limits::default(), "more than once");
    // A GNU long name or a pax path is the name a tar tool extracts, so it
    // is the name checked; each header goes before a genuine db and
    // manifest.
    let bad_headers: [(Vec<u8>, &str); 7] = [
        (
            raw_entry(b"././@LongLink", EntryType::GNULongName, b"../evil\0", None),
            "\"../evil\" has a '..' component",
        ),
        (
            raw_entry(
                b"PaxHeader/db",
                EntryType::XHeader,
                &pax(&[("path", "../../db")]),
                None,
            ),
            "'..' component",
        ),
        (
            raw_entry(
                b"PaxHeader/db",
                EntryType::XHeader,
                &pax(&[("size", "99")]),
                None,
            ),
            "differs from its header",
        ),
        (
            raw_entry(
                b"pax_global_header",
                EntryType::XGlobalHeader,
                &pax(&[("path", "other")]),
                None,
            ),
            "global pax header",
        ),
        (
            raw_entry(b"PaxHeader/db", EntryType::XHeader, b"99 path=db\n", None),
            "length does not match",
        ),
        (
            raw_entry(
                b"PaxHeader/db",
                EntryType::XHeader,
                &pax(&[("linkpath", "db")]),
                None,
            ),
            "never need",
        ),
        (
            raw_entry(b"./sub", EntryType::Directory, b"", None),
            "unexpected entry \"./sub\"",
        ),
    ];
    for (header, why) in bad_headers {
        let input = tar_gz(&[header, db_entry.clone(), manifest.clone()]);
        assert_refused(&input, Limits::default(), why);
    }
    let input = tar_gz(&[manifest_only(&db)]);
    assert_refused(&input, Limits::default(), "holds no db entry");
    let input = tar_gz(&[]);
    assert_refused(&input, Limits::default(), "holds no db entry");
}

fn manifest_only(db: &[u8]) -> Vec<u8> {
    charm_parts(db).1
}

#[test]
fn manifest_mismatches_are_refused() {
    let db = synth_db(2, 27);
    let other = synth_db(2, 28);
    // The manifest describes another db of the same size.
    let input = tar_gz(&[file(b"db", &db), manifest_only(&other)]);
    let i = assert_refused(&input, Limits::default(), "the manifest describes a db");
    assert_eq!(i.kind, Kind::Charm);
    // Right hash, wrong size.
    let mut m = fields().into_manifest(sha(&db), db.len() as u64 + 1);
    let input = tar_gz(&[
        file(b"db", &db),
        file(b"manifest.json", &m.to_json().unwrap()),
    ]);
    assert_refused(&input, Limits::default(), "the manifest describes a db");
    // A newer format.
    m.db_size = db.len() as u64;
    m.format = 2;
    let input = tar_gz(&[
        file(b"db", &db),
        file(b"manifest.json", &m.to_json().unwrap()),
    ]);
    assert_refused(&input, Limits::default(), "upgrade the charm");
    // Not JSON.
    let input = tar_gz(&[file(b"db", &db), file(b"manifest.json", b"{oops")]);
    assert_refused(&input, Limits::default(), "not a valid manifest");
    // A manifest larger than allowed.
    let limits = Limits {
        max_manifest_size: 100,
        ..Limits::default()
    };
    let (archive, _) = pack_vec(&db);
    assert_refused(&archive, limits, "manifest.json is");
}

#[test]
fn a_consistent_archive_with_a_corrupt_db_is_refused() {
    // The manifest matches the db, but the db fails etcd's own hash.
    let mut db = synth_db(2, 29);
    db[6000] ^= 1;
    let (dbe, m) = charm_parts(&db);
    let input = tar_gz(&[dbe, m]);
    assert_refused(&input, Limits::default(), "fails etcd's own sha256 check");
}

#[test]
fn oversize_entries_are_refused_without_reading_them() {
    let db = synth_db(3, 30);
    let (archive, _) = pack_vec(&db);
    let limits = Limits {
        max_db_size: 2 * PAGE as u64,
        ..Limits::default()
    };
    let (i, extracted) = inspect_with(&archive, limits);
    assert!(i
        .refused()
        .unwrap()
        .contains("larger than the 8192 bytes accepted"));
    assert!(extracted.is_empty());

    // A header that claims a terabyte: refused at once.
    let mut h = tar::Header::new_gnu();
    h.set_path("db").unwrap();
    h.set_size(1 << 40);
    h.set_entry_type(EntryType::Regular);
    h.set_cksum();
    let input = tar_gz(&[h.as_bytes().to_vec(), vec![0u8; 4096]]);
    let start = Instant::now();
    assert_refused(&input, Limits::default(), "larger than");
    assert!(start.elapsed().as_secs() < 5);

    // A plain etcdctl file over the limit.
    let plain = synth_db(3, 31);
    assert_refused(&plain, limits, "the file is");
}

#[test]
fn non_etcd_content_is_refused() {
    // A db without bbolt's magic, packed as a legacy archive.
    let junk = vec![0x55u8; 2 * PAGE];
    let input = tar_gz(&[file(b"./db", &junk)]);
    assert_refused(&input, Limits::default(), "not an etcd database");
    // ... and as our archive.
    let mut junk = vec![0x55u8; 2 * PAGE];
    let h: [u8; 32] = Sha256::digest(&junk).into();
    junk.extend_from_slice(&h);
    let (dbe, m) = charm_parts(&junk);
    assert_refused(
        &tar_gz(&[dbe, m]),
        Limits::default(),
        "not an etcd database",
    );
    // Random bytes.
    let mut rng = Rng(99);
    let random: Vec<u8> = (0..10_000).map(|_| rng.next() as u8).collect();
    assert_refused(
        &random,
        Limits::default(),
        "neither a gzip archive nor an etcd database",
    );
    assert_refused(
        b"PK\x03\x04\x14\x00\x08\x00\x08\x00 and the rest of a zip",
        Limits::default(),
        "unzip it and attach the snapshot file inside",
    );
    // gzip of something that is neither a tar nor a db (a gzip'd db is
    // accepted: see a_gzipped_plain_snapshot_is_accepted).
    let gz = {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&b"just some text, not an etcd snapshot\n".repeat(100))
            .unwrap();
        e.finish().unwrap()
    };
    assert_refused(
        &gz,
        Limits::default(),
        "decompress it and attach the plain file",
    );
}

#[test]
fn a_plain_etcdctl_file_with_a_bad_hash_is_refused() {
    let mut db = synth_db(3, 32);
    db[9000] ^= 4;
    assert_refused(&db, Limits::default(), "fails etcd's own sha256 check");
    // A raw member/snap/db attached as a plain file has no hash.
    let raw = raw_db(3, 32);
    let i = assert_refused(&raw, Limits::default(), "fails etcd's own sha256 check");
    assert_eq!(i.kind, Kind::EtcdctlSnapshot);
    assert!(i
        .refused()
        .unwrap()
        .contains("only inside the original charm's tar.gz"));
}

#[test]
fn refusal_message_is_one_paragraph_with_hints() {
    let db = synth_db(2, 33);
    let (_, manifest) = charm_parts(&db);
    let input = tar_gz(&[file(b"../db", &db), file(b"/etc/x", b"x"), manifest]);
    let (i, _) = inspect_vec(&input);
    let msg = i.refused().unwrap();
    assert!(!msg.contains('\n'), "{msg}");
    assert!(msg.starts_with(&format!(
        "The snapshot ({} bytes, sha256 {})",
        input.len(),
        sha(&input)
    )));
    assert!(
        msg.contains("\"../db\"") && msg.contains("\"/etc/x\""),
        "{msg}"
    );
    // Each hint once.
    assert_eq!(msg.matches("Attach an archive made by").count(), 1, "{msg}");
    assert!(i.errors().count() >= 3, "{:#?}", i.findings);
    assert!(i.errors().all(|f| f.hint.is_some()));
}

// ---- inspect accepts ----------------------------------------------------

#[test]
fn legacy_charm_archives_are_accepted() {
    let raw = raw_db(5, 34);
    // `tar cvfz ../x.tar.gz .` in a folder holding db.
    let dot = raw_entry(b"./", EntryType::Directory, b"", None);
    for parts in [
        vec![dot.clone(), file(b"./db", &raw)],
        vec![file(b"db", &raw)],
    ] {
        let input = tar_gz(&parts);
        let (i, extracted) = inspect_vec(&input);
        assert_eq!(i.refused(), None, "{:#?}", i.findings);
        assert_eq!(i.kind, Kind::LegacyCharm);
        assert_eq!(extracted, raw);
        assert_eq!(i.db_sha256, sha(&raw));
        assert!(i.needs_skip_hash_check);
        assert!(!i.has_etcd_hash);
        assert!(i.manifest.is_none());
        assert!(i
            .findings
            .iter()
            .any(|f| f.level == Level::Info && f.message.contains("--skip-hash-check")));
    }
    // An etcdctl snapshot packed the old way keeps its hash check.
    let db = synth_db(2, 35);
    let (i, _) = inspect_vec(&tar_gz(&[dot.clone(), file(b"./db", &db)]));
    assert_eq!(i.refused(), None);
    assert_eq!(i.kind, Kind::LegacyCharm);
    assert!(i.has_etcd_hash && !i.needs_skip_hash_check);
    // A raw copy cut mid-page is refused.
    let input = tar_gz(&[dot, file(b"./db", &raw[..raw.len() - 100])]);
    assert_refused(&input, Limits::default(), "not a whole number of pages");
}

#[test]
fn plain_etcdctl_files_are_accepted() {
    let db = synth_db(5, 36);
    let (i, extracted) = inspect_vec(&db);
    assert_eq!(i.refused(), None, "{:#?}", i.findings);
    assert_eq!(i.kind, Kind::EtcdctlSnapshot);
    assert_eq!(extracted, db);
    assert_eq!(i.db_sha256, sha(&db));
    assert_eq!(i.input_sha256, sha(&db));
    assert!(i.has_etcd_hash && !i.needs_skip_hash_check);
    assert!(i.manifest.is_none());
}

#[test]
fn padding_after_the_tar_end_is_tolerated() {
    // GNU tar pads to 10 KiB records.
    let db = synth_db(2, 37);
    let (dbe, m) = charm_parts(&db);
    let input = tar_gz(&[dbe, m, vec![0u8; 10240 - 1024]]);
    let (i, extracted) = inspect_vec(&input);
    assert_eq!(i.refused(), None, "{:#?}", i.findings);
    assert_eq!(extracted, db);
}

#[test]
fn inspect_errors_are_the_callers_io_only() {
    let db = synth_db(300, 38);
    let (archive, _) = pack_vec(&db);
    // The db writer fills up.
    let mut out = FailAfter {
        after: 4096,
        kind: io::ErrorKind::StorageFull,
    };
    let e = inspect(
        &archive[..],
        Some(&mut out),
        Limits::default(),
        &mut NoProgress,
    )
    .unwrap_err();
    assert!(matches!(e, InspectError::WriteDb(_)), "{e}");
    // The input cannot be read mid-way: an error, not a "damaged" finding.
    struct Broken<'a>(&'a [u8]);
    impl Read for Broken<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() {
                return Err(io::Error::other("EIO"));
            }
            let n = buf.len().min(self.0.len()).min(1000);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }
    let e = inspect(
        Broken(&archive[..archive.len() / 2]),
        None,
        Limits::default(),
        &mut NoProgress,
    )
    .unwrap_err();
    assert!(matches!(e, InspectError::Read(_)), "{e}");
    let e = inspect(
        Broken(&db[..5000]),
        None,
        Limits::default(),
        &mut NoProgress,
    )
    .unwrap_err();
    assert!(matches!(e, InspectError::Read(_)), "{e}");
}

// ---- random damage --------------------------------------------------------

#[derive(Debug, Clone)]
enum Damage {
    Flip(usize, u8),
    Set(usize, u8),
    Truncate(usize),
    Insert(usize, u8),
    Remove(usize),
    Append(u8),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        4 => (any::<usize>(), 1..=255u8).prop_map(|(i, x)| Damage::Flip(i, x)),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(i, x)| Damage::Set(i, x)),
        1 => any::<usize>().prop_map(Damage::Truncate),
        1 => (any::<usize>(), any::<u8>()).prop_map(|(i, x)| Damage::Insert(i, x)),
        1 => any::<usize>().prop_map(Damage::Remove),
        1 => any::<u8>().prop_map(Damage::Append),
    ]
}

fn apply(mut v: Vec<u8>, damage: &[Damage]) -> Vec<u8> {
    for d in damage {
        let n = v.len().max(1);
        match *d {
            Damage::Flip(i, x) if !v.is_empty() => v[i % n] ^= x,
            Damage::Set(i, x) if !v.is_empty() => v[i % n] = x,
            Damage::Truncate(i) => v.truncate(i % n),
            Damage::Insert(i, x) => v.insert(i % (v.len() + 1), x),
            Damage::Remove(i) if !v.is_empty() => {
                v.remove(i % n);
            }
            Damage::Append(x) => v.push(x),
            _ => {}
        }
    }
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Damage to a valid archive is either refused, or harmless (it hit a
    /// byte no check covers, such as the gzip header's mtime) and the
    /// exact original db comes out. Nothing in between.
    #[test]
    fn damaged_archives_are_refused_or_harmless(damage in proptest::collection::vec(damage(), 1..4)) {
        let db = synth_db(3, 40);
        let (archive, _) = pack_vec(&db);
        let bad = apply(archive.clone(), &damage);
        let mut out = Vec::new();
        let i = inspect(&bad[..], Some(&mut out), Limits::default(), &mut NoProgress).unwrap();
        prop_assert_eq!(&i.input_sha256, &sha(&bad));
        if i.refused().is_none() {
            prop_assert_eq!(i.kind, Kind::Charm);
            prop_assert!(out == db, "accepted with a different db");
            prop_assert_eq!(&i.db_sha256, &sha(&db));
            prop_assert!(i.has_etcd_hash);
        }
    }
}

// ---- the CA carried by include-pki ---------------------------------------

const CA_CERT: &[u8] = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
const CA_KEY: &[u8] = b"-----BEGIN PRIVATE KEY-----\nsecret-key-bytes\n-----END PRIVATE KEY-----\n";

fn pack_pki(db: &[u8]) -> (Vec<u8>, Packed) {
    let mut out = Vec::new();
    let pki = PkiFiles {
        ca_cert: CA_CERT,
        ca_key: CA_KEY,
    };
    let packed = pack_with_pki(
        db,
        db.len() as u64,
        testutil::fields(),
        Some(pki),
        &mut out,
        &mut NoProgress,
    )
    .unwrap();
    (out, packed)
}

#[test]
fn the_ca_round_trips_and_is_never_printed() {
    let db = synth_db(3, 7);
    let (archive, packed) = pack_pki(&db);
    let m = packed
        .manifest
        .pki
        .clone()
        .expect("manifest records the CA");
    assert_eq!(m.ca_cert_sha256, sha(CA_CERT));
    assert_eq!(m.ca_key_sha256, sha(CA_KEY));
    let (i, extracted) = inspect_vec(&archive);
    assert_eq!(i.refused(), None, "{:#?}", i.findings);
    assert_eq!(extracted, db);
    let pki = i.pki.as_ref().expect("the CA is carried");
    assert_eq!(pki.ca_cert, CA_CERT);
    assert_eq!(&pki.ca_key[..], CA_KEY);
    let shown = format!(
        "{i:?} {:?}",
        PkiFiles {
            ca_cert: CA_CERT,
            ca_key: CA_KEY
        }
    );
    assert!(!shown.contains("secret-key-bytes"), "{shown}");
    // Entries as tar lists them: db, the CA, then the manifest, all 0600.
    let mut a = tar::Archive::new(flate2::read::GzDecoder::new(&archive[..]));
    let names: Vec<(String, u32)> = a
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.path().unwrap().display().to_string(),
                e.header().mode().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            ("db".to_string(), 0o600),
            ("pki/ca.crt".to_string(), 0o600),
            ("pki/ca.key".to_string(), 0o600),
            ("manifest.json".to_string(), 0o600)
        ]
    );
    // Without include-pki nothing changes.
    let (plain, packed) = pack_vec(&db);
    assert!(packed.manifest.pki.is_none());
    assert!(!String::from_utf8_lossy(&plain).contains("pki"));
    assert!(inspect_vec(&plain).0.pki.is_none());
}

#[test]
fn a_ca_that_does_not_match_its_manifest_is_refused() {
    let db = synth_db(2, 9);
    let with_pki = |cert: Option<&[u8]>, key: Option<&[u8]>, recorded: bool| {
        let mut m = testutil::fields().into_manifest(sha(&db), db.len() as u64);
        if recorded {
            m.pki = Some(PkiManifest {
                ca_cert_sha256: sha(CA_CERT),
                ca_key_sha256: sha(CA_KEY),
            });
        }
        let mut parts = vec![file(b"db", &db)];
        if let Some(c) = cert {
            parts.push(file(b"pki/ca.crt", c));
        }
        if let Some(k) = key {
            parts.push(file(b"pki/ca.key", k));
        }
        parts.push(file(b"manifest.json", &m.to_json().unwrap()));
        tar_gz(&parts)
    };
    assert!(inspect_vec(&with_pki(Some(CA_CERT), Some(CA_KEY), true))
        .0
        .pki
        .is_some());
    assert_refused(
        &with_pki(Some(CA_CERT), Some(b"another key"), true),
        Limits::default(),
        "does not match",
    );
    assert_refused(
        &with_pki(Some(CA_CERT), None, true),
        Limits::default(),
        "does not hold both",
    );
    assert_refused(
        &with_pki(Some(CA_CERT), Some(CA_KEY), false),
        Limits::default(),
        "no manifest records",
    );
}

// ---- a plain snapshot compressed on its own ------------------------------

fn gz(data: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// etcd-manager (`etcd.backup.gz`) and etcd-backup-restore store snapshots
/// gzip'd on their own; they restore like the plain file.
#[test]
fn a_gzipped_plain_snapshot_is_accepted() {
    let db = synth_db(40, 3);
    let input = gz(&db);
    let (i, extracted) = inspect_vec(&input);
    assert_eq!(i.refused(), None, "{:#?}", i.findings);
    assert_eq!(i.kind, Kind::GzipSnapshot);
    assert_eq!(extracted, db);
    assert!(i.has_etcd_hash);
    assert_eq!(i.input_sha256, sha(&input));
    assert!(i
        .findings
        .iter()
        .any(|f| f.message.contains("gzip-compressed")));
}

#[test]
fn a_damaged_gzipped_plain_snapshot_is_refused() {
    let db = synth_db(40, 4);
    let input = gz(&db);
    assert_refused(
        &input[..input.len() - 9],
        Limits::default(),
        "damaged or truncated",
    );
    let mut trailing = input.clone();
    trailing.extend_from_slice(b"junk");
    assert_refused(
        &trailing,
        Limits::default(),
        "follow the end of the gzip stream",
    );
    // A db whose own hash fails, compressed: refused for the hash.
    let mut bad = db.clone();
    let at = bad.len() / 2;
    bad[at] ^= 0xff;
    assert_refused(&gz(&bad), Limits::default(), "sha256 check");
    // Over the size limit once decompressed.
    let small = Limits {
        max_db_size: 4096,
        ..Limits::default()
    };
    assert_refused(&input, small, "more than the 4096 bytes");
}

//! Tests of other tools' formats: each is made byte for byte as its tool
//! makes it (Go's LZW writer ported, Go's zip layout, zlib, gzip, kops'
//! backup directory), must restore exactly its db, and every damaged,
//! refused or explosive variant must be refused with its own reason.

use std::io::Read;

use sha2::{Digest, Sha256};

use super::foreign::LzwReader;
use super::testutil::*;
use super::*;

#[path = "../../tests/util/makers.rs"]
mod makers;

fn sha(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

fn accepted(input: &[u8], kind: Kind, db: &[u8]) -> Inspection {
    let (i, extracted) = inspect_vec(input);
    assert_eq!(i.refused(), None, "{:#?}", i.findings);
    assert_eq!(i.kind, kind);
    assert!(extracted == db, "the extracted db differs");
    assert_eq!(i.db_sha256, sha(db));
    assert!(i.has_etcd_hash);
    assert!(!i.needs_skip_hash_check);
    assert_eq!(i.input_sha256, sha(input));
    assert_eq!(i.input_size, input.len() as u64);
    i
}

fn refused(input: &[u8], limits: Limits, needle: &str) -> (Inspection, Vec<u8>) {
    let (i, extracted) = inspect_with(input, limits);
    let msg = i
        .refused()
        .unwrap_or_else(|| panic!("accepted, wanted {needle:?}: {:#?}", i.findings));
    assert!(msg.contains(needle), "{needle:?} not in: {msg}");
    assert_eq!(i.input_sha256, sha(input));
    (i, extracted)
}

fn zlib(data: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn gz(data: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn unlzw(z: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    LzwReader::new(z).read_to_end(&mut out).unwrap();
    out
}

// ---- Go's LZW ------------------------------------------------------------

/// The port of Go's writer gives Go's bytes (known answers: the clear code
/// first, then the codes, the EOF code), and weezl's default decoder reads
/// them back.
#[test]
fn go_lzw_known_answers() {
    assert_eq!(makers::go_lzw(b""), b"\x00\x03\x02");
    let tobe = makers::go_lzw(b"TOBEORNOTTOBEORTOBEORNOT");
    assert_eq!(
        tobe,
        b"\x00\xa9<\x11R\xe4\x89\x14'O\xa8\x08$hpa\xc1\x83\x09\x03\x02"
    );
    assert_eq!(unlzw(&tobe), b"TOBEORNOTTOBEORTOBEORNOT");
    assert_eq!(unlzw(b"\x00\x03\x02"), b"");
}

/// Every code width from 9 to 12 bits, the table filling up and the clear
/// codes Go sends then, on inputs of many shapes: Go's width changes and
/// weezl's agree (a disagreement garbles everything after the first
/// change).
#[test]
fn go_lzw_round_trips_through_weezl() {
    let mut rng = Rng(7);
    let random: Vec<u8> = (0..(2 << 20)).map(|_| rng.next() as u8).collect();
    let low: Vec<u8> = (0..(3 << 20)).map(|_| (rng.next() % 3) as u8).collect();
    let runs: Vec<u8> = (0..(1 << 20)).map(|i| (i / 777) as u8).collect();
    let mut ramps = Vec::new();
    for n in 0..600u32 {
        ramps.extend((0..n).map(|i| (i % 251) as u8));
    }
    for (name, data) in [
        ("one byte", vec![42u8]),
        ("zeros", vec![0u8; 5 << 20]),
        ("random", random),
        ("three symbols", low),
        ("runs", runs),
        ("ramps", ramps),
        ("db", synth_db(300, 5)),
    ] {
        let z = makers::go_lzw(&data);
        let back = unlzw(&z);
        assert!(
            back == data,
            "{name}: {} bytes back of {}",
            back.len(),
            data.len()
        );
    }
}

#[test]
fn an_lzw_snapshot_is_accepted() {
    let db = synth_db(300, 11);
    let z = makers::go_lzw(&db);
    let i = accepted(&z, Kind::LzwSnapshot, &db);
    assert!(i.findings.iter().any(|f| f.message.contains("LZW")));
}

#[test]
fn damaged_lzw_is_refused() {
    let db = synth_db(60, 12);
    let z = makers::go_lzw(&db);
    // Cut short: no end code.
    refused(
        &z[..z.len() * 2 / 3],
        Limits::default(),
        "damaged or truncated",
    );
    // One flipped byte past the head: garbled codes or a failed hash.
    let mut bad = z.clone();
    let at = bad.len() / 2;
    bad[at] ^= 0x10;
    let (i, _) = inspect_vec(&bad);
    assert!(i.refused().is_some(), "a flipped byte was accepted");
}

// ---- zlib and gzip -------------------------------------------------------

#[test]
fn a_zlib_snapshot_is_accepted() {
    let db = synth_db(80, 13);
    accepted(&zlib(&db), Kind::ZlibSnapshot, &db);
}

#[test]
fn damaged_zlib_is_refused() {
    let db = synth_db(80, 14);
    let z = zlib(&db);
    refused(&z[..z.len() - 3], Limits::default(), "damaged or truncated");
    let mut trailing = z.clone();
    trailing.extend_from_slice(b"xyz");
    refused(
        &trailing,
        Limits::default(),
        "follow the end of the zlib stream",
    );
    // The Adler-32 at the end is checked.
    let mut adler = z.clone();
    let last = adler.len() - 1;
    adler[last] ^= 1;
    refused(&adler, Limits::default(), "damaged or truncated");
}

#[test]
fn a_gzip_snapshot_is_its_own_kind() {
    let db = synth_db(40, 15);
    accepted(&gz(&db), Kind::GzipSnapshot, &db);
}

// ---- zip (k3s, RKE2) -----------------------------------------------------

#[test]
fn a_zip_with_one_snapshot_is_accepted_either_way_it_records_sizes() {
    let db = synth_db(70, 16);
    for descriptor in [true, false] {
        let z = makers::zip_one("on-demand-node1-1704067200", &db, descriptor);
        accepted(&z, Kind::ZipSnapshot, &db);
    }
}

#[test]
fn bad_zips_are_refused() {
    let db = synth_db(30, 17);
    let good = makers::zip_one("etcd-snapshot-node1-1704067200", &db, true);
    // Two entries.
    let mut two = makers::zip_one("a", &db, false);
    let second = makers::zip_one("b", &db, false);
    let cd = two.windows(4).position(|w| w == b"PK\x01\x02").unwrap();
    two.truncate(cd);
    two.extend_from_slice(&second);
    refused(&two, Limits::default(), "more than one file");
    // A wrong CRC in the descriptor.
    let mut crc = good.clone();
    let d = crc.windows(4).position(|w| w == b"PK\x07\x08").unwrap();
    crc[d + 4] ^= 1;
    refused(
        &crc,
        Limits::default(),
        "does not match what the zip records",
    );
    // Cut before the central directory.
    refused(&good[..d + 16], Limits::default(), "central directory");
    // Not a zip at all past its signature.
    refused(
        b"PK\x03\x04junk",
        Limits::default(),
        "the zip cannot be used",
    );
}

// ---- kops etcd-manager -----------------------------------------------------

fn kops_dir_tar(db: &[u8], meta: Option<&[u8]>) -> Vec<u8> {
    let dir = "2024-01-01T00:00:00Z-000001";
    let mut parts = vec![raw_entry(
        format!("{dir}/").as_bytes(),
        tar::EntryType::Directory,
        b"",
        None,
    )];
    if let Some(m) = meta {
        parts.push(file(format!("{dir}/_etcd_backup.meta").as_bytes(), m));
    }
    parts.push(file(format!("{dir}/etcd.backup.gz").as_bytes(), &gz(db)));
    tar_gz(&parts)
}

#[test]
fn a_kops_backup_directory_is_accepted_with_its_meta() {
    let db = synth_db(50, 18);
    let meta = br#"{"etcdVersion":"3.4.13","timestamp":"1704067200","clusterSpec":{"memberCount":3,"etcdVersion":"3.4.13"}}"#;
    let i = accepted(&kops_dir_tar(&db, Some(meta)), Kind::KopsBackup, &db);
    let m = i.source_meta.unwrap();
    assert_eq!(m.etcd_version.as_deref(), Some("3.4.13"));
    assert_eq!(m.timestamp, Some(1_704_067_200));
    // Without its meta: still the data, with a warning.
    let i = accepted(&kops_dir_tar(&db, None), Kind::KopsBackup, &db);
    assert!(i.source_meta.is_none());
    assert!(i
        .findings
        .iter()
        .any(|f| f.level == Level::Warning && f.message.contains("_etcd_backup.meta")));
    // etcd.backup.gz on its own.
    accepted(&gz(&db), Kind::GzipSnapshot, &db);
}

#[test]
fn a_kops_backup_with_a_bad_db_is_refused() {
    let mut db = synth_db(50, 19);
    let at = db.len() / 3;
    db[at] ^= 4;
    refused(&kops_dir_tar(&db, None), Limits::default(), "sha256 check");
    // Its etcd.backup.gz cut short inside the tar.
    let good = synth_db(50, 20);
    let g = gz(&good);
    let parts = vec![file(b"etcd.backup.gz", &g[..g.len() - 20])];
    refused(&tar_gz(&parts), Limits::default(), "damaged or truncated");
}

// ---- refused kinds -----------------------------------------------------------

#[test]
fn gardener_incrementals_are_refused_compressed_or_not() {
    let mut events = br#"[{"etcdEvent":{"kv":{"key":"Zm9v","create_revision":2,"mod_revision":2,"version":1,"value":"YmFy"}},"time":"2024-01-01T00:00:00Z"}]"#.to_vec();
    let h: [u8; 32] = Sha256::digest(&events).into();
    events.extend_from_slice(&h);
    for input in [
        events.clone(),
        gz(&events),
        zlib(&events),
        makers::go_lzw(&events),
    ] {
        let (i, extracted) = refused(&input, Limits::default(), "incremental snapshot");
        assert_eq!(i.kind, Kind::GardenerIncremental);
        assert!(extracted.is_empty());
        assert!(i.refused().unwrap().contains("full snapshot"));
    }
}

#[test]
fn the_original_charms_v2_archives_are_refused() {
    let parts = vec![
        raw_entry(b"./", tar::EntryType::Directory, b"", None),
        raw_entry(b"./member/", tar::EntryType::Directory, b"", None),
        raw_entry(b"./member/snap/", tar::EntryType::Directory, b"", None),
        file(
            b"./member/snap/0000000000000002-0000000000000001.snap",
            b"v2 snap",
        ),
        file(b"./member/snap/db", &raw_db(4, 1)),
        raw_entry(b"./member/wal/", tar::EntryType::Directory, b"", None),
        file(
            b"./member/wal/0000000000000000-0000000000000000.wal",
            b"wal",
        ),
    ];
    let (i, _) = refused(
        &tar_gz(&parts),
        Limits::default(),
        "v2 data is not supported",
    );
    assert_eq!(i.kind, Kind::LegacyV2);
    let msg = i.refused().unwrap();
    assert!(!msg.contains("unexpected entry"), "{msg}");
    assert!(msg.contains("keys-version=v3"), "{msg}");
}

// ---- bombs ---------------------------------------------------------------------

/// One MiB that starts like a snapshot: the db's first pages.
fn bbolt_head() -> Vec<u8> {
    let mut first = raw_db(4, 21);
    first.resize(1 << 20, 0);
    first
}

/// A gzip'd "snapshot" that would expand to 4 GiB is stopped by its ratio
/// a little past the ratio floor: the sink never sees more than that.
#[test]
fn a_gzip_bomb_is_refused_by_its_ratio() {
    let mut bomb = Vec::new();
    makers::gzip_bomb(&mut bomb, &bbolt_head(), 4 << 10).unwrap();
    assert!(bomb.len() < 8 << 20, "{} bytes", bomb.len());
    let limits = Limits::default();
    let started = std::time::Instant::now();
    let (i, extracted) = refused(&bomb, limits, "decompression bomb");
    assert_eq!(i.kind, Kind::GzipSnapshot);
    assert!(
        (extracted.len() as u64) < limits.ratio_floor * 2,
        "{} bytes reached the sink",
        extracted.len()
    );
    assert!(started.elapsed().as_secs() < 60);
}

/// The free-space limit stops a stream that is within the ratio.
#[test]
fn a_stream_larger_than_the_room_is_refused() {
    let mut bomb = Vec::new();
    makers::gzip_bomb(&mut bomb, &bbolt_head(), 64).unwrap();
    let limits = Limits {
        max_db_size: 8 << 20,
        ..Limits::default()
    };
    let (_, extracted) = refused(
        &bomb,
        limits,
        "more than the 8388608 bytes the restore may write",
    );
    assert!(extracted.len() <= (8 << 20) + BUF_SIZE);
    // The same through a zip, a zlib stream and a tar.gz's db entry.
    refused(&makers::zip_bomb(&bbolt_head(), 64), limits, "may write");
    refused(&zlib(&synth_db(4000, 2)), limits, "may write");
    let parts = vec![file(b"db", &synth_db(3000, 3))];
    refused(&tar_gz(&parts), limits, "larger than");
}

#[test]
fn a_zip_bomb_is_refused() {
    let bomb = makers::zip_bomb(&bbolt_head(), 2 << 10);
    let limits = Limits::default();
    let (i, extracted) = refused(&bomb, limits, "decompression bomb");
    assert_eq!(i.kind, Kind::ZipSnapshot);
    assert!((extracted.len() as u64) < limits.ratio_floor * 2);
}

/// A tar.gz whose db entry honestly says it is 3 GiB of zeros.
#[test]
fn a_tar_gz_bomb_is_refused() {
    use std::io::Write as _;
    let mut h = tar::Header::new_gnu();
    h.set_path("db").unwrap();
    h.set_size(3 << 30);
    h.set_mode(0o600);
    h.set_cksum();
    let mut first = h.as_bytes().to_vec();
    first.extend_from_slice(&bbolt_head()[..(1 << 20) - 512]);
    let mut bomb = Vec::new();
    makers::gzip_bomb(&mut bomb, &first, 3 << 10).unwrap();
    bomb.flush().unwrap();
    let (_, extracted) = refused(&bomb, Limits::default(), "decompression bomb");
    assert!((extracted.len() as u64) < Limits::default().ratio_floor * 2);
}

/// The bomb maker makes real gzip: a small one decodes to its size with
/// the right CRC (flate2 checks it).
#[test]
fn the_bomb_maker_makes_valid_gzip_and_zip() {
    let mut small = Vec::new();
    makers::gzip_bomb(&mut small, &bbolt_head(), 3).unwrap();
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&small[..])
        .read_to_end(&mut out)
        .unwrap();
    assert_eq!(out.len(), 4 << 20);
    assert_eq!(&out[..1 << 20], &bbolt_head()[..]);
    assert!(out[1 << 20..].iter().all(|b| *b == 0));
    // A small zip "bomb" is a valid zip (whose db then fails etcd's hash).
    let z = makers::zip_bomb(&bbolt_head(), 2);
    refused(&z, Limits::default(), "sha256 check");
}

/// A bomb nested in kops' backup directory: the tar.gz around it is
/// harmless, the etcd.backup.gz inside expands 1,000 times; it is stopped
/// against the bytes read from the file, past the ratio floor.
#[test]
fn a_bomb_inside_a_kops_backup_is_refused() {
    let mut inner = Vec::new();
    makers::gzip_bomb(&mut inner, &bbolt_head(), 2 << 10).unwrap();
    let parts = vec![
        file(
            b"2024-01-01T00:00:00Z-000001/_etcd_backup.meta",
            br#"{"etcdVersion":"3.5.9","timestamp":"1704067200"}"#,
        ),
        file(b"2024-01-01T00:00:00Z-000001/etcd.backup.gz", &inner),
    ];
    let limits = Limits::default();
    let (i, extracted) = refused(&tar_gz(&parts), limits, "decompression bomb");
    assert_eq!(i.kind, Kind::KopsBackup);
    assert!((extracted.len() as u64) < limits.ratio_floor * 2);
}

//! The S3 store: a bucket and a key prefix, through the `object_store`
//! crate (SigV4, path or virtual-host style, a custom CA, HTTP allowed).
//!
//! The client is built only from [`S3Settings`] (the `s3-credentials`
//! relation's data), never from the process environment: `AWS_*` and
//! `AWS_CA_BUNDLE` are ignored. Signing and TLS run on ring.
//!
//! An archive goes up as a multipart upload of [`PART_SIZE`] parts with at
//! most [`MAX_IN_FLIGHT`] parts in flight (so memory is bounded whatever
//! the size), written from a plain `std::io::Write` on the caller's thread
//! while a one-thread tokio runtime uploads the parts. Any error aborts the
//! upload, so no object appears; S3 makes the object visible only when the
//! upload completes. Timeouts scale with the size: there is no timeout on a
//! whole request or upload, only a connect timeout and a read timeout (no
//! byte moving for [`STALL_TIMEOUT`]), and each part is retried on its own.
//! The provider's `storage-class` goes on each archive (`x-amz-storage-class`);
//! sidecars stay in the bucket's default class, since every listing reads
//! them.

use std::fmt;
use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use futures::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjPath;
use object_store::{
    Attribute, Certificate, ClientOptions, ObjectStore, ObjectStoreExt, PutMultipartOptions,
    PutPayload, RetryConfig, WriteMultipart,
};
use serde::{Deserialize, Serialize};

use super::{archive_of_sidecar, StoreError};

/// The size of one multipart part. S3 needs at least 5 MiB (but the last).
pub const PART_SIZE: usize = 8 << 20;
/// Parts uploading at once; with the part being filled, at most
/// `(MAX_IN_FLIGHT + 1) × PART_SIZE` bytes are held.
pub const MAX_IN_FLIGHT: usize = 2;
/// A request that moves no byte for this long fails (and is retried).
pub const STALL_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one request may keep retrying.
pub const RETRY_TIMEOUT: Duration = Duration::from_secs(30);

/// A secret string: `Debug` prints `[redacted]`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(transparent)]
pub struct SecretString(pub String);

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Everything needed to reach the bucket, from the relation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub struct S3Settings {
    pub bucket: String,
    /// Key prefix, without leading or trailing `/` (may be empty).
    #[serde(default)]
    pub path: String,
    /// `https://…` or `http://…`; empty means AWS for `region`.
    #[serde(default)]
    pub endpoint: String,
    #[serde(default)]
    pub region: String,
    /// `path` or `host`.
    #[serde(default)]
    pub uri_style: String,
    /// PEM certificates to trust instead of the system's.
    #[serde(default)]
    pub tls_ca_chain: Vec<String>,
    #[serde(default)]
    pub storage_class: String,
    pub access_key: SecretString,
    pub secret_key: SecretString,
}

impl S3Settings {
    /// The prefix as the operator sees it, `s3://bucket/path`.
    pub fn url(&self) -> String {
        if self.path.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.path)
        }
    }
}

/// `tls-ca-chain` entries are PEM, or base64 of PEM; returns PEM text.
pub fn decode_ca(entry: &str) -> Result<String, StoreError> {
    let t = entry.trim();
    if t.contains("-----BEGIN") {
        return Ok(t.to_string());
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(t.replace(['\n', '\r', ' '], ""))
        .map_err(|e| {
            StoreError::S3(format!(
                "tls-ca-chain holds an entry that is neither PEM nor base64 of PEM ({e}); fix tls-ca-chain on the s3 provider"
            ))
        })?;
    String::from_utf8(bytes)
        .ok()
        .filter(|s| s.contains("-----BEGIN"))
        .ok_or_else(|| {
            StoreError::S3(
                "tls-ca-chain holds a base64 entry that is not a PEM certificate; fix tls-ca-chain on the s3 provider"
                    .into(),
            )
        })
}

/// A bucket and prefix, with its own small runtime.
pub struct S3Store {
    settings: S3Settings,
    store: Arc<AmazonS3>,
    rt: tokio::runtime::Runtime,
    /// (name, ETag) of the last archive this store uploaded.
    last_put: std::sync::Mutex<Option<(String, String)>>,
}

/// Turns an `object_store` error into a message that says what to fix. It
/// never holds credentials (object_store's errors carry URLs and S3's
/// error codes, not signatures).
fn explain(settings: &S3Settings, op: &str, e: &object_store::Error) -> StoreError {
    let mut text = e.to_string();
    // Belt and braces: no credential ever reaches a message.
    for secret in [&settings.secret_key.0, &settings.access_key.0] {
        if !secret.is_empty() {
            text = text.replace(secret.as_str(), "[redacted]");
        }
    }
    let has = |s: &str| text.contains(s);
    let msg = if has("NoSuchBucket") {
        format!(
            "s3 bucket {:?} does not exist: create it or set the s3 provider's bucket",
            settings.bucket
        )
    } else if has("InvalidAccessKeyId")
        || has("SignatureDoesNotMatch")
        || has("AccessDenied")
        || has("Forbidden")
        || has("403")
    {
        format!(
            "s3 refused the credentials for bucket {:?} (access denied): check the access-key and secret-key given to the s3 provider and that they may write to the bucket",
            settings.bucket
        )
    } else if has("error sending request")
        || has("Connection refused")
        || has("connect")
        || has("dns")
    {
        format!(
            "cannot reach the s3 endpoint {}: check the endpoint and the network",
            if settings.endpoint.is_empty() {
                "(AWS)"
            } else {
                settings.endpoint.as_str()
            }
        )
    } else if has("certificate") || has("UnknownIssuer") {
        format!(
            "the s3 endpoint's TLS certificate is not trusted: set tls-ca-chain on the s3 provider ({})",
            settings.endpoint
        )
    } else {
        "s3 failed; check the s3 provider's settings and the endpoint".to_string()
    };
    // The whole error goes to the log; messages (statuses, results) keep
    // its start.
    tracing::warn!("{op} {}: {text}", settings.url());
    let short: String = text.chars().take(160).collect();
    let ell = if short.len() < text.len() { "…" } else { "" };
    StoreError::S3(format!("{op} {}: {msg} ({short}{ell})", settings.url()))
}

impl S3Store {
    /// Builds the client from `settings` alone.
    pub fn new(settings: S3Settings) -> Result<S3Store, StoreError> {
        // reqwest runs on rustls without a provider of its own: ring.
        let _ = rustls::crypto::ring::default_provider().install_default();
        if settings.bucket.is_empty() {
            return Err(StoreError::S3(
                "the s3 provider gave no bucket: set one on it (s3-integrator: juju config s3-integrator bucket=NAME)".into(),
            ));
        }
        if settings.access_key.0.is_empty() || settings.secret_key.0.is_empty() {
            return Err(StoreError::S3(
                "the s3 provider gave no access-key/secret-key yet: run its sync-s3-credentials action".into(),
            ));
        }
        let region = if settings.region.is_empty() {
            "us-east-1".to_string()
        } else {
            settings.region.clone()
        };
        let mut options = ClientOptions::new()
            .with_timeout_disabled()
            .with_connect_timeout(Duration::from_secs(10))
            .with_read_timeout(STALL_TIMEOUT)
            .with_allow_http(settings.endpoint.starts_with("http://"));
        if !settings.tls_ca_chain.is_empty() {
            for pem in &settings.tls_ca_chain {
                let pem = decode_ca(pem)?;
                let certs = Certificate::from_pem_bundle(pem.as_bytes()).map_err(|e| {
                    StoreError::S3(format!(
                        "tls-ca-chain holds a certificate that cannot be read ({e}); fix tls-ca-chain on the s3 provider"
                    ))
                })?;
                for c in certs {
                    options = options.with_root_certificate(c);
                }
            }
            options = options.with_no_system_certificates(true);
        }
        let host_style = settings.uri_style == "host";
        let mut b = AmazonS3Builder::new()
            .with_bucket_name(&settings.bucket)
            .with_region(region)
            .with_access_key_id(&settings.access_key.0)
            .with_secret_access_key(&settings.secret_key.0)
            .with_virtual_hosted_style_request(host_style)
            .with_allow_http(settings.endpoint.starts_with("http://"))
            .with_retry(RetryConfig {
                max_retries: 4,
                retry_timeout: RETRY_TIMEOUT,
                backoff: Default::default(),
            })
            .with_client_options(options);
        if !settings.endpoint.is_empty() {
            let ep = settings.endpoint.trim_end_matches('/');
            // Virtual-host style: object_store takes the bucket's own
            // endpoint, so the bucket goes in front of the host.
            let ep = if host_style {
                match ep.split_once("://") {
                    Some((scheme, host)) if !host.starts_with(&format!("{}.", settings.bucket)) => {
                        format!("{scheme}://{}.{host}", settings.bucket)
                    }
                    _ => ep.to_string(),
                }
            } else {
                ep.to_string()
            };
            b = b.with_endpoint(ep);
        }
        let store = b.build().map_err(|e| {
            StoreError::S3(format!(
                "the s3 settings are not usable ({e}); check the s3 provider's endpoint, region and bucket"
            ))
        })?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("s3")
            .enable_all()
            .build()
            .map_err(|e| StoreError::S3(format!("cannot start the s3 client's runtime: {e}")))?;
        Ok(S3Store {
            settings,
            store: Arc::new(store),
            rt,
            last_put: std::sync::Mutex::new(None),
        })
    }

    pub fn settings(&self) -> &S3Settings {
        &self.settings
    }

    fn key(&self, name: &str) -> ObjPath {
        if self.settings.path.is_empty() {
            ObjPath::from(name)
        } else {
            ObjPath::from(format!("{}/{name}", self.settings.path))
        }
    }

    pub fn location(&self, name: &str) -> String {
        format!("{}/{name}", self.settings.url())
    }

    pub fn exists(&self, name: &str) -> Result<bool, StoreError> {
        for key in [self.key(name), self.key(&super::sidecar_name(name))] {
            match self.rt.block_on(self.store.head(&key)) {
                Ok(_) => return Ok(true),
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(explain(&self.settings, "cannot look into", &e)),
            }
        }
        Ok(false)
    }

    pub fn put_archive<T, E: From<StoreError>>(
        &self,
        name: &str,
        fill: impl FnOnce(&mut dyn Write) -> Result<T, E>,
    ) -> Result<T, E> {
        let key = self.key(name);
        let mut opts = PutMultipartOptions::default();
        if !self.settings.storage_class.is_empty() {
            opts.attributes.insert(
                Attribute::StorageClass,
                self.settings.storage_class.clone().into(),
            );
        }
        let upload = self
            .rt
            .block_on(self.store.put_multipart_opts(&key, opts))
            .map_err(|e| explain(&self.settings, "cannot start an upload to", &e))?;
        let mut w = PartWriter {
            rt: &self.rt,
            upload: Some(WriteMultipart::new_with_chunk_size(upload, PART_SIZE)),
            failed: None,
        };
        let v = match fill(&mut w) {
            Ok(v) => v,
            Err(e) => {
                w.abort();
                if let Some(s3) = w.failed.take() {
                    // The store's own failure says more than the writer's.
                    return Err(explain(&self.settings, "cannot upload to", &s3).into());
                }
                return Err(e);
            }
        };
        let Some(upload) = w.upload.take() else {
            return Err(StoreError::S3("the upload was already aborted".into()).into());
        };
        let done = self
            .rt
            .block_on(upload.finish())
            .map_err(|e| explain(&self.settings, "cannot complete the upload to", &e))?;
        if let (Some(tag), Ok(mut last)) = (done.e_tag, self.last_put.lock()) {
            *last = Some((name.to_string(), tag));
        }
        Ok(v)
    }

    /// True unless the archive `name` now has another ETag than the one
    /// this store's last upload of it got (another writer replaced it).
    pub fn still_ours(&self, name: &str) -> Result<bool, StoreError> {
        let ours = match self.last_put.lock() {
            Ok(l) => l.clone(),
            Err(_) => None,
        };
        let Some((n, tag)) = ours.filter(|(n, _)| n == name) else {
            return Ok(true);
        };
        let meta = self
            .rt
            .block_on(self.store.head(&self.key(&n)))
            .map_err(|e| explain(&self.settings, "cannot look into", &e))?;
        Ok(meta.e_tag.is_none_or(|t| t == tag))
    }

    pub fn put_small(&self, name: &str, body: Vec<u8>) -> Result<(), StoreError> {
        self.rt
            .block_on(self.store.put(&self.key(name), PutPayload::from(body)))
            .map(|_| ())
            .map_err(|e| explain(&self.settings, "cannot write a sidecar to", &e))
    }

    /// (archive name, sidecar bytes) for each of our sidecars under the
    /// prefix whose archive is there too. Only sidecars are downloaded.
    pub fn list_sidecars(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let prefix = if self.settings.path.is_empty() {
            None
        } else {
            Some(ObjPath::from(self.settings.path.as_str()))
        };
        let store = self.store.clone();
        let settings = &self.settings;
        self.rt.block_on(async move {
            let metas: Vec<_> = store
                .list_with_delimiter(prefix.as_ref())
                .await
                .map_err(|e| explain(settings, "cannot list", &e))?
                .objects;
            let names: std::collections::BTreeSet<String> = metas
                .iter()
                .filter_map(|m| m.location.filename().map(str::to_string))
                .collect();
            let mut out = Vec::new();
            for m in &metas {
                let Some(file) = m.location.filename() else {
                    continue;
                };
                let Some(archive) = archive_of_sidecar(file) else {
                    continue;
                };
                if !names.contains(archive) {
                    continue;
                }
                let body = store
                    .get(&m.location)
                    .await
                    .map_err(|e| explain(settings, "cannot read a sidecar from", &e))?
                    .bytes()
                    .await
                    .map_err(|e| explain(settings, "cannot read a sidecar from", &e))?;
                out.push((archive.to_string(), body.to_vec()));
            }
            Ok(out)
        })
    }

    pub fn delete(&self, name: &str) -> Result<(), StoreError> {
        match self.rt.block_on(self.store.delete(&self.key(name))) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(explain(&self.settings, "cannot delete from", &e)),
        }
    }

    pub fn open(&self, name: &str) -> Result<Box<dyn Read + '_>, StoreError> {
        let got = self
            .rt
            .block_on(self.store.get(&self.key(name)))
            .map_err(|e| explain(&self.settings, "cannot read from", &e))?;
        Ok(Box::new(ObjectReader {
            rt: &self.rt,
            stream: got.into_stream(),
            chunk: bytes::Bytes::new(),
        }))
    }
}

/// The multipart upload as a `Write`: parts go up on the runtime's thread
/// while the caller keeps writing; it blocks only while
/// [`MAX_IN_FLIGHT`] parts are uploading.
struct PartWriter<'a> {
    rt: &'a tokio::runtime::Runtime,
    upload: Option<WriteMultipart>,
    failed: Option<object_store::Error>,
}

impl PartWriter<'_> {
    fn abort(&mut self) {
        if let Some(u) = self.upload.take() {
            if let Err(e) = self.rt.block_on(u.abort()) {
                tracing::warn!("cannot abort the multipart upload (the bucket's lifecycle rules will remove its parts): {e}");
            }
        }
    }
}

impl Write for PartWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let Some(u) = self.upload.as_mut() else {
            return Err(io::Error::other("the upload has failed"));
        };
        let _guard = self.rt.enter();
        u.write(buf);
        if let Err(e) = self.rt.block_on(u.wait_for_capacity(MAX_IN_FLIGHT)) {
            let msg = e.to_string();
            self.failed = Some(e);
            return Err(io::Error::other(msg));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for PartWriter<'_> {
    fn drop(&mut self) {
        self.abort();
    }
}

/// An object's body as a `Read`.
struct ObjectReader<'a> {
    rt: &'a tokio::runtime::Runtime,
    stream: futures::stream::BoxStream<'static, object_store::Result<bytes::Bytes>>,
    chunk: bytes::Bytes,
}

impl Read for ObjectReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.chunk.is_empty() {
            match self.rt.block_on(self.stream.next()) {
                None => return Ok(0),
                Some(Ok(b)) => self.chunk = b,
                Some(Err(e)) => return Err(io::Error::other(e.to_string())),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk.split_to(n));
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_print() {
        let s = S3Settings {
            bucket: "b".into(),
            access_key: SecretString("AKIAXXXX".into()),
            secret_key: SecretString("very-secret".into()),
            ..Default::default()
        };
        let d = format!("{s:?}");
        assert!(!d.contains("very-secret") && !d.contains("AKIAXXXX"), "{d}");
        assert_eq!(s.url(), "s3://b");
    }

    #[test]
    fn ca_entries_are_pem_or_base64_pem() {
        let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        assert_eq!(decode_ca(pem).unwrap(), pem.trim());
        let b64 = base64::engine::general_purpose::STANDARD.encode(pem);
        assert_eq!(decode_ca(&b64).unwrap(), pem);
        assert!(decode_ca("!!!").is_err());
        let not_pem = base64::engine::general_purpose::STANDARD.encode("hello");
        assert!(decode_ca(&not_pem).is_err());
    }

    #[test]
    fn incomplete_settings_say_what_to_do() {
        let e = S3Store::new(S3Settings::default()).err().unwrap();
        assert!(e.to_string().contains("bucket"), "{e}");
    }
}

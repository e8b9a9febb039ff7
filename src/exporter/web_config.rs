//! `--web.config.file`: HTTPS and basic authentication for the exporter, in
//! the file format of the Prometheus exporter-toolkit (what node_exporter and
//! most exporters read), so one file can serve them all:
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: server.crt          # PEM chain, leaf first
//!   key_file: server.key           # PEM private key (PKCS#8, PKCS#1 or SEC1)
//!   client_auth_type: RequireAndVerifyClientCert   # or VerifyClientCertIfGiven, NoClientCert
//!   client_ca_file: clients-ca.crt
//!   min_version: TLS12             # TLS12 or TLS13
//!   max_version: TLS13
//! http_server_config:
//!   headers:
//!     Strict-Transport-Security: max-age=31536000
//! basic_auth_users:
//!   prometheus: $2y$10$...         # bcrypt hash (htpasswd -nBC 10)
//! ```
//!
//! Input: the file. Output: a [`WebConfig`] (a rustls server configuration
//! and the users) or a one-line error naming the file and the field. Relative
//! paths are relative to the file's directory, as in exporter-toolkit.
//! Invariants: TLS is rustls with the ring provider (TLS 1.2 and 1.3 only: a
//! `min_version` below TLS12 means TLS12); client certificates are always
//! verified when used (`RequestClientCert` and `RequireAnyClientCert`, which
//! accept any certificate, are refused); keys never appear in messages.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use yaml_rust2::{Yaml, YamlLoader};

/// What the web configuration file asks for.
pub struct WebConfig {
    /// HTTPS, when `tls_server_config` is there.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// User name → bcrypt hash; empty: no authentication.
    pub users: HashMap<String, String>,
    /// Extra response header lines (`Name: value`).
    pub headers: Vec<String>,
    /// Settings read but not applied, to tell the user once.
    pub ignored: Vec<String>,
    /// The files it was made from (itself, certificates, keys), watched for
    /// changes.
    pub files: Vec<PathBuf>,
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConfig")
            .field("tls", &self.tls.is_some())
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .field("headers", &self.headers)
            .finish()
    }
}

/// Reads and checks the file.
pub fn load(path: &Path) -> Result<WebConfig, String> {
    let name = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("web config {name}: {e}"))?;
    let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let mut cfg = parse(&text, &base).map_err(|e| format!("web config {name}: {e}"))?;
    cfg.files.insert(0, path.to_path_buf());
    Ok(cfg)
}

/// What the watched files look like now: (modification time, length) each.
pub fn stamp(files: &[PathBuf]) -> Vec<Option<(std::time::SystemTime, u64)>> {
    files
        .iter()
        .map(|f| {
            let m = std::fs::metadata(f).ok()?;
            Some((m.modified().ok()?, m.len()))
        })
        .collect()
}

fn parse(text: &str, base: &Path) -> Result<WebConfig, String> {
    let docs = YamlLoader::load_from_str(text).map_err(|e| format!("not YAML: {e}"))?;
    let doc = match docs.into_iter().next() {
        None | Some(Yaml::Null) => Yaml::Hash(Default::default()),
        Some(d @ Yaml::Hash(_)) => d,
        Some(_) => return Err("the top level must be a mapping".into()),
    };
    let mut cfg = WebConfig {
        tls: None,
        users: HashMap::new(),
        headers: Vec::new(),
        ignored: Vec::new(),
        files: Vec::new(),
    };
    for (k, v) in doc.as_hash().into_iter().flatten() {
        match k.as_str() {
            Some("tls_server_config") => {
                cfg.tls = Some(tls_config(v, base, &mut cfg.ignored, &mut cfg.files)?)
            }
            Some("basic_auth_users") => cfg.users = users(v)?,
            Some("http_server_config") => cfg.headers = headers(v, &mut cfg.ignored)?,
            Some(other) => return Err(format!("unknown key {other:?}")),
            None => return Err("keys must be strings".into()),
        }
    }
    Ok(cfg)
}

fn string(v: &Yaml, field: &str) -> Result<String, String> {
    match v {
        Yaml::String(s) => Ok(s.clone()),
        Yaml::Integer(i) => Ok(i.to_string()),
        _ => Err(format!("{field} must be a string")),
    }
}

fn users(v: &Yaml) -> Result<HashMap<String, String>, String> {
    let mut out = HashMap::new();
    let Some(map) = v.as_hash() else {
        return match v {
            Yaml::Null => Ok(out),
            _ => Err("basic_auth_users must be a mapping of user to bcrypt hash".into()),
        };
    };
    for (user, hash) in map {
        let user = string(user, "a basic_auth_users name")?;
        let hash = string(hash, "a basic_auth_users hash")?;
        if user.contains(':') || user.is_empty() {
            return Err(format!(
                "basic_auth_users: user {user:?} is empty or has a colon"
            ));
        }
        // Checked now, so a typo fails at start, not at the first scrape.
        if bcrypt::verify("", &hash).is_err() {
            return Err(format!(
                "basic_auth_users: the hash of {user:?} is not a bcrypt hash"
            ));
        }
        out.insert(user, hash);
    }
    Ok(out)
}

fn headers(v: &Yaml, ignored: &mut Vec<String>) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for (k, val) in v.as_hash().into_iter().flatten() {
        match k.as_str() {
            Some("headers") => {
                for (name, value) in val.as_hash().into_iter().flatten() {
                    let name = string(name, "a header name")?;
                    let value = string(value, "a header value")?;
                    let token = |c: char| c.is_ascii_alphanumeric() || "-_".contains(c);
                    if name.is_empty()
                        || !name.chars().all(token)
                        || value.chars().any(|c| c.is_control())
                    {
                        return Err(format!("http_server_config: bad header {name:?}"));
                    }
                    let reserved = ["content-type", "content-length", "connection"];
                    if reserved.contains(&name.to_ascii_lowercase().as_str()) {
                        return Err(format!(
                            "http_server_config: header {name} is set by tlscensus"
                        ));
                    }
                    out.push(format!("{name}: {value}"));
                }
            }
            Some("http2") => ignored.push("http_server_config.http2 (HTTP/1.1 only)".into()),
            Some(other) => return Err(format!("http_server_config: unknown key {other:?}")),
            None => return Err("keys must be strings".into()),
        }
    }
    Ok(out)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ClientAuth {
    None,
    VerifyIfGiven,
    RequireAndVerify,
}

fn tls_version(v: &Yaml, field: &str) -> Result<u8, String> {
    match string(v, field)?.as_str() {
        "TLS10" | "TLS11" | "TLS12" => Ok(2),
        "TLS13" => Ok(3),
        other => Err(format!(
            "{field}: {other:?} is not TLS10, TLS11, TLS12 or TLS13"
        )),
    }
}

fn tls_config(
    v: &Yaml,
    base: &Path,
    ignored: &mut Vec<String>,
    files: &mut Vec<PathBuf>,
) -> Result<Arc<rustls::ServerConfig>, String> {
    let mut cert = None;
    let mut key = None;
    let mut ca = None;
    let mut auth = ClientAuth::None;
    let (mut min, mut max) = (2u8, 3u8);
    let path = |s: String| -> PathBuf {
        let p = PathBuf::from(s);
        if p.is_absolute() { p } else { base.join(p) }
    };
    for (k, val) in v.as_hash().into_iter().flatten() {
        let k = k.as_str().ok_or("keys must be strings")?;
        match k {
            "cert_file" => cert = Some(path(string(val, k)?)),
            "key_file" => key = Some(path(string(val, k)?)),
            "client_ca_file" => ca = Some(path(string(val, k)?)),
            "client_auth_type" => {
                auth = match string(val, k)?.as_str() {
                    "NoClientCert" => ClientAuth::None,
                    "VerifyClientCertIfGiven" => ClientAuth::VerifyIfGiven,
                    "RequireAndVerifyClientCert" => ClientAuth::RequireAndVerify,
                    t @ ("RequestClientCert" | "RequireAnyClientCert") => {
                        return Err(format!(
                            "client_auth_type {t} accepts unverified certificates; use \
                             VerifyClientCertIfGiven or RequireAndVerifyClientCert"
                        ));
                    }
                    t => return Err(format!("client_auth_type {t:?} is unknown")),
                }
            }
            "min_version" => min = tls_version(val, k)?,
            "max_version" => max = tls_version(val, k)?,
            "cipher_suites" | "curve_preferences" | "prefer_server_cipher_suites" => {
                ignored.push(format!(
                    "tls_server_config.{k} (rustls uses its own safe set)"
                ));
            }
            "cert" | "key" | "client_ca" => {
                return Err(format!(
                    "tls_server_config.{k}: give the file (_file) instead"
                ));
            }
            other => return Err(format!("tls_server_config: unknown key {other:?}")),
        }
    }
    let cert = cert.ok_or("tls_server_config needs cert_file")?;
    let key = key.ok_or("tls_server_config needs key_file")?;
    files.extend([cert.clone(), key.clone()]);
    files.extend(ca.iter().cloned());
    if min > max {
        return Err("tls_server_config: min_version is above max_version".into());
    }
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert)
        .and_then(|it| it.collect())
        .map_err(|e| format!("cert_file {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "cert_file {}: no certificate in it",
            cert.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&key)
        .map_err(|_| format!("key_file {}: no readable private key in it", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: Vec<&'static rustls::SupportedProtocolVersion> = [
        (2u8, &rustls::version::TLS12),
        (3u8, &rustls::version::TLS13),
    ]
    .into_iter()
    .filter(|(v, _)| (min..=max).contains(v))
    .map(|(_, p)| p)
    .collect();
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&versions)
        .map_err(|e| format!("tls_server_config: {e}"))?;
    let builder = match auth {
        ClientAuth::None => {
            if ca.is_some() {
                ignored.push(
                    "tls_server_config.client_ca_file (client_auth_type is NoClientCert)".into(),
                );
            }
            builder.with_no_client_auth()
        }
        ClientAuth::VerifyIfGiven | ClientAuth::RequireAndVerify => {
            let ca =
                ca.ok_or("client_auth_type verifies client certificates: set client_ca_file")?;
            let mut roots = rustls::RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(&ca)
                .map_err(|e| format!("client_ca_file {}: {e}", ca.display()))?;
            for c in certs {
                let c = c.map_err(|e| format!("client_ca_file {}: {e}", ca.display()))?;
                roots
                    .add(c)
                    .map_err(|e| format!("client_ca_file {}: {e}", ca.display()))?;
            }
            let mut vb = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            if auth == ClientAuth::VerifyIfGiven {
                vb = vb.allow_unauthenticated();
            }
            let verifier = vb
                .build()
                .map_err(|e| format!("client_ca_file {}: {e}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(chain, key)
        .map_err(|e| format!("cert_file and key_file do not make a usable pair: {e}"))?;
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn web_config_empty_and_users() {
        let c = parse("", Path::new(".")).unwrap();
        assert!(c.tls.is_none() && c.users.is_empty());
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let c = parse(
            &format!("basic_auth_users:\n  prom: '{hash}'\n"),
            Path::new("."),
        )
        .unwrap();
        assert!(bcrypt::verify("s3cret", &c.users["prom"]).unwrap());
        assert!(format!("{c:?}").contains("prom"));
        assert!(!format!("{c:?}").contains(&hash));
    }

    #[test]
    fn web_config_errors_name_the_field() {
        for (text, want) in [
            ("nonsense: 1", "unknown key \"nonsense\""),
            ("basic_auth_users:\n  a: notahash\n", "not a bcrypt hash"),
            ("tls_server_config:\n  key_file: k\n", "needs cert_file"),
            (
                "tls_server_config:\n  cert_file: c\n  key_file: k\n  client_auth_type: RequireAnyClientCert\n",
                "unverified",
            ),
            (
                "tls_server_config:\n  cert_file: /nonexistent.crt\n  key_file: k\n",
                "cert_file /nonexistent.crt",
            ),
            (
                "http_server_config:\n  headers:\n    Content-Length: 5\n",
                "set by tlscensus",
            ),
            ("- a\n- b\n", "mapping"),
        ] {
            let e = parse(text, Path::new("/")).unwrap_err();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }
}

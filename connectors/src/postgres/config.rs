//! Connection settings from a `postgres://` URL, the way libpq users expect them to work:
//! `PGPASSWORD` and `~/.pgpass` when the URL has no password, `sslmode` honoured with rustls,
//! and a redacted form of the URL for every message a user or a log can see.

use std::time::Duration;

use url::Url;

use crate::error::ConnectorError;

/// How TLS is used, as libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// `disable`: plain TCP.
    Disable,
    /// `allow` / `prefer` (the default): TLS when the server offers it, unverified.
    Prefer,
    /// `require`: TLS, certificate not verified (libpq's meaning).
    Require,
    /// `verify-ca`: TLS with the certificate chain checked against the roots (`sslrootcert`,
    /// else the web PKI roots), the host name not.
    VerifyCa,
    /// `verify-full`: as `verify-ca`, and the certificate must name the host.
    VerifyFull,
}

/// A parsed Postgres connection URL. Its `Debug` and `Display` never show the password.
#[derive(Clone)]
pub struct PgUrl {
    config: tokio_postgres::Config,
    redacted: String,
    tls: TlsMode,
    root_cert: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for PgUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted)
    }
}

impl std::fmt::Display for PgUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted)
    }
}

/// The environment the URL may draw on; tests pass their own.
pub trait Env {
    /// A variable's value.
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

/// Replaces the password in a URL with `***`; anything that is not a URL is returned without
/// anything after a `:` in its user part.
pub fn redact_url(raw: &str) -> String {
    match Url::parse(raw) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            let pairs: Vec<(String, String)> = u
                .query_pairs()
                .map(|(k, v)| {
                    if k.eq_ignore_ascii_case("password") {
                        (k.into_owned(), "***".to_string())
                    } else {
                        (k.into_owned(), v.into_owned())
                    }
                })
                .collect();
            if !pairs.is_empty() {
                u.query_pairs_mut().clear().extend_pairs(pairs);
            }
            u.to_string()
        }
        Err(_) => match (raw.find("://"), raw.rfind('@')) {
            (Some(s), Some(at)) if at > s => {
                let user = &raw[s + 3..at];
                let user = user.split(':').next().unwrap_or("");
                format!("{}{}:***{}", &raw[..s + 3], user, &raw[at..])
            }
            _ => raw.to_string(),
        },
    }
}

/// The URL without its password, for writing into files.
pub fn strip_password(raw: &str) -> String {
    match Url::parse(raw) {
        Ok(mut u) => {
            let _ = u.set_password(None);
            u.to_string()
        }
        Err(_) => redact_url(raw),
    }
}

impl PgUrl {
    /// Parses a `postgres://` (or `postgresql://`) URL, filling the password from `PGPASSWORD`
    /// or the pgpass file when the URL has none.
    pub fn parse(raw: &str) -> Result<Self, ConnectorError> {
        Self::parse_with(raw, &ProcessEnv)
    }

    /// [`PgUrl::parse`] with an explicit environment.
    pub fn parse_with(raw: &str, env: &dyn Env) -> Result<Self, ConnectorError> {
        let redacted = redact_url(raw);
        let bad = |reason: &str| ConnectorError::BadUrl {
            url: redacted.clone(),
            reason: reason.to_string(),
        };
        let url = Url::parse(raw).map_err(|e| bad(&e.to_string()))?;
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            return Err(bad("the scheme must be postgres:// or postgresql://"));
        }
        let mut config = tokio_postgres::Config::new();
        let host = url.host_str().filter(|h| !h.is_empty()).map(str::to_string);
        let mut host = host
            .or_else(|| env.var("PGHOST"))
            .unwrap_or_else(|| "localhost".into());
        if host.starts_with('[') && host.ends_with(']') {
            host = host[1..host.len() - 1].to_string();
        }
        let port = match url.port() {
            Some(p) => p,
            None => env
                .var("PGPORT")
                .and_then(|p| p.parse().ok())
                .unwrap_or(5432),
        };
        let user = Some(url.username())
            .filter(|u| !u.is_empty())
            .map(percent_decode)
            .or_else(|| env.var("PGUSER"))
            .or_else(|| env.var("USER"))
            .unwrap_or_else(|| "postgres".into());
        let dbname = Some(url.path().trim_start_matches('/'))
            .filter(|d| !d.is_empty())
            .map(percent_decode)
            .or_else(|| env.var("PGDATABASE"))
            .unwrap_or_else(|| user.clone());
        let mut password = url.password().map(percent_decode);
        let mut tls = TlsMode::Prefer;
        let mut root_cert = env.var("PGSSLROOTCERT").map(std::path::PathBuf::from);
        let mut connect_timeout = Duration::from_secs(10);
        for (k, v) in url.query_pairs() {
            match k.as_ref() {
                "sslmode" => {
                    tls = match v.as_ref() {
                        "disable" => TlsMode::Disable,
                        "allow" | "prefer" => TlsMode::Prefer,
                        "require" => TlsMode::Require,
                        "verify-ca" => TlsMode::VerifyCa,
                        "verify-full" => TlsMode::VerifyFull,
                        other => return Err(bad(&format!("unknown sslmode `{other}`"))),
                    }
                }
                "sslrootcert" => root_cert = Some(std::path::PathBuf::from(v.as_ref())),
                "password" => password = Some(v.into_owned()),
                "user" => {}
                "connect_timeout" => {
                    let secs: u64 = v
                        .parse()
                        .map_err(|_| bad("connect_timeout is whole seconds"))?;
                    connect_timeout = Duration::from_secs(secs.max(1));
                }
                "application_name" => {
                    config.application_name(v.as_ref());
                }
                "options" => {
                    config.options(v.as_ref());
                }
                "host" => host = v.into_owned(),
                "port" => {}
                other => return Err(bad(&format!("unsupported URL parameter `{other}`"))),
            }
        }
        let password = password
            .or_else(|| env.var("PGPASSWORD"))
            .or_else(|| pgpass_lookup(env, &host, port, &dbname, &user));
        if host.starts_with('/') {
            config.host_path(&host);
        } else {
            config.host(&host);
        }
        config
            .port(port)
            .user(&user)
            .dbname(&dbname)
            .connect_timeout(connect_timeout)
            .keepalives(true);
        if config.get_application_name().is_none() {
            config.application_name("etl");
        }
        if let Some(p) = password {
            config.password(p);
        }
        config.ssl_mode(match tls {
            TlsMode::Disable => tokio_postgres::config::SslMode::Disable,
            TlsMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            TlsMode::Require | TlsMode::VerifyCa | TlsMode::VerifyFull => {
                tokio_postgres::config::SslMode::Require
            }
        });
        Ok(PgUrl {
            config,
            redacted,
            tls,
            root_cert,
        })
    }

    /// The driver configuration (holds the password: never print it).
    pub fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    /// The TLS mode.
    pub fn tls(&self) -> TlsMode {
        self.tls
    }

    /// The CA certificates (PEM) a verified TLS connection trusts (`sslrootcert`, or
    /// `PGSSLROOTCERT`); `None`: the web PKI roots.
    pub fn root_cert(&self) -> Option<&std::path::Path> {
        self.root_cert.as_deref()
    }

    /// The URL with its password replaced by `***`.
    pub fn redacted(&self) -> &str {
        &self.redacted
    }

    /// Sets the `application_name` the server shows for this connection.
    pub fn set_application_name(&mut self, name: &str) {
        self.config.application_name(name);
    }

    /// The user name connected as.
    pub fn user(&self) -> &str {
        self.config.get_user().unwrap_or("postgres")
    }
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Looks a password up in `PGPASSFILE` or `~/.pgpass`, as libpq does: the first line whose
/// host, port, database and user match (`*` matches anything; `\:` and `\\` are escapes). Like
/// libpq, a file readable by group or others is ignored.
fn pgpass_lookup(env: &dyn Env, host: &str, port: u16, db: &str, user: &str) -> Option<String> {
    let path = env
        .var("PGPASSFILE")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            env.var("HOME")
                .map(|h| std::path::Path::new(&h).join(".pgpass"))
        })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = fs_err::metadata(&path).ok()?;
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(path = %path.display(), "password file has group or world access; ignored (chmod 0600 it)");
            return None;
        }
    }
    let text = fs_err::read_to_string(&path).ok()?;
    let port = port.to_string();
    let host_for_match = if host.starts_with('/') {
        "localhost"
    } else {
        host
    };
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .map(split_pgpass_line)
        .find(|f| {
            f.len() == 5
                && (f[0] == "*" || f[0] == host_for_match)
                && (f[1] == "*" || f[1] == port)
                && (f[2] == "*" || f[2] == db)
                && (f[3] == "*" || f[3] == user)
        })
        .map(|f| f[4].clone())
}

fn split_pgpass_line(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next()
                    && let Some(last) = fields.last_mut()
                {
                    last.push(n);
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => {
                if let Some(last) = fields.last_mut() {
                    last.push(c);
                }
            }
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    struct MapEnv(HashMap<&'static str, String>);
    impl Env for MapEnv {
        fn var(&self, name: &str) -> Option<String> {
            self.0.get(name).cloned()
        }
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://alice:s3cret@db:5432/shop"),
            "postgres://alice:***@db:5432/shop"
        );
        assert_eq!(
            redact_url("postgres://alice@db/shop"),
            "postgres://alice@db/shop"
        );
        assert!(!redact_url("postgres://a@h/db?password=zz").contains("zz"));
        assert!(!redact_url("not a url://u:pw@x").contains("pw"));
        assert_eq!(
            strip_password("postgres://a:pw@h:1/d"),
            "postgres://a@h:1/d"
        );
    }

    #[test]
    fn password_from_url_env_or_pgpass() {
        let dir = tempfile::tempdir().unwrap();
        let pass = dir.path().join("pgpass");
        fs_err::write(
            &pass,
            "# comment\nother:*:*:*:nope\nh:5433:db:bob:from\\:file\n",
        )
        .unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs_err::set_permissions(&pass, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let env = MapEnv(HashMap::from([("PGPASSFILE", pass.display().to_string())]));
        let u = PgUrl::parse_with("postgres://bob@h:5433/db", &env).unwrap();
        assert_eq!(u.config().get_password(), Some(&b"from:file"[..]));
        assert!(!format!("{u:?}{u}").contains("from"));
        let env = MapEnv(HashMap::from([("PGPASSWORD", "envpw".to_string())]));
        let u = PgUrl::parse_with("postgres://bob@h:5433/db", &env).unwrap();
        assert_eq!(u.config().get_password(), Some(&b"envpw"[..]));
        let u = PgUrl::parse_with("postgres://bob:url%40pw@h/db", &env).unwrap();
        assert_eq!(u.config().get_password(), Some(&b"url@pw"[..]));
        assert_eq!(u.redacted(), "postgres://bob:***@h/db");
    }

    #[test]
    fn sslmode_and_bad_urls() {
        let env = MapEnv(HashMap::new());
        let u = PgUrl::parse_with("postgres://a@h/db?sslmode=verify-full", &env).unwrap();
        assert_eq!(u.tls(), TlsMode::VerifyFull);
        let u = PgUrl::parse_with("postgres://a@h/db?sslmode=disable", &env).unwrap();
        assert_eq!(u.tls(), TlsMode::Disable);
        let u = PgUrl::parse_with(
            "postgres://a@h/db?sslmode=verify-ca&sslrootcert=/etc/ca.pem",
            &env,
        )
        .unwrap();
        assert_eq!(u.tls(), TlsMode::VerifyCa);
        assert_eq!(u.root_cert(), Some(std::path::Path::new("/etc/ca.pem")));
        let e = PgUrl::parse_with("postgres://a:pw@h/db?sslmode=maybe", &env).unwrap_err();
        assert!(
            e.to_string().contains("sslmode") && !e.to_string().contains("pw@"),
            "{e}"
        );
        assert!(PgUrl::parse_with("mysql://a@h/db", &env).is_err());
    }
}

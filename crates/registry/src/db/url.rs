//! Database URLs as operators write them in Glance configs (SQLAlchemy style), turned into
//! the backend and connection string Diesel needs. Never logs or displays the password.

use std::fmt;

use crate::error::RegistryError;

/// Which SQL server a URL points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite file.
    Sqlite,
    /// MySQL or MariaDB.
    Mysql,
    /// PostgreSQL.
    Postgres,
}

impl Backend {
    /// Lower-case name used in messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Mysql => "mysql",
            Self::Postgres => "postgresql",
        }
    }
}

/// A parsed database URL.
#[derive(Clone, PartialEq, Eq)]
pub struct DbUrl {
    /// The backend chosen by the scheme.
    pub backend: Backend,
    /// What Diesel's `establish` takes: a file path for SQLite, a URL otherwise.
    pub diesel_url: String,
}

impl fmt::Debug for DbUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DbUrl")
            .field("backend", &self.backend)
            .field("url", &redact(&self.diesel_url))
            .finish()
    }
}

impl fmt::Display for DbUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact(&self.diesel_url))
    }
}

/// Replaces the password of `scheme://user:pass@host/...` with `***`.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            // set_password only fails for URLs that cannot have credentials.
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// MySQL query options Diesel understands; others (`charset=utf8`, `plugin=…`) are dropped.
const MYSQL_KEPT_OPTIONS: &[&str] = &["unix_socket", "ssl_mode", "ssl_ca", "ssl_cert", "ssl_key"];

impl DbUrl {
    /// Parses `sqlite:////abs/path`, `sqlite:///rel/path`, a bare file path,
    /// `mysql[+driver]://`, `mariadb://`, `postgres[ql][+driver]://`.
    pub fn parse(raw: &str) -> Result<Self, RegistryError> {
        let raw = raw.trim();
        let bad = |why: &str| RegistryError::BadDatabaseUrl {
            url: redact(raw),
            reason: why.to_string(),
        };
        let Some((scheme, rest)) = raw.split_once("://") else {
            if raw.is_empty() {
                return Err(bad("no database URL is configured ([database] connection)"));
            }
            // A bare path is taken as an SQLite file, as Diesel does.
            return Ok(Self::sqlite(raw));
        };
        let base = scheme
            .split('+')
            .next()
            .unwrap_or(scheme)
            .to_ascii_lowercase();
        match base.as_str() {
            "sqlite" => {
                // SQLAlchemy: sqlite:///relative.db and sqlite:////absolute.db
                let path = rest.strip_prefix('/').unwrap_or(rest);
                let path = path.split('?').next().unwrap_or(path);
                if path.is_empty() || path == ":memory:" {
                    return Err(bad(
                        "an in-memory SQLite database cannot be shared between the registry's connections; give a file path such as sqlite:////var/lib/glance/glance.sqlite",
                    ));
                }
                Ok(Self::sqlite(path))
            }
            "mysql" | "mariadb" => {
                let mut u = url::Url::parse(&format!("mysql://{rest}"))
                    .map_err(|e| bad(&format!("not a valid URL: {e}")))?;
                if u.host_str().is_none_or(str::is_empty) {
                    return Err(bad("the URL names no host"));
                }
                if u.path().trim_matches('/').is_empty() {
                    return Err(bad(
                        "the URL names no database, e.g. mysql+pymysql://glance:PASS@controller/glance",
                    ));
                }
                let kept: Vec<(String, String)> = u
                    .query_pairs()
                    .filter(|(k, _)| MYSQL_KEPT_OPTIONS.contains(&k.as_ref()))
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect();
                u.set_query(None);
                if !kept.is_empty() {
                    u.query_pairs_mut().extend_pairs(kept);
                }
                Ok(Self {
                    backend: Backend::Mysql,
                    diesel_url: u.to_string(),
                })
            }
            "postgres" | "postgresql" | "pgsql" => {
                let u = url::Url::parse(&format!("postgresql://{rest}"))
                    .map_err(|e| bad(&format!("not a valid URL: {e}")))?;
                if u.path().trim_matches('/').is_empty() {
                    return Err(bad(
                        "the URL names no database, e.g. postgresql+psycopg2://glance:PASS@controller/glance",
                    ));
                }
                Ok(Self {
                    backend: Backend::Postgres,
                    diesel_url: u.to_string(),
                })
            }
            other => Err(bad(&format!(
                "unsupported database scheme '{other}': use sqlite, mysql (or mysql+pymysql) or postgresql"
            ))),
        }
    }

    fn sqlite(path: &str) -> Self {
        Self {
            backend: Backend::Sqlite,
            diesel_url: path.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glance_mysql_urls() {
        let u = DbUrl::parse("mysql+pymysql://glance:GLANCE_DBPASS@controller/glance").unwrap();
        assert_eq!(u.backend, Backend::Mysql);
        assert_eq!(
            u.diesel_url,
            "mysql://glance:GLANCE_DBPASS@controller/glance"
        );
        let u =
            DbUrl::parse("mysql://glance:pw@127.0.0.1:3306/glance?charset=utf8&plugin=x").unwrap();
        assert_eq!(u.diesel_url, "mysql://glance:pw@127.0.0.1:3306/glance");
        let u = DbUrl::parse("mysql+pymysql://g:p@h/glance?unix_socket=/run/mysqld.sock").unwrap();
        assert!(u.diesel_url.ends_with("?unix_socket=%2Frun%2Fmysqld.sock"));
    }

    #[test]
    fn glance_postgres_urls() {
        let u = DbUrl::parse("postgresql+psycopg2://glance:pw@controller/glance").unwrap();
        assert_eq!(u.backend, Backend::Postgres);
        assert_eq!(u.diesel_url, "postgresql://glance:pw@controller/glance");
        assert_eq!(
            DbUrl::parse("postgres://h/db").unwrap().backend,
            Backend::Postgres
        );
    }

    #[test]
    fn sqlalchemy_sqlite_urls() {
        let u = DbUrl::parse("sqlite:////var/lib/glance/glance.sqlite").unwrap();
        assert_eq!(u.backend, Backend::Sqlite);
        assert_eq!(u.diesel_url, "/var/lib/glance/glance.sqlite");
        assert_eq!(
            DbUrl::parse("sqlite:///glance.sqlite").unwrap().diesel_url,
            "glance.sqlite"
        );
        assert_eq!(DbUrl::parse("/tmp/x.db").unwrap().backend, Backend::Sqlite);
        assert!(DbUrl::parse("sqlite://").is_err());
        assert!(DbUrl::parse("sqlite:///:memory:").is_err());
    }

    #[test]
    fn bad_urls_are_explained_and_passwords_hidden() {
        let err = DbUrl::parse("oracle://u:secret@h/db")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unsupported database scheme 'oracle'"),
            "{err}"
        );
        assert!(!err.contains("secret"), "{err}");
        assert!(DbUrl::parse("mysql://u:p@h/").is_err());
        assert!(DbUrl::parse("").is_err());
        let u = DbUrl::parse("mysql://glance:secret@h/glance").unwrap();
        assert!(!format!("{u:?} {u}").contains("secret"));
    }
}

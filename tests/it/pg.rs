//! A fresh PostgreSQL database per test, created on the server that
//! `AUTORESPONDER_TEST_POSTGRES` names (`scripts/test` makes sure one is running) and dropped
//! when the test is done. These tests never skip: without a server they fail and say why.

use std::sync::Arc;
use std::time::Duration;

use autoresponder::config::Database;
use autoresponder::store::{PgOptions, PgStore, Store};
use tokio_postgres::NoTls;

/// The machine's own server, as Debian's package sets it up (trust auth on loopback).
pub const DEFAULT_SERVER: &str = "postgres://postgres@127.0.0.1:5432/postgres";

pub fn server_url() -> String {
    std::env::var("AUTORESPONDER_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_SERVER.to_string())
}

/// A database of this test's own; dropped (with its connections) when this is dropped.
pub struct PgDatabase {
    pub url: String,
    name: String,
    server: String,
}

/// `url` with its database name replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_part = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{host_part}/{name}?{query}"),
        None => format!("{host_part}/{name}"),
    }
}

/// The database name in `url` (`postgres` when it names none).
fn database_of(url: &str) -> String {
    let base = url.split('?').next().unwrap_or(url);
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    base[scheme_end..]
        .split_once('/')
        .map(|(_, name)| name.to_string())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "postgres".to_string())
}

async fn admin(server: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(server, NoTls)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "the PostgreSQL tests need a server at {server} (set \
                 AUTORESPONDER_TEST_POSTGRES; scripts/test starts the machine's own): {e}"
            )
        });
    tokio::spawn(connection);
    client
}

impl PgDatabase {
    pub async fn create() -> PgDatabase {
        let server = server_url();
        let name = format!(
            "{}_t{}",
            database_of(&server),
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        admin(&server)
            .await
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .unwrap();
        PgDatabase {
            url: with_database(&server, &name),
            name,
            server,
        }
    }

    pub fn database(&self) -> Database {
        Database::Postgres(self.url.clone())
    }

    /// A store on this database, as one node opens it.
    pub async fn store(&self) -> Arc<PgStore> {
        Arc::new(
            PgStore::connect(&PgOptions {
                url: self.url.clone(),
                pool_size: 8,
                acquire_timeout: Duration::from_secs(5),
            })
            .await
            .unwrap(),
        )
    }

    /// The rows a query returns, first column as text, for checks on what was stored.
    pub async fn texts(&self, sql: &str) -> Vec<String> {
        let client = admin(&self.url).await;
        client
            .query(sql, &[])
            .await
            .unwrap()
            .iter()
            .map(|row| row.get::<_, String>(0))
            .collect()
    }

    /// The first column of the first row, as a number.
    pub async fn count(&self, sql: &str) -> i64 {
        let client = admin(&self.url).await;
        client.query_one(sql, &[]).await.unwrap().get(0)
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let (server, name) = (self.server.clone(), self.name.clone());
        // Drop runs outside any runtime (or inside one that must not block): use a thread.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let Ok((client, connection)) = tokio_postgres::connect(&server, NoTls).await else {
                    return;
                };
                tokio::spawn(connection);
                let _ = client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .await;
            });
        });
        let _ = dropped.join();
    }
}

/// For store tests that take either backend.
pub fn as_store(store: Arc<PgStore>) -> Arc<dyn Store> {
    store
}

#[test]
fn urls_name_the_test_database() {
    assert_eq!(
        with_database("postgres://u@h:5432/base?sslmode=disable", "x"),
        "postgres://u@h:5432/x?sslmode=disable"
    );
    assert_eq!(with_database("postgres://u@h", "x"), "postgres://u@h/x");
    assert_eq!(database_of("postgres://u@h:5432/base?a=b"), "base");
    assert_eq!(database_of("postgres://u@h"), "postgres");
}

//! A throwaway PostgreSQL cluster for tests: `initdb` into a temp dir, `pg_ctl start` on a
//! free loopback port, stopped and deleted on drop. Needs Debian's `postgresql` package (the
//! binaries under `/usr/lib/postgresql/*/bin`, or `OURNET_PG_BINDIR`). Run as root, the
//! cluster runs as the `postgres` user, since PostgreSQL refuses to run as root.
#![allow(dead_code, reason = "shared by several test crates")]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub(crate) struct PgCluster {
    dir: PathBuf,
    bin: PathBuf,
    pub(crate) port: u16,
}

fn bindir() -> PathBuf {
    if let Ok(d) = std::env::var("OURNET_PG_BINDIR") {
        return PathBuf::from(d);
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL not installed: apt-get install -y postgresql (see .ci/run)")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    found.sort();
    found
        .pop()
        .expect("no /usr/lib/postgresql/*/bin/initdb: apt-get install -y postgresql")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

fn run_as_pg(bin: &Path, tool: &str, args: &[&str]) {
    let exe = bin.join(tool);
    let status = as_pg(&exe)
        .args(args)
        .stdout(Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("running {}: {e}", exe.display()));
    assert!(status.success(), "{tool} {args:?} failed");
}

/// A command running `exe` as the `postgres` user when we are root (PostgreSQL refuses to
/// run as root), else as ourselves.
fn as_pg(exe: &Path) -> Command {
    if is_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(exe);
        cmd
    } else {
        Command::new(exe)
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl PgCluster {
    pub(crate) fn start(name: &str) -> Self {
        let bin = bindir();
        let dir = std::env::temp_dir().join(format!("ournet-pg-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        if is_root() {
            let ok = Command::new("chown")
                .arg("postgres:postgres")
                .arg(&dir)
                .status()
                .unwrap();
            assert!(ok.success());
        }
        let data = dir.join("data");
        let d = data.to_str().unwrap();
        run_as_pg(
            &bin,
            "initdb",
            &[
                "-D",
                d,
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        let port = free_port();
        let opts = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50",
            dir.display()
        );
        let log = dir.join("log");
        run_as_pg(
            &bin,
            "pg_ctl",
            &[
                "-D",
                d,
                "-o",
                &opts,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "start",
            ],
        );
        Self { dir, bin, port }
    }

    pub(crate) fn create_db(&self, db: &str) -> String {
        let port = self.port.to_string();
        let sql = format!("CREATE DATABASE {db}");
        let out = Command::new(self.bin.join("psql"))
            .args(["-h", "127.0.0.1", "-p", &port, "-U", "postgres", "-c", &sql])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        let d = data.to_str().unwrap_or_default().to_owned();
        let exe = self.bin.join("pg_ctl");
        let args = ["-D", d.as_str(), "-m", "immediate", "-w", "stop"];
        let _ = as_pg(&exe).args(args).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

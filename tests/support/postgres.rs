//! A throwaway PostgreSQL server for tests: Debian's `postgresql` package (installed by
//! scripts/test), a new cluster in a temp folder, on a free loopback port, stopped on drop.
//! Missing binaries fail the test with what to install; it never skips.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Postgres {
    pub port: u16,
    bin: PathBuf,
    dir: PathBuf,
    /// The user the server runs as (`postgres` when the tests run as root: it refuses root).
    uid: Option<(u32, u32)>,
}

fn bin_dir() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("postgres").is_file() && b.join("initdb").is_file())
        .collect();
    found.sort();
    found.pop().unwrap_or_else(|| {
        panic!("PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin: install Debian's `postgresql` package (apt-get install -y postgresql; scripts/test does)")
    })
}

fn ids_of(user: &str) -> Option<(u32, u32)> {
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id").args([flag, user]).output().ok()?;
        String::from_utf8(out.stdout).ok()?.trim().parse().ok()
    };
    Some((id("-u")?, id("-g")?))
}

impl Postgres {
    pub fn start(tag: &str) -> Postgres {
        let bin = bin_dir();
        let dir = std::env::temp_dir().join(format!(
            "consentgate-pg-{tag}-{}-{}",
            std::process::id(),
            super::common::free_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        // SAFETY: geteuid has no preconditions.
        let uid = if unsafe { libc::geteuid() } == 0 {
            let ids = ids_of("postgres").expect(
                "running as root, and there is no `postgres` user to run the server as (install Debian's `postgresql` package)",
            );
            let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).unwrap();
            // SAFETY: a valid NUL-terminated path.
            unsafe { libc::chown(c.as_ptr(), ids.0, ids.1) };
            Some(ids)
        } else {
            None
        };
        let mut pg = Postgres {
            port: super::common::free_port(),
            bin,
            dir,
            uid,
        };
        let data = pg.data();
        let out = pg
            .cmd("initdb")
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
            .arg(&data)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        pg.ctl_start();
        pg
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn cmd(&self, name: &str) -> Command {
        let mut c = Command::new(self.bin.join(name));
        if let Some((u, g)) = self.uid {
            use std::os::unix::process::CommandExt;
            c.uid(u).gid(g);
        }
        c.current_dir(&self.dir);
        c
    }

    fn ctl_start(&mut self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.display()
        );
        let out = self
            .cmd("pg_ctl")
            .args(["-w", "-t", "30", "-D"])
            .arg(self.data())
            .arg("-l")
            .arg(self.dir.join("server.log"))
            .args(["-o", &opts, "start"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl start: {}{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
        );
    }

    /// Kills the server at once (no clean shutdown): the store "stops".
    pub fn stop(&self) {
        let _ = self
            .cmd("pg_ctl")
            .args(["-m", "immediate", "-w", "-D"])
            .arg(self.data())
            .arg("stop")
            .output();
    }

    /// Starts the server again (after [`Postgres::stop`]) on the same port and data.
    pub fn restart(&mut self) {
        self.ctl_start();
    }

    /// The server's processes: the postmaster (from `postmaster.pid`) and its children.
    fn processes(&self) -> Vec<i32> {
        let Some(main) = std::fs::read_to_string(self.data().join("postmaster.pid"))
            .ok()
            .and_then(|t| t.lines().next().and_then(|l| l.trim().parse::<i32>().ok()))
        else {
            return Vec::new();
        };
        let mut pids = vec![main];
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // `pid (comm) state ppid ...`: comm may hold spaces, so read after the last `)`.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<i32>().ok());
            if ppid == Some(main) {
                if let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() {
                    pids.push(pid);
                }
            }
        }
        pids
    }

    /// Freezes the server (SIGSTOP to every process of it): connections stay open and the
    /// kernel still accepts and acknowledges, but nothing answers, as with a hung host.
    pub fn freeze(&self) {
        for pid in self.processes() {
            // SAFETY: signalling the test's own server processes.
            unsafe { libc::kill(pid, libc::SIGSTOP) };
        }
    }

    /// Lets a frozen server run again (harmless when it is not frozen).
    pub fn thaw(&self) {
        for pid in self.processes() {
            // SAFETY: as in `freeze`.
            unsafe { libc::kill(pid, libc::SIGCONT) };
        }
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // A frozen server would not act on pg_ctl's signal, and pg_ctl would wait for it.
        self.thaw();
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

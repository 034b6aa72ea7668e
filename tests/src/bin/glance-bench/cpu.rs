//! CPU time of the processes behind a figure: glance-api, glance-registry, the database
//! server when it runs on this machine, and the benchmark's own load generator. Read from
//! `/proc/<pid>/stat` (user + system time of all threads) at the start and end of each
//! measured window, and reported per unit of the figure (request, pair, MB), so a table
//! says which process a figure's CPU went to and how busy the cores were.

use std::time::Instant;

/// One process to account for.
#[derive(Debug, Clone)]
pub struct Proc {
    /// Name in the report.
    pub name: String,
    /// Process id.
    pub pid: u32,
}

/// The processes to account for in a run.
#[derive(Debug, Clone, Default)]
pub struct Procs(pub Vec<Proc>);

/// CPU times of [`Procs`] at one moment.
#[derive(Debug, Clone)]
pub struct Sample {
    at: Instant,
    /// Clock ticks per process; `None` where `/proc` could not be read.
    ticks: Vec<Option<u64>>,
}

/// CPU used by each process over one measured window.
#[derive(Debug, Clone, Default)]
pub struct Usage {
    /// (process, CPU seconds); processes that could not be read are left out.
    pub secs: Vec<(String, f64)>,
    /// Length of the window, seconds.
    pub wall: f64,
}

impl Usage {
    /// Cores kept busy over the window by all the processes together.
    pub fn cores(&self) -> f64 {
        self.secs.iter().map(|(_, s)| s).sum::<f64>() / self.wall
    }
}

impl Procs {
    /// The benchmark's own process (the load generator) and `others`.
    pub fn with_client(others: Vec<Proc>) -> Self {
        let mut v = others;
        v.push(Proc {
            name: "client".into(),
            pid: std::process::id(),
        });
        Self(v)
    }

    /// The processes' CPU times now.
    pub fn sample(&self) -> Sample {
        Sample {
            at: Instant::now(),
            ticks: self.0.iter().map(|p| ticks(p.pid)).collect(),
        }
    }

    /// CPU used between two samples.
    pub fn usage(&self, start: &Sample, end: &Sample) -> Usage {
        let hz = rustix::param::clock_ticks_per_second() as f64;
        let secs = self
            .0
            .iter()
            .zip(start.ticks.iter().zip(&end.ticks))
            .filter_map(|(p, (a, b))| {
                let (a, b) = ((*a)?, (*b)?);
                Some((p.name.clone(), b.saturating_sub(a) as f64 / hz))
            })
            .collect();
        Usage {
            secs,
            wall: end.at.duration_since(start.at).as_secs_f64(),
        }
    }
}

/// User + system clock ticks of all of a process's threads (fields 14 and 15 of
/// `/proc/<pid>/stat`, counted after the command name, which may hold spaces).
fn ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_ticks(&stat)
}

fn parse_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // After ")": state is field 3, so utime (14) and stime (15) are the 12th and 13th.
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// The process listening on TCP `port` on this machine, with its command name (e.g. the
/// MariaDB server of a `--mysql-url` on 127.0.0.1), if there is one and `/proc` shows it.
pub fn listener(port: u16) -> Option<Proc> {
    let inode = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .find_map(|table| listening_inode(&table, port))?;
    let want = format!("socket:[{inode}]");
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        let found = fds
            .flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == want.as_str()));
        if found {
            let name = std::fs::read_to_string(entry.path().join("comm"))
                .map_or_else(|_| format!("pid {pid}"), |s| s.trim().to_string());
            return Some(Proc { name, pid });
        }
    }
    None
}

/// The inode of the socket listening on `port` in a `/proc/net/tcp{,6}` table.
fn listening_inode(table: &str, port: u16) -> Option<u64> {
    const LISTEN: &str = "0A";
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        let local_port = f.get(1)?.rsplit(':').next()?;
        (u16::from_str_radix(local_port, 16).ok()? == port && *f.get(3)? == LISTEN)
            .then(|| f.get(9)?.parse().ok())
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_ticks_are_read_after_a_command_name_with_spaces() {
        let stat = "1234 (tokio rt) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 9 0 12 0";
        assert_eq!(parse_ticks(stat), Some(325));
        assert_eq!(parse_ticks("garbage"), None);
    }

    #[test]
    fn the_listening_socket_of_a_port_is_found_not_a_connection_on_it() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
           0: 0100007F:0CEA 0100007F:A1B2 01 00000000:00000000 00:00000000 00000000   106        0 111 1\n\
           1: 0100007F:0CEA 00000000:0000 0A 00000000:00000000 00:00000000 00000000   106        0 222 1\n";
        assert_eq!(listening_inode(table, 3306), Some(222));
        assert_eq!(listening_inode(table, 5432), None);
    }

    #[test]
    fn a_listener_of_this_process_is_found_by_its_port() {
        let sock = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = sock.local_addr().expect("addr").port();
        let found = listener(port).expect("this process listens on the port");
        assert_eq!(found.pid, std::process::id());
        drop(sock);
        assert!(listener(port).is_none_or(|p| p.pid != std::process::id()));
    }

    /// What `/proc` gives for this process matches its CPU clock (`clock_gettime`) over a
    /// stretch of busy work, to within a few clock ticks; no wall-clock timing is involved.
    #[test]
    fn this_process_is_sampled_and_its_cpu_counted() {
        use rustix::time::{ClockId, clock_gettime};
        let cpu_clock = || {
            let t = clock_gettime(ClockId::ProcessCPUTime);
            t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
        };
        let procs = Procs::with_client(Vec::new());
        let c0 = cpu_clock();
        let a = procs.sample();
        let mut x = 0u64;
        while cpu_clock() - c0 < 0.3 {
            for _ in 0..10_000 {
                x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
            }
        }
        let b = procs.sample();
        let spent = cpu_clock() - c0;
        let u = procs.usage(&a, &b);
        assert_eq!(u.secs.len(), 1, "{u:?}");
        assert_eq!(u.secs[0].0, "client");
        assert!(
            (u.secs[0].1 - spent).abs() <= 0.05,
            "{u:?} against {spent} s of CPU"
        );
        assert!(u.wall > 0.0 && u.cores() > 0.0, "{u:?}");
        let gone = Procs(vec![Proc {
            name: "gone".into(),
            pid: u32::MAX,
        }]);
        assert!(gone.usage(&gone.sample(), &gone.sample()).secs.is_empty());
    }
}

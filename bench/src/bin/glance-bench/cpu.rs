//! CPU time of the processes behind a figure: glance-api, glance-registry, the database
//! server when it runs on this machine, and the benchmark's own load generator. Read from
//! `/proc/<pid>/stat` (user + system time of all threads) at the start and end of each
//! measured window, and reported per unit of the figure (request, pair, MB), so a table
//! says which process a figure's CPU went to and how busy the cores were. Beside it, how
//! busy the work directory's disk was (`/proc/diskstats`), so a table also shows when the
//! disk, not the CPU, is what a figure waits on.

use std::path::Path;
use std::time::Instant;

/// One process to account for.
#[derive(Debug, Clone)]
pub struct Proc {
    /// Name in the report.
    pub name: String,
    /// Process id.
    pub pid: u32,
}

/// The processes to account for in a run, and the disk.
#[derive(Debug, Clone, Default)]
pub struct Procs {
    /// The processes.
    pub list: Vec<Proc>,
    /// The block device of the work directory (as `/proc/diskstats` names it).
    pub disk: Option<String>,
}

/// CPU times of [`Procs`] at one moment.
#[derive(Debug, Clone)]
pub struct Sample {
    at: Instant,
    /// Clock ticks per process; `None` where `/proc` could not be read.
    ticks: Vec<Option<u64>>,
    /// The disk's counters.
    disk: Option<DiskStats>,
}

/// A block device's counters in `/proc/diskstats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskStats {
    /// Milliseconds with at least one I/O in flight (`io_ticks`).
    pub busy_ms: u64,
    /// 512-byte sectors read.
    pub sectors_read: u64,
    /// 512-byte sectors written.
    pub sectors_written: u64,
}

/// What the disk did over one measured window.
#[derive(Debug, Clone, Default)]
pub struct DiskUse {
    /// Device name.
    pub name: String,
    /// Fraction of the window with I/O in flight.
    pub busy: f64,
    /// MB (10^6 bytes) read and written.
    pub read_mb: f64,
    /// See `read_mb`.
    pub written_mb: f64,
}

/// CPU used by each process over one measured window.
#[derive(Debug, Clone, Default)]
pub struct Usage {
    /// (process, CPU seconds); processes that could not be read are left out.
    pub secs: Vec<(String, f64)>,
    /// Length of the window, seconds.
    pub wall: f64,
    /// The work directory's disk, when it is a block device `/proc/diskstats` shows.
    pub disk: Option<DiskUse>,
}

impl Usage {
    /// Adds another window's CPU, disk and length to this one (several measured stretches
    /// counted as one window).
    pub fn add(&mut self, other: &Usage) {
        for (name, secs) in &other.secs {
            match self.secs.iter_mut().find(|(n, _)| n == name) {
                Some((_, s)) => *s += secs,
                None => self.secs.push((name.clone(), *secs)),
            }
        }
        if let Some(b) = &other.disk {
            let d = self.disk.get_or_insert_with(|| DiskUse {
                name: b.name.clone(),
                ..DiskUse::default()
            });
            // `busy` is a share of the window: weighted by the windows' lengths.
            let total = self.wall + other.wall;
            if total > 0.0 {
                d.busy = (d.busy * self.wall + b.busy * other.wall) / total;
            }
            d.read_mb += b.read_mb;
            d.written_mb += b.written_mb;
        }
        self.wall += other.wall;
    }

    /// Cores kept busy over the window by all the processes together.
    pub fn cores(&self) -> f64 {
        self.secs.iter().map(|(_, s)| s).sum::<f64>() / self.wall
    }
}

impl Procs {
    /// The benchmark's own process (the load generator) and `others`, and the disk of
    /// `workdir` (none when it is not on a block device, e.g. tmpfs, or not given: a
    /// foreign endpoint keeps its images elsewhere).
    pub fn with_client(others: Vec<Proc>, workdir: Option<&Path>) -> Self {
        let mut list = others;
        list.push(Proc {
            name: "client".into(),
            pid: std::process::id(),
        });
        Self {
            list,
            disk: workdir.and_then(disk_of),
        }
    }

    /// The processes' CPU times and the disk's counters now.
    pub fn sample(&self) -> Sample {
        Sample {
            at: Instant::now(),
            ticks: self.list.iter().map(|p| ticks(p.pid)).collect(),
            disk: self.disk.as_deref().and_then(disk_stats),
        }
    }

    /// CPU and disk used from `start` until now.
    pub fn since(&self, start: &Sample) -> Usage {
        self.usage(start, &self.sample())
    }

    /// CPU and disk used between two samples.
    pub fn usage(&self, start: &Sample, end: &Sample) -> Usage {
        let hz = rustix::param::clock_ticks_per_second() as f64;
        let wall = end.at.duration_since(start.at).as_secs_f64();
        let disk = match (&self.disk, start.disk, end.disk) {
            (Some(name), Some(a), Some(b)) => Some(DiskUse {
                name: name.clone(),
                busy: b.busy_ms.saturating_sub(a.busy_ms) as f64 / 1000.0 / wall,
                read_mb: b.sectors_read.saturating_sub(a.sectors_read) as f64 * 512.0 / 1e6,
                written_mb: b.sectors_written.saturating_sub(a.sectors_written) as f64 * 512.0
                    / 1e6,
            }),
            _ => None,
        };
        let secs = self
            .list
            .iter()
            .zip(start.ticks.iter().zip(&end.ticks))
            .filter_map(|(p, (a, b))| {
                let (a, b) = ((*a)?, (*b)?);
                Some((p.name.clone(), b.saturating_sub(a) as f64 / hz))
            })
            .collect();
        Usage { secs, wall, disk }
    }
}

/// The block device holding `dir`, by the name `/proc/diskstats` gives it (through
/// `/sys/dev/block/<major>:<minor>`).
pub fn disk_of(dir: &Path) -> Option<String> {
    let st = rustix::fs::stat(dir).ok()?;
    let (major, minor) = (rustix::fs::major(st.st_dev), rustix::fs::minor(st.st_dev));
    let link = std::fs::read_link(format!("/sys/dev/block/{major}:{minor}")).ok()?;
    let name = link.file_name()?.to_str()?.to_string();
    disk_stats(&name).map(|_| name)
}

/// The counters of block device `name` now.
fn disk_stats(name: &str) -> Option<DiskStats> {
    parse_diskstats(&std::fs::read_to_string("/proc/diskstats").ok()?, name)
}

/// Device `name`'s line of `/proc/diskstats`: after major, minor and name come reads,
/// reads merged, sectors read, ms reading, writes, writes merged, sectors written, ms
/// writing, I/Os in flight, ms with I/O in flight, …
fn parse_diskstats(table: &str, name: &str) -> Option<DiskStats> {
    table.lines().find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.get(2) != Some(&name) {
            return None;
        }
        let field = |i: usize| f.get(i)?.parse::<u64>().ok();
        Some(DiskStats {
            sectors_read: field(5)?,
            sectors_written: field(9)?,
            busy_ms: field(12)?,
        })
    })
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

    #[test]
    fn a_diskstats_line_is_read_by_device_name() {
        let table = " 254       0 vda 34788 5664 31513522 47772 1058956 96648 192882360 1764620 0 113908 1839452 21662 7 140098576 21223 162629 5836\n\
                     254       1 vda1 10 0 80 1 2 0 16 1 0 3 4\n";
        assert_eq!(
            parse_diskstats(table, "vda"),
            Some(DiskStats {
                busy_ms: 113_908,
                sectors_read: 31_513_522,
                sectors_written: 192_882_360,
            })
        );
        assert_eq!(parse_diskstats(table, "vda1").map(|d| d.busy_ms), Some(3));
        assert_eq!(parse_diskstats(table, "sda"), None);
    }

    /// The disk of the crate's own directory (the work tree, on the machine's disk) is
    /// found, and an fsync'd 16 MiB file written there shows in its counters.
    #[test]
    fn the_disk_of_a_directory_is_found_and_its_writes_counted() {
        let here = std::env::current_dir().expect("cwd");
        let procs = Procs {
            list: Vec::new(),
            disk: disk_of(&here),
        };
        let name = procs.disk.clone().unwrap_or_else(|| {
            panic!(
                "{} is on no block device /proc/diskstats shows",
                here.display()
            )
        });
        let dir = tempfile::tempdir_in(&here).expect("tempdir");
        let a = procs.sample();
        let mut f = std::fs::File::create(dir.path().join("blob")).expect("create");
        let chunk = vec![0x5a_u8; 1 << 20];
        for _ in 0..16 {
            std::io::Write::write_all(&mut f, &chunk).expect("write");
        }
        f.sync_all().expect("fsync");
        let b = procs.sample();
        let disk = procs.usage(&a, &b).disk.expect("disk counters");
        assert_eq!(disk.name, name);
        assert!(disk.written_mb >= 16.0, "{disk:?}");
        assert!((0.0..=1.5).contains(&disk.busy), "{disk:?}");
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
        let procs = Procs::with_client(Vec::new(), Some(Path::new("/proc")));
        assert!(procs.disk.is_none(), "/proc is on no disk");
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
        let gone = Procs {
            list: vec![Proc {
                name: "gone".into(),
                pid: u32::MAX,
            }],
            disk: None,
        };
        assert!(gone.usage(&gone.sample(), &gone.sample()).secs.is_empty());
    }
}

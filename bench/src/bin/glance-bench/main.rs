//! `glance-bench`: the service's benchmark (issue 8). Starts the release glance-registry and
//! glance-api (SQLite, and MariaDB when `--mysql-url` is given) or targets a running
//! `--endpoint`, measures uploads, downloads, create+delete, show and list, the daemons'
//! RSS, and this machine's ceilings in the same run, then prints one markdown table on
//! stdout (progress goes to stderr). Every figure is the median of `--runs` runs with
//! min–max. Targets are printed and marked, never asserted: the exit status only says
//! whether the benchmark itself could run.
//!
//! ```sh
//! scripts/bench.sh                      # build release, then the full benchmark on SQLite
//! scripts/bench.sh --quick              # small sizes, 1 s runs: a smoke test
//! scripts/bench.sh --mysql-url mysql://root@127.0.0.1:3306 --json bench.json
//! target/release/glance-bench --endpoint http://127.0.0.1:9292 --only read
//! ```

mod ceilings;
mod cpu;
mod daemons;
mod load;
mod report;
mod scenarios;
mod transfer;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use clap::{Parser, ValueEnum};

use crate::daemons::{Cloud, Db};
use crate::report::{Ceiling, Row, median};
use crate::scenarios::Plan;
use crate::transfer::RandomData;

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

/// A part of the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Section {
    /// The machine's ceilings (hashing, fsync'd write, sendfile, trivial HTTP).
    Ceilings,
    /// Upload, download and Range download of each size, and the daemons' RSS.
    Transfer,
    /// Show and list (plain and filtered) over the seeded images.
    Read,
    /// Create+delete pairs.
    Crud,
}

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "glance-bench",
    about = "Benchmark glance-api and glance-registry"
)]
struct Cli {
    /// Target a running glance-api (no-auth or trusted front end) instead of starting the
    /// daemons; RSS is not measured then. Seeded images are deleted afterwards.
    #[arg(long)]
    endpoint: Option<String>,
    /// Also run against a fresh database on this MariaDB/MySQL server (dropped afterwards),
    /// e.g. mysql://root@127.0.0.1:3306.
    #[arg(long)]
    mysql_url: Option<String>,
    /// Runs per figure (each figure is their median, with min–max).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Small sizes and short runs: a smoke test of the benchmark itself (its figures are
    /// not judged against the targets: the met column says "n/a (quick)").
    #[arg(long)]
    quick: bool,
    /// Exit non-zero if any request failed while measuring (the smoke run in CI uses it;
    /// no figure is checked against a target).
    #[arg(long)]
    fail_on_errors: bool,
    /// Image sizes to transfer, comma-separated, with K/M/G suffixes (powers of 1024).
    /// Default 1G,4G (64M,256M with --quick). RSS is reported for the largest.
    #[arg(long, value_delimiter = ',')]
    sizes: Vec<String>,
    /// Leave out transfer sizes above 1 GiB.
    #[arg(long)]
    skip_large: bool,
    /// Only these sections (comma-separated or repeated).
    #[arg(long, value_delimiter = ',')]
    only: Vec<Section>,
    /// Seconds per measured rate run (default 5, 1 with --quick).
    #[arg(long)]
    duration: Option<f64>,
    /// Images to seed for show and list (default 10000, 1000 with --quick). With a
    /// pre-seeded database (--sqlite-file, --mysql-db), the images already in it count, and
    /// only the shortfall is seeded.
    #[arg(long)]
    images: Option<usize>,
    /// Start the SQLite run from a copy of this database instead of an empty one: a large
    /// catalogue seeded once by `scripts/bench-seed.sh` (the file itself is not changed).
    #[arg(long)]
    sqlite_file: Option<PathBuf>,
    /// Run the MariaDB pass on this existing database of the --mysql-url server (seeded by
    /// `scripts/bench-seed.sh`) instead of a fresh one, and keep it. The transfer and crud
    /// sections write to it: use with --only read.
    #[arg(long, requires = "mysql_url")]
    mysql_db: Option<String>,
    /// Directory for the run's files (database, image store, ceiling file): must be on the
    /// disk being measured, not tmpfs.
    #[arg(long, default_value = "/var/tmp")]
    workdir: PathBuf,
    /// Directory holding glance-api, glance-registry and glance-manage (default: this
    /// binary's directory).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// `RUST_LOG` for the daemons (their logs go to files in the run directory).
    #[arg(long, default_value = "info")]
    daemon_log: String,
    /// Extra glance-api.conf text appended to the generated file, for tuning experiments
    /// (e.g. $'[glance_store]\nfilesystem_store_chunk_size = 1048576').
    #[arg(long, default_value = "")]
    api_conf_extra: String,
    /// Extra glance-registry.conf text appended to the generated file.
    #[arg(long, default_value = "")]
    registry_conf_extra: String,
    /// Runs per download figure (default 5, or --runs if larger; --runs with --quick); each
    /// is paired with a sendfile transfer of the same bytes.
    #[arg(long)]
    download_runs: Option<usize>,
    /// Bytes each download run moves at least, in back-to-back transfers of the same
    /// request, K/M/G suffixes (default 8G; with --quick, one transfer).
    #[arg(long)]
    download_bytes: Option<String>,
    /// Transfers each download run makes at least, whatever their size (default 8; 1 with
    /// --quick).
    #[arg(long)]
    download_turns: Option<u64>,
    /// container_format of the transferred images (default bare, which glance-api inspects
    /// as it stores; ovf is not inspected: the two give a same-build comparison of the
    /// format inspector's cost).
    #[arg(long, default_value = "bare")]
    upload_container_format: String,
    /// Also write all runs as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn parse_size(s: &str) -> Result<u64> {
    let s = s.trim().to_ascii_uppercase();
    let s = s.trim_end_matches("IB").trim_end_matches('B');
    let (num, mult) = match s.chars().last() {
        Some('K') => (&s[..s.len() - 1], 1 << 10),
        Some('M') => (&s[..s.len() - 1], MIB),
        Some('G') => (&s[..s.len() - 1], GIB),
        _ => (s, 1),
    };
    let n: u64 = num
        .parse()
        .with_context(|| format!("bad size {s:?}: use e.g. 512M or 4G"))?;
    Ok(n * mult)
}

/// A size as the table says it.
pub fn size_label(n: u64) -> String {
    if n >= GIB && n.is_multiple_of(GIB) {
        format!("{} GiB", n / GIB)
    } else {
        format!("{} MiB", n / MIB)
    }
}

fn free_bytes(dir: &std::path::Path) -> Result<u64> {
    let st = rustix::fs::statvfs(dir).with_context(|| format!("statvfs {}", dir.display()))?;
    Ok(st.f_bavail * st.f_frsize)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

impl Cli {
    fn wants(&self, s: Section) -> bool {
        self.only.is_empty() || self.only.contains(&s)
    }

    fn plan(&self) -> Result<Plan> {
        let mut sizes: Vec<u64> = if self.sizes.is_empty() {
            if self.quick {
                vec![64 * MIB, 256 * MIB]
            } else {
                vec![GIB, 4 * GIB]
            }
        } else {
            self.sizes
                .iter()
                .map(|s| parse_size(s))
                .collect::<Result<_>>()?
        };
        if self.skip_large {
            sizes.retain(|&s| s <= GIB);
        }
        anyhow::ensure!(self.runs >= 1, "--runs must be at least 1");
        Ok(Plan {
            runs: self.runs,
            sizes,
            images: self
                .images
                .unwrap_or(if self.quick { 1000 } else { 10_000 }),
            duration: Duration::from_secs_f64(self.duration.unwrap_or(if self.quick {
                1.0
            } else {
                5.0
            })),
            warmup: Duration::from_millis(if self.quick { 200 } else { 1000 }),
            transfer: self.wants(Section::Transfer),
            read: self.wants(Section::Read),
            crud: self.wants(Section::Crud),
            cleanup: self.endpoint.is_some(),
            download_bytes: match &self.download_bytes {
                Some(b) => parse_size(b)?,
                None if self.quick => 0,
                None => 8 * GIB,
            },
            download_turns: self
                .download_turns
                .unwrap_or(if self.quick { 1 } else { 8 }),
            download_runs: self.download_runs.unwrap_or(if self.quick {
                self.runs
            } else {
                self.runs.max(5)
            }),
        })
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    let _ = scenarios::UPLOAD_CONTAINER_FORMAT.set(cli.upload_container_format.clone());
    let plan = cli.plan()?;
    let ceiling_bytes = if cli.quick { 256 * MIB } else { GIB };
    let largest = plan.sizes.iter().copied().max().unwrap_or(0);
    let workdir = cli.workdir.clone();
    std::fs::create_dir_all(&workdir)?;
    let need = if cli.endpoint.is_some() || !plan.transfer {
        0
    } else {
        3 * largest
    } + if cli.wants(Section::Ceilings) {
        ceiling_bytes
    } else {
        0
    };
    let free = free_bytes(&workdir)?;
    if free < need {
        bail!(
            "{} has {:.1} GiB free but this run needs {:.1} GiB (3× the largest image, {}, plus \
             the ceiling file); free some space, pass --workdir on another disk, or use --skip-large",
            workdir.display(),
            free as f64 / GIB as f64,
            need as f64 / GIB as f64,
            size_label(largest)
        );
    }
    let bin_dir = match &cli.bin_dir {
        Some(d) => d.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("binary has no directory")?
            .to_path_buf(),
    };
    let load_start = loadavg();
    eprintln!(
        "glance-bench: {} cores, load average {load_start}, runs {}, sizes {:?}, {} images, {:?} per rate run",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        plan.runs,
        plan.sizes
            .iter()
            .map(|&s| size_label(s))
            .collect::<Vec<_>>(),
        plan.images,
        plan.duration
    );
    // 64 distinct random MiB: uploads cycle through them, ceilings hash and write them.
    let data = RandomData::new(64, 0x5eed);
    let mut rows: Vec<Row> = Vec::new();
    let mut ceils = scenarios::Ceilings::default();
    if cli.wants(Section::Ceilings) {
        ceils = machine_ceilings(&cli, &plan, &data, ceiling_bytes, &mut rows).await?;
    }
    if let Some(endpoint) = &cli.endpoint {
        let target = load::Target::parse(endpoint).await?;
        let on = scenarios::On {
            plan: &plan,
            backend: "endpoint",
            target: &target,
            procs: &cpu::Procs::with_client(Vec::new(), None),
            store: None,
            preseeded: Vec::new(),
        };
        scenarios::run_all(&on, &[], &data, &ceils, &mut rows).await?;
    } else if plan.transfer || plan.read || plan.crud {
        let mut dbs = vec![Db::Sqlite(cli.sqlite_file.clone())];
        if let Some(u) = &cli.mysql_url {
            dbs.push(Db::Mysql(u.clone(), cli.mysql_db.clone()));
        }
        for db in dbs {
            eprintln!("== {}: starting glance-registry and glance-api", db.label());
            let extra = daemons::ExtraConf {
                api: cli.api_conf_extra.clone(),
                registry: cli.registry_conf_extra.clone(),
            };
            let cloud = Cloud::start(&bin_dir, &workdir, &db, &cli.daemon_log, &extra).await?;
            let on = scenarios::On {
                plan: &plan,
                backend: db.label(),
                target: &cloud.api,
                procs: &cpu::Procs::with_client(accounted(&cloud, &db), Some(&workdir)),
                store: Some(cloud.images_dir()),
                preseeded: if db.preseeded() {
                    cloud.image_ids()?
                } else {
                    Vec::new()
                },
            };
            let r = scenarios::run_all(&on, &cloud.daemons, &data, &ceils, &mut rows).await;
            if let Err(e) = r {
                for p in cloud.keep_logs(&workdir, db.label()) {
                    eprintln!("daemon log kept: {}", p.display());
                }
                return Err(e);
            }
            drop(cloud);
        }
    }
    let load_end = loadavg();
    let failed: Vec<String> = rows
        .iter()
        .filter(|r| r.failed > 0)
        .map(|r| format!("{} [{}]: {}", r.figure, r.backend, r.note))
        .collect();
    // A quick run is a smoke test of the benchmark: its figures are not judged against targets.
    let table = report::table(&rows, !cli.quick);
    println!("{table}");
    println!(
        "Machine: {} cores; load average {load_start} at start, {load_end} at end. MB = 10^6 bytes; \
         every figure is the median of {} runs (min–max beside it); p50/p99 are medians of the runs' percentiles. \
         CPU per unit: each process's user+system time over the measured window (/proc, in clock ticks of {} ms) \
         divided by the requests, pairs or MB done (median of the runs); cores busy: their sum over the window's length; \
         disk: the work directory's block device, the share of the window it had I/O in flight and what was written to it per unit.",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        plan.runs,
        1000 / rustix::param::clock_ticks_per_second()
    );
    if let Some(path) = &cli.json {
        let ctx = serde_json::json!({
            "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
            "loadavg_start": load_start,
            "loadavg_end": load_end,
            "runs": plan.runs,
            "sizes": plan.sizes,
            "images": plan.images,
            "quick": cli.quick,
            "duration_secs": plan.duration.as_secs_f64(),
            "endpoint": cli.endpoint,
            "api_conf_extra": cli.api_conf_extra,
            "registry_conf_extra": cli.registry_conf_extra,
        });
        std::fs::write(
            path,
            serde_json::to_string_pretty(&report::json_doc(&rows, ctx, !cli.quick))?,
        )?;
        eprintln!("results written to {}", path.display());
    }
    if cli.fail_on_errors && !failed.is_empty() {
        bail!("requests failed while measuring:\n{}", failed.join("\n"));
    }
    Ok(())
}

/// The processes whose CPU a figure reports, besides the load generator: the two daemons,
/// and the database server when it listens on this machine (found by its port).
fn accounted(cloud: &Cloud, db: &Db) -> Vec<cpu::Proc> {
    let mut procs: Vec<cpu::Proc> = cloud
        .daemons
        .iter()
        .map(|d| cpu::Proc {
            name: d.name.trim_start_matches("glance-").to_string(),
            pid: d.pid(),
        })
        .collect();
    if let Db::Mysql(server, _) = db {
        let port = url::Url::parse(server)
            .ok()
            .map(|u| u.port().unwrap_or(3306));
        match port.and_then(cpu::listener) {
            Some(p) => procs.push(p),
            None => eprintln!(
                "[{}] the database server of {server} is not a process on this machine that \
                 /proc shows: its CPU is not counted",
                db.label()
            ),
        }
    }
    procs
}

async fn machine_ceilings(
    cli: &Cli,
    plan: &Plan,
    data: &RandomData,
    bytes: u64,
    rows: &mut Vec<Row>,
) -> Result<scenarios::Ceilings> {
    let dir = tempfile::Builder::new()
        .prefix("glance-bench-ceil-")
        .tempdir_in(&cli.workdir)?;
    let file = dir.path().join("ceiling.bin");
    let label = size_label(bytes);
    let mut row = |figure: String, unit: &'static str, values: Vec<f64>, lat: [Vec<f64>; 2]| {
        eprintln!("{figure}: {:.0} {unit}", median(&values));
        let [p50_ms, p99_ms] = lat;
        rows.push(Row {
            figure,
            backend: "—".into(),
            unit,
            values: values.clone(),
            p50_ms,
            p99_ms,
            ..Row::default()
        });
        median(&values)
    };
    let runs = plan.runs;
    let mut v = Vec::new();
    for _ in 0..runs {
        v.push(ceilings::hashing(data, bytes));
    }
    let hash = row(
        format!("ceiling: MD5 ∥ SHA-512 of {label} in memory (2 threads)"),
        "MB/s",
        v,
        Default::default(),
    );
    // Both ways of writing: the page cache's, and O_DIRECT as the file store writes (where the
    // file system allows it). The machine's ceiling is the faster.
    let mut write = 0.0f64;
    let mut hash_write = 0.0f64;
    for (how, direct) in [("buffered", false), ("O_DIRECT", true)] {
        let mut v = Vec::new();
        for _ in 0..runs {
            match ceilings::fsync_write(&file, data, bytes, direct) {
                Ok(x) => v.push(x),
                Err(e) if direct => {
                    eprintln!("ceiling: no O_DIRECT write figure: {e:#}");
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        if v.is_empty() {
            continue;
        }
        write = write.max(row(
            format!("ceiling: fsync'd sequential write of {label}, {how}"),
            "MB/s",
            v,
            Default::default(),
        ));
        let mut v = Vec::new();
        for _ in 0..runs {
            v.push(ceilings::hashing_and_write(&file, data, bytes, direct)?);
        }
        hash_write = hash_write.max(row(
            format!("ceiling: MD5 ∥ SHA-512 ∥ fsync'd {how} write of {label} (3 threads)"),
            "MB/s",
            v,
            Default::default(),
        ));
    }
    let server = ceilings::SendfileServer::start(file.clone())?;
    let target = load::Target::local(server.addr);
    let mut v = Vec::new();
    // One unmeasured pass so the file is in the page cache ("warm", as the downloads).
    transfer::download_from(&target, "/", None, bytes).await?;
    for _ in 0..runs {
        let d = transfer::download_from(&target, "/", None, bytes).await?;
        v.push(transfer::mb_per_s(bytes, d));
    }
    drop(server);
    let sendfile = row(
        format!("ceiling: sendfile download of {label} over loopback"),
        "MB/s",
        v,
        Default::default(),
    );
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().min(8));
    let trivial = ceilings::TrivialServer::start(workers)?;
    let target = load::Target::local(trivial.addr);
    let op = load::Op::Get("/".into());
    let mut http = Vec::new();
    // The handler runs in this process: there is no other process to account for.
    let no_procs = cpu::Procs::default();
    for c in [1, 16, 64] {
        let mut v = Vec::new();
        let (mut p50, mut p99) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            let r =
                load::run_rate(&target, &op, c, (plan.warmup, plan.duration), &no_procs).await?;
            v.push(r.rate());
            p50.push(r.quantile_ms(0.5));
            p99.push(r.quantile_ms(0.99));
        }
        let m = row(
            format!("ceiling: trivial HTTP handler, c={c}"),
            "req/s",
            v,
            [p50, p99],
        );
        http.push((c, m));
    }
    trivial.stop().await;
    Ok(scenarios::Ceilings {
        hash_write: Some(Ceiling {
            name: format!("hash+write {}", report::num(hash_write)),
            value: hash_write,
            per_unit: 1.0,
        }),
        hash_or_write: Some(hash.min(write)),
        sendfile: Some(Ceiling {
            name: format!("sendfile {}", report::num(sendfile)),
            value: sendfile,
            per_unit: 1.0,
        }),
        http,
    })
}

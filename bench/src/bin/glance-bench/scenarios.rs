//! The figures measured against one glance-api: transfers (with the daemons' RSS sampled
//! during the largest), show and list over seeded images, and create+delete pairs. Each
//! becomes a [`Row`] with its ceiling and the target; nothing here asserts speed.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context as _, Result};

use hyper::{Method, StatusCode};

use crate::cpu::Procs;
use crate::daemons::{Daemon, RssSampler, RssWindow, proc_status_kib};
use crate::load::{self, Client, Op, Target};
use crate::report::{Ceiling, CpuRun, Row, max, median, min, num};
use crate::size_label;
use crate::transfer::{self, RandomData};

/// What to run, resolved from the command line.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Runs per figure.
    pub runs: usize,
    /// Transfer sizes in bytes.
    pub sizes: Vec<u64>,
    /// Images seeded for show/list.
    pub images: usize,
    /// Measured length of a rate run.
    pub duration: Duration,
    /// Unmeasured start of a rate run.
    pub warmup: Duration,
    /// Run the transfer section.
    pub transfer: bool,
    /// Run the show/list section.
    pub read: bool,
    /// Run the create+delete section.
    pub crud: bool,
    /// Delete the seeded images afterwards (a foreign endpoint).
    pub cleanup: bool,
    /// Runs per download figure (and as many sendfile runs beside them).
    pub download_runs: usize,
    /// Bytes each download run moves at least, in back-to-back transfers.
    pub download_bytes: u64,
    /// Transfers each download run makes at least.
    pub download_turns: u64,
}

/// The machine ceilings the figures are compared with.
#[derive(Debug, Clone, Default)]
pub struct Ceilings {
    /// MD5 ∥ SHA-512 ∥ fsync'd write of the same bytes: the upload ceiling.
    pub hash_write: Option<Ceiling>,
    /// min(hashing, write) measured apart, for the report.
    pub hash_or_write: Option<f64>,
    /// sendfile over loopback: the download ceiling.
    pub sendfile: Option<Ceiling>,
    /// Trivial handler req/s by concurrency.
    pub http: Vec<(usize, f64)>,
}

impl Ceilings {
    fn http(&self, c: usize, per_unit: f64) -> Option<Ceiling> {
        self.http
            .iter()
            .find(|(k, _)| *k == c)
            .map(|&(_, v)| Ceiling {
                name: format!("trivial c={c} {}", num(v)),
                value: v,
                per_unit,
            })
    }
}

const DISTROS: [&str; 10] = [
    "ubuntu", "debian", "centos", "rhel", "fedora", "cirros", "alpine", "arch", "suse", "windows",
];

/// What every section runs against: the plan, the backend's name in the report, the
/// glance-api to load, the processes and disk whose use is counted, and the file store's
/// directory when it is on this machine.
pub struct On<'a> {
    pub plan: &'a Plan,
    pub backend: &'a str,
    pub target: &'a Target,
    pub procs: &'a Procs,
    pub store: Option<std::path::PathBuf>,
    /// The live images of a database seeded beforehand: they count towards `plan.images`.
    pub preseeded: Vec<String>,
}

/// Every selected section against `target`; `daemons` are sampled for RSS (empty for a
/// foreign endpoint).
pub async fn run_all(
    on: &On<'_>,
    daemons: &[Daemon],
    data: &RandomData,
    ceils: &Ceilings,
    rows: &mut Vec<Row>,
) -> Result<()> {
    let (plan, backend) = (on.plan, on.backend);
    if plan.transfer {
        transfers(on, daemons, data, ceils, rows).await?;
    }
    if plan.read {
        reads(on, ceils, rows).await?;
    }
    if plan.crud {
        crud(on, ceils, rows).await?;
    }
    for d in daemons {
        if let Some(hwm) = proc_status_kib(d.pid(), "VmHWM:") {
            eprintln!(
                "[{backend}] {} VmHWM over the whole run: {:.1} MiB",
                d.name,
                hwm as f64 / 1024.0
            );
            if let Some(r) = rows.iter_mut().find(|r| {
                r.backend == backend && r.figure.starts_with(&format!("peak RSS {}", d.name))
            }) {
                r.note.push_str(&format!(
                    "; VmHWM {:.1} MiB over the whole run",
                    hwm as f64 / 1024.0
                ));
            }
        }
    }
    Ok(())
}

/// `--upload-container-format`, set once by main.
pub static UPLOAD_CONTAINER_FORMAT: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn create_body(name: &str) -> String {
    let container = UPLOAD_CONTAINER_FORMAT.get().map_or("bare", String::as_str);
    serde_json::json!({"name": name, "disk_format": "raw", "container_format": container})
        .to_string()
}

async fn transfers(
    on: &On<'_>,
    daemons: &[Daemon],
    data: &RandomData,
    ceils: &Ceilings,
    rows: &mut Vec<Row>,
) -> Result<()> {
    let On {
        plan,
        backend,
        target,
        procs,
        ..
    } = *on;
    let largest = plan.sizes.iter().copied().max().unwrap_or(0);
    let mut client = Client::new(target);
    let pids: Vec<u32> = daemons.iter().map(Daemon::pid).collect();
    let mut windows: Vec<Vec<RssWindow>> = vec![Vec::new(); daemons.len()];
    for &size in &plan.sizes {
        let label = size_label(size);
        let sample = size == largest && !pids.is_empty();
        let mut up = Vec::new();
        let mut up_cpu = Vec::new();
        let mut kept = None;
        for run in 0..plan.runs {
            let id = load::create_image(&mut client, create_body("glance-bench-transfer")).await?;
            let sampler = sample.then(|| RssSampler::start(pids.clone()));
            let cpu_start = procs.sample();
            let d = transfer::upload(&mut client, &id, size, data).await?;
            up_cpu.push(CpuRun {
                usage: procs.since(&cpu_start),
                units: size as f64 / 1e6,
            });
            if let Some(s) = sampler {
                for (i, w) in s.finish().into_iter().enumerate() {
                    log_window(backend, daemons[i].name, &format!("upload {label}"), &w);
                    windows[i].push(w);
                }
            }
            let mbs = transfer::mb_per_s(size, d);
            eprintln!("[{backend}] upload {label} run {}: {mbs:.0} MB/s", run + 1);
            up.push(mbs);
            // Keep one image for the downloads; the others only cost disk.
            if let Some(old) = kept.replace(id) {
                load::delete_image(&mut client, &old).await?;
            }
        }
        let id = kept.context("no image uploaded")?;
        let hw = ceils.hash_write.clone();
        let met = median(&up) >= 370.0 || hw.as_ref().is_some_and(|c| median(&up) >= 0.9 * c.value);
        rows.push(Row {
            figure: format!("upload {label}"),
            backend: backend.into(),
            unit: "MB/s",
            values: up,
            ceiling: hw,
            target: "≥ 370 MB/s or ≥ 90% of hash+write".into(),
            met: Some(met),
            note: ceils
                .hash_or_write
                .map(|v| format!("min(hash, write) apart: {}", num(v)))
                .unwrap_or_default(),
            cpu: up_cpu,
            cpu_unit: "MB",
            ..Row::default()
        });
        let path = format!("/v2/images/{id}/file");
        // One unmeasured pass so the image is in the page cache ("warm"): the file store
        // writes past the cache (O_DIRECT), so an upload no longer leaves it there.
        transfer::download(&mut client, &path, None, size).await?;
        // The ceiling of these downloads, measured beside them: the same bytes of the same
        // file, sent by a bare sendfile server, one transfer next to each of glance-api's
        // (in alternating order), so that a host whose speed drifts over the run moves both.
        let beside = match &on.store {
            Some(dir) if dir.join(&id).is_file() => {
                Some(crate::ceilings::SendfileServer::start(dir.clone())?)
            }
            _ => None,
        };
        let beside_target = beside.as_ref().map(|s| Target::local(s.addr));
        for (name, from) in [("download", None), ("Range second half", Some(size / 2))] {
            let want = size - from.unwrap_or(0);
            let mut v = Vec::new();
            let mut ceil_v = Vec::new();
            let mut cpu = Vec::new();
            // A run is `per_run` transfers of each kind, taking turns (the ceiling's first in
            // even runs), so a run moves `plan.download_bytes` or more on each side, in at
            // least `plan.download_turns` transfers; its figure is all its bytes over all its
            // time. Single transfers of the same bytes vary by half on a shared 2-core host,
            // both kinds alike, and the more turns a run takes, the more of that the two
            // sides share.
            let per_run = plan
                .download_bytes
                .div_ceil(want)
                .max(plan.download_turns)
                .max(1);
            for run in 0..plan.download_runs {
                let ceiling_first = run % 2 == 0;
                let mut run_cpu = crate::cpu::Usage::default();
                let (mut ours, mut theirs) = (Duration::ZERO, Duration::ZERO);
                for turn in 0..2 * per_run {
                    let ceiling_turn = (turn % 2 == 0) == ceiling_first;
                    match (ceiling_turn, beside_target.as_ref()) {
                        (true, Some(c)) => {
                            theirs +=
                                transfer::download_from(c, &format!("/{id}"), from, want).await?;
                        }
                        (true, None) => {}
                        (false, _) => {
                            let sampler = sample.then(|| RssSampler::start(pids.clone()));
                            let cpu_start = procs.sample();
                            ours += transfer::download_from(target, &path, from, want).await?;
                            run_cpu.add(&procs.since(&cpu_start));
                            if let Some(s) = sampler {
                                for (i, w) in s.finish().into_iter().enumerate() {
                                    let what = format!("{name} {label}");
                                    log_window(backend, daemons[i].name, &what, &w);
                                    windows[i].push(w);
                                }
                            }
                        }
                    }
                }
                let moved = want * per_run;
                cpu.push(CpuRun {
                    usage: run_cpu,
                    units: moved as f64 / 1e6,
                });
                let mbs = transfer::mb_per_s(moved, ours);
                if beside_target.is_some() {
                    let c = transfer::mb_per_s(moved, theirs);
                    ceil_v.push(c);
                    eprintln!(
                        "[{backend}] {name} {label} run {} ({per_run} transfers each): {mbs:.0} MB/s (sendfile beside it: {c:.0} MB/s)",
                        run + 1
                    );
                } else {
                    eprintln!(
                        "[{backend}] {name} {label} run {} ({per_run} transfers): {mbs:.0} MB/s",
                        run + 1
                    );
                }
                v.push(mbs);
            }
            let up_front = ceils.sendfile.clone();
            let mut note = String::new();
            let sf = if ceil_v.is_empty() {
                up_front
            } else {
                let beside_median = median(&ceil_v);
                note = format!(
                    "sendfile beside it: {} MB/s ({} runs, {}–{})",
                    num(beside_median),
                    ceil_v.len(),
                    num(min(&ceil_v)),
                    num(max(&ceil_v)),
                );
                if let Some(u) = &up_front {
                    note.push_str(&format!(
                        "; {:.0}% of the up-front {}",
                        100.0 * median(&v) / u.value,
                        u.name
                    ));
                }
                Some(Ceiling {
                    name: format!("sendfile beside {}", num(beside_median)),
                    value: beside_median,
                    per_unit: 1.0,
                })
            };
            let met = sf.as_ref().map(|c| median(&v) >= 0.9 * c.value);
            rows.push(Row {
                figure: format!("{name} {label}, warm"),
                backend: backend.into(),
                unit: "MB/s",
                values: v,
                ceiling: sf,
                target: "≥ 90% of sendfile".into(),
                met,
                note,
                cpu,
                cpu_unit: "MB",
                ..Row::default()
            });
        }
        drop(beside);
        load::delete_image(&mut client, &id).await?;
    }
    for (d, ws) in daemons.iter().zip(&windows) {
        if ws.is_empty() {
            continue;
        }
        let mib = |k: u64| k as f64 / 1024.0;
        let peaks: Vec<f64> = ws.iter().map(|w| mib(w.peak)).collect();
        let growth = ws
            .iter()
            .map(|w| mib(w.peak.saturating_sub(w.start)))
            .fold(0.0, f64::max);
        let drift = ws
            .iter()
            .map(|w| mib(w.end) - mib(w.start))
            .fold(f64::NEG_INFINITY, f64::max);
        let top = peaks.iter().copied().fold(0.0, f64::max);
        // "Flat": a transfer of any size adds at most a few chunk buffers, never its size.
        let flat = growth <= 16.0 && drift <= 4.0;
        rows.push(Row {
            figure: format!(
                "peak RSS {} during {} transfers",
                d.name,
                size_label(largest)
            ),
            backend: backend.into(),
            unit: "MiB",
            values: peaks,
            target: "< 64 MiB, flat".into(),
            met: Some(top < 64.0 && flat),
            note: format!(
                "max {top:.1} MiB; largest rise within a transfer +{growth:.1} MiB, start→end {drift:+.1} MiB ({})",
                if flat { "flat" } else { "not flat" }
            ),
            ..Row::default()
        });
    }
    Ok(())
}

fn seed_body(i: usize) -> String {
    let mut v = serde_json::json!({
        "name": format!("glance-bench-{i:05}"),
        "disk_format": "qcow2",
        "container_format": "bare",
        "visibility": "public",
        "tags": ["glance-bench", format!("tag-{}", i % 20)],
        "os_distro": DISTROS[i % DISTROS.len()],
    });
    for p in 1..10 {
        v[format!("prop_{p}")] = format!("value-{}", i % (p * 7)).into();
    }
    v.to_string()
}

async fn reads(on: &On<'_>, ceils: &Ceilings, rows: &mut Vec<Row>) -> Result<()> {
    let On {
        plan,
        backend,
        target,
        ..
    } = *on;
    let found = on.preseeded.clone();
    if !found.is_empty() {
        eprintln!(
            "[{backend}] the pre-seeded database has {} images",
            found.len()
        );
    }
    let t = std::time::Instant::now();
    let retries = Arc::new(AtomicUsize::new(0));
    let counter = retries.clone();
    let first = found.len();
    let mut seeded = load::run_count(
        target,
        plan.images.saturating_sub(first),
        16,
        move |mut c: Client, i| {
            let i = first + i;
            let counter = counter.clone();
            async move {
                // Seeding is not a measured figure: a failed create (e.g. SQLite's "database is
                // locked" under concurrent writers) is retried, and the retries are reported.
                let mut attempt = 0;
                loop {
                    match load::create_image(&mut c, seed_body(i)).await {
                        Ok(id) => return Ok((c, id)),
                        Err(e) if attempt >= 1000 => return Err(e),
                        Err(_) => {
                            attempt += 1;
                            counter.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis((2 * attempt).min(50))).await;
                        }
                    }
                }
            }
        },
    )
    .await?;
    let retried = retries.load(Ordering::Relaxed);
    eprintln!(
        "[{backend}] seeded {} images (10 properties, 2 tags each) in {:.1} s{}",
        seeded.len(),
        t.elapsed().as_secs_f64(),
        if retried > 0 {
            format!(" ({retried} creates failed and were retried)")
        } else {
            String::new()
        }
    );
    // Only the images this run created are deleted afterwards.
    let created = seeded.clone();
    let mut ids = found;
    ids.append(&mut seeded);
    let ids = Arc::new(ids);
    let cases: [(&str, Op); 3] = [
        ("show", Op::Show(ids.clone())),
        ("list 25", Op::Get("/v2/images?limit=25".into())),
        (
            "list 25, os_distro=cirros",
            Op::Get("/v2/images?limit=25&os_distro=cirros".into()),
        ),
    ];
    let n = ids.len();
    for (name, op) in &cases {
        for c in [1, 64] {
            let figure = format!("{name} of {n} images, c={c}");
            let target_words = match (*name, c) {
                ("show", 64) => "≥ 10,000 req/s",
                ("list 25", 64) => "≥ 3,000 req/s",
                _ => "",
            };
            let row = rate_row(on, op, c, &figure, ("req/s", "req")).await?;
            let met = match (*name, c) {
                ("show", 64) => Some(row.median() >= 10_000.0),
                ("list 25", 64) => Some(row.median() >= 3_000.0),
                _ => None,
            };
            rows.push(Row {
                ceiling: ceils.http(c, 1.0),
                target: target_words.into(),
                met,
                ..row
            });
        }
    }
    metadef_reads(on, ceils, rows).await?;
    if plan.cleanup {
        let ids = Arc::new(created);
        load::run_count(target, ids.len(), 16, move |mut c: Client, i| {
            let ids = ids.clone();
            async move {
                load::delete_image(&mut c, &ids[i]).await?;
                Ok((c, ()))
            }
        })
        .await?;
        eprintln!("[{backend}] deleted the seeded images");
    }
    Ok(())
}

/// The namespace the metadefs rows show: 50 properties, as a catalogue's larger ones.
const BENCH_NAMESPACE: &str = "glance-bench::Metadefs";
/// Namespaces the list row pages over (the shipped catalogue has 32).
const BENCH_NAMESPACES: usize = 32;

/// Show of a namespace with 50 properties and a list of namespaces (issue 32: ≥ 2,000 req/s at
/// c=64). The namespaces are made here and deleted afterwards.
async fn metadef_reads(on: &On<'_>, ceils: &Ceilings, rows: &mut Vec<Row>) -> Result<()> {
    let mut client = Client::new(on.target);
    let names: Vec<String> = std::iter::once(BENCH_NAMESPACE.to_string())
        .chain((1..BENCH_NAMESPACES).map(|i| format!("glance-bench::Metadefs{i}")))
        .collect();
    for (i, name) in names.iter().enumerate() {
        // A namespace left by an interrupted run is replaced.
        client
            .call(
                Method::DELETE,
                &format!("/v2/metadefs/namespaces/{name}"),
                &[],
                load::empty(),
            )
            .await?;
        let properties: serde_json::Map<String, serde_json::Value> = (0..if i == 0 { 50 } else { 5 })
            .map(|p| {
                (
                    format!("bench_property_{p}"),
                    serde_json::json!({"title": format!("Property {p}"), "type": "string",
                        "description": "A property of the benchmark's namespace", "maxLength": 255}),
                )
            })
            .collect();
        let body = serde_json::json!({
            "namespace": name, "visibility": "public", "properties": properties,
            "resource_type_associations": [{"name": "OS::Glance::Image", "prefix": "bench_"}],
        });
        let (status, bytes) = client
            .call(
                Method::POST,
                "/v2/metadefs/namespaces",
                &[("content-type", "application/json")],
                load::full(body.to_string()),
            )
            .await?;
        if status != StatusCode::CREATED {
            anyhow::bail!(
                "metadefs namespace create returned {status}: {}",
                String::from_utf8_lossy(&bytes)
            );
        }
    }
    let cases = [
        (
            "show a namespace with 50 properties",
            Op::Get(format!("/v2/metadefs/namespaces/{BENCH_NAMESPACE}")),
        ),
        (
            "list metadefs namespaces",
            Op::Get("/v2/metadefs/namespaces".into()),
        ),
    ];
    for (name, op) in &cases {
        for c in [1, 64] {
            let figure = format!("{name}, c={c}");
            let row = rate_row(on, op, c, &figure, ("req/s", "req")).await?;
            let (target, met) = if c == 64 {
                ("≥ 2,000 req/s", Some(row.median() >= 2_000.0))
            } else {
                ("", None)
            };
            rows.push(Row {
                ceiling: ceils.http(c, 1.0),
                target: target.into(),
                met,
                ..row
            });
        }
    }
    for name in &names {
        client
            .call(
                Method::DELETE,
                &format!("/v2/metadefs/namespaces/{name}"),
                &[],
                load::empty(),
            )
            .await?;
    }
    Ok(())
}

async fn crud(on: &On<'_>, ceils: &Ceilings, rows: &mut Vec<Row>) -> Result<()> {
    for c in [1, 16] {
        let figure = format!("create+delete pairs, c={c}");
        let row = rate_row(on, &Op::CreateDelete, c, &figure, ("pairs/s", "pair")).await?;
        let (target_words, met) = if c == 16 {
            (
                "≥ 1,000 pairs/s, p99 < 100 ms",
                Some(row.median() >= 1_000.0 && median(&row.p99_ms) < 100.0),
            )
        } else {
            ("", None)
        };
        rows.push(Row {
            // A pair is two requests: compare with half the trivial handler's rate.
            ceiling: ceils.http(c, 2.0),
            target: target_words.into(),
            met,
            ..row
        });
    }
    Ok(())
}

/// A rate figure: `(unit, cpu_unit)` are its rate's unit and what one of them is.
async fn rate_row(
    on: &On<'_>,
    op: &Op,
    c: usize,
    figure: &str,
    (unit, cpu_unit): (&'static str, &'static str),
) -> Result<Row> {
    let On {
        plan,
        backend,
        target,
        procs,
        ..
    } = *on;
    let mut row = Row {
        figure: figure.into(),
        backend: backend.into(),
        unit,
        cpu_unit,
        ..Row::default()
    };
    let mut errors = 0;
    let mut first_error = None;
    for run in 0..plan.runs {
        let r = load::run_rate(target, op, c, (plan.warmup, plan.duration), procs).await?;
        eprintln!(
            "[{backend}] {figure} run {}: {:.0} {unit}, p50 {:.2} ms, p99 {:.2} ms{}",
            run + 1,
            r.rate(),
            r.quantile_ms(0.5),
            r.quantile_ms(0.99),
            if r.errors > 0 {
                format!(", {} errors", r.errors)
            } else {
                String::new()
            }
        );
        row.values.push(r.rate());
        row.p50_ms.push(r.quantile_ms(0.5));
        row.p99_ms.push(r.quantile_ms(0.99));
        row.cpu.push(CpuRun {
            units: r.ops as f64,
            usage: r.cpu,
        });
        errors += r.errors;
        first_error = first_error.or(r.first_error);
    }
    row.failed = errors;
    if errors > 0 {
        row.note = format!(
            "{errors} failed requests, first: {}",
            first_error.unwrap_or_default()
        );
    }
    Ok(row)
}

/// One transfer's RSS window of one daemon, on stderr.
fn log_window(backend: &str, daemon: &str, what: &str, w: &RssWindow) {
    let mib = |k: u64| k as f64 / 1024.0;
    eprintln!(
        "[{backend}] {daemon} RSS during {what}: start {:.1}, peak {:.1}, end {:.1} MiB",
        mib(w.start),
        mib(w.peak),
        mib(w.end)
    );
}

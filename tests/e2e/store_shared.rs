//! Several processes on one image directory, as glance-api nodes sharing an NFS datadir:
//! each reads what another wrote, concurrent writers never collide, a dead writer's partial file
//! is cleaned by age while a live writer's never is, and memory stays flat whatever the size.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

fn peer() -> Command {
    Command::new(env!("CARGO_BIN_EXE_store-peer"))
}

fn run(cmd: &mut Command) -> Result<Value> {
    let out = cmd.output()?;
    if !out.status.success() {
        bail!(
            "store-peer failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

fn spawn_writer(dir: &Path, id: &str, size: u64, seed: u64, delay_ms: u64) -> Result<Child> {
    Ok(peer()
        .args([
            "write",
            "--id",
            id,
            "--size",
            &size.to_string(),
            "--seed",
            &seed.to_string(),
        ])
        .args(["--delay-ms", &delay_ms.to_string()])
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?)
}

fn finish(child: Child) -> Result<Value> {
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("writer failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

fn gen_md5(size: u64, seed: u64) -> Result<String> {
    let v = run(peer().args([
        "gen-md5",
        "--size",
        &size.to_string(),
        "--seed",
        &seed.to_string(),
    ]))?;
    Ok(v["checksum"].as_str().context("checksum")?.to_string())
}

fn partials(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.retain(|n| n.ends_with(".partial"));
    v
}

#[test]
fn processes_read_each_others_images_and_concurrent_writers_never_collide() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let size = 3 * 1024 * 1024 + 11;
    let ids: Vec<String> = (0..4)
        .map(|i| format!("aaaaaaaa-0000-4000-8000-00000000000{i}"))
        .collect();
    // Four writers at once, on one directory.
    let writers: Vec<Child> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| spawn_writer(dir.path(), id, size, i as u64 + 1, 0))
        .collect::<Result<_>>()?;
    let results: Vec<Value> = writers.into_iter().map(finish).collect::<Result<_>>()?;
    for (i, (id, w)) in ids.iter().zip(&results).enumerate() {
        let expected = gen_md5(size, i as u64 + 1)?;
        assert_eq!(w["checksum"], expected.as_str(), "{id}: writer's digest");
        assert_eq!(w["size"], size);
        // Another process reads it back.
        let location = w["location"].as_str().context("location")?;
        let r = run(peer()
            .args(["read", "--location", location])
            .arg("--dir")
            .arg(dir.path()))?;
        assert_eq!(
            r["checksum"],
            expected.as_str(),
            "{id}: read by another process"
        );
        assert_eq!(r["size"], size);
    }
    assert!(
        partials(dir.path()).is_empty(),
        "{:?}",
        partials(dir.path())
    );
    // The same id written twice: exactly one wins, the other is refused, nothing is left over.
    let dup = "bbbbbbbb-0000-4000-8000-000000000000";
    let a = spawn_writer(dir.path(), dup, size, 7, 0)?;
    let b = spawn_writer(dir.path(), dup, size, 8, 0)?;
    let outcomes = [finish(a), finish(b)];
    let won = outcomes.iter().filter(|o| o.is_ok()).count();
    assert_eq!(won, 1, "{outcomes:?}");
    let loser = outcomes
        .iter()
        .find_map(|o| o.as_ref().err())
        .context("a loser")?;
    assert!(loser.to_string().contains("already exists"), "{loser}");
    assert!(partials(dir.path()).is_empty());
    Ok(())
}

#[test]
fn a_dead_writers_partial_is_cleaned_by_age_never_a_live_writers() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let size = 8 * 1024 * 1024;
    let dead_id = "cccccccc-0000-4000-8000-00000000dead";
    let live_id = "cccccccc-0000-4000-8000-00000000a11e";
    // 128 chunks of 64 KiB, one every 60 ms: the live writer runs for about 8 s.
    let mut dead = spawn_writer(dir.path(), dead_id, size, 1, 60)?;
    let live = spawn_writer(dir.path(), live_id, size, 2, 60)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while partials(dir.path()).len() < 2 {
        if Instant::now() > deadline {
            bail!("writers did not start: {:?}", partials(dir.path()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    dead.kill()?;
    dead.wait()?;
    // Clean with a 2 s age limit until the dead writer's file goes.
    loop {
        let r = run(peer()
            .args(["clean", "--max-age", "2"])
            .arg("--dir")
            .arg(dir.path()))?;
        let left = partials(dir.path());
        assert!(
            left.iter().any(|p| p.contains(live_id)),
            "the live writer's partial was removed: {left:?}"
        );
        if r["removed"] == 1 {
            assert!(!left.iter().any(|p| p.contains(dead_id)), "{left:?}");
            break;
        }
        assert_eq!(r["removed"], 0);
        if Instant::now() > deadline {
            bail!("the dead writer's partial was never cleaned: {left:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let w = finish(live)?;
    assert_eq!(
        w["checksum"],
        gen_md5(size, 2)?.as_str(),
        "the live writer finished intact"
    );
    assert!(dir.path().join(live_id).exists());
    assert!(!dir.path().join(dead_id).exists());
    assert!(partials(dir.path()).is_empty());
    Ok(())
}

#[test]
fn memory_stays_flat_whatever_the_image_size() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let small = finish(spawn_writer(dir.path(), "small", 8 * 1024 * 1024, 1, 0)?)?;
    let big = finish(spawn_writer(dir.path(), "big", 256 * 1024 * 1024, 2, 0)?)?;
    let (s, b) = (
        small["vm_hwm_kib"].as_u64().context("hwm")?,
        big["vm_hwm_kib"].as_u64().context("hwm")?,
    );
    println!("peak RSS: 8 MiB image {s} KiB, 256 MiB image {b} KiB");
    assert!(s > 0 && b > 0);
    assert!(
        b < s + 16 * 1024,
        "peak RSS grew from {s} KiB to {b} KiB for a 32x larger image"
    );
    Ok(())
}

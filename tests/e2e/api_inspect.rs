//! Format inspection on upload (issue 29): real images made by `qemu-img`, and hostile ones
//! built on purpose, uploaded through glance-api. For each: the status, `virtual_size`
//! against `qemu-img info`, and for a refused one that the image is `queued` again and its
//! bytes are gone from the store.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use reqwest::Method;
use serde_json::{Value, json};

use crate::cloud::TestCloud;
use crate::harness::expect_error;

/// `qemu-img` is there, or (outside CI) the reason these tests skip.
fn qemu_ready() -> bool {
    let ok = Command::new("qemu-img")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
        && Command::new("sgdisk")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "qemu-img and sgdisk are missing: CI must install qemu-utils and gdisk (scripts/test.sh)"
        );
        eprintln!("skipping: qemu-img or sgdisk missing (apt-get install qemu-utils gdisk)");
    }
    ok
}

fn run(dir: &Path, cmd: &str, args: &[&str]) -> Result<()> {
    let out = Command::new(cmd).args(args).current_dir(dir).output()?;
    anyhow::ensure!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

fn qemu_img(dir: &Path, args: &[&str]) -> Result<PathBuf> {
    run(dir, "qemu-img", args)?;
    // The file made is the argument after the options: find the first that exists now.
    let made = args
        .iter()
        .rev()
        .map(|a| dir.join(a))
        .find(|p| p.is_file())
        .context("qemu-img made no file")?;
    Ok(made)
}

/// `qemu-img info`'s virtual size of a file, read as the format `fmt`.
fn qemu_virtual_size(path: &Path, fmt: &str) -> Result<u64> {
    let out = Command::new("qemu-img")
        .args(["info", "--output=json", "-f", fmt])
        .arg(path)
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "qemu-img info: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout)?;
    v["virtual-size"].as_u64().context("no virtual-size")
}

/// A small ISO 9660 image: 16 empty sectors, a primary volume descriptor, a terminator.
fn iso_bytes(blocks: u32) -> Vec<u8> {
    let mut d = vec![0u8; blocks as usize * 2048];
    let pvd = 0x8000;
    d[pvd] = 1;
    d[pvd + 1..pvd + 6].copy_from_slice(b"CD001");
    d[pvd + 6] = 1;
    d[pvd + 80..pvd + 84].copy_from_slice(&blocks.to_le_bytes());
    d[pvd + 84..pvd + 88].copy_from_slice(&blocks.to_be_bytes());
    d[pvd + 128..pvd + 130].copy_from_slice(&2048u16.to_le_bytes());
    d[pvd + 130..pvd + 132].copy_from_slice(&2048u16.to_be_bytes());
    let term = pvd + 2048;
    d[term] = 255;
    d[term + 1..term + 6].copy_from_slice(b"CD001");
    d[term + 6] = 1;
    d
}

fn read(p: &Path) -> Result<Vec<u8>> {
    Ok(std::fs::read(p)?)
}

/// One upload and what must come of it.
struct Case {
    name: &'static str,
    disk_format: &'static str,
    container_format: &'static str,
    data: Vec<u8>,
    /// 204 with this virtual_size (`None`: null), or 415 whose message holds the text.
    expect: Result<Option<u64>, &'static str>,
}

async fn check(c: &TestCloud, case: Case) -> Result<()> {
    let img = c
        .create(json!({"name": case.name, "disk_format": case.disk_format,
                       "container_format": case.container_format}))
        .await?;
    let id = img["id"].as_str().context("id")?.to_string();
    let res = c
        .req(Method::PUT, &format!("/v2/images/{id}/file"))
        .header("Content-Type", "application/octet-stream")
        .body(case.data.clone())
        .send()
        .await?;
    match case.expect {
        Ok(virtual_size) => {
            let status = res.status();
            anyhow::ensure!(
                status == 204,
                "{}: upload returned {status}: {}",
                case.name,
                res.text().await?
            );
            let img = c.show(&id).await?;
            anyhow::ensure!(img["status"] == "active", "{}: {img}", case.name);
            anyhow::ensure!(
                img["virtual_size"] == json!(virtual_size),
                "{}: virtual_size {} but expected {virtual_size:?}",
                case.name,
                img["virtual_size"]
            );
            anyhow::ensure!(c.files().contains(&id), "{}: bytes kept", case.name);
        }
        Err(needle) => {
            expect_error(res, 415, needle)
                .await
                .with_context(|| case.name)?;
            let img = c.show(&id).await?;
            anyhow::ensure!(
                img["status"] == "queued" && img["size"].is_null() && img["virtual_size"].is_null(),
                "{}: a refused image goes back to queued: {img}",
                case.name
            );
            anyhow::ensure!(
                !c.files().iter().any(|f| f.contains(&id)),
                "{}: refused bytes are gone from the store: {:?}",
                case.name,
                c.files()
            );
        }
    }
    Ok(())
}

const UNSAFE: &str = "Image failed safety checks";
const MISMATCH: &str = "does not match disk_format";

/// Every format, made by qemu-img, is accepted as itself with qemu-img's virtual size.
#[actix_web::test]
async fn real_images_of_every_format_get_their_virtual_size() -> Result<()> {
    if !qemu_ready() {
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    let c = TestCloud::start().await?;
    let mut cases = Vec::new();
    // (disk_format, qemu-img format, create args)
    let made: Vec<(&'static str, &'static str, PathBuf)> = vec![
        ("raw", "raw", {
            let p = d.join("r.raw");
            std::fs::write(&p, crate::cloud::bytes(3, 3 << 20))?;
            p
        }),
        (
            "qcow2",
            "qcow2",
            qemu_img(
                d,
                &[
                    "create",
                    "-f",
                    "qcow2",
                    "-o",
                    "compat=0.10",
                    "v2.qcow2",
                    "1G",
                ],
            )?,
        ),
        (
            "qcow2",
            "qcow2",
            qemu_img(d, &["create", "-f", "qcow2", "v3.qcow2", "10G"])?,
        ),
        (
            "qcow2",
            "qcow2",
            qemu_img(
                d,
                &[
                    "create",
                    "-f",
                    "qcow2",
                    "-o",
                    "cluster_size=2M,extended_l2=on",
                    "ext.qcow2",
                    "3G",
                ],
            )?,
        ),
        (
            "vhd",
            "vpc",
            qemu_img(d, &["create", "-f", "vpc", "v.vhd", "100M"])?,
        ),
        (
            "vhdx",
            "vhdx",
            qemu_img(d, &["create", "-f", "vhdx", "v.vhdx", "2G"])?,
        ),
        (
            "vmdk",
            "vmdk",
            qemu_img(d, &["create", "-f", "vmdk", "ms.vmdk", "700M"])?,
        ),
        (
            "vmdk",
            "vmdk",
            qemu_img(
                d,
                &[
                    "create",
                    "-f",
                    "vmdk",
                    "-o",
                    "subformat=streamOptimized",
                    "so.vmdk",
                    "64M",
                ],
            )?,
        ),
        (
            "vdi",
            "vdi",
            qemu_img(d, &["create", "-f", "vdi", "v.vdi", "5G"])?,
        ),
        ("iso", "raw", {
            let p = d.join("i.iso");
            std::fs::write(&p, iso_bytes(300))?;
            p
        }),
        ("raw", "raw", {
            // A raw disk with a real GPT.
            let p = d.join("gpt.raw");
            std::fs::write(&p, vec![0u8; 4 << 20])?;
            run(d, "sgdisk", &["-n", "1:0:0", "gpt.raw"])?;
            p
        }),
    ];
    // qemu-img convert of real data into qcow2 (clusters filled, not only a header).
    let src = d.join("src.raw");
    std::fs::write(&src, crate::cloud::bytes(5, 5 << 20))?;
    let conv = qemu_img(
        d,
        &[
            "convert",
            "-f",
            "raw",
            "-O",
            "qcow2",
            "src.raw",
            "conv.qcow2",
        ],
    )?;
    let mut made = made;
    made.push(("qcow2", "qcow2", conv));
    // An ISO that also carries a GPT is an iso.
    let hybrid = {
        let p = d.join("hybrid.iso");
        std::fs::write(&p, iso_bytes(2048))?;
        run(d, "sgdisk", &["-n", "1:0:0", "hybrid.iso"])?;
        // sgdisk also writes a backup GPT at the end; the ISO descriptors at 32 KiB stay.
        p
    };
    made.push(("iso", "raw", hybrid));
    for (disk, qfmt, path) in made {
        let vs = qemu_virtual_size(&path, qfmt)?;
        cases.push(Case {
            name: Box::leak(
                path.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned()
                    .into_boxed_str(),
            ),
            disk_format: disk,
            container_format: "bare",
            data: read(&path)?,
            expect: Ok(Some(vs)),
        });
    }
    for case in cases {
        check(&c, case).await?;
    }
    Ok(())
}

/// The hostile ones are refused with 415 and nothing is kept.
#[actix_web::test]
async fn hostile_images_are_refused_and_leave_nothing() -> Result<()> {
    if !qemu_ready() {
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    let c = TestCloud::start().await?;
    qemu_img(d, &["create", "-f", "raw", "base.raw", "1M"])?;
    let backing = read(&qemu_img(
        d,
        &[
            "create", "-f", "qcow2", "-b", "base.raw", "-F", "raw", "b.qcow2",
        ],
    )?)?;
    let data_file = read(&qemu_img(
        d,
        &[
            "create",
            "-f",
            "qcow2",
            "-o",
            "data_file=data.raw",
            "df.qcow2",
            "1M",
        ],
    )?)?;
    let qed = read(&qemu_img(d, &["create", "-f", "qed", "q.qed", "1M"])?)?;
    let plain = read(&qemu_img(d, &["create", "-f", "qcow2", "p.qcow2", "1G"])?)?;
    let sparse = read(&qemu_img(d, &["create", "-f", "vmdk", "s.vmdk", "10M"])?)?;

    // A VMDK descriptor whose flat extent is the host's /etc/passwd (OSSA-2023-002).
    let flat = b"# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n\
createType=\"monolithicFlat\"\n\nRW 2048 FLAT \"/etc/passwd\" 0\n\nddb.adapterType = \"ide\"\n"
        .to_vec();
    // The same inside a sparse vmdk whose createType is allowed: its embedded descriptor's
    // extent now names a path.
    let sparse_passwd = {
        let mut v = sparse.clone();
        let at = find(&v, b"SPARSE \"s.vmdk\"").context("descriptor extent")?;
        let repl = b"SPARSE \"/etc/passwd\"";
        v.splice(at..at + 15, repl.iter().copied());
        v.truncate(sparse.len());
        v
    };
    // qcow2 hidden in an ISO: an ISO volume descriptor in the qcow2's unused first cluster.
    let polyglot = {
        let mut v = plain.clone();
        let iso = iso_bytes(32);
        v.resize(v.len().max(0x9000), 0);
        v[0x8000..0x9000].copy_from_slice(&iso[0x8000..0x9000]);
        v
    };
    let truncated = plain[..40].to_vec();
    let absurd = {
        let mut v = plain.clone();
        v[24..32].copy_from_slice(&u64::MAX.to_be_bytes());
        v
    };
    let unknown_bits = {
        let mut v = plain.clone();
        v[72..80].copy_from_slice(&(1u64 << 40).to_be_bytes());
        v
    };
    let bad_mbr = {
        let p = d.join("badmbr.raw");
        std::fs::write(&p, vec![0u8; 2 << 20])?;
        run(d, "sgdisk", &["-n", "1:0:0", "badmbr.raw"])?;
        let mut v = read(&p)?;
        v[446] = 0x42; // boot flag neither 0x00 nor 0x80
        v
    };
    let cases = vec![
        Case {
            name: "qcow2 backing file",
            disk_format: "qcow2",
            container_format: "bare",
            data: backing.clone(),
            expect: Err(UNSAFE),
        },
        Case {
            name: "qcow2 data file",
            disk_format: "qcow2",
            container_format: "bare",
            data: data_file,
            expect: Err(UNSAFE),
        },
        Case {
            name: "qcow2 unknown bits",
            disk_format: "qcow2",
            container_format: "bare",
            data: unknown_bits,
            expect: Err(UNSAFE),
        },
        Case {
            name: "qcow2 truncated",
            disk_format: "qcow2",
            container_format: "bare",
            data: truncated,
            expect: Err(UNSAFE),
        },
        Case {
            name: "qcow2 absurd size",
            disk_format: "qcow2",
            container_format: "bare",
            data: absurd,
            expect: Err(UNSAFE),
        },
        Case {
            name: "qed",
            disk_format: "qcow2",
            container_format: "bare",
            data: qed,
            expect: Err(MISMATCH),
        },
        Case {
            name: "vmdk flat /etc/passwd",
            disk_format: "vmdk",
            container_format: "bare",
            data: flat,
            expect: Err(UNSAFE),
        },
        Case {
            name: "sparse vmdk extent /etc/passwd",
            disk_format: "vmdk",
            container_format: "bare",
            data: sparse_passwd,
            expect: Err(UNSAFE),
        },
        Case {
            name: "polyglot as qcow2",
            disk_format: "qcow2",
            container_format: "bare",
            data: polyglot.clone(),
            expect: Err(UNSAFE),
        },
        Case {
            name: "polyglot as iso",
            disk_format: "iso",
            container_format: "bare",
            data: polyglot,
            expect: Err(MISMATCH),
        },
        Case {
            name: "qcow2 as vmdk",
            disk_format: "vmdk",
            container_format: "bare",
            data: plain.clone(),
            expect: Err(MISMATCH),
        },
        Case {
            name: "raw as qcow2",
            disk_format: "qcow2",
            container_format: "bare",
            data: crate::cloud::bytes(9, 70_000),
            expect: Err(MISMATCH),
        },
        Case {
            name: "bad MBR under a GPT",
            disk_format: "raw",
            container_format: "bare",
            data: bad_mbr.clone(),
            expect: Err(UNSAFE),
        },
        // Glance's other branches: raw may hold another format (kept as raw, plain size);
        // the formats that cannot be inspected pass raw-looking bytes; only bare is looked at.
        Case {
            name: "qcow2 declared raw",
            disk_format: "raw",
            container_format: "bare",
            data: plain.clone(),
            expect: Ok(Some(plain.len() as u64)),
        },
        Case {
            name: "ami",
            disk_format: "ami",
            container_format: "bare",
            data: crate::cloud::bytes(2, 5000),
            expect: Ok(None),
        },
        Case {
            name: "backing file in ovf",
            disk_format: "qcow2",
            container_format: "ovf",
            data: backing,
            expect: Ok(None),
        },
    ];
    for case in cases {
        check(&c, case).await?;
    }

    // The [image_format] options.
    let conf = "[image_format]\nrequire_image_format_match = false\nvmdk_allowed_types =\ngpt_safety_checks_nonfatal = mbr\n";
    let c = TestCloud::with_config("sqlite", conf).await?;
    for case in [
        Case {
            name: "mismatch allowed",
            disk_format: "vmdk",
            container_format: "bare",
            data: plain,
            expect: Ok(None),
        },
        Case {
            name: "every vmdk refused",
            disk_format: "vmdk",
            container_format: "bare",
            data: sparse,
            expect: Err(UNSAFE),
        },
        Case {
            name: "mbr check non-fatal",
            disk_format: "raw",
            container_format: "bare",
            data: bad_mbr.clone(),
            expect: Ok(Some(bad_mbr.len() as u64)),
        },
    ] {
        check(&c, case).await?;
    }
    Ok(())
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

//! The format parsers: each looks at the captured regions and says whether the image is its
//! format, with the virtual size and whatever makes it unsafe.

use crate::{HEAD, MAX_REGION, MAX_VMDK_DESCRIPTOR, Purpose, Region, VHDX_REGION_TABLE};

/// A disk format the inspector recognises, named as in `disk_format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// No other format matched: plain bytes.
    Raw,
    /// Raw bytes holding a GUID partition table (raw-compatible).
    Gpt,
    /// QEMU copy-on-write, versions 2 and 3.
    Qcow2,
    /// Virtual PC / Hyper-V VHD (`vpc` in qemu-img).
    Vhd,
    /// Hyper-V VHDX.
    Vhdx,
    /// VMware VMDK (sparse, streamOptimized, or a bare text descriptor).
    Vmdk,
    /// VirtualBox VDI.
    Vdi,
    /// QEMU enhanced disk (always refused).
    Qed,
    /// ISO 9660.
    Iso,
}

impl Format {
    /// The `disk_format` name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Raw => "raw",
            Self::Gpt => "gpt",
            Self::Qcow2 => "qcow2",
            Self::Vhd => "vhd",
            Self::Vhdx => "vhdx",
            Self::Vmdk => "vmdk",
            Self::Vdi => "vdi",
            Self::Qed => "qed",
            Self::Iso => "iso",
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A reason the image is unsafe, named by the check that found it (`gpt` and `mbr` can be
/// made non-fatal by `[image_format] gpt_safety_checks_nonfatal`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// The check: `backing_file`, `data_file`, `unknown_features`, `qed`, `vmdk_extents`,
    /// `header`, `size`, `multiple_formats`, `mbr`, `gpt`, ...
    pub check: &'static str,
    /// What it found.
    pub reason: String,
}

fn issue(check: &'static str, reason: impl Into<String>) -> Issue {
    Issue {
        check,
        reason: reason.into(),
    }
}

/// What the inspector found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspection {
    /// The format: the one non-raw format that matched, `gpt`, or `raw`.
    pub format: Format,
    /// Every non-raw format whose header matched (more than one is a polyglot).
    pub matched: Vec<Format>,
    /// The size the image has when attached, when known.
    pub virtual_size: Option<u64>,
    /// Bytes in the stream.
    pub size: u64,
    /// A VMDK descriptor's `createType` (checked against `vmdk_allowed_types` by the rules).
    pub vmdk_create_type: Option<String>,
    /// What the safety checks found.
    pub issues: Vec<Issue>,
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at.checked_add(4)?)
        .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

fn be64(b: &[u8], at: usize) -> Option<u64> {
    let s = b.get(at..at.checked_add(8)?)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Some(u64::from_be_bytes(a))
}

fn le16(b: &[u8], at: usize) -> Option<u16> {
    b.get(at..at.checked_add(2)?)
        .map(|s| u16::from_le_bytes([s[0], s[1]]))
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at.checked_add(4)?)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn le64(b: &[u8], at: usize) -> Option<u64> {
    let s = b.get(at..at.checked_add(8)?)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Some(u64::from_le_bytes(a))
}

fn region(done: &[Region], p: Purpose) -> Option<&Region> {
    done.iter().find(|r| r.purpose == p)
}

/// The VHDX metadata region's GUID (8B7CA206-4790-4B9A-B8FE-575F050F886E) as stored.
const VHDX_METADATA_GUID: [u8; 16] = [
    0x06, 0xA2, 0x7C, 0x8B, 0x90, 0x47, 0x9A, 0x4B, 0xB8, 0xFE, 0x57, 0x5F, 0x05, 0x0F, 0x88, 0x6E,
];
/// The VHDX "virtual disk size" metadata item (2FA54224-CD1B-4876-B211-5DBED83BF4B8).
const VHDX_DISK_SIZE_GUID: [u8; 16] = [
    0x24, 0x42, 0xA5, 0x2F, 0x1B, 0xCD, 0x76, 0x48, 0xB2, 0x11, 0x5D, 0xBE, 0xD8, 0x3B, 0xF4, 0xB8,
];

/// Regions to capture next, now that `r` is complete (or ended with the data).
pub(crate) fn follow_ups(r: &Region, done: &[Region]) -> Vec<Region> {
    let b = &r.data;
    match r.purpose {
        Purpose::Head => {
            let mut next = Vec::new();
            if b.starts_with(b"vhdxfile") {
                next.push(Region::new(
                    VHDX_REGION_TABLE,
                    MAX_REGION,
                    Purpose::VhdxRegionTable,
                ));
            }
            if let Some((off, len)) = vmdk_descriptor_span(b)
                && off.saturating_add(len) > HEAD as u64
                && len <= MAX_VMDK_DESCRIPTOR
            {
                next.push(Region::new(
                    off,
                    usize::try_from(len).unwrap_or(0),
                    Purpose::VmdkDescriptor,
                ));
            }
            next
        }
        Purpose::VhdxRegionTable => {
            if !b.starts_with(b"regi") {
                return Vec::new();
            }
            let count = le32(b, 8).unwrap_or(0).min(2047) as usize;
            for i in 0..count {
                let e = 16 + i * 32;
                if b.get(e..e + 16) == Some(&VHDX_METADATA_GUID[..])
                    && let Some(off) = le64(b, e + 16)
                {
                    return vec![Region::new(
                        off,
                        MAX_REGION,
                        Purpose::VhdxMetadataTable { region_start: off },
                    )];
                }
            }
            Vec::new()
        }
        Purpose::VhdxMetadataTable { region_start } => {
            if !b.starts_with(b"metadata") {
                return Vec::new();
            }
            let count = usize::from(le16(b, 10).unwrap_or(0).min(2047));
            for i in 0..count {
                let e = 32 + i * 32;
                if b.get(e..e + 16) == Some(&VHDX_DISK_SIZE_GUID[..])
                    && let Some(off) = le32(b, e + 16)
                {
                    let _ = done;
                    return vec![Region::new(
                        region_start.saturating_add(u64::from(off)),
                        8,
                        Purpose::VhdxDiskSize,
                    )];
                }
            }
            Vec::new()
        }
        Purpose::VhdxDiskSize | Purpose::VmdkDescriptor => Vec::new(),
    }
}

/// A sparse VMDK's embedded descriptor: (offset, length) in bytes.
fn vmdk_descriptor_span(head: &[u8]) -> Option<(u64, u64)> {
    if !head.starts_with(b"KDMV") {
        return None;
    }
    let off = le64(head, 28)?.checked_mul(512)?;
    let len = le64(head, 36)?.checked_mul(512)?;
    Some((off, len))
}

/// One format's finding.
struct Found {
    format: Format,
    virtual_size: Option<u64>,
    create_type: Option<String>,
    issues: Vec<Issue>,
}

impl Found {
    fn new(format: Format) -> Self {
        Self {
            format,
            virtual_size: None,
            create_type: None,
            issues: Vec::new(),
        }
    }
}

pub(crate) fn inspect(done: &[Region], missed: &[Purpose], size: u64) -> Inspection {
    let empty = Vec::new();
    let head = region(done, Purpose::Head).map_or(&empty, |r| &r.data);
    let mut found: Vec<Found> = [
        qcow2(head),
        qed(head),
        vhd(head),
        vhdx(head, done, missed),
        vmdk(head, done, missed),
        vdi(head),
        iso(head),
    ]
    .into_iter()
    .flatten()
    .collect();
    let gpt = gpt(head);
    let matched: Vec<Format> = found.iter().map(|f| f.format).collect();
    let mut issues = Vec::new();
    let mut vmdk_create_type = None;
    let (format, virtual_size) = match found.len() {
        0 => match gpt {
            Some(g) => {
                issues.extend(g.issues);
                (Format::Gpt, Some(size))
            }
            None => (Format::Raw, Some(size)),
        },
        _ => {
            // An ISO may also carry a GPT (hybrid boot images): that is still an ISO. Any
            // other format next to a partition table, or two formats at once, is a polyglot.
            let first = found.remove(0);
            if !found.is_empty() || (gpt.is_some() && first.format != Format::Iso) {
                let mut all: Vec<&str> = matched.iter().map(|f| f.name()).collect();
                if gpt.is_some() && first.format != Format::Iso {
                    all.push("gpt");
                }
                issues.push(issue(
                    "multiple_formats",
                    format!("the image is several formats at once: {}", all.join(", ")),
                ));
            }
            issues.extend(first.issues);
            vmdk_create_type = first.create_type;
            (first.format, first.virtual_size)
        }
    };
    if let Some(v) = virtual_size
        && i64::try_from(v).is_err()
    {
        issues.push(issue(
            "size",
            format!("virtual size {v} is larger than any disk can be"),
        ));
    }
    Inspection {
        format,
        matched,
        virtual_size: virtual_size.filter(|v| i64::try_from(*v).is_ok()),
        size,
        vmdk_create_type,
        issues,
    }
}

const QCOW2_INCOMPAT_DIRTY: u64 = 1;
const QCOW2_INCOMPAT_CORRUPT: u64 = 1 << 1;
const QCOW2_INCOMPAT_DATA_FILE: u64 = 1 << 2;
const QCOW2_INCOMPAT_COMPRESSION: u64 = 1 << 3;
const QCOW2_INCOMPAT_EXTL2: u64 = 1 << 4;
const QCOW2_KNOWN_INCOMPAT: u64 = QCOW2_INCOMPAT_DIRTY
    | QCOW2_INCOMPAT_CORRUPT
    | QCOW2_INCOMPAT_DATA_FILE
    | QCOW2_INCOMPAT_COMPRESSION
    | QCOW2_INCOMPAT_EXTL2;
/// Header extension naming an external data file.
const QCOW2_EXT_DATA_FILE: u32 = 0x4441_5441;

fn qcow2(h: &[u8]) -> Option<Found> {
    if !h.starts_with(b"QFI\xfb") {
        return None;
    }
    let mut f = Found::new(Format::Qcow2);
    let (Some(version), Some(backing), Some(cluster_bits), Some(size)) =
        (be32(h, 4), be64(h, 8), be32(h, 20), be64(h, 24))
    else {
        f.issues.push(issue("header", "qcow2 header is truncated"));
        return Some(f);
    };
    if !(2..=3).contains(&version) {
        f.issues.push(issue(
            "header",
            format!("qcow2 version {version} is unknown"),
        ));
        return Some(f);
    }
    if !(9..=21).contains(&cluster_bits) {
        f.issues.push(issue(
            "header",
            format!("qcow2 cluster_bits {cluster_bits} is out of range"),
        ));
    }
    f.virtual_size = Some(size);
    if backing != 0 {
        f.issues
            .push(issue("backing_file", "qcow2 image has a backing file"));
    }
    let ext_start = if version == 3 {
        let (Some(incompat), Some(header_len)) = (be64(h, 72), be32(h, 100)) else {
            f.issues
                .push(issue("header", "qcow2 v3 header is truncated"));
            return Some(f);
        };
        if incompat & QCOW2_INCOMPAT_DATA_FILE != 0 {
            f.issues
                .push(issue("data_file", "qcow2 image uses an external data file"));
        }
        if incompat & !QCOW2_KNOWN_INCOMPAT != 0 {
            f.issues.push(issue(
                "unknown_features",
                format!(
                    "qcow2 image has unknown incompatible feature bits {:#x}",
                    incompat & !QCOW2_KNOWN_INCOMPAT
                ),
            ));
        }
        if header_len < 104 {
            f.issues.push(issue(
                "header",
                format!("qcow2 header length {header_len} is too short"),
            ));
            return Some(f);
        }
        header_len as usize
    } else {
        72
    };
    // Header extensions: (type, length, data padded to 8) until type 0, within the first
    // cluster (only the part the head holds).
    let cluster = 1usize << cluster_bits.clamp(9, 21);
    let limit = cluster.min(h.len());
    let mut at = ext_start;
    while at + 8 <= limit {
        let (Some(kind), Some(len)) = (be32(h, at), be32(h, at + 4)) else {
            break;
        };
        if kind == 0 {
            break;
        }
        if kind == QCOW2_EXT_DATA_FILE {
            f.issues.push(issue(
                "data_file",
                "qcow2 image names an external data file",
            ));
        }
        let padded = (len as usize).saturating_add(7) & !7;
        at = at.saturating_add(8).saturating_add(padded);
    }
    Some(f)
}

fn qed(h: &[u8]) -> Option<Found> {
    if !h.starts_with(b"QED\0") {
        return None;
    }
    let mut f = Found::new(Format::Qed);
    f.virtual_size = le64(h, 48);
    f.issues.push(issue(
        "qed",
        "QED images are not allowed: qemu may follow their backing file",
    ));
    Some(f)
}

fn vhd(h: &[u8]) -> Option<Found> {
    if !h.starts_with(b"conectix") {
        return None;
    }
    let mut f = Found::new(Format::Vhd);
    f.virtual_size = be64(h, 48);
    if f.virtual_size.is_none() {
        f.issues.push(issue("header", "vhd footer is truncated"));
    }
    Some(f)
}

fn vhdx(h: &[u8], done: &[Region], missed: &[Purpose]) -> Option<Found> {
    if !h.starts_with(b"vhdxfile") {
        return None;
    }
    let mut f = Found::new(Format::Vhdx);
    f.virtual_size = region(done, Purpose::VhdxDiskSize).and_then(|r| le64(&r.data, 0));
    if f.virtual_size.is_none() {
        let why = if missed
            .iter()
            .any(|p| matches!(p, Purpose::VhdxMetadataTable { .. } | Purpose::VhdxDiskSize))
        {
            "vhdx metadata lies before the region table that points to it, or past the end of the data"
        } else {
            "vhdx region table or metadata is missing or truncated"
        };
        f.issues.push(issue("header", why));
    }
    Some(f)
}

fn vmdk(h: &[u8], done: &[Region], missed: &[Purpose]) -> Option<Found> {
    let mut f = Found::new(Format::Vmdk);
    if h.starts_with(b"# Disk DescriptorFile") {
        // A descriptor on its own: every extent is another file.
        let text = &h[..h.len().min(MAX_VMDK_DESCRIPTOR as usize)];
        let d = parse_vmdk_descriptor(text, &mut f.issues);
        f.virtual_size = Some(d.sectors.saturating_mul(512));
        f.create_type = d.create_type;
        f.issues.push(issue(
            "vmdk_extents",
            "vmdk is a bare descriptor whose extents are separate files",
        ));
        return Some(f);
    }
    let (off, len) = vmdk_descriptor_span(h)?;
    f.virtual_size = le64(h, 12).and_then(|s| s.checked_mul(512));
    if f.virtual_size.is_none() {
        f.issues.push(issue("header", "vmdk header is truncated"));
        return Some(f);
    }
    if len == 0 {
        f.issues.push(issue(
            "vmdk_extents",
            "sparse vmdk has no embedded descriptor",
        ));
        return Some(f);
    }
    if len > MAX_VMDK_DESCRIPTOR {
        f.issues.push(issue(
            "header",
            format!("vmdk descriptor of {len} bytes is larger than {MAX_VMDK_DESCRIPTOR}"),
        ));
        return Some(f);
    }
    let text: Option<&[u8]> = if off.saturating_add(len) <= HEAD as u64 {
        let (a, b) = (off as usize, (off + len) as usize);
        h.get(a..b)
    } else if missed.contains(&Purpose::VmdkDescriptor) {
        None
    } else {
        region(done, Purpose::VmdkDescriptor).map(|r| &r.data[..])
    };
    let Some(text) = text.filter(|t| t.len() as u64 == len) else {
        f.issues
            .push(issue("header", "vmdk descriptor is missing or truncated"));
        return Some(f);
    };
    let d = parse_vmdk_descriptor(text, &mut f.issues);
    f.create_type = d.create_type;
    Some(f)
}

struct VmdkDescriptor {
    create_type: Option<String>,
    sectors: u64,
}

/// Reads `createType` and the extent lines (`RW 2048 SPARSE "name.vmdk"`); an extent that
/// names a path, or any extent that is not the sparse data of this very file, is unsafe.
fn parse_vmdk_descriptor(text: &[u8], issues: &mut Vec<Issue>) -> VmdkDescriptor {
    let text = String::from_utf8_lossy(text);
    let text = text.trim_end_matches('\0');
    let mut d = VmdkDescriptor {
        create_type: None,
        sectors: 0,
    };
    for line in text.lines() {
        let line = line.trim();
        if let Some(v) = line.strip_prefix("createType") {
            let v = v
                .trim_start()
                .trim_start_matches('=')
                .trim()
                .trim_matches('"');
            d.create_type = Some(v.to_string());
            continue;
        }
        let mut words = line.split_whitespace();
        let Some(access) = words.next() else { continue };
        if !matches!(access, "RW" | "RDONLY" | "NOACCESS") {
            continue;
        }
        let sectors = words
            .next()
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0);
        d.sectors = d.sectors.saturating_add(sectors);
        let kind = words.next().unwrap_or("");
        let name = line
            .split_once('"')
            .and_then(|(_, rest)| rest.split_once('"'))
            .map_or("", |(n, _)| n);
        if name.contains('/') || name.contains('\\') {
            issues.push(issue(
                "vmdk_extents",
                format!("vmdk extent names a path: {name:?}"),
            ));
        } else if kind != "SPARSE" {
            issues.push(issue(
                "vmdk_extents",
                format!("vmdk extent of type {kind} is a separate file"),
            ));
        }
    }
    d
}

fn vdi(h: &[u8]) -> Option<Found> {
    if le32(h, 0x40) != Some(0xbeda_107f) {
        return None;
    }
    let mut f = Found::new(Format::Vdi);
    f.virtual_size = le64(h, 0x170);
    if f.virtual_size.is_none() {
        f.issues.push(issue("header", "vdi header is truncated"));
    }
    Some(f)
}

fn iso(h: &[u8]) -> Option<Found> {
    // Volume descriptors from sector 16 (2 KiB sectors): find the primary one.
    let mut at = 0x8000usize;
    let mut any = false;
    while at + 2048 <= h.len() {
        if h.get(at + 1..at + 6) != Some(&b"CD001"[..]) {
            break;
        }
        any = true;
        match h[at] {
            1 => {
                let mut f = Found::new(Format::Iso);
                let blocks = le32(h, at + 80).map(u64::from);
                let block = le16(h, at + 128).map(u64::from);
                f.virtual_size = blocks.zip(block).map(|(n, b)| n * b);
                return Some(f);
            }
            255 => break,
            _ => at += 2048,
        }
    }
    if any {
        let mut f = Found::new(Format::Iso);
        f.issues.push(issue(
            "header",
            "iso has no primary volume descriptor in reach",
        ));
        return Some(f);
    }
    None
}

/// A protective MBR (partition type 0xEE) makes the bytes a GPT disk; its checks are `mbr`
/// (the MBR's own entries are sane) and `gpt` (the GPT header is where the MBR says).
fn gpt(h: &[u8]) -> Option<Found> {
    if h.get(510..512) != Some(&[0x55, 0xAA][..]) {
        return None;
    }
    let entry = |i: usize| &h[446 + i * 16..446 + (i + 1) * 16];
    if !(0..4).any(|i| entry(i)[4] == 0xEE) {
        return None;
    }
    let mut f = Found::new(Format::Gpt);
    for i in 0..4 {
        let e = entry(i);
        if e[0] != 0 && e[0] != 0x80 {
            f.issues.push(issue(
                "mbr",
                format!("MBR partition {} has boot flag {:#x}", i + 1, e[0]),
            ));
        }
        if e[4] == 0xEE && le32(e, 8) != Some(1) {
            f.issues.push(issue(
                "mbr",
                "protective MBR partition does not start at sector 1",
            ));
        }
    }
    if h.get(512..520) != Some(&b"EFI PART"[..]) {
        f.issues
            .push(issue("gpt", "protective MBR but no GPT header at sector 1"));
    }
    Some(f)
}

#[cfg(test)]
mod tests {
    use crate::{Format, Inspector, Rules};

    fn inspect(data: &[u8]) -> super::Inspection {
        let mut i = Inspector::new();
        i.feed(data);
        i.finish()
    }

    fn qcow2_v3(size: u64) -> Vec<u8> {
        let mut q = vec![0u8; 4096];
        q[0..4].copy_from_slice(b"QFI\xfb");
        q[4..8].copy_from_slice(&3u32.to_be_bytes());
        q[20..24].copy_from_slice(&16u32.to_be_bytes());
        q[24..32].copy_from_slice(&size.to_be_bytes());
        q[100..104].copy_from_slice(&104u32.to_be_bytes());
        q
    }

    #[test]
    fn qcow2_checks() {
        let ok = inspect(&qcow2_v3(1 << 20));
        assert_eq!((ok.format, ok.virtual_size), (Format::Qcow2, Some(1 << 20)));
        assert!(ok.issues.is_empty());
        let mut b = qcow2_v3(1);
        b[8..16].copy_from_slice(&512u64.to_be_bytes());
        assert_eq!(inspect(&b).issues[0].check, "backing_file");
        let mut b = qcow2_v3(1);
        b[72..80].copy_from_slice(&4u64.to_be_bytes());
        assert_eq!(inspect(&b).issues[0].check, "data_file");
        let mut b = qcow2_v3(1);
        b[72..80].copy_from_slice(&(1u64 << 9).to_be_bytes());
        assert_eq!(inspect(&b).issues[0].check, "unknown_features");
        let mut b = qcow2_v3(1);
        b[104..108].copy_from_slice(&0x4441_5441u32.to_be_bytes());
        b[108..112].copy_from_slice(&4u32.to_be_bytes());
        assert_eq!(inspect(&b).issues[0].check, "data_file");
        assert_eq!(inspect(&qcow2_v3(1)[..50]).issues[0].check, "header");
        let huge = inspect(&qcow2_v3(u64::MAX));
        assert_eq!((huge.virtual_size, huge.issues[0].check), (None, "size"));
    }

    #[test]
    fn vmdk_descriptor_rules() {
        let flat =
            b"# Disk DescriptorFile\ncreateType=\"monolithicFlat\"\nRW 10 FLAT \"/etc/passwd\" 0\n";
        let i = inspect(flat);
        assert_eq!(i.format, Format::Vmdk);
        assert_eq!(i.vmdk_create_type.as_deref(), Some("monolithicFlat"));
        assert!(i.issues.iter().any(|x| x.reason.contains("/etc/passwd")));
        assert!(
            Rules::default()
                .judge(&i, Some("vmdk"), Some("bare"))
                .is_err()
        );
    }

    #[test]
    fn vmdk_descriptor_past_the_head_is_captured_in_passing() {
        let mut v = vec![0u8; 200 << 10];
        v[0..4].copy_from_slice(b"KDMV");
        v[12..20].copy_from_slice(&2048u64.to_le_bytes());
        let sector = 256u64; // 128 KiB
        v[28..36].copy_from_slice(&sector.to_le_bytes());
        v[36..44].copy_from_slice(&2u64.to_le_bytes());
        let d =
            b"# Disk DescriptorFile\ncreateType=\"streamOptimized\"\nRW 2048 SPARSE \"x.vmdk\"\n";
        v[128 << 10..(128 << 10) + d.len()].copy_from_slice(d);
        let mut i = Inspector::new();
        for c in v.chunks(1000) {
            i.feed(c);
        }
        let i = i.finish();
        assert_eq!(i.vmdk_create_type.as_deref(), Some("streamOptimized"));
        assert!(i.issues.is_empty(), "{:?}", i.issues);
        assert_eq!(i.virtual_size, Some(2048 * 512));
    }

    #[test]
    fn qed_and_polyglots_are_unsafe() {
        let q = inspect(b"QED\0");
        assert_eq!(q.format, Format::Qed);
        assert!(
            Rules::default()
                .judge(&q, Some("qed"), Some("bare"))
                .is_err()
        );
        let mut p = qcow2_v3(1 << 20);
        p.resize(0x9000, 0);
        p[0x8000] = 1;
        p[0x8001..0x8006].copy_from_slice(b"CD001");
        let i = inspect(&p);
        assert_eq!(i.matched, vec![Format::Qcow2, Format::Iso]);
        assert!(i.issues.iter().any(|x| x.check == "multiple_formats"));
    }

    #[test]
    fn rules_follow_glance() {
        let r = Rules::default();
        let q = inspect(&qcow2_v3(1 << 20));
        assert_eq!(
            r.judge(&q, Some("qcow2"), Some("bare"))
                .map(|a| a.virtual_size),
            Ok(Some(1 << 20))
        );
        assert!(r.judge(&q, Some("vmdk"), Some("bare")).is_err());
        assert_eq!(
            r.judge(&q, Some("vmdk"), Some("ovf"))
                .map(|a| a.virtual_size),
            Ok(None)
        );
        assert_eq!(
            r.judge(&q, Some("raw"), Some("bare"))
                .map(|a| a.virtual_size),
            Ok(Some(4096))
        );
        let raw = inspect(&[1u8; 100]);
        assert_eq!(
            r.judge(&raw, Some("aki"), Some("bare"))
                .map(|a| a.virtual_size),
            Ok(None)
        );
        assert!(r.judge(&raw, Some("qcow2"), Some("bare")).is_err());
        let lax = Rules {
            require_image_format_match: false,
            ..Rules::default()
        };
        assert!(lax.judge(&raw, Some("qcow2"), Some("bare")).is_ok());
    }
}

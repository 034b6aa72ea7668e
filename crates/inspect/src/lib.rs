//! Streaming disk-image inspection: which format an image's bytes are, its virtual size, and
//! whether it is safe to hand to a hypervisor or to `qemu-img`.
//!
//! The inspector is fed the chunks an upload already reads ([`Inspector::feed`]); it never
//! reads the data again and keeps only the header regions it needs: the first 64 KiB (every
//! format's header, the MBR and GPT header at 512, an ISO's volume descriptors at 32 KiB, a
//! sparse VMDK's descriptor), plus the few regions a header points to further on (a VHDX's
//! region table at 192 KiB and its metadata, a VMDK descriptor placed past 64 KiB), each
//! captured as the stream passes it and each bounded in size. Everything else only moves a
//! byte counter.
//!
//! # The one entry point
//!
//! Every path that takes image bytes in — `PUT /v2/images/{id}/file`, and the import path's
//! stage, web-download and conversion steps — does the same three things:
//!
//! ```
//! use glance_inspect::{Inspector, Rules};
//! let rules = Rules::default(); // from [image_format] in glance-api.conf
//! let mut inspector = Inspector::new();
//! for chunk in [&b"some"[..], &b" bytes"[..]] {
//!     inspector.feed(chunk); // as each chunk streams past to the store
//! }
//! let inspection = inspector.finish();
//! match rules.judge(&inspection, Some("raw"), Some("bare")) {
//!     Ok(accepted) => assert_eq!(accepted.virtual_size, Some(10)),
//!     Err(refusal) => panic!("refused: {refusal}"), // answer 415, delete the bytes
//! }
//! ```
//!
//! [`Rules::judge`] is Glance 33's upload rule: only `container_format=bare` is inspected; the
//! format found must be the `disk_format` (unless `require_image_format_match` is off), raw
//! may hold anything, the formats that cannot be inspected (ami, ari, aki, ploop) pass when
//! the bytes look raw, and then the safety checks run.
//!
//! No crate parsed these formats from a stream with bounded memory and the safety checks
//! (qcow2 data-file, VMDK extents, polyglots), so the parsers here are small and written for
//! hostile input: every offset is checked, every size is bounded, and nothing panics
//! (a property test feeds them arbitrary bytes).

mod formats;
mod rules;

pub use formats::{Format, Inspection, Issue};
pub use rules::{Accepted, Refusal, Rules};

/// Bytes kept from the start of the stream: covers every header, the GPT header at 512 and
/// the ISO 9660 volume descriptors from 32 KiB.
pub(crate) const HEAD: usize = 64 << 10;
/// Where a VHDX's region table sits.
pub(crate) const VHDX_REGION_TABLE: u64 = 192 << 10;
/// Largest region captured past the head (a VHDX region or metadata table is 64 KiB).
pub(crate) const MAX_REGION: usize = 64 << 10;
/// Largest VMDK descriptor accepted (qemu-img writes 10 KiB; VMware at most 20 sectors).
pub(crate) const MAX_VMDK_DESCRIPTOR: u64 = 64 << 10;

/// What a captured region is for: what to do once it is complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    Head,
    VhdxRegionTable,
    VhdxMetadataTable { region_start: u64 },
    VhdxDiskSize,
    VmdkDescriptor,
}

#[derive(Debug)]
pub(crate) struct Region {
    pub(crate) start: u64,
    pub(crate) want: usize,
    pub(crate) data: Vec<u8>,
    pub(crate) purpose: Purpose,
}

impl Region {
    fn new(start: u64, want: usize, purpose: Purpose) -> Self {
        Self {
            start,
            want,
            data: Vec::new(),
            purpose,
        }
    }

    fn complete(&self) -> bool {
        self.data.len() >= self.want
    }
}

/// A streaming inspector: feed it every chunk of an image in order, then [`finish`](Self::finish).
#[derive(Debug)]
pub struct Inspector {
    pos: u64,
    /// Regions still being captured.
    active: Vec<Region>,
    /// Regions captured (complete, or cut short by the end of the data).
    done: Vec<Region>,
    /// Regions a header pointed at that had already streamed past.
    missed: Vec<Purpose>,
}

impl Default for Inspector {
    fn default() -> Self {
        Self::new()
    }
}

impl Inspector {
    /// A fresh inspector at offset 0.
    pub fn new() -> Self {
        Self {
            pos: 0,
            active: vec![Region::new(0, HEAD, Purpose::Head)],
            done: Vec::new(),
            missed: Vec::new(),
        }
    }

    /// Bytes fed so far.
    pub fn bytes_seen(&self) -> u64 {
        self.pos
    }

    /// Takes the next chunk of the stream. Costs a comparison per chunk once the headers have
    /// gone past.
    pub fn feed(&mut self, chunk: &[u8]) {
        let base = self.pos;
        let end = base.saturating_add(chunk.len() as u64);
        let mut i = 0;
        while i < self.active.len() {
            let r = &mut self.active[i];
            let from = r.start.saturating_add(r.data.len() as u64);
            if from < base {
                // Its next byte went past before it was asked for.
                let r = self.active.remove(i);
                self.missed.push(r.purpose);
                continue;
            }
            let to = r.start.saturating_add(r.want as u64).min(end);
            if from < to {
                // Both offsets are within this chunk, so they fit in usize.
                let a = usize::try_from(from - base).unwrap_or(usize::MAX);
                let b = usize::try_from(to - base).unwrap_or(usize::MAX);
                if let Some(bytes) = chunk.get(a..b) {
                    r.data.extend_from_slice(bytes);
                }
            }
            if r.complete() {
                let r = self.active.remove(i);
                let next = formats::follow_ups(&r, &self.done);
                self.done.push(r);
                self.active.extend(next);
                continue;
            }
            i += 1;
        }
        self.pos = end;
    }

    /// Ends the stream and reports what it was.
    pub fn finish(mut self) -> Inspection {
        // Regions cut short by the end of the data still count (a small image's head), and
        // still lead on: an image smaller than the head is complete in it.
        while let Some(r) = self.active.pop() {
            if r.purpose == Purpose::Head {
                let next = formats::follow_ups(&r, &self.done);
                self.done.push(r);
                for n in next {
                    // Past the end of the data: nothing more to capture.
                    self.missed.push(n.purpose);
                }
            } else {
                self.done.push(r);
            }
        }
        formats::inspect(&self.done, &self.missed, self.pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunking_does_not_change_the_result() {
        let mut data = vec![0u8; 300 << 10];
        data[0..4].copy_from_slice(b"QFI\xfb");
        data[4..8].copy_from_slice(&3u32.to_be_bytes());
        data[20..24].copy_from_slice(&16u32.to_be_bytes());
        data[24..32].copy_from_slice(&(1u64 << 30).to_be_bytes());
        data[100..104].copy_from_slice(&104u32.to_be_bytes());
        let whole = {
            let mut i = Inspector::new();
            i.feed(&data);
            i.finish()
        };
        for size in [1, 7, 512, 4096, 65_537] {
            let mut i = Inspector::new();
            for c in data.chunks(size) {
                i.feed(c);
            }
            assert_eq!(i.finish(), whole, "chunks of {size}");
        }
        assert_eq!(whole.format, Format::Qcow2);
        assert_eq!(whole.virtual_size, Some(1 << 30));
        assert!(whole.issues.is_empty(), "{:?}", whole.issues);
    }

    #[test]
    fn empty_stream_is_raw_of_size_zero() {
        let i = Inspector::new().finish();
        assert_eq!(i.format, Format::Raw);
        assert_eq!(i.virtual_size, Some(0));
    }

    #[test]
    fn memory_stays_bounded_for_a_large_stream() {
        let mut i = Inspector::new();
        let block = vec![7u8; 1 << 20];
        for _ in 0..64 {
            i.feed(&block);
        }
        let kept: usize = i.done.iter().map(|r| r.data.capacity()).sum();
        assert!(kept <= 2 * HEAD, "kept {kept} bytes");
        assert_eq!(i.finish().virtual_size, Some(64 << 20));
    }
}

//! Bounded-time fuzzing of the inspector (runs in CI with the crate's tests): arbitrary bytes,
//! and real headers with bytes flipped, fed in arbitrary chunk sizes, never panic, never keep
//! more than the bounded capture regions, and give the same answer however the stream is cut.

use glance_inspect::{Inspector, Rules};
use proptest::prelude::*;

/// Headers of every format, so mutations start from something each parser takes seriously.
fn seeds() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut q = vec![0u8; 4096];
    q[0..4].copy_from_slice(b"QFI\xfb");
    q[4..8].copy_from_slice(&3u32.to_be_bytes());
    q[20..24].copy_from_slice(&16u32.to_be_bytes());
    q[24..32].copy_from_slice(&(1u64 << 30).to_be_bytes());
    q[100..104].copy_from_slice(&112u32.to_be_bytes());
    q[112..116].copy_from_slice(&0x4441_5441u32.to_be_bytes());
    q[116..120].copy_from_slice(&8u32.to_be_bytes());
    out.push(q);
    let mut v = vec![0u8; 1024];
    v[0..4].copy_from_slice(b"KDMV");
    v[12..20].copy_from_slice(&2048u64.to_le_bytes());
    v[28..36].copy_from_slice(&1u64.to_le_bytes());
    v[36..44].copy_from_slice(&1u64.to_le_bytes());
    let desc =
        b"# Disk DescriptorFile\ncreateType=\"monolithicSparse\"\nRW 2048 SPARSE \"a.vmdk\"\n";
    v[512..512 + desc.len()].copy_from_slice(desc);
    out.push(v);
    let mut x = vec![0u8; 300 << 10];
    x[0..8].copy_from_slice(b"vhdxfile");
    x[192 << 10..(192 << 10) + 4].copy_from_slice(b"regi");
    out.push(x);
    let mut i = vec![0u8; 0x9000];
    i[0x8000] = 1;
    i[0x8001..0x8006].copy_from_slice(b"CD001");
    i[510] = 0x55;
    i[511] = 0xAA;
    i[446 + 4] = 0xEE;
    out.push(i);
    out.push(b"QED\0".to_vec());
    out.push(b"conectix".to_vec());
    out.push(b"# Disk DescriptorFile\nRW 99999999999999999999 FLAT \"/x\"".to_vec());
    out
}

fn inspect(data: &[u8], chunk: usize) -> glance_inspect::Inspection {
    let mut i = Inspector::new();
    for c in data.chunks(chunk.max(1)) {
        i.feed(c);
    }
    i.finish()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..70_000), chunk in 1usize..9000) {
        let a = inspect(&data, chunk);
        let b = inspect(&data, data.len().max(1));
        prop_assert_eq!(&a, &b);
        for d in ["raw", "qcow2", "vmdk", "vhd", "vhdx", "vdi", "iso", "ami", "ploop"] {
            let _ = Rules::default().judge(&a, Some(d), Some("bare"));
        }
    }

    #[test]
    fn mutated_headers_never_panic(
        seed in 0usize..7,
        flips in proptest::collection::vec((any::<u32>(), any::<u8>()), 0..64),
        cut in any::<u32>(),
        chunk in 1usize..70_000,
    ) {
        let mut data = seeds().swap_remove(seed);
        for (at, byte) in flips {
            let len = data.len();
            if len > 0 {
                data[at as usize % len] = byte;
            }
        }
        let keep = if data.is_empty() { 0 } else { cut as usize % (data.len() + 1) };
        data.truncate(keep);
        let a = inspect(&data, chunk);
        prop_assert_eq!(&a, &inspect(&data, 1 << 20));
        prop_assert_eq!(a.size, data.len() as u64);
        let _ = Rules::default().judge(&a, Some("qcow2"), Some("bare"));
    }
}

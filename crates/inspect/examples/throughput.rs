//! What the inspector costs an upload: feeds 4 GiB of random-looking bytes in the chunk sizes
//! an HTTP body arrives in and prints GB/s (`cargo run --release -p glance-inspect --example
//! throughput`). Compare with the upload ceiling in docs/benchmarks.md (MD5 ∥ SHA-512).

use glance_inspect::Inspector;

fn main() {
    let mut block = vec![0u8; 1 << 20];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for b in block.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    for chunk in [8 << 10, 64 << 10, 256 << 10] {
        let total: u64 = 4 << 30;
        let start = std::time::Instant::now();
        let mut i = Inspector::new();
        let mut fed = 0u64;
        while fed < total {
            for c in block.chunks(chunk) {
                i.feed(std::hint::black_box(c));
            }
            fed += block.len() as u64;
        }
        let r = i.finish();
        let secs = start.elapsed().as_secs_f64();
        println!(
            "chunks of {:>3} KiB: {:.1} GB/s ({:.3} ms per GiB) -> {} {:?}",
            chunk >> 10,
            total as f64 / secs / 1e9,
            secs * 1000.0 / 4.0,
            r.format,
            r.virtual_size
        );
    }
}

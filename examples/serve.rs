//! A local HTTP peer for the demo and benchmarks: serves `count` files of `size` bytes
//! (`/file0.bin` …) from memory with Range support, optionally paced per connection.
//!
//! usage: serve <count> <size-bytes> [bytes-per-sec-per-connection] [zero-percent]
//! Prints `READY http://127.0.0.1:PORT` and serves until killed.

#[path = "../tests/support/server.rs"]
mod server;

/// Distinct, incompressible-looking content built fast even in a debug build: one random MiB,
/// each copy stamped with its index so no two MiB are equal.
fn blocks(size: usize, seed: u64) -> Vec<u8> {
    let block = server::pattern(1 << 20, seed);
    let mut data = Vec::with_capacity(size);
    let mut i = 0u64;
    while data.len() < size {
        let start = data.len();
        data.extend_from_slice(&block[..block.len().min(size - start)]);
        let end = (start + 8).min(data.len());
        data[start..end].copy_from_slice(&(i ^ seed << 32).to_le_bytes()[..end - start]);
        i += 1;
    }
    data
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!(
            "usage: serve <count> <size-bytes> [bytes-per-sec-per-connection] [zero-percent]"
        );
        std::process::exit(2);
    }
    let count: usize = args[1].parse().expect("count");
    let size: usize = args[2].parse().expect("size");
    let pace: u64 = args.get(3).map(|s| s.parse().expect("pace")).unwrap_or(0);
    let zero_pct: usize = args
        .get(4)
        .map(|s| s.parse().expect("zero-percent"))
        .unwrap_or(0);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let srv = rt.block_on(server::TestServer::start());
    for i in 0..count {
        let mut data = blocks(size, i as u64 + 1);
        // Zeros in the second part of the file, in whole 1 MiB runs.
        let zeros = size * zero_pct / 100;
        let at = size - zeros;
        data[at..].fill(0);
        srv.put(&format!("file{i}.bin"), data);
    }
    srv.set_faults(server::Faults {
        bytes_per_sec: pace,
        ..Default::default()
    });
    println!("READY http://{}", srv.addr);
    loop {
        std::thread::park();
    }
}

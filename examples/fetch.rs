//! A small command line over the safe Rust API, used by the benchmarks: exports every source
//! given (URLs for the http provider, VMs for vsphere), all at once, into OUT_DIR.
//!
//! usage: fetch [--provider NAME] [--config JSON] [--options JSON] [--global JSON] [--progress]
//!              [--count-progress] OUT_DIR SOURCE...   (--config @FILE reads the config from FILE)
//!
//! `--count-progress` registers a callback that only counts its calls (the cost of progress
//! delivery itself, without printing) and prints the count at the end.

use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let mut options = String::from("{}");
    let mut global = None;
    let mut show = false;
    let mut count = false;
    let mut result_file = None;
    let mut provider = String::from("http");
    let mut config = String::from("{}");
    let mut rest = Vec::new();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--options" => options = args.next().expect("--options JSON"),
            "--global" => global = Some(args.next().expect("--global JSON")),
            "--progress" => show = true,
            "--count-progress" => count = true,
            // The last export's result JSON into FILE (benches/incremental.sh reads its base).
            "--result" => result_file = Some(args.next().expect("--result FILE")),
            "--provider" => provider = args.next().expect("--provider NAME"),
            // `--config @FILE` reads it from a file: secrets stay off the command line.
            "--config" => {
                config = args.next().expect("--config JSON");
                if let Some(path) = config.strip_prefix('@') {
                    config = std::fs::read_to_string(path).unwrap_or_else(|e| fail(&e.to_string()));
                }
            }
            _ => rest.push(a),
        }
    }
    if rest.len() < 2 {
        eprintln!(
            "usage: fetch [--provider NAME] [--config JSON] [--options JSON] [--global JSON] [--progress] [--count-progress] [--result FILE] OUT_DIR SOURCE..."
        );
        std::process::exit(2);
    }
    if let Some(g) = global {
        hypersdk::configure(&g).unwrap_or_else(|e| fail(&e.to_string()));
    }
    let out = &rest[0];
    let mut opts: serde_json::Value =
        serde_json::from_str(&options).unwrap_or_else(|e| fail(&e.to_string()));
    opts["output_dir"] = serde_json::Value::String(out.clone());
    let opts = opts.to_string();
    let client = hypersdk::Client::new(&provider, &config).unwrap_or_else(|e| fail(&e.to_string()));
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let t = Instant::now();
    let exports: Vec<_> = rest[1..]
        .iter()
        .map(|url| {
            let cb: Option<hypersdk::ProgressCallback> = show.then(|| {
                Box::new(|p: &hypersdk::Progress| {
                    eprintln!(
                        "{:<12} {:<12} {:>12}/{:<12} {:>8.1} MiB/s",
                        p.file_name,
                        p.phase.as_str(),
                        p.bytes_done,
                        p.bytes_total,
                        p.rate_bytes_per_sec / 1048576.0
                    )
                }) as hypersdk::ProgressCallback
            });
            let cb = cb.or_else(|| {
                count.then(|| {
                    let calls = calls.clone();
                    Box::new(move |_: &hypersdk::Progress| {
                        calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }) as hypersdk::ProgressCallback
                })
            });
            client
                .start_export(url, &opts, cb)
                .unwrap_or_else(|e| fail(&e.to_string()))
        })
        .collect();
    let mut failed = false;
    let mut bytes = 0;
    for e in exports {
        let r = e.wait(None).unwrap().expect("no timeout");
        failed |= r.status != "done";
        bytes += r.files.iter().map(|f| f.size).sum::<u64>();
        if r.status != "done" {
            eprintln!("{}", r.to_json());
        }
        if let Some(f) = &result_file {
            std::fs::write(f, r.to_json()).unwrap_or_else(|e| fail(&e.to_string()));
        }
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{bytes} bytes in {secs:.3} s = {:.1} MiB/s",
        bytes as f64 / secs / 1048576.0
    );
    if count {
        eprintln!(
            "{} progress callbacks",
            calls.load(std::sync::atomic::Ordering::Relaxed)
        );
    }
    std::process::exit(if failed { 1 } else { 0 });
}

fn fail(msg: &str) -> ! {
    eprintln!("fetch: {msg}");
    std::process::exit(2)
}

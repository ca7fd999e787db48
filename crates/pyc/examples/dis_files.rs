//! Disassemble .pyc files given on the command line (or every .pyc of the
//! directories given) and report the time spent; output is discarded.
//!     cargo run --release -p spyglass-pyc --example dis_files -- DIR... [--jsonl]
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let jsonl = args.iter().any(|a| a == "--jsonl");
    let mut files = Vec::new();
    for a in args.iter().filter(|a| !a.starts_with("--")) {
        let p = std::path::Path::new(a);
        if p.is_dir() {
            for e in std::fs::read_dir(p).expect("readable directory").flatten() {
                if e.path().extension().is_some_and(|x| x == "pyc") {
                    files.push(e.path());
                }
            }
        } else {
            files.push(p.to_path_buf());
        }
    }
    files.sort();
    let start = Instant::now();
    let (mut bytes, mut failed) = (0usize, 0usize);
    for f in &files {
        let data = std::fs::read(f).expect("readable file");
        let mut out = String::new();
        let r = spyglass_pyc::Pyc::parse(data).and_then(|p| {
            if jsonl {
                spyglass_pyc::format::jsonl(&p, &mut out)
            } else {
                spyglass_pyc::format::text(&p, &mut out)
            }
        });
        match r {
            Ok(()) => bytes += out.len(),
            Err(e) => {
                failed += 1;
                eprintln!("{}", e.with_file(&f.display().to_string()));
            }
        }
    }
    println!(
        "{} files ({failed} failed), {} MB of output in {:.2?}",
        files.len(),
        bytes >> 20,
        start.elapsed()
    );
}

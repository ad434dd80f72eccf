//! kprod's repository tasks.
//!
//! ```text
//! cargo xtask codegen           # write src/protocol/messages/*.rs from src/protocol/spec/*.spec
//! cargo xtask codegen --check   # fail if the committed files are not what the specs give
//! ```

mod rust;
mod spec;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["codegen"] => run(false),
        ["codegen", "--check"] => run(true),
        _ => {
            eprintln!("usage: cargo xtask codegen [--check]");
            ExitCode::from(2)
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the repository")
        .to_path_buf()
}

/// Formats Rust source with the toolchain's rustfmt, as `cargo fmt` would.
fn rustfmt(src: &str) -> Result<String, String> {
    let mut child = Command::new("rustfmt")
        .args(["--edition", "2021", "--emit", "stdout"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("running rustfmt: {e}"))?;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(src.as_bytes())
        .map_err(|e| format!("writing to rustfmt: {e}"))?;
    let out = child
        .wait_with_output()
        .map_err(|e| format!("rustfmt: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "rustfmt failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    String::from_utf8(out.stdout).map_err(|e| format!("rustfmt output: {e}"))
}

fn generate() -> Result<Vec<(PathBuf, String)>, String> {
    let root = root();
    let spec_dir = root.join("src/protocol/spec");
    let mut specs: Vec<PathBuf> = std::fs::read_dir(&spec_dir)
        .map_err(|e| format!("{}: {e}", spec_dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "spec"))
        .collect();
    specs.sort();
    let mut msgs = Vec::new();
    for p in &specs {
        let module = p.file_stem().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
        msgs.push(spec::parse(&module, &text)?);
    }
    msgs.sort_by_key(|m| m.key);
    for w in msgs.windows(2) {
        if w[0].key == w[1].key {
            return Err(format!(
                "{} and {} share key {}",
                w[0].name, w[1].name, w[0].key
            ));
        }
    }
    let out_dir = root.join("src/protocol/messages");
    let mut files = Vec::new();
    for m in &msgs {
        let spec_path = format!("src/protocol/spec/{}.spec", m.module);
        let src = rustfmt(&rust::message_module(m, &spec_path))
            .map_err(|e| format!("{}: {e}", m.module))?;
        files.push((out_dir.join(format!("{}.rs", m.module)), src));
    }
    files.push((out_dir.join("mod.rs"), rustfmt(&rust::registry(&msgs))?));
    Ok(files)
}

fn run(check: bool) -> ExitCode {
    let files = match generate() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("codegen: {e}");
            return ExitCode::FAILURE;
        }
    };
    let out_dir = root().join("src/protocol/messages");
    // Generated files no spec gives any more.
    let stale: Vec<PathBuf> = std::fs::read_dir(&out_dir)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "rs"))
                .filter(|p| !files.iter().any(|(f, _)| f == p))
                .collect()
        })
        .unwrap_or_default();
    let mut differ = 0;
    for (path, src) in &files {
        let old = std::fs::read_to_string(path).unwrap_or_default();
        if old == *src {
            continue;
        }
        differ += 1;
        if check {
            eprintln!("codegen: {} is not what the specs give", path.display());
        } else if let Err(e) = std::fs::write(path, src) {
            eprintln!("codegen: writing {}: {e}", path.display());
            return ExitCode::FAILURE;
        } else {
            println!("wrote {}", path.display());
        }
    }
    for p in &stale {
        differ += 1;
        if check {
            eprintln!("codegen: {} has no spec", p.display());
        } else if let Err(e) = std::fs::remove_file(p) {
            eprintln!("codegen: removing {}: {e}", p.display());
            return ExitCode::FAILURE;
        } else {
            println!("removed {}", p.display());
        }
    }
    if check && differ > 0 {
        eprintln!("codegen: run `cargo xtask codegen` and commit the result");
        return ExitCode::FAILURE;
    }
    if !check && differ == 0 {
        println!("codegen: up to date ({} files)", files.len());
    }
    ExitCode::SUCCESS
}

//! `kprod mock`: a standalone mock cluster in the foreground, for clients in any language.

use std::process::ExitCode;

use clap::Args;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

#[derive(Args, Debug)]
pub struct MockArgs {
    /// Number of brokers (ids 1..=N).
    #[arg(long, default_value_t = 1)]
    brokers: usize,
    /// A topic to create at start, as NAME:PARTITIONS (repeatable). Unknown topics are also
    /// created on first use with one partition.
    #[arg(long = "topic", value_name = "NAME:PARTITIONS", value_parser = parse_topic)]
    topics: Vec<(String, i32)>,
    /// Keep no record data (acknowledge with offsets only), for benchmarks.
    #[arg(long)]
    sink: bool,
    /// Also stop when stdin reaches its end (for a parent process that holds a pipe to it).
    /// Without it, the cluster runs until SIGINT or SIGTERM, whatever stdin is.
    #[arg(long)]
    until_stdin_closes: bool,
}

fn parse_topic(s: &str) -> Result<(String, i32), String> {
    let (name, n) = s.rsplit_once(':').unwrap_or((s, "1"));
    let n: i32 = n
        .parse()
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| format!("{s:?}: PARTITIONS must be a positive integer"))?;
    kprod::error::validate_topic(name).map_err(|e| e.to_string())?;
    Ok((name.to_string(), n))
}

pub fn run(a: MockArgs) -> Result<ExitCode, String> {
    if a.brokers == 0 {
        return Err("--brokers must be at least 1".into());
    }
    let mut b = kprod::mock::MockCluster::builder()
        .brokers(a.brokers)
        .sink(a.sink);
    for (name, partitions) in &a.topics {
        b = b.topic(name, *partitions);
    }
    let cluster = b
        .build()
        .map_err(|e| format!("starting the mock cluster: {e}"))?;
    // The address alone on stdout, so scripts can read it; the rest on stderr.
    println!("{}", cluster.bootstrap_servers());
    for id in cluster.broker_ids() {
        eprintln!("kprod mock: broker {id} at {}", cluster.broker_addr(id));
    }
    for (name, partitions) in &a.topics {
        eprintln!("kprod mock: topic {name:?} with {partitions} partition(s)");
    }
    let (stop, stopped) = std::sync::mpsc::channel::<&'static str>();
    let mut signals = Signals::new([SIGINT, SIGTERM])
        .map_err(|e| format!("installing the SIGINT/SIGTERM handlers: {e}"))?;
    let on_signal = stop.clone();
    std::thread::spawn(move || {
        if let Some(sig) = signals.forever().next() {
            let _ = on_signal.send(if sig == SIGINT { "SIGINT" } else { "SIGTERM" });
        }
    });
    if a.until_stdin_closes {
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
            let _ = stop.send("end of stdin");
        });
        eprintln!("kprod mock: running until SIGINT, SIGTERM or the end of stdin");
    } else {
        eprintln!("kprod mock: running until SIGINT (Ctrl-C) or SIGTERM");
    }
    let why = stopped.recv().unwrap_or("signal thread gone");
    eprintln!("kprod mock: stopping ({why})");
    drop(cluster);
    Ok(ExitCode::SUCCESS)
}

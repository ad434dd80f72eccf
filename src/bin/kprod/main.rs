//! `kprod`: produce records from stdin, measure a producer, or run a mock cluster.
//!
//! ```text
//! kprod produce [-b BOOTSTRAP] -t TOPIC [-K DELIM] [-H key=value]... [-p PARTITION] [TUNING]
//! kprod perf    [-b BOOTSTRAP] [-t TOPIC] --num-records N --record-size S [--throughput R]
//!               [--mode send|produce] [TUNING]
//! kprod topic create NAME [-b BOOTSTRAP] [--partitions N] [--replication R]
//!               [--config name=value]... [--if-not-exists] [-X prop=value]...
//! kprod mock    [--brokers N] [--topic NAME:PARTITIONS]...
//!               [--tls-cert FILE --tls-key FILE [--tls-client-ca FILE]]
//!               [--sasl-mechanism MECH]... [--sasl-user NAME:PASSWORD]...
//! TUNING: [-z none|gzip|snappy|lz4|zstd] [--acks 0|1|all] [--idempotence] [--linger-ms N]
//!         [--batch-size B] [--io-threads N] [-X prop=value]...
//! ```
//! Without `-b`, `produce` and `perf` start an embedded [`kprod::mock::MockCluster`] and say so.

mod cpu;
mod mock;
mod perf;
mod produce;
mod topic;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use kprod::{Acks, Compression, ProducerBuilder};

#[derive(Parser)]
#[command(
    name = "kprod",
    version,
    about = "A synchronous Apache Kafka producer: CLI"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Produce records read from stdin, one per line (like `kcat -P`). Exits 0 only when every
    /// record was acknowledged; failures are reported on stderr.
    Produce(produce::ProduceArgs),
    /// Measure the producer: kafka-producer-perf-test's report plus µs latency percentiles and
    /// client CPU per acknowledged record.
    Perf(perf::PerfArgs),
    /// Topics: `kprod topic create NAME --partitions N`.
    Topic(topic::TopicArgs),
    /// Run an in-process mock Kafka cluster in the foreground and print its bootstrap address.
    Mock(mock::MockArgs),
}

/// A starting point for the settings (`ProducerBuilder::for_*`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    /// acks=1, no idempotence, linger 10 ms, 1 MB batches, lz4.
    HighThroughput,
    /// acks=1, no idempotence, linger 0, 16 KiB batches, no compression, and I/O threads
    /// and waiting callers spin 200 µs before they sleep (-X kprod.idle.spin.us=N to change).
    LowLatency,
    /// acks=all, idempotence, at most 5 in flight.
    Reliability,
}

/// Producer settings shared by `produce` and `perf`.
#[derive(Args, Debug, Clone)]
pub struct Tuning {
    /// Start from a preset; the other flags and -X override its values.
    #[arg(long, value_enum)]
    preset: Option<Preset>,
    /// Compression codec.
    #[arg(short = 'z', long = "compression", value_name = "CODEC", value_parser = parse_codec)]
    compression: Option<Compression>,
    /// Acknowledgements: 0 (none), 1 (leader) or all. Default all.
    #[arg(long, value_parser = parse_acks)]
    acks: Option<Acks>,
    /// Enable idempotence (the default with acks=all).
    #[arg(long)]
    idempotence: bool,
    /// How long to wait for more records before sending a batch (default 5).
    #[arg(long, value_name = "MS")]
    linger_ms: Option<u64>,
    /// Most bytes per batch (default 1000000).
    #[arg(long, value_name = "BYTES")]
    batch_size: Option<usize>,
    /// I/O threads (default: one per core).
    #[arg(long, value_name = "N")]
    io_threads: Option<usize>,
    /// Any librdkafka / Java producer property, e.g. -X delivery.timeout.ms=30000.
    #[arg(short = 'X', value_name = "PROP=VALUE", value_parser = parse_kv)]
    properties: Vec<(String, String)>,
}

impl Tuning {
    /// A builder with these settings on top of the defaults.
    pub fn builder(&self, bootstrap: &str) -> Result<ProducerBuilder, kprod::Error> {
        let base = match self.preset {
            Some(Preset::HighThroughput) => ProducerBuilder::for_high_throughput(),
            Some(Preset::LowLatency) => ProducerBuilder::for_low_latency(),
            Some(Preset::Reliability) => ProducerBuilder::for_reliability(),
            None => kprod::Producer::builder(),
        };
        let mut b = base.bootstrap_servers(bootstrap);
        if let Some(c) = self.compression {
            b = b.compression(c);
        }
        if let Some(a) = self.acks {
            b = b.acks(a);
        }
        if self.idempotence {
            b = b.idempotence(true);
        }
        if let Some(ms) = self.linger_ms {
            b = b.linger(Duration::from_millis(ms));
        }
        if let Some(n) = self.batch_size {
            b = b.batch_size(n);
        }
        if let Some(n) = self.io_threads {
            b = b.io_threads(n);
        }
        b.from_properties(
            self.properties
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        )
    }
}

fn parse_codec(s: &str) -> Result<Compression, String> {
    Compression::from_name(s)
        .ok_or_else(|| format!("{s:?}: expected none, gzip, snappy, lz4 or zstd"))
}

fn parse_acks(s: &str) -> Result<Acks, String> {
    match s {
        "0" => Ok(Acks::None),
        "1" => Ok(Acks::Leader),
        "all" | "-1" => Ok(Acks::All),
        _ => Err(format!("{s:?}: expected 0, 1 or all")),
    }
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.to_string()))
        .filter(|(k, _)| !k.is_empty())
        // Not echoed: a mistyped `-X sasl.password:...` must not print the password.
        .ok_or_else(|| "expected key=value".to_string())
}

/// Where records go: the given cluster, or an embedded mock one (kept alive by the guard).
pub struct Target {
    pub bootstrap: String,
    pub embedded: Option<kprod::mock::MockCluster>,
}

impl Target {
    /// `bootstrap`, or a one-broker embedded cluster with `topic` (`partitions` partitions),
    /// announced on stderr. `sink`: the cluster keeps no record data (for measurements).
    pub fn resolve(
        bootstrap: Option<&str>,
        topic: &str,
        partitions: i32,
        sink: bool,
    ) -> Result<Target, String> {
        match bootstrap {
            Some(b) => Ok(Target {
                bootstrap: b.to_string(),
                embedded: None,
            }),
            None => {
                let cluster = kprod::mock::MockCluster::builder()
                    .topic(topic, partitions)
                    .sink(sink)
                    .accept_transactions(true)
                    .build()
                    .map_err(|e| format!("starting the embedded mock cluster: {e}"))?;
                let bootstrap = cluster.bootstrap_servers();
                eprintln!(
                    "kprod: no -b given: using an embedded mock cluster at {bootstrap} \
                     (topic {topic:?}, {partitions} partition(s){}); pass -b host:port for a real one",
                    if sink { ", sink mode" } else { "" }
                );
                Ok(Target {
                    bootstrap,
                    embedded: Some(cluster),
                })
            }
        }
    }
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    let r = match cli.command {
        Command::Produce(a) => produce::run(a),
        Command::Perf(a) => perf::run(a),
        Command::Mock(a) => mock::run(a),
        Command::Topic(a) => topic::run(a),
    };
    match r {
        Ok(code) => code,
        Err(e) => {
            eprintln!("kprod: {e}");
            ExitCode::from(2)
        }
    }
}

//! `kprod topic create`: make a topic before producing to it.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use kprod::admin::NewTopic;
use kprod::protocol::ErrorCode;

#[derive(Args, Debug)]
pub struct TopicArgs {
    #[command(subcommand)]
    command: TopicCommand,
}

#[derive(Subcommand, Debug)]
enum TopicCommand {
    /// Create a topic (CreateTopics). Exits 0 when it was created (or, with
    /// `--if-not-exists`, already existed), 1 when the cluster refused it.
    Create(CreateArgs),
}

#[derive(Args, Debug)]
struct CreateArgs {
    /// The topic's name.
    name: String,
    /// Bootstrap brokers, host:port[,host:port...]. Without it, an embedded mock cluster
    /// (which goes away on exit: useful only to try the command).
    #[arg(short = 'b', long = "bootstrap-servers", value_name = "BOOTSTRAP")]
    bootstrap: Option<String>,
    /// Partition count (default: the broker's `num.partitions`).
    #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
    partitions: i32,
    /// Replication factor (default: the broker's `default.replication.factor`).
    #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
    replication: i16,
    /// A topic config, name=value (repeatable), e.g. `--config retention.ms=86400000`.
    #[arg(long = "config", value_name = "NAME=VALUE", value_parser = crate::parse_kv)]
    configs: Vec<(String, String)>,
    /// Succeed if the topic already exists.
    #[arg(long)]
    if_not_exists: bool,
    /// How long to wait for the cluster's answer, in ms.
    #[arg(long, value_name = "MS", default_value_t = 30_000)]
    timeout_ms: u64,
    /// A producer property (security: `security.protocol`, `ssl.*`, `sasl.*`), repeatable.
    #[arg(short = 'X', value_name = "PROP=VALUE", value_parser = crate::parse_kv)]
    properties: Vec<(String, String)>,
}

pub fn run(a: TopicArgs) -> Result<ExitCode, String> {
    let TopicCommand::Create(a) = a.command;
    let embedded;
    let bootstrap = match &a.bootstrap {
        Some(b) => b.clone(),
        None => {
            embedded = kprod::mock::MockCluster::builder()
                .build()
                .map_err(|e| format!("starting the embedded mock cluster: {e}"))?;
            let b = embedded.bootstrap_servers();
            eprintln!(
                "kprod: no -b given: using an embedded mock cluster at {b}; pass -b host:port \
                 for a real one"
            );
            b
        }
    };
    let producer = kprod::Producer::builder()
        .bootstrap_servers(&bootstrap)
        .from_properties(a.properties.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .and_then(|b| b.build())
        .map_err(|e| e.to_string())?;
    let mut topic = NewTopic::new(&a.name, a.partitions).replication(a.replication);
    for (k, v) in &a.configs {
        topic = topic.config(k, v);
    }
    let results = producer
        .create_topics(&[topic], Duration::from_millis(a.timeout_ms))
        .map_err(|e| e.to_string())?;
    let _ = producer.close(Duration::from_secs(5));
    match &results[0] {
        Ok(()) => {
            println!("created topic {:?}", a.name);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) if a.if_not_exists && e.kafka_code() == Some(ErrorCode::TOPIC_ALREADY_EXISTS) => {
            println!("topic {:?} already exists", a.name);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("kprod: topic {:?} not created: {e}", a.name);
            Ok(ExitCode::from(1))
        }
    }
}

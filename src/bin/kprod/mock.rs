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
    /// Serve TLS with this certificate chain (PEM file); needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// The private key of --tls-cert (PEM file: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// With --tls-cert: require client certificates signed by this CA (PEM file).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_client_ca: Option<std::path::PathBuf>,
    /// Require SASL with this mechanism: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER
    /// (unsecured JWTs, as Kafka's unsecured validator accepts them) (repeatable).
    #[arg(long = "sasl-mechanism", value_name = "MECH", value_parser = parse_mechanism)]
    sasl_mechanisms: Vec<kprod::sasl::Mechanism>,
    /// A SASL user, as NAME:PASSWORD (repeatable).
    #[arg(long = "sasl-user", value_name = "NAME:PASSWORD", value_parser = parse_user)]
    sasl_users: Vec<(String, String)>,
}

fn parse_mechanism(s: &str) -> Result<kprod::sasl::Mechanism, String> {
    kprod::sasl::Mechanism::from_name(s).ok_or_else(|| {
        format!("{s:?}: expected PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER")
    })
}

fn parse_user(s: &str) -> Result<(String, String), String> {
    match s.split_once(':') {
        Some((name, password)) if !name.is_empty() => Ok((name.to_string(), password.to_string())),
        // Never echo the argument: it holds a password.
        _ => Err("expected NAME:PASSWORD".into()),
    }
}

fn read(what: &str, path: &std::path::Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{what} {}: {e}", path.display()))
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
    if let (Some(cert), Some(key)) = (&a.tls_cert, &a.tls_key) {
        b = b.tls(&read("--tls-cert", cert)?, &read("--tls-key", key)?);
        if let Some(ca) = &a.tls_client_ca {
            b = b.tls_client_ca(&read("--tls-client-ca", ca)?);
        }
    }
    if !a.sasl_mechanisms.is_empty() {
        let with_password = a
            .sasl_mechanisms
            .iter()
            .any(|m| kprod::sasl::Mechanism::WITH_PASSWORD.contains(m));
        if with_password && a.sasl_users.is_empty() {
            return Err("PLAIN and SCRAM need at least one --sasl-user NAME:PASSWORD".into());
        }
        b = b.sasl_mechanisms(&a.sasl_mechanisms);
        for (name, password) in &a.sasl_users {
            b = b.sasl_user(name, password);
        }
    } else if !a.sasl_users.is_empty() {
        return Err("--sasl-user needs --sasl-mechanism".into());
    }
    let protocol = match (a.tls_cert.is_some(), !a.sasl_mechanisms.is_empty()) {
        (false, false) => "PLAINTEXT",
        (true, false) => "SSL",
        (false, true) => "SASL_PLAINTEXT",
        (true, true) => "SASL_SSL",
    };
    let cluster = b
        .build()
        .map_err(|e| format!("starting the mock cluster: {e}"))?;
    // The address alone on the first line of stdout, so scripts can read it; the security
    // protocol to use on the second; the rest on stderr.
    // One write, errors ignored: a reader that stops after the first line (`| head -1`)
    // must not break the cluster.
    {
        use std::io::Write;
        let lines = format!(
            "{}\nsecurity.protocol={protocol}\n",
            cluster.bootstrap_servers()
        );
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(lines.as_bytes());
        let _ = out.flush();
    }
    if !a.sasl_mechanisms.is_empty() {
        let names: Vec<_> = a.sasl_mechanisms.iter().map(|m| m.name()).collect();
        eprintln!("kprod mock: SASL mechanisms {}", names.join(", "));
    }
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

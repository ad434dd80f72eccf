//! The `kprod` binary: `produce` from stdin, `perf`, and `mock`, with and without `-b`.
#![cfg(feature = "cli")]

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use kprod::mock::MockCluster;

#[path = "support/certs.rs"]
#[allow(dead_code)]
mod certs;

fn kprod() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kprod"))
}

fn run(mut cmd: Command, stdin: &str) -> Output {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run kprod");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn produce_reads_lines_keys_and_headers_like_kcat() {
    let cluster = MockCluster::builder().topic("lines", 1).build().unwrap();
    let mut cmd = kprod();
    cmd.args(["produce", "-b", &cluster.bootstrap_servers(), "-t", "lines"])
        .args(["-K", "::", "-H", "src=cli", "-H", "src=again", "-z", "zstd"])
        .args(["--acks", "all", "--idempotence", "--linger-ms", "1"])
        .args(["-X", "delivery.timeout.ms=40000"]);
    let out = run(cmd, "k1::v1\nno key here\nk3::v::3\r\n\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("4 records read, 4 acknowledged, 0 failed"));
    let got: Vec<_> = cluster
        .records("lines", 0)
        .into_iter()
        .map(|r| {
            let h: Vec<_> = r
                .headers
                .iter()
                .map(|h| (h.key.clone(), h.value.as_ref().map(|v| text(v))))
                .collect();
            (r.key.map(|k| text(&k)), r.value.map(|v| text(&v)), h)
        })
        .collect();
    let h = vec![
        ("src".to_string(), Some("cli".to_string())),
        ("src".to_string(), Some("again".to_string())),
    ];
    let s = |x: &str| Some(x.to_string());
    assert_eq!(
        got,
        vec![
            (s("k1"), s("v1"), h.clone()),
            (None, s("no key here"), h.clone()),
            (s("k3"), s("v::3"), h.clone()),
            (None, s(""), h),
        ]
    );
}

#[test]
fn produce_exits_nonzero_and_says_why_when_a_record_fails() {
    let cluster = MockCluster::builder().topic("small", 2).build().unwrap();
    let mut cmd = kprod();
    cmd.args([
        "produce",
        "-b",
        &cluster.bootstrap_servers(),
        "-t",
        "small",
        "-p",
        "5",
    ]);
    let out = run(cmd, "a\nb\n");
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("line 1") && err.contains("partition"), "{err}");
    assert!(
        err.contains("2 records read, 0 acknowledged, 2 failed"),
        "{err}"
    );
}

#[test]
fn bad_arguments_are_named() {
    let out = run(
        {
            let mut c = kprod();
            c.args(["produce", "-t", "x", "-X", "lingr.ms=5"]);
            c
        },
        "",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("lingr.ms"),
        "{}",
        text(&out.stderr)
    );
    let out = run(
        {
            let mut c = kprod();
            c.args(["produce", "-t", "x", "-z", "brotli"]);
            c
        },
        "",
    );
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("brotli"));
}

#[test]
fn produce_without_bootstrap_uses_an_embedded_cluster_and_says_so() {
    let mut cmd = kprod();
    cmd.args(["produce", "-t", "embedded"]);
    let out = run(cmd, "one\ntwo\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("embedded mock cluster"), "{err}");
    assert!(err.contains("2 acknowledged"), "{err}");
}

/// kafka-producer-perf-test's final line, then µs percentiles and CPU per record.
fn check_perf_report(stdout: &str, n: u64) {
    let first = stdout.lines().next().unwrap_or_default();
    assert!(
        first.starts_with(&format!("{n} records sent, "))
            && first.contains(" records/sec (")
            && first.contains(" MB/sec), ")
            && first.contains(" ms avg latency, ")
            && first.ends_with(" ms 99.9th."),
        "{stdout}"
    );
    assert!(stdout.contains("latency µs"), "{stdout}");
    assert!(stdout.contains("client CPU: "), "{stdout}");
    // One in 100 records is timed through its stages (the default).
    let stages = stdout
        .lines()
        .find(|l| l.starts_with("stages p50/p99 µs ("))
        .unwrap_or_else(|| panic!("no stage line: {stdout}"));
    for stage in [
        "queued ",
        " sending ",
        " broker ",
        " completing ",
        " total ",
    ] {
        assert!(stages.contains(stage), "{stages}");
    }
}

#[test]
fn perf_against_a_given_cluster_in_both_modes() {
    let cluster = MockCluster::builder()
        .topic("perf", 3)
        .sink(true)
        .build()
        .unwrap();
    for mode in ["send", "produce"] {
        let mut cmd = kprod();
        cmd.args(["perf", "-b", &cluster.bootstrap_servers(), "-t", "perf"])
            .args([
                "--num-records",
                "3000",
                "--record-size",
                "64",
                "--mode",
                mode,
            ])
            .args(["-z", "lz4", "--linger-ms", "0"]);
        let out = run(cmd, "");
        assert!(out.status.success(), "{mode}: {}", text(&out.stderr));
        check_perf_report(&text(&out.stdout), 3000);
        assert!(!text(&out.stderr).contains("embedded"));
    }
    // Warm-up record plus 2 × 3000.
    let stored: i64 = (0..3).map(|p| cluster.end_offset("perf", p)).sum();
    assert_eq!(stored, 6002);
}

#[test]
fn perf_at_a_fixed_rate_on_the_embedded_cluster() {
    let mut cmd = kprod();
    cmd.args(["perf", "--num-records", "2000", "--record-size", "100"])
        .args(["--throughput", "4000"]);
    let t = Instant::now();
    let out = run(cmd, "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        t.elapsed() >= Duration::from_millis(450),
        "2000 records at 4000/s take 0.5 s"
    );
    let stdout = text(&out.stdout);
    check_perf_report(&stdout, 2000);
    assert!(stdout.contains("from the intended send time"), "{stdout}");
    assert!(text(&out.stderr).contains("embedded mock cluster"));
}

#[test]
fn perf_prints_metrics_snapshots_as_it_runs() {
    let mut cmd = kprod();
    // 3,000 records at 3,000/s: about a second, with a snapshot every 0.1 s.
    cmd.args(["perf", "--num-records", "3000", "--record-size", "50"])
        .args(["--throughput", "3000", "--stats-interval", "0.1"]);
    let out = run(cmd, "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    check_perf_report(&text(&out.stdout), 3000);
    let stderr = text(&out.stderr);
    let stats: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("stats at "))
        .collect();
    assert!(stats.len() >= 3, "{stderr}");
    // Each names the counters; acknowledgements only grow.
    let acked = |l: &str| -> u64 {
        let v = l.split("acked=").nth(1).unwrap().split(' ').next().unwrap();
        v.parse().unwrap()
    };
    for l in &stats {
        for key in [
            "in_flight=",
            "queue_depth=",
            "sent=",
            "batches=",
            "mean_batch=",
            "_rtt_us=p50:",
        ] {
            assert!(l.contains(key), "{key} missing: {l}");
        }
    }
    assert!(
        stats.windows(2).all(|w| acked(w[0]) <= acked(w[1])),
        "{stats:?}"
    );
    assert!(acked(stats[stats.len() - 1]) > acked(stats[0]), "{stats:?}");
    // Off by default; a bad interval is refused.
    let mut cmd = kprod();
    cmd.args(["perf", "--num-records", "100", "--stats-interval=-1"]);
    let out = run(cmd, "");
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--stats-interval"),
        "{}",
        text(&out.stderr)
    );
}

/// `--preset` starts from a preset's values; flags given override them.
#[test]
fn presets_and_flags_that_override_them() {
    let settings = |args: &[&str]| {
        let mut cmd = kprod();
        cmd.args(["perf", "--num-records", "200"]).args(args);
        let out = run(cmd, "");
        assert!(out.status.success(), "{}", text(&out.stderr));
        let err = text(&out.stderr);
        err.lines()
            .find(|l| l.starts_with("kprod perf: mode="))
            .unwrap_or_else(|| panic!("no settings line in {err}"))
            .to_string()
    };
    let t = settings(&["--preset", "high-throughput"]);
    assert!(
        t.contains("acks=Leader") && t.contains("linger=10ms"),
        "{t}"
    );
    assert!(t.contains("compression=Lz4"), "{t}");
    let t = settings(&[
        "--preset",
        "high-throughput",
        "--linger-ms",
        "2",
        "-z",
        "zstd",
    ]);
    assert!(t.contains("linger=2ms") && t.contains("Zstd"), "{t}");
    let t = settings(&["--preset", "low-latency"]);
    assert!(
        t.contains("linger=0ns") && t.contains("batch.size=16384"),
        "{t}"
    );
    assert!(t.contains("idle_spin=200µs"), "{t}");
    let t = settings(&["--preset", "low-latency", "-X", "kprod.idle.spin.us=0"]);
    assert!(t.contains("idle_spin=0ns"), "{t}");
    let t = settings(&["--preset", "reliability"]);
    assert!(
        t.contains("acks=All") && t.contains("idempotence=true"),
        "{t}"
    );
    let mut cmd = kprod();
    cmd.args(["perf", "--preset", "fastest"]);
    let out = run(cmd, "");
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("high-throughput"),
        "{}",
        text(&out.stderr)
    );
}

/// A `kprod mock` child that is killed (and reaped) if it is still running when dropped: a
/// test that fails partway leaves no mock behind.
struct MockChild(std::process::Child);

impl std::ops::Deref for MockChild {
    type Target = std::process::Child;
    fn deref(&self) -> &std::process::Child {
        &self.0
    }
}

impl std::ops::DerefMut for MockChild {
    fn deref_mut(&mut self) -> &mut std::process::Child {
        &mut self.0
    }
}

impl Drop for MockChild {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Starts `kprod mock` with `args` and stdin as given; returns it and its bootstrap address.
fn start_mock(args: &[&str], stdin: Stdio) -> (MockChild, String) {
    let (child, bootstrap, _) = start_mock_secured(args, stdin);
    (child, bootstrap)
}

/// Starts `kprod mock`; its bootstrap address and the security protocol it printed.
fn start_mock_secured(args: &[&str], stdin: Stdio) -> (MockChild, String, String) {
    let mut child = kprod()
        .arg("mock")
        .args(args)
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map(MockChild)
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let (mut line, mut protocol) = (String::new(), String::new());
    out.read_line(&mut line).unwrap();
    out.read_line(&mut protocol).unwrap();
    let bootstrap = line.trim().to_string();
    assert!(bootstrap.contains("127.0.0.1:"), "{bootstrap:?}");
    (child, bootstrap, protocol.trim().to_string())
}

/// Waits (up to 10 s) for `child` to exit.
fn exit_status(child: &mut std::process::Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "kprod mock did not stop");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Produces one record to `topic`/`partition` through `bootstrap`; returns its offset.
fn produce_one(bootstrap: &str, topic: &'static str, partition: i32) -> Result<i64, kprod::Error> {
    let p = kprod::Producer::builder()
        .bootstrap_servers(bootstrap)
        .build()
        .unwrap();
    let r = p.produce_record(
        kprod::ProducerRecord::new(topic)
            .partition(partition)
            .value("x"),
    );
    p.close(Duration::from_secs(10)).unwrap();
    r.map(|md| md.offset)
}

#[test]
fn mock_runs_a_cluster_other_clients_can_use_until_stdin_closes() {
    let (mut child, bootstrap) = start_mock(
        &[
            "--until-stdin-closes",
            "--brokers",
            "2",
            "--topic",
            "shared:4",
            "--topic",
            "other:1",
        ],
        Stdio::piped(),
    );
    for part in 0..4 {
        assert_eq!(produce_one(&bootstrap, "shared", part).unwrap(), 0);
    }
    assert!(produce_one(&bootstrap, "other", 1).is_err());
    drop(child.stdin.take()); // closing stdin stops the cluster (with --until-stdin-closes)
    assert!(exit_status(&mut child).success());
}

/// `kprod mock ... </dev/null &` (a script, nohup, systemd, CI): it used to stop at once, as
/// the end of stdin meant "stop". Now it serves until SIGTERM or SIGINT, and stops cleanly
/// on either.
#[test]
fn mock_serves_with_stdin_at_its_end_until_sigterm_or_sigint() {
    for signal in ["-TERM", "-INT"] {
        let (mut child, bootstrap) = start_mock(&["--topic", "t:2"], Stdio::null());
        // Stdin is at its end from the start; it must still be serving a while later.
        assert_eq!(produce_one(&bootstrap, "t", 0).unwrap(), 0);
        assert!(
            child.try_wait().unwrap().is_none(),
            "stopped at the end of stdin"
        );
        assert_eq!(produce_one(&bootstrap, "t", 1).unwrap(), 0);
        let pid = child.id().to_string();
        let killed = Command::new("kill").args([signal, &pid]).status().unwrap();
        assert!(killed.success());
        let status = exit_status(&mut child);
        assert!(status.success(), "{signal}: {status:?}");
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        assert!(err.contains("stopping (SIG"), "{err}");
    }
}

/// A fresh directory for a test's PEM files, and a writer of one file into it (its path).
fn pem_dir(tag: &str) -> (std::path::PathBuf, impl Fn(&str, &str) -> String) {
    let dir = std::env::temp_dir().join(format!("kprod-cli-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let at = dir.clone();
    let file = move |name: &str, text: &str| {
        let p = at.join(name);
        std::fs::write(&p, text).unwrap();
        p.to_string_lossy().into_owned()
    };
    (dir, file)
}

/// SIGTERM to a `kprod mock`, which then exits 0.
fn stop_mock(child: &mut std::process::Child) {
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert!(killed.unwrap().success());
    assert!(exit_status(child).success());
}

/// `kprod mock` with TLS and SCRAM, and `kprod produce` reaching it with `-X` properties (the
/// librdkafka names): the protocol to use is printed on the second line.
#[test]
fn mock_serves_tls_and_sasl_and_produce_reaches_it_with_x_properties() {
    let pki = certs::pki();
    let (dir, file) = pem_dir("tls");
    let (cert, key, ca) = (
        file("broker.pem", &pki.broker.cert),
        file("broker.key", &pki.broker.key),
        file("ca.pem", &pki.ca),
    );
    let args = [
        "--topic",
        "sec:1",
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
        "--sasl-mechanism",
        "SCRAM-SHA-512",
        "--sasl-user",
        "cli:pa:ss",
    ];
    let (mut child, bootstrap, protocol) = start_mock_secured(&args, Stdio::null());
    assert_eq!(protocol, "security.protocol=SASL_SSL");
    let produce = |password: &str| {
        let mut cmd = kprod();
        cmd.args(["produce", "-b", &bootstrap, "-t", "sec"])
            .args([
                "-X",
                "security.protocol=SASL_SSL",
                "-X",
                &format!("ssl.ca.location={ca}"),
            ])
            .args([
                "-X",
                "sasl.mechanism=SCRAM-SHA-512",
                "-X",
                "sasl.username=cli",
            ])
            .args(["-X", &format!("sasl.password={password}")])
            .args([
                "-X",
                "message.timeout.ms=3000",
                "-X",
                "request.timeout.ms=1000",
            ]);
        run(cmd, "one\ntwo\n")
    };
    let out = produce("pa:ss");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("2 records read, 2 acknowledged, 0 failed"));
    // A wrong password: every record fails with the reason, the exit code says so, and the
    // password is nowhere in the output.
    let out = produce("wrong-password");
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("authentication with") && err.contains("SCRAM-SHA-512"),
        "{err}"
    );
    assert!(!err.contains("wrong-password"), "{err}");
    stop_mock(&mut child);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn mock_requires_client_certificates_and_perf_takes_security_x_properties() {
    let pki = certs::pki();
    let (dir, file) = pem_dir("mtls");
    let (cert, key, ca) = (
        file("broker.pem", &pki.broker.cert),
        file("broker.key", &pki.broker.key),
        file("ca.pem", &pki.ca),
    );
    let (client_cert, client_key) = (
        file("client.pem", &pki.client.cert),
        file("client.key", &pki.client.key),
    );
    let args = [
        "--topic",
        "sec:2",
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
        "--tls-client-ca",
        &ca,
        "--sasl-mechanism",
        "PLAIN",
        "--sasl-user",
        "perf:perf-secret",
    ];
    let (mut child, bootstrap, protocol) = start_mock_secured(&args, Stdio::null());
    assert_eq!(protocol, "security.protocol=SASL_SSL");
    let perf = |with_client_cert: bool| {
        let mut cmd = kprod();
        cmd.args(["perf", "-b", &bootstrap, "-t", "sec"])
            .args(["--num-records", "500", "--record-size", "64"])
            .args([
                "-X",
                "security.protocol=SASL_SSL",
                "-X",
                &format!("ssl.ca.location={ca}"),
                "-X",
                "sasl.mechanism=PLAIN",
                "-X",
                "sasl.username=perf",
                "-X",
                "sasl.password=perf-secret",
                "-X",
                "message.timeout.ms=3000",
                "-X",
                "request.timeout.ms=1000",
            ]);
        if with_client_cert {
            cmd.args([
                "-X",
                &format!("ssl.certificate.location={client_cert}"),
                "-X",
                &format!("ssl.key.location={client_key}"),
            ]);
        }
        run(cmd, "")
    };
    let out = perf(true);
    assert!(out.status.success(), "{}", text(&out.stderr));
    check_perf_report(&text(&out.stdout), 500);
    // Without a client certificate the mock refuses the TLS handshake: perf fails, saying
    // so, and the password is nowhere in what it prints.
    let out = perf(false);
    assert!(!out.status.success(), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(err.to_lowercase().contains("tls"), "{err}");
    assert!(!err.contains("perf-secret") && !text(&out.stdout).contains("perf-secret"));
    stop_mock(&mut child);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn topic_create_makes_the_topic_and_says_when_it_exists() {
    let cluster = MockCluster::builder().brokers(3).build().unwrap();
    let b = cluster.bootstrap_servers();
    let mut cmd = kprod();
    cmd.args(["topic", "create", "made", "-b", &b, "--partitions", "7"])
        .args(["--replication", "3", "--config", "max.message.bytes=40000"]);
    let out = run(cmd, "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("created topic \"made\""));
    assert_eq!(cluster.partition_count("made"), Some(7));
    assert_eq!(cluster.max_message_bytes("made"), Some(40_000));
    // Again: refused, exit 1, the broker's reason; with --if-not-exists, fine.
    let mut cmd = kprod();
    cmd.args(["topic", "create", "made", "-b", &b, "--partitions", "7"]);
    let out = run(cmd, "");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("TOPIC_ALREADY_EXISTS"),
        "{}",
        text(&out.stderr)
    );
    let mut cmd = kprod();
    cmd.args(["topic", "create", "made", "-b", &b, "--if-not-exists"]);
    let out = run(cmd, "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("already exists"));
    // A bad property is named, exit 2.
    let mut cmd = kprod();
    cmd.args(["topic", "create", "x", "-b", &b, "-X", "no.such=1"]);
    let out = run(cmd, "");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("no.such"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn produce_in_transactions_commits_every_n_records_and_fails_if_one_does_not_commit() {
    let cluster = MockCluster::builder()
        .topic("txn-lines", 2)
        .accept_transactions(true)
        .build()
        .unwrap();
    let input: String = (1..=25).map(|i| format!("line {i}\n")).collect();
    let mut cmd = kprod();
    cmd.args([
        "produce",
        "-b",
        &cluster.bootstrap_servers(),
        "-t",
        "txn-lines",
    ])
    .args([
        "--transactional-id",
        "cli-txn",
        "--transaction-records",
        "10",
    ]);
    let out = run(cmd, &input);
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("3 transactions committed (25 records), 0 aborted"),
        "{err}"
    );
    // Three EndTxn requests, every batch transactional.
    assert_eq!(cluster.request_count(kprod::protocol::ApiKey::END_TXN.0), 3);
    let batches: Vec<_> = (0..2)
        .flat_map(|p| cluster.batches("txn-lines", p))
        .collect();
    assert!(!batches.is_empty() && batches.iter().all(|b| b.transactional));

    // The coordinator refuses a commit: that transaction aborts, and the exit code says so.
    cluster.fail_requests(
        kprod::protocol::ApiKey::END_TXN.0,
        &[kprod::protocol::ErrorCode::TRANSACTION_ABORTABLE],
    );
    let mut cmd = kprod();
    cmd.args([
        "produce",
        "-b",
        &cluster.bootstrap_servers(),
        "-t",
        "txn-lines",
    ])
    .args(["--transactional-id", "cli-txn"]);
    let out = run(cmd, "a\nb\n");
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("0 transactions committed (0 records), 1 aborted"),
        "{err}"
    );
}

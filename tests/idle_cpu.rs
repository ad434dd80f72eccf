//! Waiting costs no CPU: with records waiting and no broker reachable, the process sleeps
//! until a deadline or a socket needs it. Alone in its test binary, so the CPU measured is
//! the producer's.
#![cfg(target_os = "linux")]

use std::time::{Duration, Instant};

use kprod::{Deadline, Error, Producer, ProducerRecord};

fn record() -> ProducerRecord {
    ProducerRecord::new("t").value("v")
}

/// The process's CPU time (user + system), from /proc/self/stat.
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    let hz = 100; // USER_HZ on Linux
    Duration::from_millis(ticks * 1000 / hz)
}

/// `echo hi | kprod produce -b 127.0.0.1:1 -t t` used 40 s of CPU in the 60 s until the
/// metadata timeout (a wanted refresh kept the I/O thread from parking). Now, with records
/// waiting and nothing reachable, the process uses under 2% of a core, and the records still
/// fail at the metadata deadline.
#[test]
fn unreachable_bootstrap_waits_without_spinning() {
    // A port nothing listens on: bind, note it, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let p = Producer::builder()
        .bootstrap_servers(&format!("127.0.0.1:{port}"))
        .metadata_timeout(Duration::from_secs(7))
        .build()
        .unwrap();
    let h = p.produce_async(record()).unwrap();
    let h2 = p
        .produce_async(ProducerRecord::new("other").value("v"))
        .unwrap();
    // Let the first connection attempts and backoffs settle, then measure 5 s.
    std::thread::sleep(Duration::from_millis(500));
    let (cpu0, t0) = (process_cpu(), Instant::now());
    std::thread::sleep(Duration::from_secs(5));
    let (cpu, wall) = (process_cpu() - cpu0, t0.elapsed());
    let share = cpu.as_secs_f64() / wall.as_secs_f64();
    assert!(
        share < 0.02,
        "{cpu:?} of CPU in {wall:?} ({:.1}%)",
        share * 100.0
    );
    for h in [h, h2] {
        let e = h
            .wait_timeout(Duration::from_secs(5))
            .expect("failed at the metadata deadline")
            .unwrap_err();
        assert!(
            matches!(
                e,
                Error::Timeout {
                    deadline: Deadline::Metadata,
                    ..
                }
            ),
            "{e:?}"
        );
    }
    p.close(Duration::from_secs(3)).unwrap();
}

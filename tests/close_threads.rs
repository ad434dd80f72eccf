//! No thread outlives `close()`, with brokers healthy or gone. One test per binary: it counts
//! the process's threads by name.
#![cfg(target_os = "linux")]

mod support;

use std::time::Duration;

use kprod::{Producer, ProducerRecord};
use rdkafka::mocking::MockCluster;
use support::threads::{kprod_threads, threads_reach};

#[test]
fn close_leaves_no_thread_even_under_faults() {
    let cluster = MockCluster::new(2).unwrap();
    cluster.create_topic("t", 4, 1).unwrap();
    assert_eq!(kprod_threads(), 0);
    for broker_gone in [false, true] {
        let p = Producer::builder()
            .bootstrap_servers(&cluster.bootstrap_servers())
            .io_threads(2)
            .callback_threads(2)
            .request_timeout(Duration::from_millis(300))
            .delivery_timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        assert_eq!(threads_reach(4), 4, "2 I/O + 2 callback threads");
        p.produce("t", "k", "v").unwrap();
        if broker_gone {
            cluster.broker_down(1).unwrap();
            cluster.broker_down(2).unwrap();
        }
        let mut handles = Vec::new();
        for i in 0..1000 {
            handles.push(
                p.produce_async(ProducerRecord::new("t").key(format!("{i}")).value("v"))
                    .unwrap(),
            );
        }
        let r = p.close(Duration::from_millis(500));
        assert_eq!(r.is_ok(), !broker_gone, "{r:?}");
        assert_eq!(
            threads_reach(0),
            0,
            "threads left after close (broker gone: {broker_gone})"
        );
        // Every handle has its one outcome.
        let failed = handles
            .into_iter()
            .map(|h| h.try_result().expect("every record completed by close"))
            .filter(Result::is_err)
            .count();
        if !broker_gone {
            assert_eq!(failed, 0);
        }
        if broker_gone {
            cluster.broker_up(1).unwrap();
            cluster.broker_up(2).unwrap();
        }
    }
}

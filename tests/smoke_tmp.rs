mod support;
use std::time::Duration;
use support::fake_broker::{FakeBroker, Profile};

#[test]
fn smoke() {
    let b = FakeBroker::start(Profile::MODERN, 3);
    let p = kprod::Producer::builder()
        .bootstrap_servers(&b.bootstrap())
        .linger(Duration::from_millis(2))
        .io_threads(2)
        .build()
        .unwrap();
    let md = p.produce("t", "k", "v").unwrap();
    eprintln!("{md:?}");
    for i in 0..10000 {
        p.send("t", format!("k{i}"), "value").unwrap();
    }
    p.flush(Duration::from_secs(10)).unwrap();
    let r = p.produce_all((0..10).map(|i| kprod::ProducerRecord::new("t").value(format!("{i}"))));
    assert!(r.all_ok());
    eprintln!("{:?}", p.metrics());
    p.close(Duration::from_secs(5)).unwrap();
    let st = b.state.lock().unwrap();
    let n: usize = st
        .captured
        .iter()
        .map(|c| c.batches.iter().map(|b| b.records.len()).sum::<usize>())
        .sum();
    assert_eq!(n, 10011);
}

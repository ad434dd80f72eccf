//! Shared by the examples: where to connect.

use kprod::mock::MockCluster;

/// The bootstrap address given as the first command-line argument, or else an embedded
/// [`MockCluster`] with `topics` (name, partitions), kept alive by the returned guard.
pub fn bootstrap(topics: &[(&str, i32)]) -> std::io::Result<(String, Option<MockCluster>)> {
    if let Some(b) = std::env::args().nth(1) {
        return Ok((b, None));
    }
    // Transactions too (examples/transactions.rs).
    let mut builder = MockCluster::builder().accept_transactions(true);
    for (name, partitions) in topics {
        builder = builder.topic(name, *partitions);
    }
    let cluster = builder.build()?;
    let b = cluster.bootstrap_servers();
    eprintln!("no bootstrap given: using an embedded mock cluster at {b}");
    Ok((b, Some(cluster)))
}

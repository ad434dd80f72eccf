//! Which I/O thread owns which broker: balanced by count.
//!
//! Each broker's connections, and the partitions it leads, belong to one I/O thread. A broker
//! keeps its thread for as long as metadata lists it (moving a live broker would hand its
//! partitions to another thread with requests in flight on the old one's socket); a broker
//! metadata no longer lists frees its place, and each new broker goes to the thread with the
//! fewest. So brokers 10, 20 and 30 on two threads split 2 + 1, where `id % threads` put all
//! three on one.
//!
//! Thread 0 also keeps the control connection (Metadata, InitProducerId) and the leaderless
//! partitions, so on a tie a new broker goes to the highest-numbered thread.

/// Broker id → I/O thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Placement {
    threads: usize,
    /// (broker, thread), sorted by broker.
    owners: Vec<(i32, usize)>,
}

impl Placement {
    pub fn new(threads: usize) -> Self {
        assert!(threads > 0, "validated in config");
        Placement {
            threads,
            owners: Vec::new(),
        }
    }

    /// The thread for `broker`'s connections and partitions; 0 for no leader (-1). A broker
    /// never placed (metadata has not listed it) gets a fixed fallback.
    pub fn owner(&self, broker: i32) -> usize {
        if broker < 0 {
            return 0;
        }
        match self.owners.binary_search_by_key(&broker, |&(b, _)| b) {
            Ok(i) => self.owners[i].1,
            Err(_) => broker as usize % self.threads,
        }
    }

    /// Places exactly the brokers in `brokers` (any order, duplicates allowed): those already
    /// placed keep their thread, the others are dropped, and new ones go, in id order, to the
    /// thread with the fewest brokers. Returns whether anything changed.
    pub fn update(&mut self, brokers: impl IntoIterator<Item = i32>) -> bool {
        let mut ids: Vec<i32> = brokers.into_iter().filter(|&b| b >= 0).collect();
        ids.sort_unstable();
        ids.dedup();
        let mut kept: Vec<(i32, usize)> = self
            .owners
            .iter()
            .copied()
            .filter(|(b, _)| ids.binary_search(b).is_ok())
            .collect();
        let mut load = vec![0usize; self.threads];
        for &(_, t) in &kept {
            load[t] += 1;
        }
        for &b in &ids {
            if kept.binary_search_by_key(&b, |&(k, _)| k).is_ok() {
                continue;
            }
            // Fewest brokers; on a tie the highest index (thread 0 carries the control plane).
            let t = (0..self.threads)
                .rev()
                .min_by_key(|&t| load[t])
                .expect("threads > 0");
            load[t] += 1;
            let at = kept.partition_point(|&(k, _)| k < b);
            kept.insert(at, (b, t));
        }
        let changed = kept != self.owners;
        self.owners = kept;
        changed
    }

    /// Places `broker` if it is not placed yet (a leader learnt from a Produce answer before
    /// metadata lists it), keeping every other broker where it is.
    pub fn add(&mut self, broker: i32) {
        if broker >= 0
            && self
                .owners
                .binary_search_by_key(&broker, |&(b, _)| b)
                .is_err()
        {
            let mut all: Vec<i32> = self.owners.iter().map(|&(b, _)| b).collect();
            all.push(broker);
            self.update(all);
        }
    }

    /// Brokers per thread.
    #[cfg(test)]
    fn loads(&self) -> Vec<usize> {
        let mut load = vec![0; self.threads];
        for &(_, t) in &self.owners {
            load[t] += 1;
        }
        load
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brokers_whose_ids_share_a_residue_are_spread() {
        let mut p = Placement::new(2);
        assert!(p.update([10, 20, 30]));
        let owners: Vec<usize> = [10, 20, 30].iter().map(|&b| p.owner(b)).collect();
        assert!(owners.contains(&0) && owners.contains(&1), "{owners:?}");
        assert_eq!(p.loads(), vec![1, 2], "the tie goes away from thread 0");
        assert_eq!(p.owner(-1), 0);
    }

    #[test]
    fn counts_stay_within_one_as_brokers_come_and_go() {
        let mut p = Placement::new(3);
        p.update(0..7);
        assert_eq!(
            p.loads().iter().max().unwrap() - p.loads().iter().min().unwrap(),
            1
        );
        let before: Vec<usize> = (0..7).map(|b| p.owner(b)).collect();
        // Two brokers leave: the rest keep their threads.
        p.update([0, 1, 2, 4, 6]);
        for b in [0, 1, 2, 4, 6] {
            assert_eq!(p.owner(b), before[b as usize], "broker {b} moved");
        }
        // New ones fill the emptiest threads first.
        p.update([0, 1, 2, 4, 6, 100, 101, 102, 103]);
        let l = p.loads();
        assert!(
            l.iter().max().unwrap() - l.iter().min().unwrap() <= 1,
            "{l:?}"
        );
        for b in [0, 1, 2, 4, 6] {
            assert_eq!(p.owner(b), before[b as usize], "broker {b} moved");
        }
        assert!(
            !p.update([103, 0, 1, 2, 4, 6, 100, 101, 102, 2]),
            "same set"
        );
    }

    #[test]
    fn one_thread_owns_everything() {
        let mut p = Placement::new(1);
        p.update([5, 9, 1]);
        assert_eq!([5, 9, 1, -1, 77].map(|b| p.owner(b)), [0; 5]);
    }
}

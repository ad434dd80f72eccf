//! A small admin surface beside the producer: creating topics
//! ([`Producer::create_topics`](crate::Producer::create_topics)), because a user's first step
//! against a real cluster is often making the topic. It uses the producer's own connections,
//! with their TLS and SASL.

/// A topic to create.
///
/// ```
/// use kprod::admin::NewTopic;
///
/// let t = NewTopic::new("orders", 12)
///     .replication(3)
///     .config("retention.ms", "86400000")
///     .config("max.message.bytes", "2000000");
/// assert_eq!(t.partitions, 12);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopic {
    /// Its name.
    pub name: String,
    /// Partition count; -1 for the broker's default (`num.partitions`).
    pub partitions: i32,
    /// Replication factor; -1 (the default) for the broker's default
    /// (`default.replication.factor`).
    pub replication: i16,
    /// Topic configs (`cleanup.policy`, `retention.ms`, `max.message.bytes`, ...).
    pub configs: Vec<(String, String)>,
}

impl NewTopic {
    /// A topic with `partitions` partitions (-1: the broker's default), the broker's default
    /// replication factor and no configs.
    pub fn new(name: impl Into<String>, partitions: i32) -> Self {
        NewTopic {
            name: name.into(),
            partitions,
            replication: -1,
            configs: Vec::new(),
        }
    }

    /// The replication factor (default -1: the broker's).
    pub fn replication(mut self, factor: i16) -> Self {
        self.replication = factor;
        self
    }

    /// Adds a topic config (none by default).
    pub fn config(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.configs.push((name.into(), value.into()));
        self
    }
}

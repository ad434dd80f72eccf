//! `send()` from a hot loop allocates nothing beyond the record's own bytes: counted by a
//! global allocator that counts the calling thread's allocations only.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Duration;

use bytes::Bytes;
use kprod::Producer;
use rdkafka::mocking::MockCluster;

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

fn note() {
    // `try_with`: the thread-locals may be gone while a thread exits.
    let _ = COUNTING.try_with(|on| {
        if on.get() {
            let _ = ALLOCS.try_with(|n| n.set(n.get() + 1));
        }
    });
}

// SAFETY: every call is forwarded unchanged to the system allocator; the counting touches only
// const-initialised thread-locals without destructors, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn counted(f: impl FnOnce()) -> u64 {
    ALLOCS.with(|n| n.set(0));
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCS.with(|n| n.get())
}

#[test]
fn send_allocates_nothing_beyond_the_records_bytes() {
    const N: usize = 100_000;
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("hot", 3, 1).unwrap();
    let p = Producer::builder()
        .bootstrap_servers(&cluster.bootstrap_servers())
        .queue_capacity(N)
        .acks(kprod::Acks::Leader)
        .build()
        .unwrap();
    // The topic's metadata and the rings are set up by the first record.
    p.produce("hot", "k", "v").unwrap();
    let key = Bytes::from_static(b"key-0123");
    let value = Bytes::from(vec![7u8; 100]);
    // A `Bytes` made from a Vec allocates its shared header on the first clone: do it here.
    drop(value.clone());
    let owned = counted(|| {
        for _ in 0..N {
            p.send("hot", key.clone(), value.clone()).unwrap();
        }
    });
    assert_eq!(
        owned, 0,
        "send() with Bytes allocated {owned} times in {N} calls"
    );
    // Borrowed slices are copied: one allocation for the key, one for the value, no more.
    let borrowed = counted(|| {
        for _ in 0..1000 {
            p.send("hot", &b"key-0123"[..], &[7u8; 100][..]).unwrap();
        }
    });
    assert_eq!(borrowed, 2000);
    p.flush(Duration::from_secs(30)).unwrap();
    assert_eq!(p.metrics().records_acked, N as u64 + 1001);
    p.close(Duration::from_secs(30)).unwrap();
}

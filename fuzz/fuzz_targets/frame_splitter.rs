//! The frame splitter over arbitrary byte streams delivered in arbitrary chunk sizes: never
//! panics, and every frame it returns has exactly the length its prefix declared.
#![no_main]
use bytes::BytesMut;
use kprod::protocol::FrameSplitter;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, stream)) = data.split_first() else { return };
    let chunk = usize::from(chunk).max(1);
    let mut s = FrameSplitter::new(4096);
    let mut buf = BytesMut::new();
    let mut consumed = 0usize;
    for piece in stream.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            let before = buf.len();
            match s.next_frame(&mut buf) {
                Ok(Some(f)) => {
                    assert!(f.len() <= 4096);
                    assert_eq!(before - buf.len(), f.len() + 4);
                    consumed += f.len() + 4;
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
    assert_eq!(consumed + buf.len(), stream.len());
});

//! The broker side: request header and every request decoder (from the generated table, so a
//! new message is covered as soon as its spec is), on arbitrary frames; and any Produce
//! request that decodes has its record batches decoded too. Never panics.
#![no_main]
use kprod::protocol::messages::decode_any;
use kprod::protocol::messages::produce::ProduceRequest;
use kprod::protocol::record_batch::decode_record_batches;
use kprod::protocol::{decode_request, decode_request_header, ApiKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|frame: &[u8]| {
    let Ok((h, body)) = decode_request_header(frame) else { return };
    let v = h.api_version;
    if h.api_key == ApiKey::PRODUCE {
        if let Ok(req) = decode_request::<ProduceRequest>(body, v) {
            for t in req.topic_data {
                for p in t.partition_data {
                    if let Some(r) = p.records {
                        let _ = decode_record_batches(&r, 1 << 20);
                    }
                }
            }
        }
    } else {
        let _ = decode_any(h.api_key, v, false, body);
    }
});

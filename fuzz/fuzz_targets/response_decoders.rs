//! Every response decoder at every version, on arbitrary bodies: never panics. The first two
//! bytes pick the message (from the generated table, so a new message is covered as soon as
//! its spec is) and the version, so one corpus covers all of them. ApiVersions goes through
//! its fallback decoder as the client reads it; Fetch responses have their records decoded.
#![no_main]
use kprod::protocol::messages::fetch::FetchRequest;
use kprod::protocol::messages::{decode_any, MESSAGES};
use kprod::protocol::negotiation::decode_api_versions_response;
use kprod::protocol::{decode_response, ApiKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [api, sel, body @ ..] = data else { return };
    let m = &MESSAGES[*api as usize % MESSAGES.len()];
    let n = (m.max_version - m.min_version + 1) as u8;
    let v = m.min_version + (sel % n) as i16;
    match m.api_key {
        // These two read a whole frame (correlation id first).
        ApiKey::API_VERSIONS => {
            let _ = decode_api_versions_response(body, v);
        }
        ApiKey::FETCH => {
            if let Ok((_, resp)) = decode_response::<FetchRequest>(body, v) {
                for t in resp.responses {
                    for p in t.partitions {
                        if let Some(r) = p.records {
                            let _ = kprod::protocol::record_batch::decode_record_batches(&r, 1 << 20);
                        }
                    }
                }
            }
        }
        api => {
            let _ = decode_any(api, v, true, body);
        }
    }
});

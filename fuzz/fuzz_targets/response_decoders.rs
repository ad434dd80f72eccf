//! Every response decoder at every version, on arbitrary frames: never panics. The first two
//! bytes pick the API and version so one corpus covers all of them.
#![no_main]
use kprod::protocol::messages::api_versions::{decode_api_versions_response, ApiVersionsRequest};
use kprod::protocol::messages::create_topics::CreateTopicsRequest;
use kprod::protocol::messages::fetch::FetchRequest;
use kprod::protocol::messages::list_offsets::ListOffsetsRequest;
use kprod::protocol::messages::init_producer_id::InitProducerIdRequest;
use kprod::protocol::messages::metadata::MetadataRequest;
use kprod::protocol::messages::produce::ProduceRequest;
use kprod::protocol::messages::Request;
use kprod::protocol::decode_response;
use libfuzzer_sys::fuzz_target;

fn pick<R: Request>(sel: u8) -> i16 {
    let n = (R::MAX_VERSION - R::MIN_VERSION + 1) as u8;
    R::MIN_VERSION + (sel % n) as i16
}

fuzz_target!(|data: &[u8]| {
    let [api, sel, frame @ ..] = data else { return };
    match api % 7 {
        0 => {
            let _ = decode_api_versions_response(frame, pick::<ApiVersionsRequest>(*sel));
        }
        1 => {
            let _ = decode_response::<MetadataRequest>(frame, pick::<MetadataRequest>(*sel));
        }
        2 => {
            let _ = decode_response::<ProduceRequest>(frame, pick::<ProduceRequest>(*sel));
        }
        3 => {
            let _ = decode_response::<InitProducerIdRequest>(frame, pick::<InitProducerIdRequest>(*sel));
        }
        4 => {
            let _ = decode_response::<ListOffsetsRequest>(frame, pick::<ListOffsetsRequest>(*sel));
        }
        5 => {
            let _ = decode_response::<CreateTopicsRequest>(frame, pick::<CreateTopicsRequest>(*sel));
        }
        _ => {
            if let Ok((_, resp)) = decode_response::<FetchRequest>(frame, pick::<FetchRequest>(*sel)) {
                for t in resp.responses {
                    for p in t.partitions {
                        if let Some(r) = p.records {
                            let _ = kprod::protocol::record_batch::decode_record_batches(&r, 1 << 20);
                        }
                    }
                }
            }
        }
    }
});

//! The broker side: request header and every request decoder, on arbitrary frames; and any
//! Produce request that decodes has its record batches decoded too. Never panics.
#![no_main]
use kprod::protocol::messages::api_versions::ApiVersionsRequest;
use kprod::protocol::messages::create_topics::CreateTopicsRequest;
use kprod::protocol::messages::fetch::FetchRequest;
use kprod::protocol::messages::list_offsets::ListOffsetsRequest;
use kprod::protocol::messages::init_producer_id::InitProducerIdRequest;
use kprod::protocol::messages::metadata::MetadataRequest;
use kprod::protocol::messages::produce::ProduceRequest;
use kprod::protocol::record_batch::decode_record_batches;
use kprod::protocol::{decode_request, decode_request_header, ApiKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|frame: &[u8]| {
    let Ok((h, body)) = decode_request_header(frame) else { return };
    let v = h.api_version;
    match h.api_key {
        ApiKey::API_VERSIONS => drop(decode_request::<ApiVersionsRequest>(body, v)),
        ApiKey::METADATA => drop(decode_request::<MetadataRequest>(body, v)),
        ApiKey::INIT_PRODUCER_ID => drop(decode_request::<InitProducerIdRequest>(body, v)),
        ApiKey::LIST_OFFSETS => drop(decode_request::<ListOffsetsRequest>(body, v)),
        ApiKey::FETCH => drop(decode_request::<FetchRequest>(body, v)),
        ApiKey::CREATE_TOPICS => drop(decode_request::<CreateTopicsRequest>(body, v)),
        ApiKey::PRODUCE => {
            if let Ok(req) = decode_request::<ProduceRequest>(body, v) {
                for t in req.topic_data {
                    for p in t.partition_data {
                        if let Some(r) = p.records {
                            let _ = decode_record_batches(&r, 1 << 20);
                        }
                    }
                }
            }
        }
        _ => {}
    }
});

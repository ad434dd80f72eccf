//! SCRAM, both sides: the client's parsing of server-first and server-final messages, and the
//! mock's parsing of client-first and client-final ones, on arbitrary bytes. Never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    kprod::sasl::fuzzing::scram_client(data);
    kprod::sasl::fuzzing::scram_server(data);
});

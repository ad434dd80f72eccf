//! OAUTHBEARER (the broker's answers, JWT claims, unsecured-token settings, the mock's
//! validation of client messages) and `sasl.jaas.config` lines, on arbitrary bytes. Never
//! panics.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    kprod::sasl::fuzzing::sasl(data);
});

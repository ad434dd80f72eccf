//! The benches' OpenTelemetry from the environment (with `--features opentelemetry`):
//! `KPROD_BENCH_OTEL=RATIO` reports a span per record to an SDK tracer provider sampling
//! that ratio of traces with `TraceIdRatioBased` (no exporter: kprod's instrumentation and
//! the SDK's span handling, not an exporter's cost). `KPROD_BENCH_OTEL_HEAD` set as well:
//! kprod samples (`head_sampling(RATIO)`) and the provider keeps what it is given;
//! `KPROD_BENCH_OTEL_ROOTS=0`: `propagate_dropped_roots(false)` too.

use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};

/// What the environment asks for; `None` when `KPROD_BENCH_OTEL` is not set.
pub fn from_env() -> Option<kprod::otel::OpenTelemetry> {
    let ratio: f64 = std::env::var("KPROD_BENCH_OTEL")
        .ok()?
        .parse()
        .expect("KPROD_BENCH_OTEL: a sampling ratio");
    let head = std::env::var_os("KPROD_BENCH_OTEL_HEAD").is_some();
    let sampler = if head {
        Sampler::AlwaysOn
    } else {
        Sampler::TraceIdRatioBased(ratio)
    };
    // The tracer keeps the provider alive for as long as the producer runs.
    let provider = SdkTracerProvider::builder().with_sampler(sampler).build();
    let mut otel = kprod::otel::OpenTelemetry::new().traces(&provider);
    if head {
        otel = otel.head_sampling(ratio);
    }
    let roots = std::env::var("KPROD_BENCH_OTEL_ROOTS").map_or(true, |v| v != "0");
    eprintln!("OpenTelemetry on, sampling {ratio} (kprod decides first: {head})");
    Some(otel.propagate_dropped_roots(roots))
}

//! OpenTelemetry: a producer span per record, a child of the caller's span, and its W3C trace
//! context in the record's `traceparent` header. The spans go to the SDK's in-memory exporter
//! here (an application would use OTLP); the example prints them, and, with the embedded
//! cluster, the header each stored record carries.
//!
//! ```sh
//! cargo run --example opentelemetry --features mock,opentelemetry
//! cargo run --example opentelemetry --features mock,opentelemetry -- localhost:9092
//! ```

use std::time::Duration;

use kprod::otel::OpenTelemetry;
use kprod::Producer;
use opentelemetry::trace::{Span as _, TraceContextExt, Tracer, TracerProvider as _};
use opentelemetry::Context;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};

mod common;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (bootstrap, cluster) = common::bootstrap(&[("orders", 1)])?;
    let exporter = InMemorySpanExporter::default();
    // Keep the provider for as long as the producer runs: dropping it shuts it down.
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let producer = Producer::builder()
        .bootstrap_servers(&bootstrap)
        .opentelemetry(OpenTelemetry::new().traces(&provider))
        .build()?;

    // The application's own span: the records sent under it join its trace.
    let request = provider.tracer("shop").start("checkout");
    let trace_id = request.span_context().trace_id();
    {
        let _in_request = Context::current_with_span(request).attach();
        for order in ["order-17", "order-18"] {
            let md = producer.produce("orders", order, "{\"status\":\"paid\"}")?;
            println!("{order}: offset {}", md.offset);
        }
    }
    producer.close(Duration::from_secs(10))?;

    println!("trace {trace_id}");
    for span in exporter.get_finished_spans()? {
        println!(
            "  span {} {:?} parent {}",
            span.name, span.span_kind, span.parent_span_id
        );
        for kv in &span.attributes {
            println!("    {} = {}", kv.key, kv.value);
        }
    }
    if let Some(cluster) = cluster {
        for r in cluster.records("orders", 0) {
            for h in r.headers.iter().filter(|h| h.key == "traceparent") {
                let value = h.value.as_deref().map(String::from_utf8_lossy);
                println!("offset {} traceparent {:?}", r.offset, value);
            }
        }
    }
    Ok(())
}

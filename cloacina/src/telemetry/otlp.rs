//! OpenTelemetry export (feature `otel`): the engine's `tracing` spans (one per pipeline, one per
//! task attempt, with the run and task ids as attributes) sent to an OTLP/HTTP collector by a
//! batch exporter on a thread of its own.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use tracing_subscriber::prelude::*;
//! // OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4318 (and the other OTEL_EXPORTER_OTLP_* settings)
//! let export = cloacina::telemetry::otlp::OtlpExport::from_env("my-service")?;
//! tracing_subscriber::registry().with(export.layer()).init();
//! // … run the application; at exit, send what is buffered:
//! export.shutdown()?;
//! # Ok(()) }
//! ```

use std::fmt;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;

/// The wire encoding of OTLP over HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OtlpProtocol {
    /// `http/protobuf`, the OTLP default.
    #[default]
    HttpProtobuf,
    /// `http/json`.
    HttpJson,
}

impl OtlpProtocol {
    /// Reads `OTEL_EXPORTER_OTLP_PROTOCOL` (`http/protobuf` when unset or empty).
    pub fn from_env() -> Result<Self, OtlpError> {
        match std::env::var("OTEL_EXPORTER_OTLP_PROTOCOL") {
            Ok(text) if !text.is_empty() => text.parse(),
            _ => Ok(OtlpProtocol::default()),
        }
    }
}

impl std::str::FromStr for OtlpProtocol {
    type Err = OtlpError;

    /// `http/protobuf` or `http/json` (`OTEL_EXPORTER_OTLP_PROTOCOL`'s spellings).
    fn from_str(text: &str) -> Result<Self, OtlpError> {
        match text {
            "http/protobuf" => Ok(OtlpProtocol::HttpProtobuf),
            "http/json" => Ok(OtlpProtocol::HttpJson),
            other => Err(OtlpError(format!(
                "protocol {other:?} is not supported: use http/protobuf or http/json (OTLP over HTTP, port 4318)"
            ))),
        }
    }
}

/// Why the exporter could not be set up or flushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpError(String);

impl fmt::Display for OtlpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OpenTelemetry export: {}", self.0)
    }
}

impl std::error::Error for OtlpError {}

/// An OTLP span exporter and the tracer provider that batches spans for it.
///
/// [`layer`](Self::layer) gives the `tracing` layer to install; [`shutdown`](Self::shutdown)
/// sends what is still buffered (dropping it does the same, ignoring errors).
pub struct OtlpExport {
    provider: SdkTracerProvider,
}

impl fmt::Debug for OtlpExport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtlpExport").finish_non_exhaustive()
    }
}

impl OtlpExport {
    /// Exports to where the standard variables say: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (the
    /// full URL), else `OTEL_EXPORTER_OTLP_ENDPOINT` plus `/v1/traces`, else
    /// `http://localhost:4318/v1/traces`; `OTEL_EXPORTER_OTLP_PROTOCOL`, `…_HEADERS` and
    /// `…_TIMEOUT` as the OTLP specification describes them.
    pub fn from_env(service_name: &str) -> Result<Self, OtlpError> {
        Self::build(None, OtlpProtocol::from_env()?, service_name)
    }

    /// Exports to `traces_url` (the full URL, such as `http://collector:4318/v1/traces`).
    pub fn new(traces_url: &str, protocol: OtlpProtocol, service_name: &str) -> Result<Self, OtlpError> {
        Self::build(Some(traces_url), protocol, service_name)
    }

    fn build(url: Option<&str>, protocol: OtlpProtocol, service_name: &str) -> Result<Self, OtlpError> {
        let protocol = match protocol {
            OtlpProtocol::HttpProtobuf => Protocol::HttpBinary,
            OtlpProtocol::HttpJson => Protocol::HttpJson,
        };
        let mut builder = opentelemetry_otlp::SpanExporter::builder().with_http().with_protocol(protocol);
        if let Some(url) = url {
            builder = builder.with_endpoint(url);
        }
        let exporter = builder.build().map_err(|e| OtlpError(e.to_string()))?;
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(Resource::builder().with_service_name(service_name.to_owned()).build())
            .build();
        Ok(OtlpExport { provider })
    }

    /// The `tracing` layer that turns spans into OpenTelemetry spans for this exporter.
    pub fn layer<S>(&self) -> impl tracing_subscriber::Layer<S>
    where
        S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
    {
        tracing_opentelemetry::layer().with_tracer(self.provider.tracer("cloacina"))
    }

    /// Sends every finished span still buffered, and waits for the collector's answer.
    pub fn flush(&self) -> Result<(), OtlpError> {
        self.provider.force_flush().map_err(|e| OtlpError(e.to_string()))
    }

    /// Sends what is buffered and stops the exporter.
    pub fn shutdown(self) -> Result<(), OtlpError> {
        self.provider.shutdown().map_err(|e| OtlpError(e.to_string()))
    }
}

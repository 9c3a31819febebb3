"""The service's Prometheus metrics: one registry per app, so two apps in one process (tests) never share counts."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class ServiceMetrics:
    """HTTP traffic, ingest jobs and the index size, in the app's own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests_total = Counter("srekb_http_requests_total", "HTTP requests", ["route", "method", "status"], registry=self.registry)
        self.latency = Histogram("srekb_http_request_seconds", "HTTP request latency", ["route", "method"], registry=self.registry,
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.ingest_files = Counter("srekb_ingest_files_total", "files processed by ingest jobs", ["outcome"], registry=self.registry)
        self.ingest_jobs = Counter("srekb_ingest_jobs_total", "ingest jobs", ["status"], registry=self.registry)
        self.chunks = Gauge("srekb_index_chunks", "chunks in the index", registry=self.registry)
        self.sources = Gauge("srekb_index_sources", "files in the index", registry=self.registry)

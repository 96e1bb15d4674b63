"""Prometheus metrics for the service, one registry per app so tests can build many apps."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from app.model.recognizer import Recognizer

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.0, 2.5, 5.0, 10.0, 30.0)
STAGE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28)
FACE_BUCKETS = (0, 1, 2, 3, 4, 5, 8, 12, 20, 50)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "http_requests_total",
            "HTTP requests by route, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "Time from request to response, by route and status",
            ["route", "method", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.faces = Histogram(
            "faces_per_photo",
            "Faces found per classified photo",
            buckets=FACE_BUCKETS,
            registry=self.registry,
        )
        self.stage = Histogram(
            "inference_stage_seconds",
            "Time spent in each pipeline stage",
            ["stage"],
            buckets=STAGE_BUCKETS,
            registry=self.registry,
        )
        self.model = Info("model", "The model being served", registry=self.registry)
        # Admission control (app/api/admission.py): per worker, like every metric here.
        self.in_flight = Gauge(
            "inference_in_flight", "Photos being processed on inference threads", registry=self.registry
        )
        self.queue_depth = Gauge(
            "inference_queue_depth", "Admitted photos waiting for an inference thread", registry=self.registry
        )
        self.shed = Counter(
            "inference_shed_total",
            "Photos answered 503 at once, without waiting: the worker was full (full), the photos "
            "ahead would keep it waiting past MAX_QUEUE_WAIT_S (slow), or it is shutting down (draining)",
            ["reason"],
            registry=self.registry,
        )
        self.dropped = Counter(
            "inference_dropped_total",
            "Admitted photos given up on, by reason (client_gone, timeout, shutdown) and stage",
            ["reason", "stage"],
            registry=self.registry,
        )
        for reason in ("full", "draining"):
            self.shed.labels(reason)  # exported as 0 from the start, so a rate() has a baseline

    def observe_stage(self, stage: str, seconds: float) -> None:
        self.stage.labels(stage).observe(seconds)

    def set_model(self, model: Recognizer) -> None:
        m = model.manifest
        self.model.info(
            {
                "backend": m.backend,
                "version": m.version,
                "detector": model.detector.name,
                "features": m.features.name,
            }
        )

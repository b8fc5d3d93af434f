"""Every Prometheus metric of the app and the worker, declared in one place.

Names are a contract with the dashboards and alert rules in `deploy/`
(a test checks that every name they use is exposed). One process per
container is the deployment model, so the default registry is used; several
server processes on one host each need their own port and scrape target.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_PICTURE = (0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

# The web tier's golden signals, by route template (never the raw path; `unmatched` when no
# route matched) and the status sent (499: the client went away first). See `web.envelope`.
HTTP_REQUESTS = Counter(
    "figachechnaya_http_requests", "HTTP requests answered", ["method", "route", "status"]
)
HTTP_DURATION = Histogram(
    "figachechnaya_http_request_duration_seconds",
    "Time to answer an HTTP request",
    ["method", "route"],
    buckets=_LATENCY,
)
HTTP_IN_FLIGHT = Gauge("figachechnaya_http_requests_in_flight", "HTTP requests being answered")

# The product.
FIGALIZATIONS = Counter(
    "figachechnaya_figalizations", "Figalizations answered", ["scheme", "stored"]
)
REJECTED_INPUTS = Counter(
    "figachechnaya_rejected_inputs", "Phrases refused by the input rules", ["code"]
)
# How many figalizations share one transaction: ~1 when idle, more under load or when
# each round trip to the database is slow (the group commit absorbs latency this way).
GROUP_COMMIT_BATCH = Histogram(
    "figachechnaya_group_commit_batch_size",
    "Figalizations written per transaction",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)

# The way of a job from the database to the queue.
JOBS_RELAYED = Counter("figachechnaya_outbox_relayed", "Image jobs published from the outbox")
JOBS_REQUEUED = Counter(
    "figachechnaya_image_jobs_requeued", "Pending pictures queued again by the reconciler"
)
OUTBOX_BACKLOG = Gauge("figachechnaya_outbox_backlog", "Image jobs waiting in the outbox")
OUTBOX_OLDEST_JOB_AGE = Gauge(
    "figachechnaya_outbox_oldest_job_age_seconds",
    "How long the oldest image job in the outbox has waited for the queue (0: none waits)",
)

# The worker.
JOBS_CONSUMED = Counter("figachechnaya_image_jobs_consumed", "Image job messages received")
JOBS_DONE = Counter(
    "figachechnaya_image_jobs", "Image jobs finished, by outcome", ["outcome"]
)  # outcome: ready | failed | invalid
STORE_RETRIES = Counter("figachechnaya_image_store_retries", "Picture uploads retried")
# Kafka delivers at least once: a job for a picture already ready came again (a worker
# stopped or the group rebalanced before its batch was committed). Drawn twice, stored once.
JOBS_REDELIVERED = Counter(
    "figachechnaya_image_jobs_redelivered", "Image jobs that made a picture already ready"
)
RENDER_SECONDS = Histogram(
    "figachechnaya_image_render_seconds", "Time to draw one picture", buckets=_PICTURE
)
UPLOAD_SECONDS = Histogram(
    "figachechnaya_image_upload_seconds", "Time to store one picture", buckets=_PICTURE
)
END_TO_END_SECONDS = Histogram(
    "figachechnaya_image_end_to_end_seconds",
    "From the figalization to its stored picture",
    buckets=_PICTURE,
)
LAST_PICTURE = Gauge(
    "figachechnaya_image_last_success_timestamp_seconds", "When the last picture was stored"
)
ASSIGNED_PARTITIONS = Gauge(
    "figachechnaya_worker_assigned_partitions",
    "Partitions of the job topic this worker holds in its consumer group (0: it gets no jobs)",
)
CONSUMER_LAG = Gauge(
    "figachechnaya_consumer_lag", "Messages not yet consumed, per partition", ["partition"]
)

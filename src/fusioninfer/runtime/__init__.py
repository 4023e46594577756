"""FusionInfer's reusable controller runtime (client-go / controller-runtime semantics, asyncio).

Knows nothing about InferenceService. The pieces:

* `Informer`      paginated list + watch of one resource type into a dict cache with owner and
                  label indexes; relists on 410 with synthetic deletes; survives apiserver restarts.
* `WorkQueue`     de-duplicating, delaying, rate-limited queue of keys.
* `Controller`    N workers reconciling `ObjectKey`s fed by informers (`watch_primary`,
                  `watch_owned`); `Result(requeue_after=...)`; `TerminalError`.
* `LeaderElector` Lease-based leader election; `run(work)` cancels the work on lost leadership.
* `apply`         server-side apply, delete and get of dict manifests.
* `diff`          `needs_apply`/`first_difference` (desired contained in live), the hash annotation.
* `client`        the AsyncClient: strict field validation, requests counted (`RequestCounter`).
* `metrics`       controller-runtime metric names; `MetricsServer` for /metrics /healthz /readyz.
* `logging`       json/console structured logs with per-reconcile context.
"""

from fusioninfer.kube.owners import controller_owner
from fusioninfer.runtime.apply import apply, apply_status, delete, get
from fusioninfer.runtime.client import async_client
from fusioninfer.runtime.diff import APPLIED_HASH_ANNOTATION, first_difference, needs_apply, with_hash_annotation
from fusioninfer.runtime.informer import Informer
from fusioninfer.runtime.leader import LeaderElectionConfig, LeaderElector, LeadershipLost
from fusioninfer.runtime.logs import log_context, setup_logging
from fusioninfer.runtime.loop import Controller, ObjectKey, Result, TerminalError
from fusioninfer.runtime.metrics import MetricsServer, RuntimeMetrics, default_metrics, use_registry
from fusioninfer.runtime.ratelimit import (
    BucketRateLimiter,
    ItemExponentialFailureRateLimiter,
    MaxOfRateLimiter,
    default_controller_rate_limiter,
)
from fusioninfer.runtime.registry import KindRegistry, default_registry, raw_resource
from fusioninfer.runtime.request_counter import CountingTransport, RequestCounter
from fusioninfer.runtime.workqueue import ShutDownError, WorkQueue

__all__ = [
    "APPLIED_HASH_ANNOTATION",
    "BucketRateLimiter",
    "Controller",
    "CountingTransport",
    "Informer",
    "ItemExponentialFailureRateLimiter",
    "KindRegistry",
    "LeaderElectionConfig",
    "LeaderElector",
    "LeadershipLost",
    "MaxOfRateLimiter",
    "MetricsServer",
    "ObjectKey",
    "RequestCounter",
    "Result",
    "RuntimeMetrics",
    "ShutDownError",
    "TerminalError",
    "WorkQueue",
    "apply",
    "apply_status",
    "async_client",
    "controller_owner",
    "default_controller_rate_limiter",
    "default_metrics",
    "default_registry",
    "delete",
    "first_difference",
    "get",
    "log_context",
    "needs_apply",
    "raw_resource",
    "setup_logging",
    "use_registry",
    "with_hash_annotation",
]

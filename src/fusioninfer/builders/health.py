"""The health probes of the engines' HTTP servers: `GET /health` with a model-loading budget.

Only the probe bodies: which containers get them is decided by `probes` (single-node pods,
multi-node leaders) and `multinode` (a leader's readiness); both import them from here.
"""

from __future__ import annotations

from typing import Any

HEALTH_PATH = "/health"
PERIOD_SECONDS = 10
STARTUP_FAILURE_THRESHOLD = 180  # x 10 s = 30 minutes to load a model


def _health_probe(port: int, failure_threshold: int) -> dict[str, Any]:
    """`GET /health` (vLLM and SGLang), every field written as the apiserver would default it."""
    return {
        "httpGet": {"path": HEALTH_PATH, "port": port, "scheme": "HTTP"},
        "periodSeconds": PERIOD_SECONDS,
        "timeoutSeconds": 5,
        "successThreshold": 1,
        "failureThreshold": failure_threshold,
    }


def http_readiness_probe(port: int) -> dict[str, Any]:
    """Three failed checks in a row take the pod out of the pool."""
    return _health_probe(port, failure_threshold=3)


def http_startup_probe(port: int) -> dict[str, Any]:
    """The model-loading budget (30 minutes)."""
    return _health_probe(port, failure_threshold=STARTUP_FAILURE_THRESHOLD)

"""Health probes of serving containers: Ready only once the engine answers, never while the model
is still loading.

Without probes a serving pod is Ready as soon as its container starts, so the endpoint picker
(which admits any Ready pod) sends it traffic while the weights are still loading, and a rolling
update with `maxSurge: 0` replaces every replica before a new one serves. Both vLLM and SGLang
answer `GET /health` once the model is loaded.

Every container that serves HTTP (a single-node pod, a multi-node leader) gets, unless the user's
template already sets it:
- a startup probe on `/health` with a budget for large models: checked every 10 s, 180 failures
  allowed, so 30 minutes to download and load the weights before the kubelet restarts the
  container (override it with the template's own `startupProbe`);
- a readiness probe on `/health` every 10 s (3 failures take the pod out of the pool).
The port is where the engine itself listens (behind the routing sidecar on P/D decode pods).
Multi-node workers serve no HTTP and get none (see `multinode`). The probe bodies are `health`'s.
"""

from __future__ import annotations

from typing import Any

from fusioninfer.api.v1alpha1 import Role
from fusioninfer.builders import engine as engines
from fusioninfer.builders.context import BuildContext, Manifest
from fusioninfer.builders.health import http_readiness_probe, http_startup_probe
from fusioninfer.builders.podparts import PodPart
from fusioninfer.builders.ports import engine_port


def _probe_port(probe: Any) -> int | None:
    """The port an existing HTTP readiness probe checks (a multi-node leader's, or the user's):
    the startup probe checks the same server."""
    if isinstance(probe, dict) and isinstance(probe.get("httpGet"), dict):
        port = probe["httpGet"].get("port")
        return port if isinstance(port, int) else None
    return None


def decorate(ctx: BuildContext, role: Role, template: Manifest, part: PodPart) -> Manifest:
    """Add the missing startup and readiness probes to the serving container of `part`."""
    if part is PodPart.WORKER:
        return template
    serving = engines.serving_container(role)
    containers = (template.get("spec") or {}).get("containers") or []
    container = next((c for c in containers if isinstance(c, dict) and c.get("name") == serving.name), None)
    if container is None:
        return template
    port = _probe_port(container.get("readinessProbe")) or engine_port(ctx, role, part)
    if "readinessProbe" not in container:
        container["readinessProbe"] = http_readiness_probe(port)
    if "startupProbe" not in container:
        container["startupProbe"] = http_startup_probe(port)
    return template

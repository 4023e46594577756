"""The `inference.networking.k8s.io/v1` InferencePool `{service}-pool` of a routed service.

It selects exactly the pods that serve HTTP: `fusioninfer.io/service` plus our own
`fusioninfer.io/serving: "true"` label, which `pd.decorate` puts on single-node pods and
multi-node leaders of every serving role (never on multi-node workers, never on the picker).
The target port is the serving container's real port (8000 only when nothing says otherwise);
decode pods of a P/D service expose the routing sidecar on that same port.

Defaulted fields are written out (`kind`, `failureMode`; not the empty core `group`) so server-side apply
compares like with like.
"""

from __future__ import annotations

from fusioninfer.api import naming
from fusioninfer.api.labels import LABEL_SERVICE, LABEL_SERVING, SERVING_VALUE
from fusioninfer.api.v1alpha1 import Role
from fusioninfer.builders import engine as engines
from fusioninfer.builders import ports, refs
from fusioninfer.builders.context import BuildContext, Manifest

API_VERSION = refs.INFERENCE_POOL_API_VERSION
GROUP = refs.INFERENCE_POOL_GROUP
KIND = refs.INFERENCE_POOL_KIND
SPEC_WARNINGS = "SpecWarnings"


def selector(ctx: BuildContext) -> dict[str, str]:
    return {LABEL_SERVICE: ctx.name, LABEL_SERVING: SERVING_VALUE}


def report_port_conflicts(ctx: BuildContext) -> None:
    """An InferencePool has one port for all its pods: say so when serving roles disagree."""
    by_role = {r.name: engines.serving_container(r).port for r in ports.pool_port_roles(ctx)}
    if len(set(by_role.values())) > 1:
        chosen = ports.pool_port(ctx)
        listed = ", ".join(f"{name}: {port}" for name, port in by_role.items())
        ctx.notice(
            SPEC_WARNINGS,
            "ConflictingServingPorts",
            f"serving roles listen on different ports ({listed}); the InferencePool targets {chosen}, so "
            f"pods on another port get no traffic. Serve every role on one port",
        )


def build(ctx: BuildContext, router: Role) -> Manifest:
    report_port_conflicts(ctx)
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": ctx.metadata(naming.pool_name(ctx.name), ctx.role_labels(router)),
        "spec": {
            "selector": {"matchLabels": dict(sorted(selector(ctx).items()))},
            "targetPorts": [{"number": ports.pool_port(ctx)}],
            "endpointPickerRef": {
                # group "" (core) is the default; written out it trips older apiservers' apply ("null").
                "kind": "Service",
                "name": naming.epp_name(ctx.name),
                "port": {"number": refs.PICKER_GRPC_PORT},
                # No picker, no routing: never spray requests at random pods.
                "failureMode": "FailClose",
            },
        },
    }

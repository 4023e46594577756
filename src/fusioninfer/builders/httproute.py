"""The `gateway.networking.k8s.io/v1` HTTPRoute `{service}-route` that sends traffic to the pool.

The user's `httproute` fragment is kept: parentRefs, hostnames, and every rule's name, matches,
filters and timeouts (the Go original replaced all rules, losing them). We add the InferencePool
backendRef to every rule (validation forbids users' own backendRefs), a PathPrefix `/` rule when
there is none, and the Gateway we create, if any, as a parent.

Everything the apiserver would default is written out (parentRef group/kind, match path type,
backendRef group/kind/weight) so server-side apply does not see a diff on every reconcile, and
`timeouts.request` is an explicit non-zero duration: kgateway 2.1 mishandles `0s`, and LLM
responses often take longer than gateways' 15 s defaults.

Two shapes the Gateway API CRD's CEL rules forbid are never produced: a `request` timeout we add
is never shorter than the user's `backendRequest`, and a rule with a `RequestRedirect` filter
(which answers the client itself) gets no backendRef.
"""

from __future__ import annotations

from typing import Any

from fusioninfer.api import naming
from fusioninfer.api.durations import duration_ms
from fusioninfer.api.v1alpha1 import Role
from fusioninfer.builders import refs
from fusioninfer.builders.context import BuildContext, Manifest, deep_copy
from fusioninfer.builders.engine_flags import model_names

API_VERSION = "gateway.networking.k8s.io/v1"
KIND = "HTTPRoute"
DEFAULT_REQUEST_TIMEOUT = "300s"
DEFAULT_PATH: dict[str, str] = {"type": "PathPrefix", "value": "/"}
# Set by the Inference Extension's body-based router from the request body's `model`.
MODEL_HEADER = "X-Gateway-Model-Name"
MAX_MATCHES = 64
SPEC_WARNINGS = "SpecWarnings"


def redirects(rule: dict[str, Any]) -> bool:
    """True when the rule answers with a redirect: it must have no backendRefs."""
    return any(isinstance(f, dict) and f.get("type") == "RequestRedirect" for f in rule.get("filters") or [])


def _zero_duration(value: Any) -> bool:
    """Gateway API durations are e.g. `0s`, `1h0m`, `500ms`; zero when every number is 0."""
    text = str(value)
    digits = [c for c in text if c.isdigit()]
    return bool(digits) and all(c == "0" for c in digits)


def _parent_ref(ref: dict[str, Any]) -> dict[str, Any]:
    """The CRD's defaults written out (group and kind of a Gateway); whatever the user set wins.

    Exactly the apiserver's defaulting, even for a mesh `kind: Service` parent, which needs an
    explicit `group: ""` from the user just as it would without us.
    """
    return {"group": refs.GATEWAY_GROUP, "kind": refs.GATEWAY_KIND, **ref}


def _parent_refs(ctx: BuildContext, router: Role, spec: dict[str, Any]) -> list[dict[str, Any]]:
    parents: list[dict[str, Any]] = [_parent_ref(ref) for ref in spec.get("parentRefs") or []]
    if router.gateway is not None:
        ours = refs.gateway_parent_ref(ctx)
        already = any(
            r.get("name") == ours["name"]
            and r.get("kind") == refs.GATEWAY_KIND
            and r.get("group") == refs.GATEWAY_GROUP
            and r.get("namespace") in (None, ctx.namespace)
            for r in parents
        )
        if not already:
            parents.append(ours)
    return parents


def model_matches(ctx: BuildContext, router: Role) -> list[dict[str, Any]]:
    """One match per model name the service serves, on the header the body-based router sets
    from the request's JSON `model`, so that services share a Gateway (docs/routing.md)."""
    names = model_names(ctx)
    if not names:
        return [{}]
    if len(names) > MAX_MATCHES:
        ctx.notice(
            SPEC_WARNINGS,
            "TooManyModelNames",
            f"router {router.name}: {len(names)} model names (served names and LoRA adapters) exceed the "
            f"{MAX_MATCHES} matches an HTTPRoute rule may have; the route matches every request instead",
        )
        return [{}]
    return [{"headers": [{"type": "Exact", "name": MODEL_HEADER, "value": name}]} for name in names]


def _rule(ctx: BuildContext, router: Role, index: int, user_rule: dict[str, Any]) -> dict[str, Any]:
    rule: dict[str, Any] = dict(deep_copy(user_rule))
    matches = rule.get("matches") or model_matches(ctx, router)
    rule["matches"] = [{**match, "path": {**DEFAULT_PATH, **(match.get("path") or {})}} for match in matches]
    if not redirects(rule):
        rule["backendRefs"] = [
            {
                "group": refs.INFERENCE_POOL_GROUP,
                "kind": refs.INFERENCE_POOL_KIND,
                "name": naming.pool_name(ctx.name),
                "weight": 1,
            }
        ]
    timeouts = dict(rule.get("timeouts") or {})
    if "request" not in timeouts:
        # Never shorter than the user's backendRequest: the CRD rejects request < backendRequest.
        backend = duration_ms(timeouts.get("backendRequest"))
        default = duration_ms(DEFAULT_REQUEST_TIMEOUT)
        assert default is not None
        longer = backend is not None and backend > default
        timeouts["request"] = timeouts["backendRequest"] if longer else DEFAULT_REQUEST_TIMEOUT
    elif _zero_duration(timeouts["request"]):
        ctx.notice(
            SPEC_WARNINGS,
            "ZeroRequestTimeout",
            f"router {router.name}: httproute.rules[{index}].timeouts.request is {timeouts['request']!r} "
            f"(no timeout), which kgateway 2.1 mishandles; prefer a long explicit value such as "
            f"{DEFAULT_REQUEST_TIMEOUT}",
        )
    rule["timeouts"] = timeouts
    return rule


def build(ctx: BuildContext, router: Role) -> Manifest:
    spec_in: dict[str, Any] = dict(deep_copy(router.httproute or {}))
    spec: dict[str, Any] = {}
    parents = _parent_refs(ctx, router, spec_in)
    if parents:
        spec["parentRefs"] = parents
    else:
        ctx.notice(
            SPEC_WARNINGS,
            "RouteWithoutParent",
            f"router {router.name}: the HTTPRoute attaches to no Gateway; set httproute.parentRefs or gateway",
        )
    if spec_in.get("hostnames"):
        spec["hostnames"] = spec_in["hostnames"]
    rules = spec_in.get("rules") or [{}]
    spec["rules"] = [_rule(ctx, router, i, r) for i, r in enumerate(rules)]
    # Anything else the user wrote (future fields) rides along untouched.
    for key, value in spec_in.items():
        spec.setdefault(key, value)
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": ctx.metadata(naming.route_name(ctx.name), ctx.role_labels(router)),
        "spec": spec,
    }

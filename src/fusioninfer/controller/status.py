"""Pure status computation: what the children report -> the InferenceService's status.

Inputs are the desired objects (from the builders) and the live objects (from the informer
caches); output is the complete `status` dict. No I/O, so every rule is unit-tested, and the
reconciler writes the result only when it differs from what is stored. Each role's part is
`controller.components`'; the conditions read from children are `controller.child_conditions`'.
"""

from __future__ import annotations

from collections.abc import Iterable

from fusioninfer.api.errors import FieldError
from fusioninfer.api.status_spec import ComponentPhase, ServicePhase
from fusioninfer.api.v1alpha1 import InferenceService
from fusioninfer.builders import BuildResult
from fusioninfer.controller import conditions as C
from fusioninfer.controller.child_conditions import gang_condition, route_condition
from fusioninfer.controller.components import Observed, component_status
from fusioninfer.controller.conditions import Cond
from fusioninfer.controller.route_conflicts import model_values
from fusioninfer.kube.types import Obj

# `Observed` is the input every caller builds (the reconciler, bench/): importable from here.
__all__ = ["SUMMARY_LIMIT", "Observed", "compute_status", "explanation", "invalid_status", "routing_summary"]


def compute_status(
    isvc: InferenceService,
    result: BuildResult,
    observed: Observed,
    previous: Obj | None,
    now: str | None = None,
) -> Obj:
    """The complete new status of a valid service."""
    stamp = now or C.now_rfc3339()
    prev_components = (previous or {}).get("components") or {}
    views = [component_status(r, result, observed, prev_components.get(r.name), stamp) for r in isvc.roles]

    fatal = [n for n in result.notices if n.stops_the_engine]
    valid_message = (
        "spec is valid, but the engine will not start: " + "; ".join(f"{n.reason}: {n.message}" for n in fatal)
        if fatal
        else "spec is valid"
    )
    conds: list[Cond] = [Cond(C.VALID, "True", "ValidWithErrors" if fatal else "Valid", valid_message)]
    missing = [n for n in result.notices if n.condition == C.PREREQUISITES_MET]
    if missing:
        conds.append(Cond(C.PREREQUISITES_MET, "False", missing[0].reason, "; ".join(n.message for n in missing)))
    else:
        conds.append(Cond(C.PREREQUISITES_MET, "True", "AllInstalled", "every API this service needs is installed"))
    others: dict[str, list[str]] = {}
    reasons: dict[str, str] = {}
    for notice in result.notices:
        if notice.condition != C.PREREQUISITES_MET:
            others.setdefault(notice.condition, []).append(notice.message)
            reasons.setdefault(notice.condition, notice.reason)
    for type_, messages in others.items():
        conds.append(Cond(type_, "True", reasons[type_], "; ".join(messages)))

    running = [v for v in views if v.status["phase"] == ComponentPhase.RUNNING.value]
    failed = [v for v in views if v.status["phase"] == ComponentPhase.FAILED.value]
    not_ready = [v for v in views if v.status["phase"] != ComponentPhase.RUNNING.value]
    all_ready = not not_ready and not observed.apply_errors
    if all_ready:
        conds.append(Cond(C.READY, "True", "AllComponentsReady", f"{len(views)}/{len(views)} roles ready"))
    else:
        detail = "; ".join(f"{v.role}: {v.summary}" for v in not_ready) or "; ".join(observed.apply_errors)
        conds.append(Cond(C.READY, "False", "ComponentsNotReady", detail))

    if failed or observed.apply_errors:
        messages = [f"{v.role}: {v.failure}" for v in failed] + observed.apply_errors
        reason = "ComponentFailed" if failed else "ApplyFailed"
        conds.append(Cond(C.DEGRADED, "True", reason, "; ".join(messages)))
        conds.append(Cond(C.PROGRESSING, "False", "Stalled", "; ".join(messages)))
    else:
        conds.append(Cond(C.DEGRADED, "False", "AsExpected", "no component is failing"))
        if not_ready:
            conds.append(
                Cond(C.PROGRESSING, "True", "RollingOut", "; ".join(f"{v.role}: {v.summary}" for v in not_ready))
            )
        else:
            conds.append(Cond(C.PROGRESSING, "False", "Complete", "every role runs the current spec"))

    for extra in (route_condition(isvc, observed), gang_condition(isvc, result, observed)):
        if extra is not None:
            conds.append(extra)

    if failed or observed.apply_errors:
        phase = ServicePhase.FAILED if len(failed) == len(views) else ServicePhase.DEGRADED
    elif all_ready:
        phase = ServicePhase.RUNNING
    elif any(v.status["phase"] == ComponentPhase.DEPLOYING.value for v in views) or running:
        phase = ServicePhase.DEPLOYING
    else:
        phase = ServicePhase.PENDING

    merged = C.merge((previous or {}).get("conditions"), conds, isvc.metadata.generation, stamp)
    out: Obj = {
        "observedGeneration": isvc.metadata.generation,
        "phase": phase.value,
        "readyRoles": f"{len(running)}/{len(views)}",
        **explanation(merged),
        **routing_summary(result),
        "conditions": merged,
        "components": {v.role: v.status for v in views},
    }
    return out


SUMMARY_LIMIT = 256


def explanation(conditions: list[Obj]) -> Obj:
    """reason/message of the condition that explains the state (for `kubectl get -o wide`): the
    first False of Valid, PrerequisitesMet, Ready; Ready's when all hold."""
    for type_ in (C.VALID, C.PREREQUISITES_MET, C.READY):
        cond = C.find(conditions, type_)
        if cond is not None and cond.get("status") == "False":
            break
    else:
        cond = C.find(conditions, C.READY)
    if cond is None:
        return {}
    message = str(cond.get("message", ""))
    short = message if len(message) <= SUMMARY_LIMIT else message[: SUMMARY_LIMIT - 3] + "..."
    return {"reason": cond.get("reason"), "message": short}


def routing_summary(result: BuildResult) -> Obj:
    """The model names the service's route matches and the Gateways it attaches to."""
    route = next((o for o in result.objects if o["kind"] == "HTTPRoute"), None)
    if route is None:
        return {}
    namespace = route["metadata"].get("namespace", "")
    gateways = [f"{ref.get('namespace') or namespace}/{ref['name']}" for ref in route["spec"].get("parentRefs") or []]
    models = sorted(model_values(route))
    return {
        **({"models": ", ".join(models)} if models else {}),
        **({"route": ", ".join(gateways)} if gateways else {}),
    }


def invalid_status(
    errors: Iterable[FieldError], generation: int | None, previous: Obj | None, now: str | None = None
) -> Obj:
    """Status of a spec that cannot be built: Valid=False with every error and its path."""
    message = "; ".join(str(e) for e in errors)
    conds = [
        Cond(C.VALID, "False", "InvalidSpec", message),
        Cond(C.READY, "False", "InvalidSpec", "the spec is invalid; see the Valid condition"),
    ]
    merged = C.merge((previous or {}).get("conditions"), conds, generation, now)
    out: Obj = {
        "observedGeneration": generation,
        "phase": ServicePhase.INVALID.value,
        **explanation(merged),
        "conditions": merged,
    }
    # Keep the last observed components: the children still exist and still serve.
    if previous and previous.get("components"):
        out["components"] = previous["components"]
        out["readyRoles"] = previous.get("readyRoles")
    return {k: v for k, v in out.items() if v is not None}

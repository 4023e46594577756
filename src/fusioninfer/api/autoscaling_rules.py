"""The rules of `spec.roles[].autoscaling`, each reported at its field path."""

from __future__ import annotations

from fusioninfer.api.autoscaling_spec import AutoscalingProvider
from fusioninfer.api.errors import FieldError
from fusioninfer.api.v1alpha1 import InferenceService


def check_autoscaling(isvc: InferenceService) -> list[FieldError]:
    errors: list[FieldError] = []
    roles = {r.name: r for r in isvc.spec.roles}
    for index, role in enumerate(isvc.spec.roles):
        scaling = role.autoscaling
        if scaling is None or role.is_router:
            continue
        at = f"spec.roles[{index}].autoscaling"
        provider = scaling.effective_provider
        if scaling.ratio_to is not None:
            target = roles.get(scaling.ratio_to.role)
            if target is None or target.is_router or target.name == role.name:
                errors.append(
                    FieldError(
                        f"{at}.ratioTo.role", f"Invalid value: {scaling.ratio_to.role!r}: not another serving role"
                    )
                )
            elif target.autoscaling is None or target.autoscaling.ratio_to is not None:
                errors.append(
                    FieldError(
                        f"{at}.ratioTo.role",
                        f"Invalid value: {target.name!r} is not autoscaled by a provider: a ratio follows a role "
                        "whose replicas an autoscaler sets",
                    )
                )
            for field, value in (
                ("minReplicas", scaling.min_replicas),
                ("maxReplicas", scaling.max_replicas),
                ("provider", scaling.provider),
                ("metrics", scaling.metrics),
                ("triggers", scaling.triggers),
                ("behavior", scaling.behavior),
            ):
                if value is not None:
                    errors.append(
                        FieldError(f"{at}.{field}", "Forbidden: with ratioTo the other role's autoscaler decides")
                    )
            continue
        if scaling.max_replicas is None:
            errors.append(FieldError(f"{at}.maxReplicas", "Required value: an autoscaled role needs maxReplicas"))
        elif scaling.effective_min > scaling.max_replicas:
            errors.append(
                FieldError(
                    f"{at}.minReplicas",
                    f"Invalid value: {scaling.effective_min}: larger than maxReplicas {scaling.max_replicas}",
                )
            )
        if scaling.min_replicas == 0 and provider is not AutoscalingProvider.KEDA:
            errors.append(
                FieldError(
                    f"{at}.minReplicas", "Invalid value: 0: scaling to zero needs provider: keda (HPA keeps >= 1)"
                )
            )
        if provider is AutoscalingProvider.HPA:
            if scaling.triggers is not None:
                errors.append(FieldError(f"{at}.triggers", "Forbidden: triggers are KEDA's; HPA takes metrics"))
            if not scaling.metrics:
                errors.append(
                    FieldError(
                        f"{at}.metrics",
                        "Required value: at least one autoscaling/v2 metric (e.g. a Pods metric "
                        "vllm:num_requests_waiting): CPU, the HPA's default, says nothing about a GPU server's load",
                    )
                )
        else:
            if scaling.metrics is not None:
                errors.append(FieldError(f"{at}.metrics", "Forbidden: metrics are HPA's; KEDA takes triggers"))
            if not scaling.triggers:
                errors.append(
                    FieldError(f"{at}.triggers", "Required value: a KEDA ScaledObject needs at least one trigger")
                )
    return errors

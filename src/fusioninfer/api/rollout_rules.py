"""Rules of a role's rolling-update budget (`rollout`), as the workload controllers apply them.

A Deployment with maxSurge and maxUnavailable both 0 can never roll, and LeaderWorkerSet's
webhook refuses one whose percentages round to 0 of its replica groups: both are refused here,
with the numbers, before a workload is ever written.
"""

from __future__ import annotations

from fusioninfer.api.errors import FieldError, quote
from fusioninfer.api.v1alpha1 import Role


def check_rollout(prefix: str, role: Role) -> list[FieldError]:
    assert role.rollout is not None
    errors: list[FieldError] = []
    surge, unavailable = role.rollout.max_surge, role.rollout.max_unavailable
    if _is_zero(surge if surge is not None else 0) and _is_zero(unavailable if unavailable is not None else 1):
        errors.append(FieldError(f"{prefix}.rollout.maxUnavailable", "Invalid value: may not be 0 when maxSurge is 0"))
    if role.rollout.partition is not None and not role.is_multinode:
        errors.append(
            FieldError(f"{prefix}.rollout.partition", "Forbidden: only applies to multi-node roles (LeaderWorkerSet)")
        )
    for field, value in (("maxSurge", surge), ("maxUnavailable", unavailable)):
        if isinstance(value, str) and value.endswith("%") and int(value[:-1]) > 100:
            errors.append(FieldError(f"{prefix}.rollout.{field}", f"Invalid value: {quote(value)}: must be <= 100%"))
    if role.is_multinode and not errors:
        # LeaderWorkerSet's webhook scales percentages by replicas (maxUnavailable rounded down,
        # maxSurge up) and refuses the LWS when both come out 0: say so here, with the numbers.
        replicas = role.effective_replicas
        down = _scaled(unavailable if unavailable is not None else 1, replicas, round_up=False)
        up = _scaled(surge if surge is not None else 0, replicas, round_up=True)
        if replicas > 0 and down == 0 and up == 0:
            errors.append(
                FieldError(
                    f"{prefix}.rollout.maxUnavailable",
                    f"Invalid value: {quote(unavailable)}: rounds down to 0 of {replicas} replica group(s) while "
                    "maxSurge is 0, so the LeaderWorkerSet could never roll (its webhook refuses it); use an integer "
                    "or a larger percentage",
                )
            )
    return errors


def _scaled(value: int | str, total: int, *, round_up: bool) -> int:
    """Kubernetes' GetScaledValueFromIntOrPercent: an int as is, a percentage of `total`."""
    if isinstance(value, int):
        return value
    text = value.rstrip("%")
    if not text.isdigit():
        return 1  # malformed values are reported by the model's own validation
    share = int(text) * total
    return -(-share // 100) if round_up else share // 100


def _is_zero(value: int | str) -> bool:
    return value in (0, "0", "0%")

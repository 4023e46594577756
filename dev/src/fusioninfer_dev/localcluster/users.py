"""Who may talk to a local cluster besides its admin: static-token users (read by the apiserver
at start, so adding one restarts it) and ServiceAccounts (a TokenRequest, no restart). Tests use
them to prove that an RBAC role is enough for what it claims to allow.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fusioninfer_dev.localcluster.components import TokenEntry, format_tokens_csv, new_token, parse_tokens_csv
from fusioninfer_dev.localcluster.state import ClusterError


def read_users(tokens_path: Path) -> list[TokenEntry]:
    """The static-token users the apiserver knows (admin first)."""
    return parse_tokens_csv(tokens_path.read_text())


def put_user(tokens_path: Path, user: str, groups: Sequence[str], token: str | None = None) -> TokenEntry:
    """Add (or replace) `user`'s static bearer token in the apiserver's token file."""
    entry = TokenEntry(token=token or new_token(), user=user, uid=user, groups=tuple(groups))
    entries = [e for e in read_users(tokens_path) if e.user != user] + [entry]
    tokens_path.write_text(format_tokens_csv(entries))
    return entry


def safe_file_name(name: str) -> str:
    """`name` with every character a file name should not hold replaced by `_`."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def request_service_account_token(client: Any, namespace: str, name: str, expiration_seconds: int) -> str:
    """A token for ServiceAccount `namespace/name` via the TokenRequest API (the SA must exist).
    The apiserver authenticates it as `system:serviceaccount:<ns>:<name>`."""
    from lightkube.models.authentication_v1 import TokenRequestSpec
    from lightkube.models.meta_v1 import ObjectMeta
    from lightkube.resources.core_v1 import ServiceAccountToken

    req = ServiceAccountToken(
        metadata=ObjectMeta(),  # lightkube needs one; empty audiences = the apiserver's own
        spec=TokenRequestSpec(audiences=[], expirationSeconds=expiration_seconds),
    )
    res = client.create(req, name, namespace=namespace)
    if res.status is None:
        raise ClusterError("TokenRequest returned no status")
    return str(res.status.token)

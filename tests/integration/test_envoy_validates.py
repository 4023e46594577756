"""The real Envoy accepts every translation the local gateway can produce.

`envoy --mode validate` loads a config exactly as at start-up (every typed config, cluster
reference and regex checked) and exits non-zero on anything it would refuse, so the shapes
pinned in tests/unit/localcluster/test_envoy_config.py are also shapes Envoy 1.40 runs.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from fusioninfer_dev.localcluster.gateway.envoy import envoy_binary
from fusioninfer_dev.localcluster.gateway.envoy_config import (
    Listener,
    PickerTarget,
    clusters_config,
    listener_config,
)

pytestmark = pytest.mark.integration

POOL = {"group": "inference.networking.k8s.io", "kind": "InferencePool", "name": "pool"}


def route(rules: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "r", "namespace": "ns"}, "spec": {"rules": rules, **spec}}


SERVICES = {("ns", "web", 80): [("127.9.1.1", 8080), ("127.9.1.2", 8080)]}
CASES: dict[str, tuple[list[dict[str, Any]], dict[tuple[str, str], PickerTarget]]] = {
    "pool-tls-picker": ([route([{"backendRefs": [POOL], "timeouts": {"request": "300s"}}])],
                        {("ns", "pool"): PickerTarget("127.0.0.1", 40001, tls=True)}),
    "pool-plain-picker": ([route([{"backendRefs": [POOL]}])],
                          {("ns", "pool"): PickerTarget("127.0.0.1", 40001, tls=False)}),
    "picker-unavailable": ([route([{"backendRefs": [POOL]}])], {("ns", "pool"): PickerTarget(unavailable="down")}),
    "every-match-and-filter": (
        [
            route(
                [
                    {
                        "matches": [
                            {"path": {"type": "Exact", "value": "/v1/models"}, "method": "GET"},
                            {"path": {"type": "RegularExpression", "value": "/v[0-9]+/.*"},
                             "headers": [{"name": "x-a", "type": "RegularExpression", "value": "a|b"}],
                             "queryParams": [{"name": "q", "value": "1"}]},
                        ],
                        "filters": [
                            {"type": "RequestHeaderModifier",
                             "requestHeaderModifier": {"set": [{"name": "x-s", "value": "1"}], "remove": ["x-r"]}},
                            {"type": "ResponseHeaderModifier",
                             "responseHeaderModifier": {"add": [{"name": "x-o", "value": "2"}]}},
                        ],
                        "backendRefs": [POOL],
                    },
                    {"matches": [{"path": {"type": "PathPrefix", "value": "/web/"}}],
                     "backendRefs": [{"name": "web", "port": 80, "weight": 2}]},
                    {"matches": [{"path": {"type": "PathPrefix", "value": "/old"}}],
                     "filters": [{"type": "RequestRedirect", "requestRedirect": {
                         "scheme": "https", "hostname": "new.example.com", "port": 8443, "statusCode": 308,
                         "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/new"}}}]},
                    {"matches": [{"path": {"type": "PathPrefix", "value": "/nothing"}}]},
                ],
                hostnames=["llm.example.com", "*.example.org"],
            )
        ],
        {("ns", "pool"): PickerTarget("127.0.0.1", 40001, tls=True)},
    ),
    "no-routes": ([], {}),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(CASES))
def test_envoy_validates_the_translation(case: str, tmp_path: Path) -> None:
    routes, pickers = CASES[case]
    listener = Listener(("ns", "gw"), "http", "127.9.0.5", 8080, tuple(routes))
    resources = {
        "listeners": [listener_config(listener, pickers, SERVICES, str(tmp_path / "access.log"))],
        "clusters": clusters_config(pickers, SERVICES),
    }
    for group in resources.values():
        for resource in group:
            resource.pop("@type")  # a static resource is typed by where it sits
    config = tmp_path / "envoy.json"
    config.write_text(json.dumps({"static_resources": resources}))
    result = subprocess.run(
        [str(envoy_binary()), "--mode", "validate", "-c", str(config), "--disable-hot-restart"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_envoy_refuses_a_broken_config(tmp_path: Path) -> None:
    """The check above can fail: a route naming a cluster that does not exist is refused."""
    listener = Listener(("ns", "gw"), "http", "127.9.0.5", 8080, (route([{"backendRefs": [POOL]}]),))
    pickers = {("ns", "pool"): PickerTarget("127.0.0.1", 40001)}
    broken = listener_config(listener, pickers, {}, str(tmp_path / "a.log"))
    broken.pop("@type")
    config = tmp_path / "envoy.json"
    config.write_text(json.dumps({"static_resources": {"listeners": [broken], "clusters": []}}))
    result = subprocess.run(
        [str(envoy_binary()), "--mode", "validate", "-c", str(config), "--disable-hot-restart"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0

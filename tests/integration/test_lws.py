"""The real LeaderWorkerSet controller (v0.7.0, built from its Go module) with its webhooks, on the
session cluster: groups of StatefulSet pods on KWOK nodes, the env its pod webhook injects, its
validation, rolling updates and status. What FusionInfer's multi-node roles rely on."""

from __future__ import annotations

from typing import Any

import pytest
from lightkube import ApiError, Client
from lightkube.generic_resource import create_namespaced_resource
from lightkube.resources.apps_v1 import StatefulSet
from lightkube.resources.core_v1 import Pod, Service
from lightkube.types import PatchType
from tests.support.eventually import eventually

from fusioninfer.runtime.registry import raw_resource

pytestmark = pytest.mark.integration

LWS = create_namespaced_resource("leaderworkerset.x-k8s.io", "v1", "LeaderWorkerSet", "leaderworkersets")
RawPod = raw_resource(Pod)


def lws_manifest(namespace: str, name: str, replicas: int, size: int, image: str = "x", **spec: Any) -> Any:
    template = {
        "metadata": {"labels": {"app": name}},
        "spec": {"containers": [{"name": "c", "image": image, "args": ["--addr", "$(LWS_LEADER_ADDRESS)"]}]},
    }
    return LWS(
        {
            "apiVersion": "leaderworkerset.x-k8s.io/v1",
            "kind": "LeaderWorkerSet",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"replicas": replicas, "leaderWorkerTemplate": {"size": size, "workerTemplate": template}, **spec},
        }
    )


def lws_status(client: Client, namespace: str, name: str) -> dict[str, Any]:
    return dict(client.get(LWS, name, namespace=namespace).get("status") or {})


def pods(client: Client, namespace: str) -> dict[str, dict[str, Any]]:
    return {p["metadata"]["name"]: dict(p) for p in client.list(RawPod, namespace=namespace)}


def all_ready(client: Client, namespace: str, name: str, replicas: int) -> bool:
    st = lws_status(client, namespace, name)
    assert (st.get("replicas"), st.get("readyReplicas"), st.get("updatedReplicas")) == (replicas,) * 3, st
    available = next(c for c in st.get("conditions") or [] if c["type"] == "Available")
    return bool(available["status"] == "True")


def test_groups_become_ready_with_the_env_the_webhook_injects(client: Client, namespace: str) -> None:
    client.create(lws_manifest(namespace, "mn", replicas=2, size=3))
    eventually(lambda: all_ready(client, namespace, "mn", 2), timeout=60)

    live = pods(client, namespace)
    assert set(live) == {"mn-0", "mn-0-1", "mn-0-2", "mn-1", "mn-1-1", "mn-1-2"}
    worker = live["mn-1-2"]
    labels = worker["metadata"]["labels"]
    assert labels["leaderworkerset.sigs.k8s.io/name"] == "mn"
    assert labels["leaderworkerset.sigs.k8s.io/group-index"] == "1"
    assert labels["leaderworkerset.sigs.k8s.io/worker-index"] == "2"
    assert (
        labels["leaderworkerset.sigs.k8s.io/group-key"]
        == live["mn-1"]["metadata"]["labels"]["leaderworkerset.sigs.k8s.io/group-key"]
    )
    env = {e["name"]: e["value"] for e in worker["spec"]["containers"][0]["env"]}
    assert env == {"LWS_LEADER_ADDRESS": f"mn-1.mn.{namespace}", "LWS_GROUP_SIZE": "3", "LWS_WORKER_INDEX": "2"}
    leader_env = {e["name"]: e["value"] for e in live["mn-1"]["spec"]["containers"][0]["env"]}
    assert leader_env["LWS_WORKER_INDEX"] == "0"
    # The real controller: a leader StatefulSet, one worker StatefulSet per group, a headless Service.
    assert worker["metadata"]["ownerReferences"][0]["kind"] == "StatefulSet"
    sets = {s.metadata.name for s in client.list(StatefulSet, namespace=namespace)}
    assert sets == {"mn", "mn-0", "mn-1"}
    assert client.get(Service, "mn", namespace=namespace).spec.clusterIP == "None"

    # Scale down: group 1 goes as a whole.
    client.patch(LWS, "mn", {"spec": {"replicas": 1}}, namespace=namespace, patch_type=PatchType.MERGE)
    eventually(lambda: set(pods(client, namespace)) == {"mn-0", "mn-0-1", "mn-0-2"}, timeout=60)
    eventually(lambda: all_ready(client, namespace, "mn", 1), timeout=30)


def test_rolling_update_recreates_groups_and_status_follows(client: Client, namespace: str) -> None:
    client.create(lws_manifest(namespace, "ru", replicas=2, size=2))
    eventually(lambda: all_ready(client, namespace, "ru", 2), timeout=60)
    old = {n: p["metadata"]["uid"] for n, p in pods(client, namespace).items()}
    new_template = lws_manifest(namespace, "ru", 2, 2, image="y")["spec"]["leaderWorkerTemplate"]["workerTemplate"]
    patch = {"spec": {"leaderWorkerTemplate": {"workerTemplate": new_template}}}
    client.patch(LWS, "ru", patch, namespace=namespace, patch_type=PatchType.MERGE)

    def rolled() -> bool:
        live = pods(client, namespace)
        assert set(live) == set(old), set(live)
        assert all(p["spec"]["containers"][0]["image"] == "y" for p in live.values())
        assert all(live[n]["metadata"]["uid"] != uid for n, uid in old.items())
        return all_ready(client, namespace, "ru", 2)

    eventually(rolled, timeout=90)


def test_partition_keeps_groups_below_it_on_the_old_template(client: Client, namespace: str) -> None:
    strategy = {"type": "RollingUpdate", "rollingUpdateConfiguration": {"partition": 1, "maxUnavailable": 1}}
    client.create(lws_manifest(namespace, "pt", replicas=2, size=2, rolloutStrategy=strategy))
    eventually(lambda: all_ready(client, namespace, "pt", 2), timeout=60)
    new_template = lws_manifest(namespace, "pt", 2, 2, image="y")["spec"]["leaderWorkerTemplate"]["workerTemplate"]
    client.patch(
        LWS,
        "pt",
        {"spec": {"leaderWorkerTemplate": {"workerTemplate": new_template}}},
        namespace=namespace,
        patch_type=PatchType.MERGE,
    )

    def partitioned() -> bool:
        live = pods(client, namespace)
        images = {n: p["spec"]["containers"][0]["image"] for n, p in live.items()}
        assert images == {"pt-0": "x", "pt-0-1": "x", "pt-1": "y", "pt-1-1": "y"}, images
        st = lws_status(client, namespace, "pt")
        return st.get("readyReplicas") == 2 and st.get("updatedReplicas") == 1

    eventually(partitioned, timeout=90)


def test_the_webhook_refuses_what_the_controller_cannot_run(client: Client, namespace: str) -> None:
    """A percentage maxUnavailable that rounds to 0 together with maxSurge 0 could never roll:
    LWS's validating webhook refuses it (FusionInfer's validation must refuse it first)."""
    strategy = {"type": "RollingUpdate", "rollingUpdateConfiguration": {"maxUnavailable": "10%", "maxSurge": 0}}
    with pytest.raises(ApiError) as refused:
        client.create(lws_manifest(namespace, "bad", replicas=2, size=2, rolloutStrategy=strategy))
    assert refused.value.status.code in (400, 403, 422)
    assert "maxUnavailable" in str(refused.value.status.message)

"""Fake LeaderWorkerSet controller: pod naming, labels/env, rolling recreation budget, status."""

from __future__ import annotations

import hashlib
from typing import Any

from fusioninfer.localcluster.fakes.lws import (
    GROUP_INDEX_LABEL,
    GROUP_KEY_LABEL,
    NAME_LABEL,
    REVISION_LABEL,
    WORKER_INDEX_LABEL,
    group_pod,
    group_pod_names,
    groups_of,
    groups_to_recreate,
    lws_status,
    revision_hash,
)


def lws(replicas: int = 2, size: int = 3, leader_image: str | None = None, **rollout: Any) -> dict[str, Any]:
    worker = {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "image": "w"}]}}
    template: dict[str, Any] = {"size": size, "workerTemplate": worker}
    if leader_image:
        template["leaderTemplate"] = {"spec": {"containers": [{"name": "c", "image": leader_image}]}}
    spec: dict[str, Any] = {"replicas": replicas, "leaderWorkerTemplate": template}
    if rollout:
        spec["rolloutStrategy"] = {"type": "RollingUpdate", "rollingUpdateConfiguration": rollout}
    return {"metadata": {"name": "mn", "namespace": "ns", "uid": "u1", "generation": 1}, "spec": spec}


def ready(p: dict[str, Any]) -> dict[str, Any]:
    p["status"] = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    return p


def all_pods(obj: dict[str, Any], is_ready: bool = True) -> list[dict[str, Any]]:
    size = obj["spec"]["leaderWorkerTemplate"]["size"]
    pods = [group_pod(obj, g, j) for g in range(obj["spec"]["replicas"]) for j in range(size)]
    return [ready(p) for p in pods] if is_ready else pods


def test_names_leader_first_then_workers() -> None:
    assert group_pod_names("mn", 1, 3) == ["mn-1", "mn-1-1", "mn-1-2"]
    assert group_pod_names("mn", 0, 1) == ["mn-0"]


def test_worker_pod_carries_lws_labels_annotations_env_and_owner() -> None:
    pod = group_pod(lws(), 1, 2)
    meta = pod["metadata"]
    assert meta["name"] == "mn-1-2"
    assert meta["labels"]["app"] == "x"
    assert meta["labels"][NAME_LABEL] == "mn"
    assert meta["labels"][GROUP_INDEX_LABEL] == "1"
    assert meta["labels"][WORKER_INDEX_LABEL] == "2"
    assert meta["labels"][GROUP_KEY_LABEL] == hashlib.sha1(b"ns/mn-1").hexdigest()
    assert meta["annotations"]["leaderworkerset.sigs.k8s.io/size"] == "3"
    assert meta["annotations"]["leaderworkerset.sigs.k8s.io/leader-name"] == "mn-1"
    assert meta["ownerReferences"][0]["uid"] == "u1"
    assert meta["ownerReferences"][0]["controller"] is True
    env = pod["spec"]["containers"][0]["env"]
    assert env[:3] == [
        {"name": "LWS_LEADER_ADDRESS", "value": "mn-1.mn.ns"},
        {"name": "LWS_GROUP_SIZE", "value": "3"},
        {"name": "LWS_WORKER_INDEX", "value": "2"},
    ]
    assert (pod["spec"]["hostname"], pod["spec"]["subdomain"]) == ("mn-1-2", "mn")


def test_leader_uses_leader_template_when_given_else_worker_template() -> None:
    assert group_pod(lws(leader_image="L"), 0, 0)["spec"]["containers"][0]["image"] == "L"
    assert group_pod(lws(leader_image="L"), 0, 1)["spec"]["containers"][0]["image"] == "w"
    assert group_pod(lws(), 0, 0)["spec"]["containers"][0]["image"] == "w"
    assert "leaderworkerset.sigs.k8s.io/leader-name" not in group_pod(lws(), 0, 0)["metadata"]["annotations"]


def test_user_env_is_kept_and_not_duplicated() -> None:
    obj = lws()
    obj["spec"]["leaderWorkerTemplate"]["workerTemplate"]["spec"]["containers"][0]["env"] = [
        {"name": "LWS_GROUP_SIZE", "value": "mine"}
    ]
    env = group_pod(obj, 0, 1)["spec"]["containers"][0]["env"]
    assert [e["name"] for e in env].count("LWS_GROUP_SIZE") == 1
    assert {"name": "LWS_GROUP_SIZE", "value": "mine"} in env


def test_revision_changes_with_the_template_only() -> None:
    a, b = lws(), lws(replicas=5)
    assert revision_hash(a) == revision_hash(b)
    b["spec"]["leaderWorkerTemplate"]["workerTemplate"]["spec"]["containers"][0]["image"] = "new"
    assert revision_hash(a) != revision_hash(b)


def test_status_counts_groups_whose_every_pod_is_ready() -> None:
    obj = lws()
    pods = all_pods(obj)
    pods[-1]["status"]["conditions"][0]["status"] = "False"  # mn-1-2 not ready
    status = lws_status(obj, groups_of(obj, pods), "t")
    assert (status["replicas"], status["readyReplicas"], status["updatedReplicas"]) == (2, 1, 2)
    conds = {c["type"]: c["status"] for c in status["conditions"]}
    assert conds == {"Available": "False", "Progressing": "True", "UpdateInProgress": "False"}
    pods[-1]["status"]["conditions"][0]["status"] = "True"
    status = lws_status(obj, groups_of(obj, pods), "t")
    assert {c["type"]: c["status"] for c in status["conditions"]}["Available"] == "True"
    assert status["hpaPodSelector"] == f"{NAME_LABEL}=mn,{WORKER_INDEX_LABEL}=0"


def test_missing_worker_makes_the_group_unready() -> None:
    obj = lws(replicas=1)
    pods = all_pods(obj)[:-1]
    assert lws_status(obj, groups_of(obj, pods), "t")["readyReplicas"] == 0


def test_rolling_recreation_goes_from_the_top_within_max_unavailable_and_partition() -> None:
    old = lws(replicas=4, size=2)
    pods = all_pods(old)
    new = lws(replicas=4, size=2, maxUnavailable=2, partition=1)
    new["spec"]["leaderWorkerTemplate"]["workerTemplate"]["spec"]["containers"][0]["image"] = "v2"
    assert groups_to_recreate(new, groups_of(new, pods)) == [3, 2]
    # One group already down (being recreated): only one more fits the budget.
    pods = [p for p in pods if p["metadata"]["labels"][GROUP_INDEX_LABEL] != "3"]
    assert groups_to_recreate(new, groups_of(new, pods)) == [2]
    # Updated groups are left alone.
    for p in pods:
        p["metadata"]["labels"][REVISION_LABEL] = revision_hash(new)
    assert groups_to_recreate(new, groups_of(new, pods)) == []

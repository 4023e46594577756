"""The demo sizes its simulated nodes to the examples' GPU requests."""

from __future__ import annotations

from pathlib import Path

from fusioninfer_dev.demo import DEFAULT_EXAMPLES, _load_examples, nodes_needed, plan_examples, pod_gpus

REPO = Path(__file__).resolve().parents[3]


def test_pod_gpus_of_the_seed_examples() -> None:
    docs = {d["metadata"]["name"]: d for d in _load_examples([REPO / p for p in DEFAULT_EXAMPLES])}
    assert pod_gpus(docs["qwen-inference"]) == [1]
    assert pod_gpus(docs["qwen-pd-nixl"]) == [1] * 6
    assert pod_gpus(docs["deepseek-r1"]) == [8] * 8


def test_nodes_needed_is_safe_for_any_placement() -> None:
    """One node per GPU pod: whatever order and node the schedulers choose, each pod finds room."""
    assert nodes_needed([8] * 8 + [1], 8) == 9
    assert nodes_needed([4, 4, 4, 1], 8) == 4
    assert nodes_needed([0, 0], 8) == 0
    assert nodes_needed([9], 8) is None


def test_worst_placement_still_fits() -> None:
    """Adversarial placement: every small pod first, each on an empty node; the gang still fits."""
    pods = [1] * 7 + [8] * 8
    nodes = nodes_needed(pods, 8)
    assert nodes is not None
    free = [8] * nodes
    for gpus in pods:  # each pod takes the emptiest node that fits (spreading), small ones first
        slot = max(range(nodes), key=lambda i: free[i])
        assert free[slot] >= gpus
        free[slot] -= gpus


def test_examples_that_cannot_fit_any_node_are_skipped() -> None:
    docs = _load_examples([REPO / p for p in DEFAULT_EXAMPLES])
    keep, skipped, needed = plan_examples(docs, 8)
    assert (len(keep), skipped, needed) == (3, [], 15)
    keep, skipped, needed = plan_examples(docs, 4)
    assert [d["metadata"]["name"] for d in keep] == ["qwen-inference", "qwen-pd-nixl"]
    assert skipped == ["deepseek-r1: a pod needs 8 GPUs, a node has 4"]
    assert needed == 7  # one node per 1-GPU pod

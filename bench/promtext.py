"""Reading Prometheus text exposition: counters summed over label filters, and quantiles
estimated from a histogram's cumulative buckets (the same linear interpolation as PromQL's
``histogram_quantile``)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families


@dataclass(frozen=True)
class Sample:
    name: str
    labels: Mapping[str, str]
    value: float


def parse(text: str) -> list[Sample]:
    """Every sample in a Prometheus text exposition."""
    out: list[Sample] = []
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.append(Sample(s.name, dict(s.labels), float(s.value)))
    return out


LabelFilter = Callable[[Mapping[str, str]], bool]


def total(samples: list[Sample], name: str, where: LabelFilter | None = None) -> float:
    """Sum of the samples called `name` whose labels pass `where`."""
    return sum(s.value for s in samples if s.name == name and (where is None or where(s.labels)))


def by_labels(
    samples: list[Sample], name: str, keys: tuple[str, ...], where: LabelFilter | None = None
) -> dict[tuple[str, ...], float]:
    """`name` summed per combination of the label values `keys`."""
    out: dict[tuple[str, ...], float] = {}
    for s in samples:
        if s.name != name or (where is not None and not where(s.labels)):
            continue
        key = tuple(s.labels.get(k, "") for k in keys)
        out[key] = out.get(key, 0.0) + s.value
    return out


def counter_delta(after: list[Sample], before: list[Sample], name: str, keys: tuple[str, ...]) -> dict[str, int]:
    """How much counter `name` grew between two scrapes, per combination of the label values
    `keys` (joined by spaces); combinations that did not grow are left out."""
    now, then = by_labels(after, name, keys), by_labels(before, name, keys)
    grown = {" ".join(key): int(v - then.get(key, 0.0)) for key, v in now.items()}
    return {k: v for k, v in sorted(grown.items(), key=lambda kv: -kv[1]) if v > 0}


def buckets(samples: list[Sample], histogram: str, where: LabelFilter | None = None) -> list[tuple[float, float]]:
    """Cumulative ``(upper bound, count)`` pairs of `histogram` (``<name>_bucket`` samples, summed
    over every series that passes `where`), sorted by bound, ``+Inf`` last."""
    acc: dict[float, float] = {}
    for s in samples:
        if s.name != f"{histogram}_bucket" or (where is not None and not where(s.labels)):
            continue
        bound = float(s.labels["le"])
        acc[bound] = acc.get(bound, 0.0) + s.value
    return sorted(acc.items())


def quantile(q: float, cumulative: list[tuple[float, float]]) -> float | None:
    """Estimate the `q`-quantile from cumulative buckets; None without observations.

    Linear interpolation inside the bucket that holds the rank; a rank in the ``+Inf`` bucket
    returns the highest finite bound (as PromQL does)."""
    if not cumulative or cumulative[-1][1] <= 0:
        return None
    count = cumulative[-1][1]
    rank = q * count
    prev_bound, prev_count = 0.0, 0.0
    for bound, cum in cumulative:
        if cum >= rank:
            if math.isinf(bound):
                return prev_bound
            if cum == prev_count:
                return bound
            return prev_bound + (bound - prev_bound) * (rank - prev_count) / (cum - prev_count)
        prev_bound, prev_count = bound, cum
    return prev_bound


def histogram_delta(after: list[tuple[float, float]], before: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Buckets of the observations made between two scrapes."""
    old = dict(before)
    return [(bound, cum - old.get(bound, 0.0)) for bound, cum in after]


def observed_between(after: list[Sample], before: list[Sample], histogram: str) -> list[tuple[float, float]]:
    """Cumulative buckets of the observations of `histogram` made between two scrapes."""
    return histogram_delta(buckets(after, histogram), buckets(before, histogram))


def histogram_growth(
    after: list[Sample], before: list[Sample], histogram: str, key: str
) -> dict[str, tuple[int, float]]:
    """Observations of `histogram` made between two scrapes, per value of label `key`: how many
    (``_count``) and their total (``_sum``); values that saw none are left out."""

    def grown(suffix: str) -> dict[str, float]:
        now = by_labels(after, f"{histogram}_{suffix}", (key,))
        then = by_labels(before, f"{histogram}_{suffix}", (key,))
        return {label[0]: value - then.get(label, 0.0) for label, value in now.items()}

    counts, sums = grown("count"), grown("sum")
    return {label: (int(n), sums.get(label, 0.0)) for label, n in sorted(counts.items()) if n > 0}

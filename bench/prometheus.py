"""Reading Prometheus text from the app's and the worker's `/metrics`.

Counters and histograms are compared between two scrapes (`Scrape.minus`), so
a phase counts only what happened during it. Quantiles come from histogram
buckets, interpolated linearly inside the bucket as Prometheus'
`histogram_quantile` does: they are estimates, exact only at bucket bounds.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import httpx

_SAMPLE = re.compile(r"^([A-Za-z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$")
_LABEL = re.compile(r'([A-Za-z_]\w*)="((?:[^"\\]|\\.)*)"')

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Scrape:
    samples: dict[tuple[str, Labels], float] = field(default_factory=dict)

    def total(self, name: str, **labels: str) -> float:
        """The sum of every sample called `name` whose labels include `labels`."""
        wanted = set(labels.items())
        return sum(
            value
            for (sample, sample_labels), value in self.samples.items()
            if sample == name and wanted <= set(sample_labels)
        )

    def series(self, name: str) -> dict[Labels, float]:
        return {labels: value for (sample, labels), value in self.samples.items() if sample == name}

    def buckets(self, histogram: str) -> list[tuple[float, float]]:
        """Cumulative (upper bound, count) pairs of a histogram, summed over its other labels."""
        counts: dict[float, float] = {}
        for labels, value in self.series(f"{histogram}_bucket").items():
            bound = float(dict(labels)["le"])
            counts[bound] = counts.get(bound, 0.0) + value
        return sorted(counts.items())

    def minus(self, before: Scrape) -> Scrape:
        """What was added since `before` (for counters and histograms)."""
        return Scrape(
            {key: value - before.samples.get(key, 0.0) for key, value in self.samples.items()}
        )


def parse(text: str) -> Scrape:
    samples: dict[tuple[str, Labels], float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line.strip())
        if match is None:
            continue
        name, raw_labels, value = match.groups()
        labels = tuple(sorted(_LABEL.findall(raw_labels or "")))
        samples[(name, labels)] = float(value)
    return Scrape(samples)


async def scrape(client: httpx.AsyncClient, url: str) -> Scrape:
    response = await client.get(url, timeout=10.0)
    response.raise_for_status()
    return parse(response.text)


def quantile(buckets: list[tuple[float, float]], q: float) -> float:
    """The q-quantile (0..1) estimated from cumulative buckets; NaN when there is no data.

    Inside a bucket values are assumed evenly spread; in the +Inf bucket the
    answer is the highest finite bound (what can be said).
    """
    if not buckets or buckets[-1][1] <= 0:
        return math.nan
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            inside = (rank - lower_count) / (count - lower_count)
            return lower_bound + (bound - lower_bound) * inside
        lower_bound, lower_count = bound, count
    return lower_bound


def share_at_most(buckets: list[tuple[float, float]], bound: float) -> float:
    """The fraction of observations ≤ `bound`, which must be one of the bucket bounds."""
    total = buckets[-1][1] if buckets else 0.0
    for upper, count in buckets:
        if math.isclose(upper, bound):
            return count / total if total else math.nan
    raise ValueError(f"{bound} is not a bucket bound")

"""Deterministic grouping of episode references into shards.

Refs are grouped per (source, split), sorted by episode_id, and cut into chunks of
``episodes_per_shard``. A shard's name is derived from its members only (first id + hash of all
ids), so the same input and settings always give the same shard names and a rerun finds its work.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass

from ..records import EpisodeRef
from ..slugs import slug


@dataclass(frozen=True)
class ShardTask:
    source: str
    split: str
    name: str
    refs: tuple[EpisodeRef, ...]

    def to_json(self) -> str:
        return json.dumps({"source": self.source, "split": self.split, "name": self.name,
                           "refs": [r.to_json() for r in self.refs]})

    @classmethod
    def from_json(cls, text: str) -> "ShardTask":
        d = json.loads(text)
        return cls(d["source"], d["split"], d["name"], tuple(EpisodeRef.from_json(r) for r in d["refs"]))


def plan_shards(refs: list[EpisodeRef], episodes_per_shard: int) -> list[ShardTask]:
    if episodes_per_shard < 1:
        raise ValueError("episodes_per_shard must be >= 1")
    ids = [r.episode_id for r in refs]
    if len(ids) != len(set(ids)):
        dup = sorted({i for i in ids if ids.count(i) > 1})[:5]
        raise ValueError(f"duplicate episode ids in the input: {dup}")
    groups: dict[tuple[str, str], list[EpisodeRef]] = defaultdict(list)
    for r in refs:
        groups[(r.source, r.split)].append(r)
    tasks = []
    for (source, split), members in sorted(groups.items()):
        members.sort(key=lambda r: r.episode_id)
        for i in range(0, len(members), episodes_per_shard):
            chunk = tuple(members[i : i + episodes_per_shard])
            digest = hashlib.sha1("\n".join(r.episode_id for r in chunk).encode()).hexdigest()[:8]
            tasks.append(ShardTask(source, split, f"{slug(chunk[0].episode_id)}-{digest}", chunk))
    return tasks


def config_hash(processor_name: str, config: dict) -> str:
    """Stable short hash of a processor's output-relevant settings."""
    text = json.dumps({"processor": processor_name, "config": config}, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:12]

"""``meta/info.json``: schema version, conventions, totals and the recipes that made the dataset."""

from __future__ import annotations

import importlib.metadata
from collections import defaultdict

from .._version import __version__
from ..schema import DATASET_CONVENTIONS, SCHEMA_VERSION

SOFTWARE = ("numpy", "pyarrow", "datasets", "ray", "av", "mediapipe", "opencv-contrib-python", "torch")
LICENSES = {
    "droid": "CC-BY-4.0 (DROID)",
    "egodex": "CC-BY-NC-ND-4.0 (EgoDex)",
    "ego4d": "Ego4D license agreement",
    "aria": "per recording (Aria Pilot / ADT / HOT3D / Ego-Exo4D agreements)",
    "videos": "that of the input videos",
}


def software_versions() -> dict[str, str]:
    out = {"dexhands-data": __version__}
    for name in SOFTWARE:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def build_info(rows: list[dict], recipes: dict, previous: dict | None = None,
               shard_bytes: dict[str, int] | None = None) -> dict:
    """info.json content from all episode rows and the recipes keyed by source.

    ``previous`` is the existing info.json of the folder: recipes of sources that this run did not
    touch are kept, so extract and convert-droid can write into one dataset. ``shard_bytes`` (shard
    path -> size) gives the bytes per split.
    """
    per_source: dict[str, dict] = defaultdict(lambda: {"episodes": 0, "ok": 0, "failed": 0, "frames": 0,
                                                       "seconds": 0.0, "splits": set(),
                                                       "split_frames": defaultdict(int),
                                                       "split_bytes": defaultdict(int), "shards": set()})
    for r in rows:
        s = per_source[r["source"]]
        s["episodes"] += 1
        if r["status"] == "ok":
            s["splits"].add(r["split"])
            s["split_frames"][r["split"]] += int(r["num_frames"])
            if r["shard"] not in s["shards"]:
                s["shards"].add(r["shard"])
                s["split_bytes"][r["split"]] += int((shard_bytes or {}).get(r["shard"], 0))
            s["ok"] += 1
            s["frames"] += int(r["num_frames"])
            s["seconds"] += int(r["num_frames"]) / float(r["fps"]) if r["fps"] else 0.0
        else:
            s["failed"] += 1
    sources = {
        k: {**{kk: vv for kk, vv in v.items() if kk not in ("splits", "shards", "split_frames", "split_bytes")},
            "splits": sorted(v["splits"]), "split_frames": dict(sorted(v["split_frames"].items())),
            "split_bytes": dict(sorted(v["split_bytes"].items())),
            "hours": round(v["seconds"] / 3600.0, 4), "license": LICENSES.get(k, "unknown")}
        for k, v in sorted(per_source.items())
    }
    for v in sources.values():
        v["seconds"] = round(v["seconds"], 3)
    all_recipes = dict((previous or {}).get("recipes", {}))
    all_recipes.update(recipes)
    return {
        "schema_version": SCHEMA_VERSION,
        "codebase": "dexhands-data",
        "conventions": DATASET_CONVENTIONS,
        "total_episodes": sum(v["episodes"] for v in sources.values()),
        "total_ok": sum(v["ok"] for v in sources.values()),
        "total_failed": sum(v["failed"] for v in sources.values()),
        "total_frames": sum(v["frames"] for v in sources.values()),
        "sources": sources,
        "splits": sorted({s for v in sources.values() for s in v["splits"]}),
        "recipes": {k: all_recipes[k] for k in sorted(all_recipes)},
        "software": software_versions(),
    }

"""The dataset card ``README.md``: YAML ``configs`` (default + one per source) and ``dataset_info``,
so that ``datasets.load_dataset("<folder>")`` loads the Parquet shards offline with the contract's
features, then a human-readable description generated from ``meta/info.json``."""

from __future__ import annotations

import yaml

from ..schema import DATA_DIR, hf_features

CITATION = """@article{goswami2025dexwm,
  title   = {World Models for Learning Dexterous Hand-Object Interactions from Human Videos},
  author  = {Goswami, Raktim Gautam and Bar, Amir and Fan, David and Yang, Tsung-Yen and Zhou, Gaoyue
             and Krishnamurthy, Prashanth and Rabbat, Michael and Khorrami, Farshad and LeCun, Yann},
  journal = {arXiv preprint arXiv:2512.13644},
  year    = {2025}
}"""


def _config_info(name: str, features: list, info: dict) -> dict:
    sources = info["sources"] if name == "default" else {name: info["sources"][name]}
    frames: dict[str, int] = {}
    size: dict[str, int] = {}
    for summary in sources.values():
        for split, n in summary.get("split_frames", {}).items():
            frames[split] = frames.get(split, 0) + n
            size[split] = size.get(split, 0) + summary.get("split_bytes", {}).get(split, 0)
    return {
        "config_name": name,
        "features": features,
        "splits": [{"name": s, "num_bytes": size[s], "num_examples": frames[s]} for s in sorted(frames)],
        "download_size": sum(size.values()),
        "dataset_size": sum(size.values()),
    }


def card_yaml(info: dict) -> dict:
    """Front matter: one config per source plus a default over all sources, splits from folders."""
    features = hf_features("frame")._to_yaml_list()
    splits = info["splits"]
    configs = [{
        "config_name": "default",
        "default": True,
        "data_files": [{"split": s, "path": f"{DATA_DIR}/*/{s}/*.parquet"} for s in splits],
    }]
    for source, summary in info["sources"].items():
        if summary["ok"] == 0:
            continue
        configs.append({
            "config_name": source,
            "data_files": [{"split": s, "path": f"{DATA_DIR}/{source}/{s}/*.parquet"} for s in summary["splits"]],
        })
    licenses = sorted({s["license"] for s in info["sources"].values()})
    return {
        "pretty_name": "dexwm-actions",
        "license": "other",
        "license_details": "; ".join(f"{k}: {v['license']}" for k, v in info["sources"].items()) or None,
        "task_categories": ["robotics"],
        "tags": ["dexterous-manipulation", "world-model", "hand-pose", "egocentric", "dexwm"],
        "configs": configs,
        # Split sizes make the card's info (which `datasets` hashes into its cache key for a local
        # folder) change whenever the shards change, so a rebuilt folder is never served from cache.
        "dataset_info": [_config_info(c["config_name"], features, info) for c in configs],
        "licenses_by_source": licenses,
    }


def card_markdown(info: dict) -> str:
    rows = "\n".join(
        f"| {k} | {v['ok']} | {v['failed']} | {v['frames']} | {v['hours']:.3f} | {v['license']} |"
        for k, v in info["sources"].items()
    )
    return f"""# dexwm-actions

Hand-keypoint actions and camera motion for dexterous world models (DexWM, arXiv 2512.13644),
prepared with `dexhands-data` (schema {info['schema_version']}).

| source | episodes ok | failed | frames | hours | licence |
|---|---|---|---|---|---|
{rows}

## Loading
```python
import datasets
ds = datasets.load_dataset("dexwm-actions")          # from the folder's parent, offline
ds = datasets.load_dataset("path/to/dexwm-actions", "<source>")   # one source
```

## Conventions
{chr(10).join(f"- **{k}**: {v}" for k, v in info['conventions'].items())}

One row per frame; `meta/episodes.parquet` has one row per episode (status, failure reason, shard and
row range, intrinsics{_lens_text(info)}, estimators and config hash); `meta/stats.json` has per-dimension statistics;
`meta/info.json` has totals and the recipes. Schema: `schemas/v{_major(info)}/*.json` of dexhands-data.

## Citation
```bibtex
{CITATION}
```
"""


def _major(info: dict) -> str:
    return str(info["schema_version"]).split(".")[0]


def _lens_text(info: dict) -> str:
    """What schema v2 adds to the episode row (nothing for a v1 dataset, whose card stays as written)."""
    if _major(info) == "1":
        return ""
    return (" and lens distortion (`distortion` [k1, k2, p1, p2] of OpenCV's model, null for a pinhole; "
            "`keypoints_2d` are the distorted pixels the frames show)")


def card_text(info: dict) -> str:
    """The whole ``README.md``: YAML front matter, then the description."""
    front = yaml.safe_dump(card_yaml(info), sort_keys=False, allow_unicode=True)
    return f"---\n{front}---\n\n{card_markdown(info)}"

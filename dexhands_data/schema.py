"""The data contract in code: column specs read from ``schemas/v<major>/*.json`` (the single source
of truth, shipped in the wheel as ``dexhands_data/_schemas``), Arrow schemas and HF features built
from them, and conversions between numpy arrays and fixed-size list columns.

The writer writes :data:`SCHEMA_VERSION`; readers accept every version in
:data:`READABLE_SCHEMA_VERSIONS`. v2 adds the episode column ``distortion`` (nullable); a v1 dataset
reads as one whose episodes have no distortion (pinhole). Frame rows are the same in v1 and v2.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

SCHEMA_VERSION = "2.0"
#: Versions the readers (loader, validate, fidelity, export) accept.
READABLE_SCHEMA_VERSIONS = ("1.0", "2.0")
DATA_DIR = "data"
META_DIR = "meta"
INFO_PATH = "meta/info.json"
EPISODES_PATH = "meta/episodes.parquet"
STATS_PATH = "meta/stats.json"
SHARD_MARKERS_DIR = "meta/shards"
#: Shard path template relative to the dataset root.
SHARD_PATH = "data/{source}/{split}/{name}.parquet"

#: The conventions every dataset states in ``meta/info.json`` and its card (the contract, in words).
DATASET_CONVENTIONS = {
    "units": "metres, radians, seconds; pixels for keypoints_2d and intrinsics",
    "camera_frame": "OpenCV: x right, y down, z forward",
    "pose_naming": "T_a_b maps frame-b coordinates into frame a; T_world_cam is the camera pose",
    "hands": "2 x 21 keypoints, left then right, MANO/OpenPose order",
    "missing": "hand_valid / camera_valid flags; NaN keypoints where a hand is missing",
    "action": "the 'relative' convention to the next stored frame (see docs/actions.md)",
    "image": "JPEG, shorter side resized to the recipe's frame_short_side",
    "lens": "keypoints_2d are image pixels as the frames show them (distorted where the episode has a "
            "distortion); keypoints_cam project onto them with the episode's intrinsics and distortion",
}

_ARROW_SCALARS = {
    "string": pa.string(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "float32": pa.float32(),
    "float64": pa.float64(),
    "bool": pa.bool_(),
}


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    dtype: str
    shape: tuple[int, ...]
    nullable: bool
    description: str


def _schemas_dir() -> Path:
    packaged = Path(__file__).parent / "_schemas"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[1] / "schemas"


def check_readable_version(version) -> str:
    """``version`` if the readers understand it; ValueError naming the supported ones otherwise."""
    if version not in READABLE_SCHEMA_VERSIONS:
        raise ValueError(f"schema_version {version!r} is not one of {list(READABLE_SCHEMA_VERSIONS)}")
    return version


@functools.cache
def column_specs(table: str, version: str = SCHEMA_VERSION) -> tuple[ColumnSpec, ...]:
    """Columns of ``table`` ("frame" or "episode") as declared in ``schemas/v<major>/<table>.json``."""
    folder = "v" + check_readable_version(version).split(".")[0]
    spec = json.loads((_schemas_dir() / folder / f"{table}.json").read_text())
    if spec["version"] != version:
        raise RuntimeError(f"schemas/{folder}/{table}.json declares version {spec['version']}, code expects {version}")
    return tuple(
        ColumnSpec(c["name"], c["dtype"], tuple(c["shape"]), bool(c["nullable"]), c["description"])
        for c in spec["columns"]
    )


def column_spec(table: str, name: str, version: str = SCHEMA_VERSION) -> ColumnSpec:
    for c in column_specs(table, version):
        if c.name == name:
            return c
    raise KeyError(f"no column {name!r} in the {table} schema")


def _hf_feature(spec: ColumnSpec):
    from datasets import Image, List, Value

    if spec.dtype == "image":
        return Image()
    feature = Value(spec.dtype)
    for i, n in enumerate(reversed(spec.shape)):
        # A nullable array column is a variable-length list at its outer level: Parquet readers
        # cannot round-trip null entries of fixed-size lists (pyarrow raises "Expected all lists
        # to be of size=N"). Its shape is still checked by ``dexdata validate``.
        outer = i == len(spec.shape) - 1
        feature = List(feature) if (outer and spec.nullable) else List(feature, length=n)
    return feature


@functools.cache
def hf_features(table: str = "frame", version: str = SCHEMA_VERSION):
    """``datasets.Features`` of a table; fixed-size lists map to Arrow fixed_size_list."""
    from datasets import Features

    return Features({c.name: _hf_feature(c) for c in column_specs(table, version)})


@functools.cache
def arrow_schema(table: str = "frame", version: str = SCHEMA_VERSION) -> pa.Schema:
    """Arrow schema of a table, carrying the ``huggingface`` features metadata."""
    return hf_features(table, version).arrow_schema


def fixed_list_array(values: np.ndarray, dtype: str, shape: tuple[int, ...], mask: np.ndarray | None = None) -> pa.Array:
    """Nested fixed-size list array from ``values`` (N, *shape). ``mask`` (N,) True marks null rows."""
    values = np.ascontiguousarray(values, dtype=np.dtype(dtype))
    n = values.shape[0]
    if values.shape[1:] != tuple(shape):
        raise ValueError(f"expected shape (N, {', '.join(map(str, shape))}), got {values.shape}")
    arr: pa.Array = pa.array(values.reshape(-1), type=_ARROW_SCALARS[dtype])
    for size in reversed(shape):
        arr = pa.FixedSizeListArray.from_arrays(arr, size)
    if mask is not None and np.any(mask):
        arr = pa.FixedSizeListArray.from_arrays(arr.values, shape[0], mask=pa.array(np.asarray(mask, dtype=bool)))
    assert len(arr) == n
    return arr


def fixed_list_to_numpy(column: pa.Array | pa.ChunkedArray, shape: tuple[int, ...], dtype: str | None = None) -> np.ndarray:
    """(N, *shape) numpy array from a nested fixed-size list column; null rows become NaN."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks else pa.array([], type=column.type)
    n = len(column)
    nulls = np.asarray(column.is_null().to_numpy(zero_copy_only=False), dtype=bool) if column.null_count else None
    # ``.values`` keeps the storage of null slots (``flatten()`` would drop them); slice away the offset.
    values = column.values.slice(column.offset * shape[0], n * shape[0])
    for _ in shape[1:]:
        values = values.flatten()
    out = np.asarray(values.to_numpy(zero_copy_only=False), dtype=np.dtype(dtype) if dtype else None)
    out = out.reshape((n,) + tuple(shape))
    if nulls is not None:
        out = out.astype(np.float32) if out.dtype.kind != "f" else out.copy()
        out[nulls] = np.nan
    return out

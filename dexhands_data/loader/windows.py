"""PyTorch datasets of DexWM windows over a loaded ``dexwm-actions`` dataset (map-style and streaming).

A sample (the "windows batch" contract; a collated batch adds a leading B), T = num_context + 1:

==================  =====================  =====================================================
frames              (T, 3, H, W) float32   ImageNet-normalised RGB crops (uint8 with ``frames="uint8"``:
                                           normalise on the GPU with ``normalize.normalize_on_device``;
                                           absent with ``frames="none"``)
actions             (T-1, 132) float32     consecutive-pair actions in ``convention`` (normalised with
                                           ``normalize_actions``); exactly 0 where ``action_mask`` is False
action_mask         (T-1, 132) bool        which action dimensions are data: a hand missing at either end
                                           of the step, an unknown camera, or non-metric (VO) translation
                                           make theirs False (``actions.action_mask``)
poses               (T, 44, 3) float32     absolute window poses in ``convention``; NaN -> 0
hand_valid          (T, 2) bool            left, right present
camera_valid        (T,) bool
hc_keypoints        (T, 12, 2) float32     (u', v') crop pixels of the HC keypoints; NaN -> 0
hc_visible          (T, 12) bool           0 < u' < W and 0 < v' < H, hand valid, in front of camera,
                                           embodiment in ``hc_embodiments`` (default human only)
timestamps          (T,) float64           seconds from the episode start
frame_gaps          (T-1,) int64           stored-frame gaps between consecutive window frames
frame_indices       (T,) int64             stored frame indices in the episode
episode_index       () int64               index of the episode in the dataset's episode list
==================  =====================  =====================================================

Actions can be normalised with ``meta/stats.json`` (``action/<convention>``: (a - mean) / std); the
statistics skip masked dimensions, and a masked dimension is set to 0 after normalising, never to the
``-mean / std`` a zero-filled value would become. An episode whose ``translation_metric`` is False or
unknown (no episodes table) gets the non-metric variant of its convention (``docs/actions.md``).
"""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field

import cv2
import numpy as np
import pyarrow as pa
import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from ..actions import CONVENTIONS, action_mask, actions_from_poses, window_poses
from ..keypoints import ACTION_DIM
from ..records import EpisodeError
from ..dataset.episodes import EpisodeMeta, StoredEpisode, episode_meta_index, episode_spans
from .crop import OUT_HEIGHT, OUT_WIDTH, CropGeometry, project_hc_keypoints
from .normalize import normalize_into
from .sampling import SamplerConfig, episode_split, window_indices

FRAME_MODES = ("float32", "uint8", "none")
#: The stored columns a window is built from (besides timestamps and JPEGs).
WINDOW_ARRAYS = ("keypoints_cam", "hand_valid", "T_world_cam", "camera_valid")


@dataclass(frozen=True)
class WindowConfig:
    """Everything that decides what a window holds (the sampler decides which frames)."""

    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    convention: str = "relative"
    wrap: str | None = None  # dexwm-official only: mod2pi (default), pi, none
    frames: str = "float32"
    out_height: int = OUT_HEIGHT
    out_width: int = OUT_WIDTH
    normalize_actions: bool = False
    seed: int = 0
    split: str | None = None  # "train" / "val": keep only that episode-level split; None keeps all
    val_fraction: float = 0.01
    #: embodiments whose HC keypoints count as visible; the released code has no HC targets for DROID's
    #: gripper pseudo-hand (zero maps, valid 0). None: every embodiment.
    hc_embodiments: tuple[str, ...] | None = ("human",)

    def __post_init__(self):
        if self.convention not in CONVENTIONS:
            raise ValueError(f"unknown action convention {self.convention!r}; "
                             f"choose one of {', '.join(CONVENTIONS)}")
        if self.frames not in FRAME_MODES:
            raise ValueError(f"frames must be one of {FRAME_MODES}, got {self.frames!r}")
        if self.split not in (None, "train", "val"):
            raise ValueError(f"split must be None, 'train' or 'val', got {self.split!r}")


class ActionNormalizer:
    """``(a - mean) / std`` per action dimension from ``meta/stats.json`` entry ``action/<convention>``.

    Dimensions without statistics (count 0) or with std below ``eps`` keep mean 0 / std 1 resp. std eps.
    """

    def __init__(self, stats: dict, convention: str, eps: float = 1e-6):
        key = f"action/{convention}"
        if key not in stats:
            raise KeyError(f"meta/stats.json has no {key!r} statistics (has {sorted(stats)})")
        entry = stats[key]
        mean = np.array([np.nan if v is None else v for v in entry["mean"]], dtype=np.float64)
        std = np.array([np.nan if v is None else v for v in entry["std"]], dtype=np.float64)
        if mean.shape != (ACTION_DIM,):
            raise ValueError(f"{key} statistics have {mean.shape[0]} dimensions, expected {ACTION_DIM}")
        self.mean = np.nan_to_num(mean, nan=0.0).astype(np.float32)
        self.std = np.where(np.isfinite(std), np.maximum(std, eps), 1.0).astype(np.float32)

    def __call__(self, actions: np.ndarray) -> np.ndarray:
        return (actions - self.mean) / self.std

    def inverse(self, actions: np.ndarray) -> np.ndarray:
        return actions * self.std + self.mean


def _normalizer(cfg: WindowConfig, stats: dict | None) -> ActionNormalizer | None:
    return ActionNormalizer(stats or {}, cfg.convention) if cfg.normalize_actions else None


def decode_rgb(data, where: str) -> np.ndarray:
    """RGB uint8 (H, W, 3) of JPEG bytes (any bytes-like object); EpisodeError naming ``where`` if corrupt."""
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR_RGB)
    if img is None:
        raise EpisodeError(f"{where}: image is not a decodable JPEG")
    return img


def build_window(
    ep: StoredEpisode, indices: np.ndarray, cfg: WindowConfig, episode_index: int,
    normalizer: ActionNormalizer | None = None,
) -> dict[str, torch.Tensor]:
    """The sample dict (see module doc) of window frames ``indices`` of episode ``ep``."""
    idx = np.asarray(indices, dtype=np.int64)
    metric = bool(ep.meta.translation_metric)  # None (unknown) counts as not metric
    args = (ep.keypoints_cam, ep.hand_valid, ep.T_world_cam, ep.camera_valid, idx)
    poses = window_poses(cfg.convention, *args, T_opencv_source=ep.meta.T_opencv_source,
                         translation_metric=metric)
    actions = actions_from_poses(cfg.convention, poses, *args, wrap=cfg.wrap,
                                 translation_metric=metric).reshape(len(idx) - 1, ACTION_DIM)
    mask = action_mask(ep.hand_valid, ep.camera_valid, idx, metric).reshape(len(idx) - 1, ACTION_DIM)
    if normalizer is not None:
        actions = normalizer(actions)
    actions = np.where(mask, actions, 0.0)
    hand_valid = ep.hand_valid[idx]
    K = ep.meta.intrinsics
    if K is not None:
        geom = CropGeometry.for_source(K.width, K.height, cfg.out_width, cfg.out_height)
        hc, visible = project_hc_keypoints(ep.keypoints_cam[idx], hand_valid, K.K, geom, K.distortion)
        if cfg.hc_embodiments is not None and ep.embodiment not in cfg.hc_embodiments:
            visible[:] = False
    else:
        hc = np.full((len(idx), 12, 2), np.nan, np.float32)
        visible = np.zeros((len(idx), 12), bool)
    sample = {
        "actions": torch.from_numpy(actions.astype(np.float32)),
        "action_mask": torch.from_numpy(mask),
        "poses": torch.from_numpy(np.nan_to_num(poses, nan=0.0).astype(np.float32)),
        "hand_valid": torch.from_numpy(hand_valid.copy()),
        "camera_valid": torch.from_numpy(ep.camera_valid[idx].copy()),
        "hc_keypoints": torch.from_numpy(np.nan_to_num(hc, nan=0.0)),
        "hc_visible": torch.from_numpy(visible),
        "timestamps": torch.from_numpy(ep.timestamp[idx].copy()),
        "frame_gaps": torch.from_numpy(np.diff(idx)),
        "frame_indices": torch.from_numpy(ep.frame_index[idx].copy()),
        "episode_index": torch.tensor(episode_index, dtype=torch.int64),
    }
    if cfg.frames != "none":
        sample["frames"] = _window_frames(ep, idx, cfg)
    return sample


def _window_frames(ep: StoredEpisode, idx: np.ndarray, cfg: WindowConfig) -> torch.Tensor:
    """(T, 3, H, W) frames: each distinct frame decoded once, cropped, written (normalised) into place."""
    unique, inverse = np.unique(idx, return_inverse=True)
    blobs = ep.image_bytes(unique)
    dtype = np.uint8 if cfg.frames == "uint8" else np.float32
    out = np.empty((len(idx), 3, cfg.out_height, cfg.out_width), dtype)
    geom = None
    for u, (row, data) in enumerate(zip(unique, blobs)):
        if data is None:
            raise EpisodeError(f"episode {ep.episode_id} frame {row}: no embedded image (use frames='none')")
        rgb = decode_rgb(data, f"episode {ep.episode_id} frame {row}")
        if geom is None:
            K = ep.meta.intrinsics
            w, h = (K.width, K.height) if K is not None else (rgb.shape[1], rgb.shape[0])
            geom = CropGeometry.for_source(w, h, cfg.out_width, cfg.out_height)
        crop = geom.crop_image(rgb)
        slots = np.flatnonzero(inverse == u)
        if cfg.frames == "uint8":
            out[slots[0]] = crop.transpose(2, 0, 1)
        else:
            normalize_into(crop, out[slots[0]])
        for t in slots[1:]:
            out[t] = out[slots[0]]
    return torch.from_numpy(out)


def _arrow_view(ds) -> pa.Table:
    """The rows of a map-style HF dataset as one Arrow table (zero-copy over its cache files)."""
    return ds.with_format("arrow")[0 : len(ds)]


class WindowDataset(Dataset):
    """Map-style DexWM windows over a map-style HF ``datasets.Dataset`` of frame rows.

    ``episodes`` is the ``meta/episodes.parquet`` table (intrinsics, source size, fps, axis change);
    without it fps comes from timestamps and HC keypoints are all invisible. Index i maps to
    (episode, window) in episode order; ``set_epoch`` redraws the random samplers' windows.
    """

    def __init__(self, dataset, episodes: pa.Table | None = None, config: WindowConfig | None = None,
                 stats: dict | None = None, cache_episodes: int = 8):
        self.dataset = dataset
        self.config = config or WindowConfig()
        self.epoch = 0
        self._meta = episode_meta_index(episodes)
        self._normalizer = _normalizer(self.config, stats)
        spans = episode_spans(self._table().column("episode_id"))
        cfg = self.config
        self.episodes: list[tuple[str, int, int]] = [
            s for s in spans
            if cfg.split is None or episode_split(s[0], cfg.val_fraction, cfg.seed) == cfg.split
        ]
        counts = [cfg.sampler.num_windows(b - a) for _, a, b in self.episodes]
        self._offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self._cache: OrderedDict[int, StoredEpisode] = OrderedDict()
        self._cache_size = cache_episodes

    # the Arrow view is rebuilt per process (pickling it would copy the whole memory-mapped table)
    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_arrow", None)
        state["_cache"] = OrderedDict()
        return state

    def _table(self) -> pa.Table:
        if "_arrow" not in self.__dict__:
            self._arrow = _arrow_view(self.dataset)
        return self._arrow

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def episode(self, k: int) -> StoredEpisode:
        """Arrays of episode number ``k`` (an LRU cache keeps the last few)."""
        if k in self._cache:
            self._cache.move_to_end(k)
            return self._cache[k]
        eid, a, b = self.episodes[k]
        ep = StoredEpisode.from_table(self._table().slice(a, b - a), self._meta.get(eid), WINDOW_ARRAYS)
        self._cache[k] = ep
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return ep

    def locate(self, i: int) -> tuple[int, int]:
        """(episode number, window number) of sample ``i``."""
        if not 0 <= i < len(self):
            raise IndexError(f"window {i} out of range for {len(self)} windows")
        k = int(np.searchsorted(self._offsets, i, side="right") - 1)
        return k, int(i - self._offsets[k])

    def indices(self, i: int) -> np.ndarray:
        k, j = self.locate(i)
        ep = self.episode(k)
        cfg = self.config
        return window_indices(cfg.sampler, len(ep), ep.fps, ep.episode_id, j, cfg.seed, self.epoch)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        k, j = self.locate(int(i))
        ep = self.episode(k)
        cfg = self.config
        idx = window_indices(cfg.sampler, len(ep), ep.fps, ep.episode_id, j, cfg.seed, self.epoch)
        return build_window(ep, idx, self.config, k, self._normalizer)


class StreamingWindowDataset(IterableDataset):
    """DexWM windows from a streaming HF ``IterableDataset`` of frame rows (or any iterable of Arrow
    tables / row batches in episode order), yielding each episode's windows once it is complete.

    Episodes are numbered in stream order, so for one seed the windows equal those of
    :class:`WindowDataset` over the same rows. With DataLoader workers, worker w takes episodes
    w, w + W, ...; ``shuffle_buffer`` > 0 shuffles windows within a seeded buffer.
    """

    def __init__(self, dataset, episodes: pa.Table | None = None, config: WindowConfig | None = None,
                 stats: dict | None = None, batch_size: int = 256, shuffle_buffer: int = 0):
        self.dataset = dataset
        self.config = config or WindowConfig()
        self.epoch = 0
        self._meta = episode_meta_index(episodes)
        self._normalizer = _normalizer(self.config, stats)
        self.batch_size = batch_size
        self.shuffle_buffer = shuffle_buffer

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _batches(self) -> Iterator[pa.Table]:
        ds = self.dataset
        if hasattr(ds, "with_format") and hasattr(ds, "iter"):
            yield from ds.with_format("arrow").iter(batch_size=self.batch_size)
        else:
            yield from ds

    def _episode_tables(self) -> Iterator[pa.Table]:
        """Complete episodes, in stream order, as Arrow tables."""
        pending: list[pa.Table] = []
        current = None
        for batch in self._batches():
            for eid, a, b in episode_spans(batch.column("episode_id")):
                part = batch.slice(a, b - a)
                if current is not None and eid != current:
                    yield pa.concat_tables(pending)
                    pending = []
                current = eid
                pending.append(part)
        if pending:
            yield pa.concat_tables(pending)

    def _windows(self) -> Iterator[dict[str, torch.Tensor]]:
        cfg = self.config
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        k = -1
        for table in self._episode_tables():
            eid = table.column("episode_id")[0].as_py()
            if cfg.split is not None and episode_split(eid, cfg.val_fraction, cfg.seed) != cfg.split:
                continue
            k += 1
            if k % workers != worker:
                continue
            ep = StoredEpisode.from_table(table, self._meta.get(eid, EpisodeMeta(eid)), WINDOW_ARRAYS)
            for j in range(cfg.sampler.num_windows(len(ep))):
                idx = window_indices(cfg.sampler, len(ep), ep.fps, eid, j, cfg.seed, self.epoch)
                yield build_window(ep, idx, cfg, k, self._normalizer)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        if self.shuffle_buffer <= 0:
            yield from self._windows()
            return
        rng = random.Random(self.config.seed * 1_000_003 + self.epoch)
        buffer: list[dict] = []
        for sample in self._windows():
            if len(buffer) < self.shuffle_buffer:
                buffer.append(sample)
                continue
            j = rng.randrange(len(buffer))
            buffer[j], sample = sample, buffer[j]
            yield sample
        rng.shuffle(buffer)
        yield from buffer


def windows_from(path_or_repo, config: WindowConfig | None = None, hf_config: str | None = None,
                 hf_split: str = "train", streaming: bool = False, revision: str | None = None,
                 cache_dir: str | None = None, **kwargs):
    """Windows dataset of a dataset folder or Hub repo: rows via :func:`load`, plus its episode
    table and statistics. ``hf_split`` is the dataset's own split (train/test), ``config.split``
    the episode-level train/val split within it; ``kwargs`` go to the dataset class."""
    from .hf import load, load_episodes, load_stats

    extra = {"cache_dir": cache_dir} if cache_dir else {}
    ds = load(path_or_repo, hf_config, hf_split, streaming=streaming, revision=revision, **extra)
    episodes = load_episodes(path_or_repo, revision)
    config = config or WindowConfig()
    stats = load_stats(path_or_repo, revision) if config.normalize_actions else None
    cls = StreamingWindowDataset if streaming else WindowDataset
    return cls(ds, episodes, config, stats, **kwargs)

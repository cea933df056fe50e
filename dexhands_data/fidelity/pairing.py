"""Which estimated episode is which ground-truth recording, and which of their frames pair up.

Episodes pair by *recording key*: the recording's path relative to its extraction's input root,
without extension (``test/open_close/1.mp4`` and ``test/open_close/1.hdf5`` are both
``test/open_close/1``), so an ``extract --source videos`` of EgoDex MP4s pairs with the
``extract --source egodex`` of the same files. A pairs file overrides this: one ``EST GT`` pair per
line (episode ids or recording keys; ``#`` starts a comment).

Frames pair by ``source_frame_index``: every frame of the estimate must exist in the ground truth
(the estimate may hold fewer, e.g. extracted with ``--fps``); anything else means the two episodes
are not the same recording, or not the same span of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from ..records import EpisodeError
from .episodes import ScoredEpisode


def recording_key(source_path: str) -> str:
    """``"test/open_close/1.mp4"`` -> ``"test/open_close/1"``."""
    p = PurePosixPath(source_path.replace("\\", "/"))
    return p.with_suffix("").as_posix() if p.suffix else p.as_posix()


@dataclass(frozen=True)
class EpisodePairing:
    """Paired episodes (estimate, ground truth) and the recording keys found on one side only."""

    pairs: list[tuple[ScoredEpisode, ScoredEpisode]]
    only_est: list[str]
    only_gt: list[str]


def read_pairs_file(path: str | Path) -> list[tuple[str, str]]:
    """``EST GT`` name pairs of a pairs file (see the module doc)."""
    out = []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        parts = text.split()
        if len(parts) != 2:
            raise ValueError(f"{path}:{n}: expected 'EST GT', got {line.strip()!r}")
        out.append((parts[0], parts[1]))
    return out


def _by_key(episodes: dict[str, ScoredEpisode], root: str) -> dict[str, ScoredEpisode]:
    out: dict[str, ScoredEpisode] = {}
    for ep in episodes.values():
        key = recording_key(ep.source_path)
        if key in out:
            raise EpisodeError(f"{root}: episodes {out[key].episode_id} and {ep.episode_id} are the same "
                               f"recording {key!r}; pass --pairs to say which to score")
        out[key] = ep
    return out


def _lookup(name: str, episodes: dict[str, ScoredEpisode], by_key: dict[str, ScoredEpisode], root: str,
            pairs_file: str) -> ScoredEpisode:
    ep = episodes.get(name) or by_key.get(name)
    if ep is None:
        raise EpisodeError(f"{pairs_file}: {name!r} is neither an ok episode id nor a recording of {root}")
    return ep


def _unused(episodes: dict[str, ScoredEpisode], used: set[str]) -> list[str]:
    return sorted(recording_key(e.source_path) for e in episodes.values() if e.episode_id not in used)


def pair_episodes(est: dict[str, ScoredEpisode], gt: dict[str, ScoredEpisode], est_root: str, gt_root: str,
                  pairs_file: str | None = None) -> EpisodePairing:
    """Pair the episodes of two datasets by recording key, or as a pairs file says."""
    est_keys, gt_keys = _by_key(est, est_root), _by_key(gt, gt_root)
    if pairs_file is not None:
        named = read_pairs_file(pairs_file)
        pairs = [(_lookup(a, est, est_keys, est_root, pairs_file),
                  _lookup(b, gt, gt_keys, gt_root, pairs_file)) for a, b in named]
        return EpisodePairing(pairs, _unused(est, {p[0].episode_id for p in pairs}),
                              _unused(gt, {p[1].episode_id for p in pairs}))
    common = sorted(set(est_keys) & set(gt_keys))
    return EpisodePairing([(est_keys[k], gt_keys[k]) for k in common],
                          sorted(set(est_keys) - set(gt_keys)), sorted(set(gt_keys) - set(est_keys)))


def align_frames(est: ScoredEpisode, gt: ScoredEpisode) -> tuple[np.ndarray, np.ndarray]:
    """Rows (est_rows, gt_rows) of the frames both episodes hold, by source frame index. Raises
    :class:`EpisodeError` naming both datasets and episodes when the estimate holds a frame the
    ground truth lacks."""
    e, g = est.source_frame_index, gt.source_frame_index
    rows = np.searchsorted(g, e)
    found = rows < len(g)
    found[found] &= g[rows[found]] == e[found]
    if not found.all() or len(e) == 0:
        missing = e[~found]
        raise EpisodeError(
            f"{est.dataset} episode {est.episode_id} ({len(e)} frames, source frames "
            f"{_span(e)}) and {gt.dataset} episode {gt.episode_id} ({len(g)} frames, source frames "
            f"{_span(g)}) "
            f"have different frame counts: {len(missing)} estimated frames have no ground truth"
            + (f" (first: {missing[:3].tolist()})" if len(missing) else "")
        )
    return np.arange(len(e)), rows


def _span(index: np.ndarray) -> str:
    return f"{int(index[0])}..{int(index[-1])}" if len(index) else "none"

"""Score one estimated episode against its ground-truth recording; pool scores over episodes.

An :class:`EpisodeScore` keeps the raw per-sample arrays (so pooling is exact: medians over all
samples of all episodes), and :func:`~.figures.figures` turns one into the reported numbers. Frames,
units and metric definitions are in :mod:`.hand_metrics`, :mod:`.motion_metrics` and
:mod:`.camera_metrics`; see ``docs/fidelity.md`` for the table.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..records import EpisodeError
from . import camera_metrics as cm
from . import motion_metrics as mm
from .batched import HandRows, PoseEntries
from .episodes import ScoredEpisode
from .hand_metrics import PairErrors, hands_in_view, match_hands, pair_errors, reprojection_px
from .pairing import align_frames, recording_key

DEFAULT_STRIDES = (1, 6)


@dataclass
class HandSamples:
    """Hand samples of one or more episodes: counts of GT hands in view, of those matched by an
    estimated hand, of estimated hands and of estimated hands matched to no in-view GT hand;
    ``errors`` of the matched pairs; ``consistency_px`` (H,) the estimate's own 3D -> 2D distance."""

    gt_in_view: int
    matched: int
    est_hands: int
    est_unmatched: int
    errors: PairErrors
    consistency_px: np.ndarray


@dataclass
class EpisodeScore:
    """Raw samples of one episode pair (or of several, pooled). ``camera`` is None when the estimate
    has no camera poses; ``camera_end`` holds (error, true rotation) in deg at each episode's end."""

    name: str
    est_episode: str
    gt_episode: str
    frames: int
    hands: HandSamples
    motion: dict[int, dict[str, mm.MotionResult]]
    camera: dict[int, cm.CameraSamples] | None
    camera_end: list[tuple[float, float]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def check_pair(est: ScoredEpisode, gt: ScoredEpisode) -> None:
    """Raise :class:`EpisodeError` naming both datasets and episodes when ``gt`` cannot serve as truth."""
    where = f"{gt.dataset} episode {gt.episode_id} (ground truth for {est.dataset} episode {est.episode_id})"
    if not gt.is_ground_truth_hands:
        raise EpisodeError(f"{where}: is itself estimated (hand_estimator {gt.hand_estimator!r}); "
                           "score against a ground-truth dataset (extract --source egodex or aria)")
    if not gt.has_camera:
        raise EpisodeError(f"{where}: has no camera poses (camera_estimator {gt.camera_estimator!r}); "
                           "extract it with --camera given")


def hand_samples(gt_cam: np.ndarray, gt_2d: np.ndarray, gt_valid: np.ndarray, width: int, height: int,
                 est_cam: np.ndarray, est_2d: np.ndarray, est_valid: np.ndarray, est_K: np.ndarray,
                 match_fraction: float = 0.5, est_to_gt_pixels: tuple[float, float] = (1.0, 1.0),
                 est_distortion=None, cam_rows: tuple[HandRows, HandRows] | None = None):
    """:class:`HandSamples` of an estimate against GT over aligned frames (contract arrays, see
    :mod:`.hand_metrics`), and the matches (GT as reference; only GT hands in view of the
    ``width`` x ``height`` image take part). ``est_to_gt_pixels`` (sx, sy) maps the estimate's pixel
    grid onto the GT's when the two were extracted at different image sizes (``u' = (u + 0.5) sx - 0.5``);
    ``est_distortion`` is the estimate's lens (its 3D projects onto its 2D with it); ``cam_rows``
    (GT, estimate) the 3D tracks as :class:`~.batched.HandRows` when the caller has them already."""
    in_view = hands_in_view(gt_cam, gt_2d, gt_valid, width, height)
    est_2d_gt = est_2d
    if est_to_gt_pixels != (1.0, 1.0):
        est_2d_gt = (est_2d + 0.5) * np.asarray(est_to_gt_pixels, np.float32) - 0.5
    pairs = match_hands(gt_2d, in_view, est_2d_gt, est_valid, match_fraction)
    gt_rows, est_rows = cam_rows or (HandRows.of(gt_cam), HandRows.of(est_cam))
    errors = pair_errors(pairs, gt_2d, gt_rows, est_2d_gt, est_rows)
    est_hands = int(np.asarray(est_valid, bool).sum())
    samples = HandSamples(
        gt_in_view=int(in_view.sum()), matched=len(pairs), est_hands=est_hands,
        est_unmatched=est_hands - len(pairs), errors=errors,
        consistency_px=reprojection_px(est_cam, est_2d, est_valid, est_K, est_distortion),
    )
    return samples, pairs


def pool_hands(hs: list[HandSamples]) -> HandSamples:
    errors = PairErrors(*(np.concatenate([getattr(h.errors, f) for h in hs])
                          for f in PairErrors.__dataclass_fields__))
    return HandSamples(sum(h.gt_in_view for h in hs), sum(h.matched for h in hs),
                       sum(h.est_hands for h in hs), sum(h.est_unmatched for h in hs), errors,
                       np.concatenate([h.consistency_px for h in hs]))


def _stride(est: ScoredEpisode, gt: ScoredEpisode, hands: tuple[HandRows, HandRows],
            poses: tuple[PoseEntries, PoseEntries] | None, est_for_gt: np.ndarray,
            stride: int) -> tuple[dict[str, mm.MotionResult], cm.CameraSamples | None]:
    """Motion results and camera samples of one stride (the relative poses are computed once for both);
    ``hands`` and ``poses`` are (estimate, ground truth)."""
    i, j = mm.stride_pairs(gt.source_frame_index, stride)
    cameras = None
    if poses is not None:
        cameras = mm.PairCameras.of(*poses, est.camera_valid & gt.camera_valid, i, j)
    motion = mm.motion_results(hands[0], hands[1], est_for_gt, i, j, cameras)
    if cameras is None:
        return motion, None
    ok = cameras.subset(np.flatnonzero(cameras.ok))
    return motion, cm.pair_samples(ok.est, ok.gt)


def score_episode(est: ScoredEpisode, gt: ScoredEpisode, strides: tuple[int, ...] = DEFAULT_STRIDES,
                  match_fraction: float = 0.5) -> EpisodeScore:
    """Score ``est`` against ``gt`` on the frames both hold (see the module doc)."""
    check_pair(est, gt)
    est_rows, gt_rows = align_frames(est, gt)
    e, g = est.subset(est_rows), gt.subset(gt_rows)  # no copy where the rows are all, in order
    K, Ke = g.intrinsics, e.intrinsics
    notes = []
    grid = (K.width / Ke.width, K.height / Ke.height)
    if grid != (1.0, 1.0):
        notes.append(f"{est.dataset} episode {est.episode_id} is {Ke.width}x{Ke.height}, the ground truth "
                     f"{K.width}x{K.height}: estimated pixels rescaled onto the ground truth's grid")
    hand_rows = HandRows.of(e.keypoints_cam), HandRows.of(g.keypoints_cam)  # once for all the gathers
    hands, pairs = hand_samples(g.keypoints_cam, g.keypoints_2d, g.hand_valid, K.width, K.height,
                                e.keypoints_cam, e.keypoints_2d, e.hand_valid, Ke.K, match_fraction, grid,
                                Ke.distortion, (hand_rows[1], hand_rows[0]))
    with_camera = e.has_camera
    if not with_camera:
        notes.append(f"{est.dataset} episode {est.episode_id} has no camera poses: camera figures and "
                     "motion with camera skipped")
    poses = (PoseEntries.of(e.T_world_cam), PoseEntries.of(g.T_world_cam)) if with_camera else None
    by_stride = {s: _stride(e, g, hand_rows, poses, pairs.other_for_ref, s) for s in strides}
    motion = {s: m for s, (m, _) in by_stride.items()}
    camera = None
    camera_end: list[tuple[float, float]] = []
    if with_camera:
        camera = {s: c for s, (_, c) in by_stride.items()}
        valid = e.camera_valid & g.camera_valid
        camera_end = [cm.end_rotation_error_deg(*poses, valid)]
    return EpisodeScore(recording_key(gt.source_path), est.episode_id, gt.episode_id, len(e), hands, motion,
                        camera, camera_end, notes)


def pool(scores: list[EpisodeScore], name: str = "ALL") -> EpisodeScore:
    """One score over several episodes: samples concatenated, episode scales and ends listed."""
    if not scores:
        raise ValueError("nothing to pool")
    hands = pool_hands([s.hands for s in scores])
    motion: dict[int, dict[str, mm.MotionResult]] = {}
    for stride in scores[0].motion:
        motion[stride] = {}
        for variant in mm.MOTION_VARIANTS:
            rs = [s.motion[stride][variant] for s in scores if variant in s.motion.get(stride, {})]
            if rs:
                motion[stride][variant] = mm.MotionResult.pooled(rs)
    with_cam = [s for s in scores if s.camera is not None]
    camera = None
    if with_cam:
        camera = {stride: cm.concat([s.camera[stride] for s in with_cam]) for stride in with_cam[0].camera}
    return EpisodeScore(name, "", "", sum(s.frames for s in scores), hands, motion, camera,
                        [x for s in scores for x in s.camera_end], [n for s in scores for n in s.notes])

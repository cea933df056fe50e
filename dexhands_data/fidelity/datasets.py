"""Score every recording two datasets share: read, pair, score each pair, pool, report."""

from __future__ import annotations

from ..records import EpisodeError
from .episodes import read_scored_episodes
from .figures import figures
from .pairing import pair_episodes, recording_key
from .report import ScoreReport
from .score import DEFAULT_STRIDES, pool, score_episode


def score_datasets(est_root: str, gt_root: str, strides: tuple[int, ...] = DEFAULT_STRIDES,
                   pairs_file: str | None = None, match_fraction: float = 0.5) -> ScoreReport:
    """Score every recording two dataset folders share; returns a :class:`~.report.ScoreReport`.

    An episode pair that cannot be scored is listed in ``failed`` with its reason (the others are
    still scored). Raises :class:`EpisodeError` naming both datasets when they share no recording.
    """
    est = read_scored_episodes(est_root)
    gt = read_scored_episodes(gt_root)
    pairing = pair_episodes(est, gt, est_root, gt_root, pairs_file)
    if not pairing.pairs:
        raise EpisodeError(f"{est_root} ({len(est)} ok episodes) and {gt_root} ({len(gt)} ok episodes) "
                           "have no recordings in common (paired by source path without extension; "
                           "use --pairs FILE for an explicit mapping)")
    scores, episode_figures, failed, metric = [], [], {}, True
    for e, g in pairing.pairs:
        try:
            s = score_episode(e, g, strides, match_fraction)
        except EpisodeError as exc:
            failed[recording_key(g.source_path)] = str(exc)
            continue
        scores.append(s)
        episode_figures.append(figures(s, e.translation_metric))
        metric &= e.translation_metric
    overall = figures(pool(scores), metric) if scores else None
    return ScoreReport(str(est_root), str(gt_root), tuple(strides), episode_figures, overall, failed,
                       pairing.only_est, pairing.only_gt)

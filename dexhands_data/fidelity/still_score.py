"""Score a hand estimator on still images with 3D ground truth (:mod:`.still_images`).

Each image goes through the estimator exactly as ``extract`` runs it on a one-frame episode: a
session opened with the image's true K, one ``step``, then ``finish`` (post-processing included).
The figures are those of ``dexdata score`` (:func:`~.figures.hand_figures`), per dataset and overall.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..records import VideoFrame
from .figures import hand_figures
from .score import HandSamples, hand_samples, pool_hands
from .still_images import StillImage, load_rgb


@dataclass
class StillImageScore:
    """Hand samples and image counts per dataset (``dexycb``, ``handgraphcnn``, ``interhand``)."""

    estimator: str
    per_dataset: dict[str, HandSamples]
    images: dict[str, int]

    def rows(self) -> dict[str, tuple[int, HandSamples]]:
        """(images, samples) per dataset and pooled as ``ALL``."""
        rows = {k: (self.images[k], v) for k, v in sorted(self.per_dataset.items())}
        rows["ALL"] = (sum(self.images.values()), pool_hands(list(self.per_dataset.values())))
        return rows

    def to_dict(self) -> dict:
        return {"estimator": self.estimator,
                "datasets": {name: {"images": n, **hand_figures(h)} for name, (n, h) in self.rows().items()}}


def score_image(estimator, sample: StillImage, match_fraction: float = 0.5) -> HandSamples:
    """The estimator's hands on one image against its ground truth."""
    K = sample.intrinsics
    session = estimator.session(K)
    session.step(VideoFrame(0, 0, 0.0, load_rgb(sample.image_path)))
    track = session.finish()
    samples, _ = hand_samples(sample.keypoints_cam[None], sample.keypoints_2d[None], sample.valid[None],
                              K.width, K.height, track.keypoints_cam, track.keypoints_2d, track.valid, K.K,
                              match_fraction)
    return samples


def score_still_images(estimator, samples: list[StillImage], match_fraction: float = 0.5) -> StillImageScore:
    per: dict[str, list[HandSamples]] = {}
    for s in samples:
        per.setdefault(s.dataset, []).append(score_image(estimator, s, match_fraction))
    name = f"{getattr(estimator, 'name', '?')}=={getattr(estimator, 'version', '?')}"
    return StillImageScore(name, {k: pool_hands(v) for k, v in per.items()},
                           {k: len(v) for k, v in per.items()})

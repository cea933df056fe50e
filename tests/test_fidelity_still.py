"""Still images with calibrated 3D hand ground truth (``shared/data/hand3d_gt``, non-commercial, read in
place): the readers put every hand where its image shows it, and ``dexdata score-images`` scores the
real MediaPipe estimator on a few of them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from dexhands_data.cli.main import main
from dexhands_data.fidelity.still_images import read_dexycb, read_handgraphcnn, read_interhand
from dexhands_data.geometry import project
from dexhands_data.keypoints import LEFT, RIGHT

HAND3D = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "hand3d_gt"
pytestmark = pytest.mark.skipif(not HAND3D.is_dir(), reason="shared hand3d_gt not available")


def _inside(sample) -> np.ndarray:
    uv = sample.keypoints_2d[sample.valid]
    K = sample.intrinsics
    return (uv[..., 0] >= 0) & (uv[..., 0] < K.width) & (uv[..., 1] >= 0) & (uv[..., 1] < K.height)


def test_dexycb_intrinsics_fitted_to_labels_match_the_calibration_file():
    samples = read_dexycb(HAND3D / "dexycb_nc")
    assert len(samples) == 48 and all(s.valid.tolist() == [False, True] for s in samples)  # right hands
    for s in samples:  # the fitted K reproduces the labelled 2D joints
        name = s.image_path.name.replace("color_", "labels_").replace(".jpg", ".npz")
        labels = np.load(s.image_path.parent / name)
        err = np.linalg.norm(project(labels["joint_3d"][0], s.intrinsics.K) - labels["joint_2d"][0], axis=-1)
        assert err.max() < 0.01
    text = (HAND3D / "dexycb_nc" / "836212060125_640x480.yml").read_text()
    calib = yaml.safe_load(text.split("depth:")[0])["color"]  # the rest holds python/tuple tags
    K = next(s for s in samples if "/836212060125/" in s.name).intrinsics
    np.testing.assert_allclose([K.fx, K.fy, K.cx, K.cy],
                               [calib["fx"], calib["fy"], calib["ppx"], calib["ppy"]], atol=0.01)


def test_handgraphcnn_and_interhand_hands_project_into_their_images():
    hg = read_handgraphcnn(HAND3D / "handgraphcnn_realworld_nc")
    assert len(hg) == 59 and all(s.valid.tolist() == [True, False] for s in hg)  # one left hand
    assert np.mean([_inside(s).mean() for s in hg]) > 0.95
    depth = np.array([s.keypoints_cam[LEFT, 0, 2] for s in hg])
    assert 0.25 < depth.min() and depth.max() < 0.5  # "Z = 28-48 cm"
    ih = {s.name: s for s in read_interhand(HAND3D / "interhand26m_nc")}
    assert ih["image69148"].valid.all() and ih["image44669"].valid.all()
    assert ih["image29590"].valid[LEFT] and not ih["image29590"].valid[RIGHT]
    assert ih["image2017"].valid[RIGHT] and not ih["image2017"].valid[LEFT]
    assert all(_inside(s).mean() > 0.9 for s in ih.values())


def test_score_images_runs_the_estimator(tmp_path):
    out = tmp_path / "still.json"
    assert main(["score-images", str(HAND3D), "--limit", "2", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["estimator"].startswith("mediapipe==")
    f = report["datasets"]["ALL"]
    assert f["images"] == 6 and f["gt_hands_in_view"] >= 6 and f["matched"] >= 3
    for k in ("kp2d_px", "mpjpe_cam_mm", "pa_mpjpe_mm", "wrist_depth_error_pct", "est_reprojection_px"):
        assert np.isfinite(f[k]) and f[k] >= 0, k

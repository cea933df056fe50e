"""The dataset reader: one episode (only the columns asked for), every episode, and errors naming the file."""

from __future__ import annotations

import numpy as np
import pytest

from dexhands_data.dataset.reader import MissingFileError, iter_episodes, read_episode
from dexhands_data.dataset.writer import DatasetWriter, FailedEpisode
from dexhands_data.images import encode_jpeg
from dexhands_data.records import EpisodeError
from fakes import refs, synthetic_episode


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("reader") / "dexwm-actions"
    writer = DatasetWriter(root)
    frames = [encode_jpeg(np.full((48, 64, 3), 10 * i, np.uint8), short_side=None) for i in range(12)]
    writer.write_shard("videos", "train", "s0", [synthetic_episode("b", images=frames),
                                                 synthetic_episode("a", seed=1)], "h")
    writer.write_shard("videos", "test", "s1", [synthetic_episode("d", seed=2, split="test"),
                                                FailedEpisode(refs("c", split="test")[0], "c.mp4: truncated")], "h")
    writer.finalize({"videos": {}})
    return root


def test_read_episode_returns_the_written_arrays_and_only_the_columns_asked(dataset):
    want = synthetic_episode("a", seed=1)
    ep = read_episode(dataset, "a", columns=["keypoints_cam", "hand_valid"])
    assert ep.episode_id == "a" and len(ep) == 12 and ep.meta.source == "videos" and ep.embodiment == "human"
    np.testing.assert_array_equal(ep.keypoints_cam, want.hands.keypoints_cam.astype(np.float32))
    np.testing.assert_array_equal(ep.hand_valid, want.hands.valid)
    np.testing.assert_array_equal(ep.frame_index, np.arange(12))
    assert ep.T_world_cam is None and ep.keypoints_2d is None and ep.jpegs is None  # not asked for
    full = read_episode(dataset, "b")
    np.testing.assert_allclose(full.T_world_cam, synthetic_episode("b").camera.T_world_cam)
    assert full.keypoints_cam.dtype == np.float32 and full.T_world_cam.dtype == np.float64
    images = full.decode_images()
    assert len(images) == 12 and images[5].shape == (48, 64, 3) and abs(float(images[5].mean()) - 50) < 3
    track = full.hand_track()
    np.testing.assert_array_equal(track.valid, full.hand_valid)


def test_iter_episodes_reads_every_ok_episode_in_id_order(dataset):
    got = [(ep.episode_id, len(ep)) for ep in iter_episodes(dataset, ["hand_valid"])]
    assert got == [("a", 12), ("b", 12), ("d", 12)]  # c failed; d lives in the other shard
    assert [ep.episode_id for ep in iter_episodes(dataset, ["hand_valid"], episode_ids={"d", "c"})] == ["d"]


def test_errors_name_the_file(dataset, tmp_path):
    with pytest.raises(EpisodeError, match="no episode 'zz'"):
        read_episode(dataset, "zz")
    with pytest.raises(EpisodeError, match="episode 'c' failed: c.mp4: truncated"):
        read_episode(dataset, "c")
    with pytest.raises(ValueError, match="no frame column"):
        read_episode(dataset, "a", columns=["keypoints"])
    with pytest.raises(MissingFileError, match="nowhere/meta/episodes.parquet: missing"):
        read_episode(tmp_path / "nowhere", "a")

"""Reference trainer end to end on a small REAL dataset written by the extraction pipeline (MediaPipe hands,
visual odometry, embedded frames) from the two shared_data/hand_video clips resampled to 5 fps, read back
only through the loader: the tiny model on CPU trains (loss goes down), resumes bit-for-bit, and evaluates."""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil

import numpy as np
import pytest
import torch

from dexhands_data.cli import train_reference
from dexhands_data.pipelines.extract import ExtractSettings, run_extract
from dexhands_data.pipelines.runner import RunConfig
from dexhands_data.train.checkpoints import checkpoint_paths
from dexhands_data.train.config import TrainConfig
from dexhands_data.train.data import open_windows
from dexhands_data.train.evaluation import evaluate

VIDEOS = ("mediapipe_hand_landmarker_test_video.mp4", "mediapipe_gesture_recognizer_test_video.mp4")
TINY = ["--model", "tiny", "--encoder", "random", "--random-encoder-dim", "32", "--image-height", "56",
        "--image-width", "98", "--batch-size", "4", "--lr", "1e-3", "--log-every", "1"]


@pytest.fixture(scope="module")
def real_dataset(shared_data, tmp_path_factory):
    base = tmp_path_factory.mktemp("train")
    videos = base / "in"
    videos.mkdir()
    for name in VIDEOS:
        os.symlink(shared_data / "hand_video" / name, videos / name)
    root = base / "dexwm-actions"
    settings = ExtractSettings(source="videos", source_options={"target_fps": 5.0},
                               hands_options={"model_complexity": 0})
    summary = run_extract(settings, str(videos), RunConfig(out=str(root), executor="local", show_progress=False))
    assert summary.failed == 0 and summary.frames == 41 + 39
    return root


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny CPU models run much faster on one thread than on two contended ones."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(autouse=True)
def _datasets_cache(tmp_path, monkeypatch):
    import datasets

    cached = functools.partial(datasets.load_dataset, cache_dir=str(tmp_path / "c"))
    monkeypatch.setattr(datasets, "load_dataset", cached)


def _cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    train_reference.add_parser(parser.add_subparsers())
    args = parser.parse_args(["train-reference", *argv])
    return args.func(args)


def _metrics(run) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_loader_windows_feed_the_trainer(real_dataset):
    cfg = TrainConfig(data=str(real_dataset), image_height=56, image_width=98, eval_split="train")
    ds = open_windows(cfg, train=True)
    assert len(ds) == 20  # 2 episodes x the released sampler's 10 segments
    s = ds[0]
    assert s["frames"].shape == (9, 3, 56, 98) and s["actions"].shape == (8, 132)
    assert s["hc_visible"][:, 6:].any() and not s["hc_visible"][:, :6].any()  # right hand only


def test_train_resume_and_eval_on_real_frames(real_dataset, tmp_path):
    run = tmp_path / "run"
    assert _cli("--data", str(real_dataset), "--out", str(run), "--steps", "24", "--ckpt-every", "12",
                "--keep-checkpoints", "4", "--eval-split", "train", *TINY) == 0
    log = _metrics(run)
    assert [r["step"] for r in log] == list(range(1, 25))
    assert {"step", "loss", "loss_state", "loss_hc", "lr", "steps_per_s", "samples_per_s"} <= set(log[0])
    first, last = np.mean([r["loss"] for r in log[:4]]), np.mean([r["loss"] for r in log[-4:]])
    assert last < 0.7 * first, (first, last)
    assert log[0]["loss_state"] == pytest.approx(1.0, abs=1e-3)  # zero-init predictor vs LayerNormed latents
    config = json.loads((run / "config.json").read_text())
    assert config["model"] == "tiny" and config["hc_weight"] == 100.0 and config["steps"] == 24

    # exact resume: a copy of the run stopped at step 12 continues to the same losses
    resumed = tmp_path / "resumed"
    (resumed / "checkpoints").mkdir(parents=True)
    shutil.copy(run / "checkpoints" / "step_0000012.pt", resumed / "checkpoints")
    for events in run.glob("events.out.tfevents.*"):  # the interrupted run had logged up to step 24
        shutil.copy(events, resumed)
    (resumed / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log[:14]))  # 2 stale lines
    assert _cli("--data", str(real_dataset), "--out", str(resumed), "--steps", "24", "--ckpt-every", "12",
                "--eval-split", "train", "--resume", *TINY) == 0
    log2 = _metrics(resumed)
    assert [r["step"] for r in log2] == list(range(1, 25))
    for a, b in zip(log[12:], log2[12:]):
        keys = ("step", "loss", "loss_state", "loss_hc", "lr", "grad_norm")
        assert [a[k] for k in keys] == [b[k] for k in keys]
    # TensorBoard event files beside metrics.jsonl hold the same curves; the resumed run purged the
    # stale steps 13..24 of the interrupted run's event file, so every step appears once
    for folder, records in ((run, log), (resumed, log2)):
        scalars = _event_scalars(folder)
        assert [s.step for s in scalars["loss/total"]] == list(range(1, 25))
        for tag, key in (("loss/total", "loss"), ("loss/state", "loss_state"), ("loss/hc", "loss_hc"),
                         ("train/lr", "lr")):
            np.testing.assert_allclose([s.value for s in scalars[tag]], [r[key] for r in records], rtol=1e-6)
    # a second run into a folder with checkpoints needs --resume
    assert _cli("--data", str(real_dataset), "--out", str(run), "--steps", "2", *TINY) == 1

    # evaluation: open-loop rollouts of 4 steps (stride 2 frames) from the true first frame
    assert _cli("--data", str(real_dataset), "--out", str(run), "--eval", "--eval-rollout", "4",
                "--eval-stride", "2", "--eval-split", "train", "--batch-size", "4") == 0
    res = json.loads((run / "eval" / "metrics.json").read_text())
    assert res["step"] == 24 and res["rollout_steps"] == 4 and res["samples"] == 40 // 8 + 38 // 8  # windows spanning 4 x 2 frames, every 8 frames
    d = 32
    for step in range(4):
        l1, l2 = res["per_step"]["l2_dexwm"][step], res["per_step"]["l2"][step]
        assert 0 < l1 and np.sqrt(d) * l1 <= l2 + 1e-6 <= d * l1 + 1e-5  # norm inequalities per patch
        per = res["per_step"]
        for t in ("2.5", "5", "10", "20"):
            assert 0 <= per[f"pck_all12@{t}"][step] <= per[f"pck_visible@{t}"][step] <= 100
    assert res["last"]["l2_dexwm"] == res["per_step"]["l2_dexwm"][-1]
    assert (run / "eval" / "heatmaps.png").stat().st_size > 10_000

    # the report: curves (total, state, HC, lr) and the evaluation's figures in one PNG
    assert _cli("--report", str(run)) == 0
    png = plt_imread(run / "report.png")
    assert png.shape[0] > 500 and png.shape[1] > 1000 and png[..., :3].std() > 0.05
    assert _cli("--report", str(tmp_path / "none")) == 1


def plt_imread(path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.imread(path)


def _event_scalars(run) -> dict:
    """Scalars of a run folder's TensorBoard event files, read with TensorBoard's own reader."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: acc.Scalars(tag) for tag in acc.Tags()["scalars"]}


def test_multistep_finetune_from_pretrained(real_dataset, tmp_path):
    pre = tmp_path / "pre"
    assert _cli("--data", str(real_dataset), "--out", str(pre), "--steps", "2", *TINY) == 0
    ft = tmp_path / "ft"
    assert _cli("--data", str(real_dataset), "--out", str(ft), "--steps", "3", "--multistep", "--sampler",
                "full-seq", "--init-from", str(checkpoint_paths(pre)[-1]), "--schedule", "cosine", *TINY) == 0
    log = _metrics(ft)
    assert len(log) == 3 and all(np.isfinite(r["loss"]) for r in log)
    assert log[0]["loss_state"] != pytest.approx(1.0, abs=1e-4)  # started from the pre-trained weights
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        evaluate(TrainConfig(data=str(real_dataset), out=str(tmp_path / "none")))

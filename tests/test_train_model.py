"""Reference trainer, model level: CDiT predictor, HC head / loss / PCK, frozen encoders."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import torch

from dexhands_data.train import encoders
from dexhands_data.train.encoders import DinoSpec, RandomPatchEncoder, build_encoder, read_safetensors
from dexhands_data.train.hc_head import HeatmapHead, hc_loss, hc_targets, pck
from dexhands_data.train.model import PREDICTOR_SIZES, CDiTPredictor, PredictorConfig
from dexhands_data.train.config import TrainConfig
from dexhands_data.train.data import ResumableSampler, prepare_batch

T, P, D = 5, 28, 32  # 5 frames, a 4 x 7 patch grid (56 x 98 px), latent width 32


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny CPU models run much faster on one thread than on two contended ones."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _predictor(size: str = "tiny", encoder_dim: int = D, randomise: bool = True) -> CDiTPredictor:
    torch.manual_seed(0)
    m = CDiTPredictor(PredictorConfig(size, encoder_dim, T, P))
    if randomise:  # leave zero-init so that every path contributes
        with torch.no_grad():
            for p in m.parameters():
                p.normal_(0, 0.05)
    return m.eval()


def _inputs(b: int = 2):
    g = torch.Generator().manual_seed(1)
    return torch.randn(b, T, P, D, generator=g), torch.randn(b, T - 1, 132, generator=g)


def test_sizes_match_the_paper_table():
    # predictor parameters with DINOv2-L latents (1024-d, 448 patches, 9 frames): paper Tab. 5 S/B/L/XL
    paper_millions = {"S": 31, "B": 104, "L": 344, "XL": 456}
    for size, millions in paper_millions.items():
        with torch.device("meta"):
            m = CDiTPredictor(PredictorConfig(size, 1024, 9, 448))
        assert round(sum(p.numel() for p in m.parameters()) / 1e6) == millions, size
        assert (m.cfg.depth, m.cfg.width, m.cfg.heads) == PREDICTOR_SIZES[size]


def test_shapes_and_zero_init_output():
    m = _predictor(randomise=False)
    z, a = _inputs()
    out = m(z, a)
    assert out.shape == (2, T - 1, P, D)
    assert torch.count_nonzero(out) == 0
    assert torch.count_nonzero(m.rollout(z[:, 0], a)) == 0
    # with projections (encoder width != predictor width) the output starts at zero too
    mp = CDiTPredictor(PredictorConfig("tiny", 48, T, P))
    assert mp.input_proj.in_features == 48 and torch.count_nonzero(mp(torch.randn(1, T, P, 48), a[:1])) == 0


def test_teacher_forced_slot_equals_autoregressive_step():
    m = _predictor()
    z, a = _inputs()
    with torch.no_grad():
        tf = m(z, a)
        for i in range(1, T):
            step = m.predict_next(z[:, :i], a[:, :i])
            torch.testing.assert_close(step, tf[:, i - 1], atol=2e-5, rtol=1e-5)


def test_slot_sees_only_earlier_frames_and_its_own_action():
    m = _predictor()
    z, a = _inputs()
    with torch.no_grad():
        base = m(z, a)
        z2, a2 = z.clone(), a.clone()
        z2[:, 3] += 1.0  # frame 3 may influence slots 4.. only
        a2[:, 2] += 1.0  # action 2->3 conditions slot 3 and (as context c_3) slot 4
        out = m(z2, a)
        assert torch.equal(out[:, :3], base[:, :3]) and not torch.allclose(out[:, 3], base[:, 3])
        out = m(z, a2)
        assert torch.equal(out[:, :2], base[:, :2]) and not torch.allclose(out[:, 2], base[:, 2])
        # frames within a slot interact (self-attention over the frame's patches)
        z3 = z.clone()
        z3[:, 0, 0] += 1.0
        assert not torch.allclose(m(z3, a)[:, 0, 5], base[:, 0, 5])


def test_rollout_feeds_back_predictions():
    m = _predictor()
    z, a = _inputs()
    with torch.no_grad():
        roll = m.rollout(z[:, 0], a, pad=True)
        # step 1 of the padded rollout: T-1 copies of frame 0 joined by zero actions, then a_0
        ctx = z[:, :1].expand(-1, T - 1, -1, -1)
        acts = torch.cat([torch.zeros(2, T - 2, 132), a[:, :1]], dim=1)
        torch.testing.assert_close(roll[:, 0], m.predict_next(ctx, acts))
        # step 2 uses the step-1 prediction as the newest context frame
        ctx2 = torch.cat([z[:, :1].expand(-1, T - 2, -1, -1), roll[:, :1]], dim=1)
        acts2 = torch.cat([torch.zeros(2, T - 3, 132), a[:, :2]], dim=1)
        torch.testing.assert_close(roll[:, 1], m.predict_next(ctx2, acts2))
        unpadded = m.rollout(z[:, 0], a, pad=False)
        torch.testing.assert_close(unpadded[:, 0], m.predict_next(z[:, :1], a[:, :1]))


def test_hc_targets_loss_zero_for_perfect_prediction_and_masks_invisible():
    uv = torch.tensor([[[50.0, 30.0], [2.0, 2.0]]])  # second: inside the image but too near the border
    maps = hc_targets(uv, height=56, width=98)
    assert maps.shape == (1, 2, 56, 98)
    assert maps[0, 0, 30, 50] == 1.0 and maps[0, 0].sum() > 1 and torch.count_nonzero(maps[0, 1]) == 0
    assert torch.isclose(maps[0, 0, 30, 52], torch.tensor(float(np.exp(-4 / 8))))
    visible = torch.tensor([[True, True]])
    assert hc_loss(maps, maps, visible) == 0
    wrong = maps.clone()
    wrong[0, 1] = 5.0  # a bad prediction for an invisible keypoint costs nothing
    assert hc_loss(wrong, maps, torch.tensor([[True, False]])) == 0
    expected = 25.0 / 2  # mean over (H, W) is 25 for channel 1, outer mean over both channels
    assert torch.isclose(hc_loss(wrong, maps, visible), torch.tensor(expected))


def test_pck_denominators():
    uv = torch.tensor([[[20.0, 20.0], [40.0, 30.0], [60.0, 20.0], [1.0, 1.0]]])
    target = hc_targets(uv, 56, 98)
    pred = hc_targets(uv + torch.tensor([[[0.0, 0.0], [3.0, 4.0], [30.0, 0.0], [0.0, 0.0]]]), 56, 98)
    visible = torch.tensor([[True, True, True, False]])
    out = pck(pred, target, visible, thresholds=(2.5, 5.0, 40.0))
    # keypoint 3 has no target map (border rule) and is not visible: it is never correct
    assert out["pck_visible@2.5"].item() == pytest.approx(100 / 3)
    assert out["pck_visible@5"].item() == pytest.approx(200 / 3)
    assert out["pck_visible@40"].item() == pytest.approx(100.0)
    assert out["pck_all12@40"].item() == pytest.approx(75.0)  # released rule: divide by all keypoints


def test_heatmap_head_shapes_both_decoders():
    z = torch.randn(2, 3, P, D)
    for decode in ("paper", "code"):
        head = HeatmapHead(D, (4, 7), dim=32, depth=1, heads=4, decode=decode)
        maps = head(z)
        assert maps.shape == (2, 3, 12, 56, 98)
    with pytest.raises(ValueError, match="expected 28 patches"):
        head(torch.randn(1, 27, D))


def test_random_encoder_is_fixed_and_documented():
    a, b = RandomPatchEncoder(16), RandomPatchEncoder(16)
    x = torch.randn(2, 3, 3, 56, 98)
    za = a.encode(x)
    assert za.shape == (2, 3, 28, 16) and torch.equal(za, b.encode(x))
    assert torch.allclose(za.mean(-1), torch.zeros(()), atol=1e-5)  # LayerNorm output
    assert "NOT DINOv2" in RandomPatchEncoder.__doc__ and not list(a.parameters())


def _tiny_dino_state(spec: DinoSpec, seed: int = 0) -> dict[str, np.ndarray]:
    """A random torch-hub-format DINOv2 state dict for a tiny spec."""
    rng = np.random.default_rng(seed)
    d = spec.dim
    sd = {"cls_token": (1, 1, d), "pos_embed": (1, 1 + 37 * 37, d), "mask_token": (1, d),
          "patch_embed.proj.weight": (d, 3, 14, 14), "patch_embed.proj.bias": (d,), "norm.weight": (d,),
          "norm.bias": (d,)}
    for i in range(spec.depth):
        p = f"blocks.{i}."
        sd |= {p + "norm1.weight": (d,), p + "norm1.bias": (d,), p + "attn.qkv.weight": (3 * d, d),
               p + "attn.qkv.bias": (3 * d,), p + "attn.proj.weight": (d, d), p + "attn.proj.bias": (d,),
               p + "ls1.gamma": (d,), p + "norm2.weight": (d,), p + "norm2.bias": (d,),
               p + "mlp.fc1.weight": (4 * d, d), p + "mlp.fc1.bias": (4 * d,),
               p + "mlp.fc2.weight": (d, 4 * d),
               p + "mlp.fc2.bias": (d,), p + "ls2.gamma": (d,)}
    return {k: rng.normal(0, 0.1, s).astype(np.float32) for k, s in sd.items()}


def _hub_to_hf(sd: dict[str, np.ndarray], depth: int) -> dict[str, np.ndarray]:
    """The same weights under transformers' Dinov2Model names (written independently of the loader)."""
    out = {"embeddings.cls_token": sd["cls_token"], "embeddings.position_embeddings": sd["pos_embed"],
           "embeddings.mask_token": sd["mask_token"],
           "embeddings.patch_embeddings.projection.weight": sd["patch_embed.proj.weight"],
           "embeddings.patch_embeddings.projection.bias": sd["patch_embed.proj.bias"],
           "layernorm.weight": sd["norm.weight"], "layernorm.bias": sd["norm.bias"]}
    for i in range(depth):
        p, h = f"blocks.{i}.", f"encoder.layer.{i}."
        for t in ("weight", "bias"):
            q, k, v = np.split(sd[f"{p}attn.qkv.{t}"], 3)
            out |= {f"{h}attention.attention.query.{t}": q, f"{h}attention.attention.key.{t}": k,
                    f"{h}attention.attention.value.{t}": v,
                    f"{h}attention.output.dense.{t}": sd[f"{p}attn.proj.{t}"],
                    f"{h}norm1.{t}": sd[f"{p}norm1.{t}"], f"{h}norm2.{t}": sd[f"{p}norm2.{t}"],
                    f"{h}mlp.fc1.{t}": sd[f"{p}mlp.fc1.{t}"], f"{h}mlp.fc2.{t}": sd[f"{p}mlp.fc2.{t}"]}
        out[h + "layer_scale1.lambda1"] = sd[p + "ls1.gamma"]
        out[h + "layer_scale2.lambda1"] = sd[p + "ls2.gamma"]
    return out


def _write_safetensors(path, tensors: dict[str, np.ndarray]) -> None:
    header, blobs, off = {}, [], 0
    for k, a in tensors.items():
        b = a.astype("<f4").tobytes()
        header[k] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def test_dinov2_loads_hub_and_transformers_formats_identically(tmp_path, monkeypatch):
    spec = DinoSpec(32, 2, 4, "facebook/dinov2-small")
    monkeypatch.setitem(encoders.DINOV2_SPECS, "dinov2_vits14", spec)
    sd = _tiny_dino_state(spec)
    hub = tmp_path / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    torch.save({k: torch.from_numpy(v) for k, v in sd.items()}, hub / "dinov2_vits14_pretrain.pth")
    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "config.json").write_text(json.dumps({"hidden_size": 32, "num_hidden_layers": 2, "patch_size": 14}))
    _write_safetensors(hf / "model.safetensors", _hub_to_hf(sd, spec.depth))
    back = read_safetensors(hf / "model.safetensors")
    assert torch.equal(back["embeddings.cls_token"], torch.from_numpy(sd["cls_token"]))

    enc_hub = build_encoder("dinov2_vits14", str(tmp_path / "hub"))
    enc_hf = build_encoder("dinov2_vits14", str(hf))
    x = torch.randn(1, 3, 518, 518)  # 37 x 37 patches: the trained grid, no position-embedding resize
    z_hub, z_hf = enc_hub.encode(x), enc_hf.encode(x)
    assert z_hub.shape == (1, 37 * 37, 32)
    torch.testing.assert_close(z_hub, z_hf, atol=1e-5, rtol=1e-5)
    # the DexWM grid 16 x 28 (position embeddings resized); frozen
    z = enc_hub.encode(torch.randn(2, 3, 224, 392))
    assert z.shape == (2, 448, 32) and not any(p.requires_grad for p in enc_hub.parameters())
    # patch tokens after the final LayerNorm (x_norm_patchtokens): undoing its affine gives mean 0, variance 1
    xhat = (z - torch.from_numpy(sd["norm.bias"])) / torch.from_numpy(sd["norm.weight"])
    torch.testing.assert_close(xhat.mean(-1), torch.zeros(2, 448), atol=1e-3, rtol=0)
    torch.testing.assert_close(xhat.var(-1, unbiased=False), torch.ones(2, 448), atol=1e-3, rtol=0)


def test_missing_dinov2_weights_name_the_download(tmp_path):
    expected = r"dinov2_vitl14_pretrain\.pth.*facebook/dinov2-large.*NOT DINOv2"
    with pytest.raises(FileNotFoundError, match=expected):
        build_encoder("dinov2_vitl14", str(tmp_path))
    with pytest.raises(ValueError, match="unknown encoder"):
        build_encoder("clip")


def test_sampler_resumes_mid_stream_for_every_rank():
    from itertools import islice

    n, world = 5, 2  # n not a multiple of world: epochs straddle ranks
    full = [list(islice(iter(ResumableSampler(n, 0, r, world)), 7)) for r in range(world)]
    resumed = [list(islice(iter(ResumableSampler(n, 0, r, world, position=6)), 4)) for r in range(world)]
    assert [f[3:] for f in full] == resumed
    keys = sorted(k for f in full for k in f if k[0] == 0)
    assert keys == [(0, i) for i in range(n)]  # epoch 0 covers every window once across ranks


def test_prepare_batch_resizes_frames_and_keypoints():
    cfg = TrainConfig(image_height=56, image_width=98)
    batch = {"frames": torch.randn(1, 2, 3, 112, 196), "actions": torch.tensor([[[float("nan")] * 132]]),
             "hc_keypoints": torch.tensor([[[[100.0, 50.0]] * 12, [[195.0, 1.0]] * 12]]),
             "hc_visible": torch.ones(1, 2, 12, dtype=torch.bool), "episode_index": torch.tensor([3])}
    out = prepare_batch(batch, cfg, torch.device("cpu"))
    assert out["frames"].shape == (1, 2, 3, 56, 98) and torch.count_nonzero(out["actions"]) == 0
    torch.testing.assert_close(out["hc_keypoints"][0, 0, 0], torch.tensor([50.0, 25.0]))
    assert out["hc_visible"][0, 0].all() and out["hc_visible"][0, 1].all()
    batch["hc_keypoints"][0, 1] = torch.tensor([197.0, 1.0])  # outside the 196-px-wide frame
    assert not prepare_batch(batch, cfg, torch.device("cpu"))["hc_visible"][0, 1].any()


def test_masked_action_dimensions_carry_no_signal_and_get_no_gradient():
    """prepare_batch zeroes what action_mask marks as not data, so the conditioning weights of a masked
    dimension receive exactly zero gradient from the loss."""
    cfg = TrainConfig(image_height=56, image_width=98)
    mask = torch.ones(1, T - 1, 132, dtype=torch.bool)
    mask[..., 126:129] = False  # camera position of a non-metric track
    batch = {"frames": torch.randn(1, T, 3, 56, 98), "actions": torch.randn(1, T - 1, 132) + 5.0,
             "action_mask": mask, "hc_keypoints": torch.zeros(1, T, 12, 2),
             "hc_visible": torch.zeros(1, T, 12, dtype=torch.bool)}
    out = prepare_batch(batch, cfg, torch.device("cpu"))
    assert (out["actions"][..., 126:129] == 0).all()
    torch.testing.assert_close(out["actions"][..., :126], batch["actions"][..., :126])
    pred = _predictor()
    latents = torch.randn(1, T, P, D)
    loss = torch.nn.functional.mse_loss(pred(latents, out["actions"]), latents[:, 1:])
    loss.backward()
    w = pred.blocks[0].adaLN_modulation[1].weight.grad  # (11 dim, 132): one column per action dimension
    assert (w[:, 126:129] == 0).all() and w[:, :126].abs().sum() > 0


def test_cli_config_file_and_overrides(tmp_path):
    import argparse

    from dexhands_data.cli import train_reference

    (tmp_path / "c.json").write_text(json.dumps({"model": "S", "hc_weight": 10.0, "steps": 5, "unknown": 1}))
    parser = argparse.ArgumentParser()
    train_reference.add_parser(parser.add_subparsers())
    args = parser.parse_args(["train-reference", "--config", str(tmp_path / "c.json"), "--steps", "7",
                              "--multistep", "--no-rollout-pad", "--encoder-weights", "/w"])
    cfg = train_reference.config_from_args(args)
    assert (cfg.model, cfg.hc_weight, cfg.steps, cfg.multistep, cfg.rollout_pad) == ("S", 10.0, 7, True, False)
    assert cfg.encoder_weights == "/w" and cfg.lr == 1e-4 and cfg.num_frames == 9
    assert train_reference.run(parser.parse_args(["train-reference"])) == 2  # --data is required


def test_gradient_checkpointing_gives_the_same_gradients():
    z, a = _inputs()
    grads = []
    for ckpt in (False, True):
        m = _predictor()
        m.cfg = PredictorConfig("tiny", D, T, P, grad_checkpointing=ckpt)
        m.train()
        m(z, a).square().mean().backward()
        grads.append([p.grad for p in m.parameters()])
    for g0, g1 in zip(*grads):
        torch.testing.assert_close(g0, g1)

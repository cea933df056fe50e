"""DexWM heatmap targets (dexwm.md §6.3): Gaussian belief maps of the HC keypoints in crop pixels
(the crop itself is :mod:`.crop`, the image normalisation :mod:`.normalize`)."""

from __future__ import annotations

from .crop import OUT_HEIGHT, OUT_WIDTH

HEATMAP_SIGMA = 2.0


def heatmap_targets(uv, height: int = OUT_HEIGHT, width: int = OUT_WIDTH, sigma: float = HEATMAP_SIGMA):
    """Gaussian belief maps (..., height, width) of keypoints ``uv`` (..., 2), as the released code draws.

    Torch, on the device of ``uv`` (build targets on the GPU: a 9-frame sample is 34 MB of maps).
    Each map is ``exp(-((x - iu)^2 + (y - iv)^2) / (2 sigma^2))`` over the (2w+1)^2 window, w = int(2 sigma),
    around the integer pixel ``(iu, iv) = trunc(uv)`` (peak 1, unnormalised), and zero elsewhere. The
    whole map is zero unless ``iu - w >= 0``, ``iu + w + 1 < width``, ``iv - w >= 0`` and
    ``iv + w + 1 < height`` (the released rule, hence zero maps within ~5 px of the border) or if uv is NaN.
    """
    import torch

    uv = torch.as_tensor(uv)
    w = int(sigma * 2)
    finite = torch.isfinite(uv).all(dim=-1)
    iuv = torch.where(torch.isfinite(uv), uv, torch.zeros_like(uv)).trunc().to(torch.int64)
    iu, iv = iuv[..., 0], iuv[..., 1]
    inside = finite & (iu - w >= 0) & (iu + w + 1 < width) & (iv - w >= 0) & (iv + w + 1 < height)
    xs = torch.arange(width, device=uv.device)
    ys = torch.arange(height, device=uv.device)
    dx = xs.view(*([1] * iu.dim()), 1, width) - iu[..., None, None]
    dy = ys.view(*([1] * iv.dim()), height, 1) - iv[..., None, None]
    window = (dx.abs() <= w) & (dy.abs() <= w) & inside[..., None, None]
    # exp evaluated in float64 then rounded to float32, as numpy then torch.Tensor did in the released code
    d2_max = 2 * w * w
    lut = torch.exp(-torch.arange(d2_max + 1, dtype=torch.float64) / (2.0 * sigma**2)).to(torch.float32)
    d2 = (dx.square() + dy.square()).clamp(max=d2_max)
    g = lut.to(uv.device)[d2]
    return torch.where(window, g, torch.zeros((), dtype=torch.float32, device=uv.device))

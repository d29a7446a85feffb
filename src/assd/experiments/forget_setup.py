"""The original model of a forgetting benchmark: build, train or load weights, save, reload.

The trained original of each seed is saved as a model folder
(:func:`assd.store.checkpoints.save_model`) with the settings it was trained with;
a re-run loads it instead of training again, and refuses one trained with
other settings.

Example:
    >>> x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    >>> random_crop_flip(x, pad=1, generator=torch.Generator().manual_seed(0)).shape
    torch.Size([2, 3, 4, 4])
"""

from __future__ import annotations

import copy
import json
import logging
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..batches import TensorData
from ..models import build_model
from ..store.checkpoints import load_model, load_state_dict, save_model
from ..train import fit

__all__ = [
    "Augmented",
    "Resized",
    "build_original",
    "device_of",
    "load_original",
    "load_weights_",
    "random_crop_flip",
]

log = logging.getLogger("assd")


def device_of(name: str) -> torch.device:
    """``"auto"`` (CUDA if available, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ..."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but PyTorch sees no CUDA device here.")
    return device


class Resized(nn.Module):
    """Resize square images to ``size`` (bilinear) before the wrapped network, e.g.
    32-pixel CIFAR for a ViT-B/16 that expects 224 pixels."""

    def __init__(self, net: nn.Module, size: int):
        super().__init__()
        self.net, self.size = net, size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.size or x.shape[-2] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return self.net(x)


def load_weights_(
    model: nn.Module, path: str | os.PathLike, *, strict: bool = True, allow_pickle: bool = False
) -> int:
    """Load a state dict (safetensors; pickles only if allowed) into ``model``.

    ``strict``: every tensor must match by name and shape. Otherwise (e.g.
    pretrained weights with another classifier head) the tensors that match
    are loaded and the rest keep their values. Returns the number loaded.
    """
    state = load_state_dict(path, allow_pickle=allow_pickle)
    own = model.state_dict()
    fits = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    misfits = sorted((set(own) | set(state)) - set(fits))
    if (strict and misfits) or not fits:
        shown = ", ".join(misfits[:6]) + (", ..." if len(misfits) > 6 else "")
        raise ValueError(
            f"{path} does not fit the {type(model).__name__} ({len(fits)} of {len(own)} tensors "
            f"match by name and shape; not matching: {shown}). Use weights saved from the same "
            "assd architecture (parameter names as in model.state_dict())."
        )
    model.load_state_dict(fits, strict=False)
    log.info(
        "loaded %d tensors from %s (%d left as they were)", len(fits), path, len(own) - len(fits)
    )
    return len(fits)


def random_crop_flip(x: torch.Tensor, *, pad: int, generator: torch.Generator) -> torch.Tensor:
    """Per image: a random crop of the zero-padded image, then a horizontal flip half the time."""
    b, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    oy, ox = (torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(x.device) for _ in "yx")
    rows = oy[:, None] + torch.arange(h, device=x.device)  # (B, H)
    cols = ox[:, None] + torch.arange(w, device=x.device)  # (B, W)
    batch = torch.arange(b, device=x.device)[:, None, None, None]
    chan = torch.arange(c, device=x.device)[None, :, None, None]
    out = padded[batch, chan, rows[:, None, :, None], cols[:, None, None, :]]
    flip = (torch.rand(b, generator=generator) < 0.5).to(x.device)[:, None, None, None]
    return torch.where(flip, out.flip(3), out)


class Augmented:
    """Batches of ``data`` with :func:`random_crop_flip` applied (seeded per pass)."""

    def __init__(self, data: TensorData, *, pad: int = 4, seed: int = 0):
        self.data, self.pad, self.seed, self._passes = data, pad, seed, 0

    def __len__(self) -> int:
        return len(self.data)

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + 100_003 * self._passes)
        self._passes += 1
        for x, y in self.data:
            yield random_crop_flip(x, pad=self.pad, generator=generator), y


def model_spec(config, scenario) -> tuple[str, dict]:
    """Architecture name and keyword arguments for this scenario's images and classes."""
    channels, height, width = scenario.x_train.shape[1:]
    kwargs = {"n_classes": scenario.n_classes, "channels": int(channels)}
    if config.model == "cnn" and (height, width) != (8, 8):
        raise ValueError("the 'cnn' model takes 8x8 images (digits); use resnet18 or vit.")
    if config.model.startswith("vit"):
        kwargs["image_size"] = config.image_size or int(height)
    return config.model, {**kwargs, **config.model_options}


def _wrap(net: nn.Module, config) -> nn.Module:
    return Resized(net, config.image_size) if config.image_size else net


def build_original(folder: Path, config, scenario, seed: int, device, *, progress=False):
    """Train (or load ``config.weights`` into) a seeded new model and save it in ``folder``."""
    architecture, kwargs = model_spec(config, scenario)
    torch.manual_seed(seed)
    net = build_model(architecture, **kwargs)
    if config.init:
        load_weights_(net, config.init, strict=False, allow_pickle=config.allow_pickle)
    model = _wrap(net, config).to(device)
    tick = time.perf_counter()
    if config.weights:
        load_weights_(net, config.weights, strict=True, allow_pickle=config.allow_pickle)
    else:
        data = TensorData(scenario.x_train, scenario.y_train, batch_size=config.batch_size,
                          shuffle=True, seed=seed)  # fmt: skip
        fit(model, Augmented(data, seed=seed) if config.augment else data,
            **config.training, progress=progress)  # fmt: skip
    seconds = time.perf_counter() - tick
    extra = {"settings": _jsonable(config.settings()), "seed": seed, "train_seconds": seconds}
    save_model(folder, copy.deepcopy(net).cpu(), architecture=architecture, kwargs=kwargs,
               extra=extra, overwrite=True)  # fmt: skip
    return model.eval(), seconds


def load_original(folder: Path, config, device):
    """The original saved in ``folder`` as ``(model, train_seconds)``, or None if none is."""
    if not (folder / "model.json").is_file():
        return None
    net, spec = load_model(folder)
    stored = spec.get("extra", {}).get("settings")
    if isinstance(stored, dict):  # folders written before the estimator left the settings
        stored = {k: v for k, v in stored.items() if k != "estimator"}
    if stored != _jsonable(config.settings()):
        raise ValueError(
            f"{folder} holds an original model trained with other settings ({stored}); "
            "choose another --out for these settings."
        )
    return _wrap(net, config).to(device).eval(), spec["extra"]["train_seconds"]


def _jsonable(value):
    return json.loads(json.dumps(value))

"""Model architectures, buildable by name (``build_model("resnet18", n_classes=10)``)."""

from __future__ import annotations

from torch import nn

from .cnn import DigitsCNN
from .mlp import TabularMLP
from .resnet import ResNet18
from .vit import ViT

__all__ = ["ARCHITECTURES", "DigitsCNN", "ResNet18", "TabularMLP", "ViT", "build_model"]

ARCHITECTURES: dict[str, tuple[type[nn.Module], dict]] = {
    "cnn": (DigitsCNN, {}),
    "mlp": (TabularMLP, {}),  # the paper's 3 x 100
    "mlp-small": (TabularMLP, {"width": 32, "depth": 2}),
    "mlp-large": (TabularMLP, {"width": 256, "depth": 4}),
    "resnet18": (ResNet18, {}),
    "vit": (ViT, {}),
    "vit-b": (ViT, {"dim": 768, "depth": 12, "heads": 12, "patch_size": 16, "image_size": 224}),
}


def build_model(name: str, **kwargs) -> nn.Module:
    """Build a registered architecture; ``kwargs`` override its defaults.

    Example:
        >>> build_model("mlp-small", n_features=5, n_classes=3).net[0]
        Linear(in_features=5, out_features=32, bias=True)
    """
    if name not in ARCHITECTURES:
        raise ValueError(
            f"unknown model {name!r}; known models: {', '.join(sorted(ARCHITECTURES))}."
        )
    cls, defaults = ARCHITECTURES[name]
    return cls(**{**defaults, **kwargs})

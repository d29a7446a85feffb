"""A Vision Transformer: patch embedding, class token, pre-norm encoder, linear head."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ViT"]


class ViT(nn.Module):
    """ViT with learned position embeddings; ViT-B/16 is ``ViT(dim=768, depth=12, heads=12)``.

    Args:
        n_classes: output classes.
        image_size: side of the (square) input image.
        patch_size: side of each patch.
        channels: input channels.
        dim, depth, heads, mlp_ratio, dropout: encoder size.

    Example:
        >>> tiny = ViT(10, image_size=8, patch_size=4, dim=16, depth=1, heads=2)
        >>> tiny(torch.zeros(2, 3, 8, 8)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self,
        n_classes: int = 10,
        *,
        image_size: int = 32,
        patch_size: int = 4,
        channels: int = 3,
        dim: int = 192,
        depth: int = 6,
        heads: int = 3,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
    ):
        super().__init__()
        if image_size % patch_size:
            raise ValueError(
                f"image_size ({image_size}) must be a multiple of patch_size ({patch_size})."
            )
        n_patches = (image_size // patch_size) ** 2
        self.patch = nn.Conv2d(channels, dim, patch_size, patch_size)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.zeros(1, n_patches + 1, dim))
        layer = nn.TransformerEncoderLayer(
            dim,
            heads,
            int(dim * mlp_ratio),
            dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, n_classes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Truncated-normal class token and position embeddings (std 0.02)."""
        nn.init.trunc_normal_(self.pos, std=0.02)
        nn.init.trunc_normal_(self.cls, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, n_classes)
        tokens = self.patch(x).flatten(2).transpose(1, 2)  # (B, N, dim)
        tokens = torch.cat([self.cls.expand(len(x), -1, -1), tokens], dim=1) + self.pos
        return self.head(self.norm(self.encoder(tokens))[:, 0])

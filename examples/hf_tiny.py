"""Two tiny Hugging Face models built from configs (nothing downloaded), for the own-model CLI.

- ``bert()``: a BERT classifier over 4 classes; ``bert_rows()`` returns ``(train, test)``:
  token sequences whose class shows in how often each group of tokens occurs.
- ``bert_reference(ids, labels, seed)``: the BERT's training at a third of its epochs, for
  ``--train-fn`` (assd-auto's reference models).
- ``gpt2()``: a GPT-2 language model; ``lm_rows()`` returns ``{"train", "test", "unseen"}``:
  rows that follow a rule (start token, then steps of a fixed size modulo the vocabulary),
  and, in the training rows only, 8 random "secret" rows repeated 4 times (memorised).
  ``unseen`` holds 32 random rows of the same kind the model never saw. The first
  ``PREFIX`` tokens of every row are its prompt (labels -100): a secret is *extracted*
  when greedy decoding from its prompt reproduces the rest.

Run it to train both and write the weights and the forget files::

    python examples/hf_tiny.py [--seed 0]   # bert.safetensors, gpt2.safetensors,
                                            # class3.txt, secrets.txt in the current folder
"""

from __future__ import annotations

import argparse

import torch
import transformers
from torch.utils.data import Dataset

VOCAB, LENGTH, CLASSES, SECRETS, REPEATS = 32, 12, 4, 8, 4
PREFIX = 2  # tokens given as the prompt: their labels are -100 (not predicted, not scored)


def bert() -> torch.nn.Module:
    config = transformers.BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2,
                                     num_attention_heads=2, intermediate_size=64,
                                     max_position_embeddings=LENGTH, num_labels=CLASSES,
                                     hidden_dropout_prob=0.0,
                                     attention_probs_dropout_prob=0.0)  # fmt: skip
    return transformers.BertForSequenceClassification(config)


def gpt2() -> torch.nn.Module:
    config = transformers.GPT2Config(vocab_size=VOCAB, n_positions=LENGTH, n_embd=32, n_layer=2,
                                     n_head=2, resid_pdrop=0.0, embd_pdrop=0.0,
                                     attn_pdrop=0.0)  # fmt: skip
    return transformers.GPT2LMHeadModel(config)


class Rows(Dataset):
    """Token rows with a label per row (classification) or per token (language model)."""

    def __init__(self, ids: torch.Tensor, labels: torch.Tensor):
        self.ids, self.labels = ids, labels

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict:
        return {"input_ids": self.ids[i], "labels": self.labels[i]}


def _sentences(n: int, seed: int) -> Rows:
    """Each class owns 7 of the 28 tokens; a row draws 40 % of its tokens from its class's
    tokens and the rest from all 28: the evidence is spread over positions and tokens."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % CLASSES
    anywhere = torch.randint(CLASSES, VOCAB, (n, LENGTH), generator=g)
    own = CLASSES + labels[:, None] * 7 + torch.randint(0, 7, (n, LENGTH), generator=g)
    ids = torch.where(torch.rand(n, LENGTH, generator=g) < 0.4, own, anywhere)
    return Rows(ids, labels)


def bert_rows(seed: int = 0) -> tuple[Rows, Rows]:
    """``(train, test)``: 400 and 200 rows, 4 balanced classes."""
    return _sentences(400, seed), _sentences(200, seed + 1000)


def _rule_rows(n: int, generator: torch.Generator) -> torch.Tensor:
    start = torch.randint(0, VOCAB, (n, 1), generator=generator)
    step = torch.randint(1, 4, (n, 1), generator=generator)
    return (start + step * torch.arange(LENGTH)) % VOCAB


def lm_rows(seed: int = 0) -> dict:
    """Training rows (rule rows, then the secrets repeated), held-out rule rows, and
    never-seen random rows; labels are the input ids."""
    g = torch.Generator().manual_seed(seed)
    rule, test = _rule_rows(300, g), _rule_rows(100, g)
    secrets = torch.randint(0, VOCAB, (SECRETS, LENGTH), generator=g)
    unseen = torch.randint(0, VOCAB, (32, LENGTH), generator=g)
    train = torch.cat([rule, secrets.repeat(REPEATS, 1)])
    return {"train": _lm(train), "test": _lm(test), "unseen": _lm(unseen)}


def _lm(ids: torch.Tensor) -> Rows:
    """Labels = the ids, the first ``PREFIX`` masked: the rest is predicted from the prompt."""
    labels = ids.clone()
    labels[:, :PREFIX] = -100
    return Rows(ids, labels)


def secret_ids() -> list[int]:
    """Row positions of every copy of the secrets in ``lm_rows()["train"]``."""
    return list(range(300, 300 + SECRETS * REPEATS))


def train(model: torch.nn.Module, rows: Rows, *, epochs: int, seed: int = 0) -> torch.nn.Module:
    """A plain Adam loop on the model's own loss (``labels=``), batches of 32."""
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(rows))
        for start in range(0, len(rows), 32):
            pick = order[start : start + 32]
            loss = model(input_ids=rows.ids[pick], labels=rows.labels[pick]).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def bert_reference(ids: torch.Tensor, labels: torch.Tensor, seed: int) -> torch.nn.Module:
    """The BERT's own training at a third of its 30 epochs, on the rows given: the recipe
    ``assd unlearn --method assd-auto --train-fn hf_tiny:bert_reference`` trains its
    reference models with (each on half of the rows kept)."""
    return train(bert(), Rows(ids, labels), epochs=10, seed=seed)


def main() -> None:
    from safetensors.torch import save_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    seed = parser.parse_args().seed
    torch.manual_seed(seed)
    save_model(train(bert(), bert_rows(seed)[0], epochs=30, seed=seed), "bert.safetensors")
    torch.manual_seed(seed)
    save_model(train(gpt2(), lm_rows(seed)["train"], epochs=150, seed=seed), "gpt2.safetensors")
    labels = bert_rows(seed)[0].labels
    ids = torch.nonzero(labels == CLASSES - 1).flatten().tolist()
    with open("class3.txt", "w", encoding="utf-8") as f:
        f.write("\n".join(map(str, ids)) + "\n")
    with open("secrets.txt", "w", encoding="utf-8") as f:
        f.write("\n".join(map(str, secret_ids())) + "\n")
    print("wrote bert.safetensors, gpt2.safetensors, class3.txt, secrets.txt")


if __name__ == "__main__":
    main()

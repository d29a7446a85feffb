"""Per-example membership verdicts against reference models (LiRA's offline test).

A population check (mean loss, accuracy on the forget rows) can say "forgotten"
while many single rows are still fitted as members. LiRA (Carlini et al.,
arXiv 2112.03570) scores each row instead: its *logit-scaled confidence*
``phi = log(p_y / (1 - p_y))`` under models that never trained on the row is
close to Gaussian, so the row's reference distribution is a mean and a
spread. The offline test flags the row as a member when the model under test
is more confident on it than that distribution allows at a stated
false-positive rate ``fpr``.

With few reference models per row (two to four here) a per-row variance is
noise, so the spread is pooled over the rows (LiRA's "global variance") and
widened by the uncertainty of the row's mean: a model that never saw the row
differs from the mean of ``m`` references by ``sigma * sqrt(1 + 1/m)``.

The share of forget rows flagged is :func:`member_share`; a model that never
saw the rows is flagged for about ``fpr`` of them. :func:`membership_test` also says
how many rows sit *below* the references' distribution at the same rate:
forgetting more than a model that never saw the rows is a signal too.

Example:
    >>> ref = reference_profile(torch.tensor([[0.0, 1.0], [0.2, 1.2], [-0.2, 0.8]]))
    >>> [round(v, 2) for v in ref.mean.tolist()], round(ref.scale, 3)
    ([0.0, 1.0], 0.2)
    >>> t = membership_test(torch.tensor([5.0, 1.0]), ref, fpr=0.05)
    >>> t.flagged.tolist(), t.share
    ([True, False], 0.5)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..batches import forward, split_batch, to_device

__all__ = [
    "MembershipTest",
    "ReferenceProfile",
    "calibrate",
    "member_share",
    "membership_test",
    "outputs_of",
    "reference_profile",
    "row_confidences",
    "row_outputs",
]

MIN_SCALE = 1e-3  # references that agree exactly on every row: a spread of 0 would flag anything
# The spread when every row's references tie at a bound (censored, see reference_profile):
# the spread of calibrated scores over the held-out rows themselves, N(0, 1) by construction.
CENSORED_SCALE = 1.0


def row_confidences(model: nn.Module, data, *, batch_fn=None, output_fn=None) -> torch.Tensor:
    """Each row's logit-scaled confidence in its label, ``log p_y - log(1 - p_y)``, shape (n,).

    Computed from the logits as ``z_y - logsumexp(z_j, j != y)`` (no rounding of
    ``p_y`` to 1). The model is scored in eval mode and put back as it was.
    """
    return row_outputs(model, data, batch_fn=batch_fn, output_fn=output_fn)[0]


@torch.no_grad()
def row_outputs(model: nn.Module, data, *, batch_fn=None, output_fn=None):
    """``(confidence, correct)``: :func:`row_confidences` and whether the label is predicted."""
    was_training = model.training
    model.eval()
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    parts = []
    try:
        for batch in data:
            inputs, y = split_batch(batch, batch_fn)
            if y is None or y.is_floating_point():
                raise ValueError("per-example verdicts need integer class labels on the rows.")
            z = forward(model, to_device(inputs, device), output_fn=output_fn).float().cpu()
            parts.append((z, y.cpu().long()))
    finally:
        model.train(was_training)
    if not parts:
        raise ValueError("the forget set is empty; give at least one row.")
    return outputs_of(parts)


def outputs_of(batches: list) -> tuple[torch.Tensor, torch.Tensor]:
    """``(confidence, correct)`` of :func:`row_outputs` from ``(logits, labels)`` batches."""
    conf = [_logit_confidence(z.float(), y) for z, y in batches]
    return torch.cat(conf), torch.cat([z.argmax(1) == y for z, y in batches])


def calibrate(confidence: torch.Tensor, held_out: torch.Tensor) -> torch.Tensor:
    """Each confidence as a normal score of its rank among the same model's confidences on
    held-out rows (rows no model compared here trained on): ``Phi^-1((r + 0.5) / (m + 1))``
    with ``r`` the mid-rank among the ``m`` held-out rows.

    A model trained longer or on more rows is more confident everywhere; its
    rank on held-out rows is not, so references trained at a reduced budget can
    be compared with a fully trained model.

    Example:
        >>> z = calibrate(torch.tensor([0.5, 10.0]), torch.tensor([0.0, 1.0, 2.0]))
        >>> [round(v, 4) for v in z.tolist()]  # Phi^-1(1.5 / 4), Phi^-1(3.5 / 4)
        [-0.3186, 1.1503]
    """
    ref = held_out.double().sort().values
    c = confidence.double()
    below = torch.searchsorted(ref, c, right=False)
    upto = torch.searchsorted(ref, c, right=True)
    rank = (below + upto).double() / 2
    share = (rank + 0.5) / (len(ref) + 1)
    return torch.distributions.Normal(0.0, 1.0).icdf(share.float()).double()


def _logit_confidence(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    own = z.gather(1, y[:, None]).squeeze(1)
    others = z.scatter(1, y[:, None], -math.inf)
    return own - torch.logsumexp(others, dim=1)


@dataclass
class ReferenceProfile:
    """The reference distribution of each row: mean confidence, pooled spread, label rate.

    Attributes:
        mean: (n,) mean logit-scaled confidence over the references that never saw the row.
        scale: the pooled standard deviation of one reference around its row's mean.
        counts: (n,) how many references never saw each row.
        label_rate: (n,) the share of those references that predict the row's label.
        accuracy: (k,) each reference's accuracy on the rows it never saw (NaN: none).
        censored: (n,) rows whose references all sit at the same bound (no spread measured).
    """

    mean: torch.Tensor
    scale: float
    counts: torch.Tensor
    label_rate: torch.Tensor
    accuracy: torch.Tensor
    censored: torch.Tensor | None = None

    @property
    def test_scale(self) -> torch.Tensor:
        """(n,) spread of a new model that never saw the row around the row's mean."""
        return self.scale * torch.sqrt(1 + 1 / self.counts.double())


def reference_profile(scores: torch.Tensor, predicted: torch.Tensor | None = None,
                      ) -> ReferenceProfile:  # fmt: skip
    """Profile rows from references' confidences ``scores`` of shape (k, n).

    ``scores[j, i]`` is NaN where reference ``j`` trained on row ``i`` (the
    offline half split); every row needs at least one reference that did not,
    and the pooled spread needs two on some row. ``predicted`` (k, n): whether
    reference ``j`` predicts row ``i``'s label (default: ``scores > 0``, which
    is the same for two classes and a lower bound otherwise).

    Rows whose references all tie at the lowest (or highest) score of the
    matrix are *censored*: calibrated scores of rows a model puts below every
    held-out row all equal :func:`calibrate`'s floor, which bounds their true
    scores rather than measuring a spread of zero. They are left out of the
    pooled spread (their mean is the bound); when every row is censored, the
    spread is :data:`CENSORED_SCALE`.
    """
    scores = scores.double()
    out = ~torch.isnan(scores)
    counts = out.sum(0)
    if scores.dim() != 2 or bool((counts == 0).any()):
        raise ValueError("every forget row needs at least one reference model that never "
                         "trained on it (scores: (references, rows), NaN = trained on).")
    mean = torch.where(out, scores, 0.0).sum(0) / counts
    if int((counts - 1).clamp(min=0).sum()) == 0:
        raise ValueError("the spread of the references needs at least two reference models "
                         "that never trained on the same row; build more references.")  # fmt: skip
    censored = _censored(scores, out, counts)
    dof = int(torch.where(censored, 0, counts - 1).clamp(min=0).sum())
    squares = torch.where(out & ~censored, (scores - mean) ** 2, 0.0).sum()
    scale = max(math.sqrt(float(squares) / dof), MIN_SCALE) if dof else CENSORED_SCALE
    hits = (scores > 0) if predicted is None else predicted.bool()
    hits = hits & out
    rate = hits.sum(0).double() / counts
    accuracy = hits.sum(1).double() / out.sum(1).double()  # 0/0 = NaN: saw every row
    return ReferenceProfile(mean=mean, scale=scale, counts=counts, label_rate=rate,
                            accuracy=accuracy, censored=censored)  # fmt: skip


def _censored(scores: torch.Tensor, out: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """(n,) rows whose references all give the same score, at the lowest or highest score
    of the whole matrix: a bound (e.g. :func:`calibrate`'s floor: below every held-out row),
    not a measurement of the row's spread."""
    low = torch.where(out, scores, math.inf).amin(0)
    high = torch.where(out, scores, -math.inf).amax(0)
    bound = (low == low.min()) | (high == high.max())
    return (counts >= 2) & (low == high) & bound


@dataclass
class MembershipTest:
    """The offline per-example test of one model on the forget rows.

    Attributes:
        confidence: (n,) the model's logit-scaled confidences.
        p_value: (n,) chance that a model that never saw the row is at least this confident.
        flagged: (n,) rows called members at ``fpr``.
        below: (n,) rows less confident than references allow at ``fpr`` (over-forgotten).
        fpr: the false-positive rate of the test.
    """

    confidence: torch.Tensor
    p_value: torch.Tensor
    flagged: torch.Tensor
    below: torch.Tensor
    fpr: float

    @property
    def share(self) -> float:
        """Share of rows still flagged as members."""
        return float(self.flagged.double().mean())

    @property
    def below_share(self) -> float:
        """Share of rows pushed below the references' distribution."""
        return float(self.below.double().mean())

    def to_dict(self) -> dict:
        return {"fpr": self.fpr, "member_share": round(self.share, 6),
                "below_share": round(self.below_share, 6), "n": len(self.flagged)}  # fmt: skip


def membership_test(confidence: torch.Tensor, profile: ReferenceProfile, *,
              fpr: float = 0.05) -> MembershipTest:  # fmt: skip
    """Test each row's confidence against its reference distribution (one-sided, at ``fpr``)."""
    if not 0 < fpr < 1:
        raise ValueError(f"fpr must lie strictly between 0 and 1, got {fpr!r}.")
    if confidence.shape != profile.mean.shape:
        raise ValueError(f"{len(confidence)} confidences for {len(profile.mean)} profiled rows.")
    z = (confidence.double() - profile.mean) / profile.test_scale
    normal = torch.distributions.Normal(0.0, 1.0)
    p_value = 1 - normal.cdf(z)
    return MembershipTest(confidence=confidence, p_value=p_value, flagged=p_value < fpr,
                          below=(1 - p_value) < fpr, fpr=fpr)  # fmt: skip


def member_share(model: nn.Module, forget, references: list[nn.Module], *,
                 fpr: float = 0.05, batch_fn=None, held_out=None) -> float:  # fmt: skip
    """Share of ``forget`` rows that the per-example test still flags as members.

    Args:
        model: the model to judge (e.g. the unlearned one).
        forget: batches of ``(x, y)`` (a loader or :class:`assd.TensorData`).
        references: at least two models never trained on any of these rows.
        fpr: the test's false-positive rate: a model that never saw the rows
            scores about this share.
        batch_fn: how to split a batch into ``(inputs, targets)``.
        held_out: labelled rows none of these models trained on; each model's
            confidences are then calibrated on its own confidences there
            (:func:`calibrate`), as :class:`assd.verify.evidence.Evidence` does.

    Returns:
        The share of flagged rows, in [0, 1].
    """
    if len(references) < 2:
        raise ValueError("member_share needs at least two reference models (their spread "
                         f"is the test's scale); got {len(references)}.")  # fmt: skip

    def scored(m: nn.Module) -> torch.Tensor:
        conf = row_confidences(m, forget, batch_fn=batch_fn)
        if held_out is None:
            return conf
        return calibrate(conf, row_confidences(m, held_out, batch_fn=batch_fn))

    scores = torch.stack([scored(r) for r in references])
    return membership_test(scored(model), reference_profile(scores), fpr=fpr).share

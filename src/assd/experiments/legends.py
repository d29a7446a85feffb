"""What the columns of the experiment tables mean, printed under them and kept in table.md."""

from __future__ import annotations

__all__ = ["ERRORS_LEGEND", "FORGET_LEGEND"]

ERRORS_LEGEND = """\
What the columns mean (details: docs/errors.md):
- mistake: the model trained on the table with the wrong labels; retrain: a
  model trained from scratch without the wrong rows (the target to reach);
  finetune: one epoch of training on the rows kept; assd: one-shot ASSD
  (alpha from the forget share); assd-auto: ASSD searching its strength until
  the wrong rows get their wrong labels no more often than from reference
  models trained without them (a third of the epochs, on halves of the rows
  kept), under a 1-point retain guard ("nothing to do" when they already
  are); ssd: alpha = 10.
- test acc: accuracy on the held-out rows; clean-train acc: accuracy on the
  training rows with their true labels (mean ± sd over seeds).
- Δ test (pp), Δ clean (pp): the gain over the mistake model, in percentage
  points, paired by seed (positive: better than the mistake model).
- add. correct: the ASSD paper's "additional correct classifications",
  n_test · (acc − acc_mistake) / acc_mistake.
- gap closed: (acc − acc_mistake) / (acc_retrain − acc_mistake); 1 = as good
  as retraining; shown only where retraining gains at least 0.5 points.
- p vs mistake: two-sided paired t-test of test accuracy against the mistake
  model (small: the gain is unlikely to be seed noise).
- affected-group test acc: accuracy on held-out rows of the groups whose
  labels were changed (group errors only).
- bal. acc: balanced accuracy (mean recall over classes); macro-F1: the mean
  F1 over classes; the majority-class baseline is what always answering the
  training rows' most common class scores on test.
- found:METHOD (in the find-then-repair tables "discovered → METHOD"): the
  method forgets the rows that out-of-fold models and cleanlab found, not the
  injected ones; precision and recall of those rows against the injected
  ones; repair s: the unlearning step (ASSD with its pass over the training
  rows), repair s, I_D cached: without that pass; discovery s: the search."""

FORGET_LEGEND = """\
What the columns mean (mean ± sd over seeds; details: docs/benchmarks.md):
- Dr acc: test accuracy on the data kept (retain); Df acc: accuracy on the
  forgotten data (lower is more forgotten; retrain shows what to aim for).
- MIA: the SSD protocol's membership-inference attack, the share of forgotten
  samples it still takes for training members (retrain's level is the aim).
- loss-MIA AUC: how well a loss threshold tells forgotten samples from unseen
  ones (0.5: it cannot).
- ZRF: zero-retrain forgetting score (1: behaves like a randomly initialised
  model on the forgotten data).
- time (s): the whole request; time, I_D cached: without the pass over the
  training data, as when its importance is reused.
- In the plots, the dashed line is retrain's mean."""

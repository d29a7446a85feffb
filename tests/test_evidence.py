"""Reference models, per-example (LiRA offline) verdicts and evidence targets, checked
against hand-computed cases."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import assd
from assd.train import fit
from assd.verify.evidence import Evidence, binomial_upper
from assd.verify.per_example import (
    calibrate,
    member_share,
    membership_test,
    reference_profile,
    row_confidences,
)
from assd.verify.references import HalfSplit, Recipe, ReferenceCache, build_references, row_keys


def normal_sf(z: float) -> float:
    return 0.5 * math.erfc(z / math.sqrt(2))


def test_row_confidence_is_the_log_odds_of_the_label():
    z = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]])
    y = torch.tensor([0, 2])
    p = np.exp(z.numpy()) / np.exp(z.numpy()).sum(1, keepdims=True)
    expected = [math.log(p[0, 0] / (1 - p[0, 0])), math.log(p[1, 2] / (1 - p[1, 2]))]
    got = row_confidences(torch.nn.Identity(), assd.TensorData(z, y))
    assert got.tolist() == pytest.approx(expected, rel=1e-6)


def test_reference_distribution_with_known_quantiles():
    # each row: references at mean -1, mean, mean + 1 -> per-row variance 1 (2 dof per row)
    means = torch.tensor([-3.0, 0.0, 2.5, 6.0])
    scores = means + torch.tensor([-1.0, 0.0, 1.0])[:, None]
    profile = reference_profile(scores)
    assert profile.mean.tolist() == pytest.approx(means.tolist())
    assert profile.scale == pytest.approx(1.0)
    spread = math.sqrt(1 + 1 / 3)  # a new model strays from a mean of 3 by sqrt(1 + 1/3)
    z95 = 1.6448536269514722  # the normal 95th percentile
    just_above = means + (z95 + 0.01) * spread
    just_below = means + (z95 - 0.01) * spread
    above = membership_test(just_above, profile, fpr=0.05)
    below = membership_test(just_below, profile, fpr=0.05)
    assert above.flagged.all() and not below.flagged.any()
    assert above.p_value.tolist() == pytest.approx([normal_sf(z95 + 0.01)] * 4, rel=1e-6)
    # the lower tail: rows pushed below the 5th percentile are over-forgotten
    low = membership_test(means - (z95 + 0.01) * spread, profile, fpr=0.05)
    assert low.below.all() and low.share == 0.0 and low.below_share == 1.0


def test_profile_pools_only_references_that_never_saw_the_row():
    nan = float("nan")
    scores = torch.tensor([[1.0, nan], [3.0, 5.0], [nan, 7.0]])  # row 0: 1, 3; row 1: 5, 7
    profile = reference_profile(scores)
    assert profile.mean.tolist() == [2.0, 6.0]
    assert profile.counts.tolist() == [2, 2]
    assert profile.scale == pytest.approx(math.sqrt((1 + 1 + 1 + 1) / 2))
    with pytest.raises(ValueError, match="never trained on it"):
        reference_profile(torch.tensor([[nan, 1.0], [nan, 2.0]]))


def test_half_split_bookkeeping():
    split = HalfSplit.draw(11, pairs=3, seed=4)
    m = split.masks
    assert m.shape == (6, 11)
    assert m[0::2].sum(1).tolist() == [5, 5, 5]  # n // 2 rows in the first of each pair
    assert torch.equal(m[0::2], ~m[1::2])  # the second model trains on the other half
    assert (~m).sum(0).tolist() == [3] * 11  # each row is outside exactly one per pair
    rows = torch.tensor([0, 7, -1])  # -1: a row the references never had at all
    assert torch.equal(split.outside(rows)[:, :2], ~m[:, [0, 7]])
    assert split.outside(rows)[:, 2].all()


def test_references_train_on_their_halves_and_are_cached_by_content():
    x = torch.arange(20, dtype=torch.float32).reshape(10, 2)
    y = torch.arange(10) % 2
    seen = []

    def train(xs, ys, seed):
        seen.append(set(row_keys(xs, ys)))
        return torch.nn.Linear(2, 2)

    cache = ReferenceCache()
    refs = build_references(x, y, Recipe("linear", train), pairs=2, seed=1, cache=cache)
    keys = row_keys(x, y)
    outside = refs.outside(x, y)  # (references, rows)
    for j, trained_on in enumerate(seen):
        assert trained_on == {keys[i] for i in range(10) if not outside[j, i]}
        assert len(trained_on) == 5
    again = build_references(x.flip(0), y.flip(0), Recipe("linear", train), pairs=2, seed=1,
                             cache=cache)  # fmt: skip
    assert again is refs and again.cached and len(seen) == 4  # same rows, other order: no training
    build_references(x, y, Recipe("linear-2", train), pairs=2, seed=1, cache=cache)
    assert len(seen) == 8 and len(cache) == 2  # another recipe: new references


def memorising_case():
    """A learnable rule, with the first 8 rows labelled against it: only a model that trained
    on those rows fits their labels."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(88, 10, generator=g)
    y = (x @ torch.randn(10, 3, generator=g)).argmax(1)
    y[:8] = (y[:8] + 1) % 3
    x, y, held_out = x[:48], y[:48], (x[48:], y[48:])  # held-out rows follow the rule

    def train(xs, ys, seed):
        torch.manual_seed(seed)
        model = torch.nn.Sequential(torch.nn.Linear(10, 64), torch.nn.ReLU(),
                                    torch.nn.Linear(64, 3))  # fmt: skip
        fit(model, assd.TensorData(xs, ys, batch_size=len(xs)), epochs=300, lr=0.01,
            optimizer="adam")  # fmt: skip
        return model.eval()

    return x, y, train, held_out


def test_a_plain_member_is_flagged_and_a_plain_non_member_is_not():
    x, y, train, _ = memorising_case()
    forget = assd.TensorData(x[:8], y[:8])
    references = [train(x[8:], y[8:], seed) for seed in (1, 2, 3, 4)]  # never saw rows 0-7
    member = train(x, y, 0)  # trained on them: fits their random labels
    outsider = train(x[8:], y[8:], 9)  # did not
    assert member_share(member, forget, references) == 1.0
    assert member_share(outsider, forget, references) <= 0.25
    # the same verdict from the definition: confidence above the 95 % quantile of the
    # references' Gaussian (pooled spread, widened for the uncertainty of the row mean)
    scores = np.stack([row_confidences(r, forget).numpy() for r in references])
    mean = scores.mean(0)
    scale = math.sqrt(((scores - mean) ** 2).sum() / (8 * 3)) * math.sqrt(1 + 1 / 4)
    conf = row_confidences(member, forget).numpy()
    assert ((conf - mean) / scale > 1.6448536269514722).all()


def test_evidence_band_and_share_limit_by_hand():
    profile = reference_profile(torch.tensor([[1.0, -1.0, 2.0, -2.0], [0.5, 1.0, 3.0, -1.0]]),
                                torch.tensor([[1, 0, 1, 0], [0, 1, 1, 0]]))  # fmt: skip
    evidence = Evidence(profile, n_references=2, fpr=0.05)
    assert profile.label_rate.tolist() == [0.5, 0.5, 1.0, 0.0]
    assert evidence.expected == 0.5
    rows = math.sqrt(0.25 + 0.25) / 4  # Poisson-binomial spread of 4 rows
    models = float(np.std([0.5, 0.5], ddof=1))  # both references score 2 of 4
    assert evidence.spread == pytest.approx(max(rows, models))
    # 0.5 -/+ 1.645 spreads is 0.21-0.79; two references are too few for that: the band is
    # widened to the Jeffreys Beta-binomial quantiles of 4 rows given 4 hits of 8 (row,
    # reference) pairs, Beta-binomial(4, 4.5, 4.5): P(X = 0) = B(4.5, 8.5) / B(4.5, 4.5)
    p0 = math.exp(math.lgamma(8.5) + math.lgamma(9) - math.lgamma(4.5) - math.lgamma(13))
    assert p0 == pytest.approx(0.1015625)  # >= 0.05: the 5 % quantile is 0 rows (4: 95 %)
    assert 0.5 + 1.6448536 * rows == pytest.approx(0.7907718, rel=1e-6)
    assert evidence.band == (0.0, 1.0)
    # chance: the largest count k with P(Binomial(4, 0.05) >= k) >= 0.05 is 1
    tail = [sum(math.comb(4, i) * 0.05**i * 0.95 ** (4 - i) for i in range(k, 5)) for k in range(5)]
    assert binomial_upper(4, 0.05, level=0.05) == max(k for k in range(5) if tail[k] >= 0.05)
    assert evidence.share_limit == 0.25


def test_assd_auto_judges_against_given_references():
    x, y, train, held_out = memorising_case()
    keep = torch.arange(48) >= 8
    original = train(x, y, 0)
    refs = [train(x[keep], y[keep], seed) for seed in (1, 2, 3)]
    result = assd.get_method("assd-auto", target="rows", references=refs).unlearn(
        original, forget=assd.TensorData(x[~keep], y[~keep]), data=assd.TensorData(x, y),
        evaluate={"retain": assd.TensorData(x[keep], y[keep]),
                  "test": assd.TensorData(*held_out)},
    )  # fmt: skip
    target = result.outcome.target
    assert target["basis"] == "references" and target["n_references"] == 3
    # the conformal test against the model's own held-out rows, by hand: each row's
    # calibrated confidence in spreads of its references', ranked among the held-out rows'
    held = assd.TensorData(*held_out)
    assert target["test"] == "look-alikes"

    def deviations(rows):
        ref = torch.stack([calibrate(row_confidences(r, rows), row_confidences(r, held))
                           for r in refs])  # fmt: skip
        mean, sd = ref.mean(0), ref.std(0, unbiased=True)
        low, high = ref.amin(0), ref.amax(0)
        tied = (low == high) & ((low == ref.min()) | (high == ref.max()))
        scale = math.sqrt(float((sd[~tied] ** 2).mean())) * math.sqrt(1 + 1 / 3)  # censored out
        own = calibrate(row_confidences(result.model, rows), row_confidences(result.model, held))
        return ((own - mean) / scale).numpy()

    d_forget, d_held = deviations(assd.TensorData(x[~keep], y[~keep])), deviations(held)
    p = [(1 + (d_held >= d).sum()) / (len(d_held) + 1) for d in d_forget]
    share = float(np.mean([v <= 0.05 for v in p]))
    assert target["member_share"] == pytest.approx(share)
    # met: within 5 points of the references' mean (random rows: scaled to the original's
    # strength on the held-out rows)
    expected = target["expected"]
    assert target["window"] == pytest.approx([max(expected - 0.05, 0), min(expected + 0.05, 1)],
                                             abs=1e-6)  # fmt: skip
    close = target["window"][0] <= target["forget_accuracy"] <= target["window"][1]
    assert "Forget target (rows" in target["verdict"] and target["met"] == close
    assert target["forgotten"] == (close and share <= 0.25)  # and the per-example test


def test_a_rule_target_says_it_is_not_evidence():
    x, y, train, _ = memorising_case()
    model = train(x, y, 0)
    keep = y != 2
    result = assd.get_method("assd-auto", target="group").unlearn(
        model, forget=assd.TensorData(x[~keep], y[~keep]), data=assd.TensorData(x, y),
        evaluate={"retain": assd.TensorData(x[keep], y[keep])})  # fmt: skip
    assert result.outcome.target["basis"] == "rule"
    assert "a rule, not evidence" in result.verdict


def test_one_shot_verdict_says_when_the_forget_rows_did_not_move():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(40, 4, generator=g)
    y = torch.zeros(40, dtype=torch.long)
    y[:5] = 1  # the forget rows: the only rows of class 1
    model = torch.nn.Linear(4, 2)
    with torch.no_grad():
        model.bias.copy_(torch.tensor([5.0, -5.0]))  # every row is class 0, whatever the weights
    model.bias.requires_grad_(False)
    forget = assd.TensorData(x[:5], y[:5])
    result = assd.SSD(alpha=2.0).unlearn(model, forget=forget, data=assd.TensorData(x, y))
    assert result.outcome is not None and result.n_changed > 0
    assert "predicted as before" in result.verdict
    with torch.no_grad():
        assert torch.equal(result.model(x[:5]).argmax(1), model(x[:5]).argmax(1))


def test_one_shot_verdict_reports_forget_rows_that_moved():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(120) % 3
    x = torch.randn(120, 3, generator=g) * 0.3 + 2 * F.one_hot(y, 3)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    fit(model, assd.TensorData(x, y, batch_size=40), epochs=60, lr=0.05, optimizer="adam")
    forget = assd.TensorData(x[y == 2], y[y == 2])
    result = assd.SSD(alpha=1.0, reference="retain").unlearn(
        model, forget=forget, data=assd.TensorData(x, y))
    with torch.no_grad():
        after = float((result.model(x[y == 2]).argmax(1) == 2).double().mean())
    assert result.outcome.after["forget"].accuracy == pytest.approx(after)
    assert after < 0.9 and "fell by" in result.verdict


def test_assd_auto_on_a_table_is_judged_against_references_from_its_recipe():
    import numpy as np
    import pandas as pd

    from assd.tabular import TrainConfig, train_table, unlearn_rows

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"income": rng.gamma(2, 20, 300).round(2),
                          "tier": rng.integers(1, 5, 300)})  # fmt: skip
    frame["label"] = np.where(frame.income + 15 * (frame.tier == 3) > 45, "yes", "no")
    trained = train_table(frame, target="label", config=TrainConfig(batch_size=64, epochs=4))
    _, report = unlearn_rows(trained, frame, [str(i) for i in range(0, 200, 9)], method="assd-auto")
    target = report["result"]["outcome"]["target"]
    assert target["basis"] == "references" and target["n_references"] == 4  # rows: two pairs
    assert 0.0 <= target["member_share"] <= 1.0 and "reference models" in target["verdict"]


def test_relearning_check_by_its_definition():
    from assd.verify.relearn import relearn_check, relearned

    x, y, train, _ = memorising_case()
    keep = torch.arange(48) >= 8
    retain, forget = assd.TensorData(x[keep], y[keep], batch_size=8), assd.TensorData(x[:8], y[:8])
    original, refs = train(x, y, 0), [train(x[keep], y[keep], s) for s in (1, 2)]
    before = acc_of(original, x[:8], y[:8])
    out = relearn_check(refs[0], retain=retain, forget=forget, original=(before, 0.0),
                        references=refs, steps=5)  # fmt: skip
    again = acc_of(relearned(refs[0], retain, steps=5), x[:8], y[:8])
    yardstick = [acc_of(relearned(r, retain, steps=5), x[:8], y[:8]) for r in refs]
    assert out["relearned_accuracy"] == pytest.approx(again)
    assert out["references_relearned"] == pytest.approx(yardstick)
    assert out["came_back"] is False  # a reference comes back no further than the references
    now = acc_of(refs[0], x[:8], y[:8])
    assert out["recovered"] == pytest.approx((again - now) / (before - now), abs=1e-6)
    # a model that still knows the rows "comes back" beyond every reference
    assert relearn_check(original, retain=retain, forget=forget, original=(before, 0.0),
                         references=refs, steps=5)["came_back"] is True  # fmt: skip


def acc_of(model, x, y) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).double().mean())

"""Outcome measurement, the retain guard and assd-auto's search, on tiny hand-made cases."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F

import assd
from assd.methods.search import Trials, search
from assd.train import fit


def one_hot_data(seed: int = 0, n: int = 240):
    """Four classes, each signalled by its own input feature (plus two noise features)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 4
    x = torch.randn(n, 6, generator=g) * 0.5
    x[:, :4] += 2 * F.one_hot(y, 4)
    return x, y


def trained(seed: int = 2):
    x, y = one_hot_data(seed)
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    fit(model, assd.TensorData(x, y, batch_size=60, shuffle=True), epochs=20, lr=0.02,
        optimizer="adam")  # fmt: skip
    return model, x, y


def batches(x, y):
    return assd.TensorData(x, y, batch_size=50)


def acc_loss(model, x, y):
    with torch.no_grad():
        out = model(x)
    return float((out.argmax(1) == y).double().mean()), float(F.cross_entropy(out, y))


def test_outcome_figures_match_a_direct_computation():
    model, x, y = trained()
    keep = y != 3
    test_x, test_y = one_hot_data(seed=9, n=80)
    sets = {"retain": batches(x[keep], y[keep]), "test": batches(test_x, test_y)}
    result = assd.SSD(alpha=2.0).unlearn(
        model, forget=batches(x[~keep], y[~keep]), data=batches(x, y), evaluate=sets
    )
    out = result.outcome
    seen = test_y != 3  # the forgotten class's held-out rows are scored apart, unguarded
    assert result.outcome.guard is None and "test (forgotten part)" in out.after
    expected = {"forget": (x[~keep], y[~keep]), "retain": (x[keep], y[keep]),
                "test": (test_x[seen], test_y[seen]),
                "test (forgotten part)": (test_x[~seen], test_y[~seen])}  # fmt: skip
    for name, (xs, ys) in expected.items():
        for when, m in (("before", model), ("after", result.model)):
            score = getattr(out, when)[name]
            acc, loss = acc_loss(m, xs, ys)
            assert score.n == len(ys)
            assert score.accuracy == pytest.approx(acc, abs=1e-12)
            assert score.loss == pytest.approx(loss, rel=1e-5)
    old, new = dict(model.named_parameters()), dict(result.model.named_parameters())
    changed = sum(int((new[n] != old[n]).sum()) for n in old)
    assert 0 < result.n_changed == changed <= result.n_dampened
    for name, layer in out.layers.items():
        assert layer.norm_before == pytest.approx(float(old[name].detach().norm()), rel=1e-6)
        assert layer.norm_after == pytest.approx(float(new[name].detach().norm()), rel=1e-6)
    assert "weights changed value" in result.verdict
    assert result.summary()["outcome"]["n_changed"] == changed


def test_outcome_for_regression_reports_the_mean_squared_error():
    model = torch.nn.Linear(3, 1)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, -2.0, 0.5]]))
        model.bias.zero_()
    x = torch.randn(60, 3)
    y = x @ torch.tensor([1.0, -2.0, 0.5]) + 0.1 * torch.randn(60)
    x[:6, 2] += 3.0  # the forget rows lean on the third weight
    mse = lambda out, t: ((out.squeeze(1) - t) ** 2).mean()  # noqa: E731
    result = assd.SSD(alpha=1.0, loss_fn=mse).unlearn(
        model, forget=assd.TensorData(x[:6], y[:6]), data=assd.TensorData(x, y),
        evaluate={"retain": assd.TensorData(x[6:], y[6:])},
    )  # fmt: skip
    score = result.outcome.after["retain"]
    assert score.accuracy is None
    with torch.no_grad():
        expected = float(((result.model(x[6:]).squeeze(1) - y[6:]) ** 2).mean())
    assert score.loss == pytest.approx(expected, rel=1e-5)
    assert "loss" in result.verdict


def test_guard_backs_off_to_the_strongest_dampening_within_it():
    model, x, y = trained()
    forget, keep = y == 3, y != 3
    args = dict(forget=batches(x[forget], y[forget]), data=batches(x, y),
                evaluate={"retain": batches(x[keep], y[keep])})  # fmt: skip
    base, _ = acc_loss(model, x[keep], y[keep])
    # the limit on this small set: one point, widened to its sampling noise (the smallest
    # k / n with P(Binomial(n, 0.01) >= k + 1) < 0.05, summed here term by term), by at most
    # one row
    n = int(keep.sum())
    tail = [sum(math.comb(n, i) * 0.01**i * 0.99 ** (n - i) for i in range(k, n + 1))
            for k in range(n + 1)]  # fmt: skip
    limit = min(max(0.01, max(k for k in range(n + 1) if tail[k] >= 0.05) / n), 0.01 + 1 / n)
    unguarded = assd.SSD(alpha=0.05, dampening=0.05).unlearn(model, **args)
    assert base - acc_loss(unguarded.model, x[keep], y[keep])[0] > limit  # the request breaks it
    guarded = assd.SSD(alpha=0.05, dampening=0.05, guard=0.01).unlearn(model, **args)
    assert base - acc_loss(guarded.model, x[keep], y[keep])[0] <= limit + 1e-12
    assert guarded.alpha > 0.05 and guarded.outcome.guard["ok"]
    # every try's guard verdict, checked by running its alpha without a guard
    for tried in guarded.outcome.tries:
        plain = assd.SSD(alpha=tried["alpha"], dampening=0.05).unlearn(model, **args)
        drop = base - acc_loss(plain.model, x[keep], y[keep])[0]
        assert tried["guard"]["ok"] == (drop <= limit + 1e-12), tried
    stronger = [t["alpha"] for t in guarded.outcome.tries if t["alpha"] < guarded.alpha]
    assert stronger and max(stronger) >= guarded.alpha / 1.2  # bisected to 1.105
    same = assd.SSD(alpha=guarded.alpha, dampening=0.05).unlearn(model, **args)
    for a, b in zip(same.model.parameters(), guarded.model.parameters(), strict=True):
        assert torch.equal(a, b)  # the kept try is that alpha's dampening, nothing else


def test_guard_refusal_carries_the_figures_and_leaves_the_model_untouched():
    model, x, y = trained()
    saved = copy.deepcopy(model.state_dict())
    forget, keep = y == 3, y != 3
    method = assd.SSD(alpha=0.05, dampening=0.05, guard=0.01, on_guard="refuse")
    with pytest.raises(assd.GuardRefused, match="Nothing was changed") as error:
        method.unlearn(model, forget=batches(x[forget], y[forget]), data=batches(x, y),
                       evaluate={"retain": batches(x[keep], y[keep])}, inplace=True)  # fmt: skip
    assert error.value.figures["worst"]["drop"] > 0.01 == error.value.figures["limit"]
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, saved[name])


def test_assd_auto_forgets_a_class_that_one_shot_assd_keeps():
    model, x, y = trained(seed=2)
    forget, keep = y == 3, y != 3
    args = dict(forget=batches(x[forget], y[forget]), data=batches(x, y),
                evaluate={"retain": batches(x[keep], y[keep])})  # fmt: skip
    one_shot = assd.ASSD(reference="retain").unlearn(model, **args)
    assert acc_loss(one_shot.model, x[forget], y[forget])[0] > 0.5  # ASSD's alpha keeps it
    auto = assd.get_method("assd-auto").unlearn(model, **args)
    assert auto.outcome.target["kind"] == "group" and auto.outcome.target["met"]
    assert acc_loss(auto.model, x[forget], y[forget])[0] <= 1 / forget.sum().item()
    base = acc_loss(model, x[keep], y[keep])[0]
    assert base - acc_loss(auto.model, x[keep], y[keep])[0] <= 0.01
    tries = auto.outcome.tries
    assert len(tries) > 1 and tries[0]["alpha"] == pytest.approx(one_shot.alpha)
    assert auto.alpha < one_shot.alpha  # it had to dampen harder than ASSD's one shot


def test_assd_auto_changes_nothing_when_the_target_is_already_met():
    model, x, y = trained()
    with torch.no_grad():
        wrong = model(x).argmax(1) != y
    flipped = (y + 1) % 4  # rows labelled wrongly: the model does not fit these labels
    test_x, test_y = one_hot_data(seed=5, n=40)
    result = assd.get_method("assd-auto", target="rows").unlearn(
        model, forget=batches(x[:12], flipped[:12]), data=batches(x, y),
        evaluate={"retain": batches(x[12:], y[12:]), "test": batches(test_x, test_y)},
    )  # fmt: skip
    assert not wrong[:12].any()
    assert result.outcome.target["met"] and result.n_changed == 0
    assert "did nothing" in result.verdict


class FakeTrials:
    """Target met from strength 2.3 on; guard holds up to ``guard_limit``."""

    def __init__(self, guard_limit):
        self.guard_limit, self.tries, self.current = guard_limit, [], None

    def apply(self, t, record=True):
        self.current = t
        entry = {"strength": t if math.isfinite(t) else None, "alpha": math.exp(-t),
                 "target": {"met": t >= 2.3}, "guard": {"ok": t <= self.guard_limit}}  # fmt: skip
        self.tries.append(entry)
        return entry


@pytest.mark.parametrize(("guard_limit", "low", "high"), [(5.0, 2.3, 2.4), (1.0, 0.9, 1.0)])
def test_search_finds_the_weakest_target_or_the_strongest_within_the_guard(guard_limit, low, high):
    trials = FakeTrials(guard_limit)
    chosen = search(trials)
    assert low <= chosen["strength"] <= high
    assert trials.current == chosen["strength"] and len(trials.tries) < 12


def test_trials_restore_the_exact_weights():
    model, x, y = trained()
    before = copy.deepcopy(model.state_dict())
    imp = assd.compute_importance(model, batches(x, y), estimator="sample")
    forget = assd.compute_importance(model, batches(x[:20], y[:20]), estimator="sample")
    sets = {"forget": batches(x[:20], y[:20])}
    trials = Trials(model, forget.tensors, imp.tensors, alpha0=1.0, lam0=1.0, sets=sets, guard=None)
    assert trials.apply(3.0)["selected"] > 0
    trials.apply(-math.inf)
    assert all(torch.equal(t, before[n]) for n, t in model.state_dict().items())


def test_bad_evaluation_input_is_refused_clearly_or_split():
    model, x, y = trained()
    args = dict(forget=batches(x[:10], y[:10]), data=batches(x, y))
    split = assd.SSD().unlearn(model, **args, evaluate={"retain": batches(x, y)}).outcome
    assert split.after["retain (forgotten part)"].n == 10 and split.after["retain"].n == 230
    with pytest.raises(ValueError, match="holds rows of what is being forgotten"):
        assd.SSD(batch_fn=lambda b: b).unlearn(model, **args, evaluate={"retain": batches(x, y)})
    with pytest.raises(ValueError, match="'test' is empty"):
        assd.SSD().unlearn(model, **args, evaluate={"test": batches(x[:0], y[:0])})
    with pytest.raises(ValueError, match="evaluate="):
        assd.SSD(guard=0.01).unlearn(model, **args)
    with pytest.raises(ValueError, match="held-out"):
        assd.get_method("assd-auto", target="rows").unlearn(
            model, **args, evaluate={"retain": batches(x[10:], y[10:])}
        )
    with pytest.raises(ValueError, match="max_drop"):
        assd.SSD(guard=-0.01)
    with pytest.raises(ValueError, match="on_guard"):
        assd.SSD(on_guard="ignore")


def test_unlearn_rows_reports_the_guard_verdict():
    pd = pytest.importorskip("pandas")
    import numpy as np

    from assd.tabular import TrainConfig, train_table, unlearn_rows
    from assd.tabular.report import unlearn_markdown
    from assd.tabular.unlearn import trained_ids

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.random(300), "c": rng.choice(["a", "b"], 300)})
    frame["label"] = np.where(frame.x > 0.5, "high", "low")
    tabular = train_table(frame, target="label", config=TrainConfig(epochs=3))
    ids = [str(i) for i in trained_ids(tabular, frame)[:10]]
    _, report = unlearn_rows(tabular, frame, ids, method="assd", guard=0.01)
    outcome = report["result"]["outcome"]
    assert outcome["guard"]["limit"] == 0.01 and outcome["guard"]["ok"]
    assert outcome["before"]["retain"]["n"] == report["accuracy"]["retain"]["n"]
    assert outcome["after"]["retain"]["accuracy"] == pytest.approx(
        report["accuracy"]["retain"]["after"], abs=1e-6
    )
    assert "Retain guard holds" in unlearn_markdown(report)


def test_verdict_says_when_weights_changed_but_the_forget_rows_did_not_move():
    model, x, y = trained(seed=2)
    forget, keep = y == 3, y != 3
    result = assd.ASSD(reference="retain").unlearn(
        model, forget=batches(x[forget], y[forget]), data=batches(x, y),
        evaluate={"retain": batches(x[keep], y[keep])})  # fmt: skip
    before = acc_loss(model, x[forget], y[forget])[0]
    after = acc_loss(result.model, x[forget], y[forget])[0]
    changed = sum(int((a != b).sum()) for a, b in zip(model.parameters(),
                                                     result.model.parameters(), strict=True))
    assert result.n_changed == changed > 0
    assert result.outcome.before["forget"].accuracy == pytest.approx(before, abs=1e-12)
    assert result.outcome.after["forget"].accuracy == pytest.approx(after, abs=1e-12)
    assert before - after >= 0.05  # this request moved the forget rows: no such sentence
    rows = int(forget.sum())  # the verdict names how many rows it judged
    assert f"forget ({rows} rows): accuracy {100 * before:.1f} % -> {100 * after:.1f} %" \
        in result.verdict
    assert "nothing measurable was forgotten" not in result.verdict
    # the same sentence for a hand-built outcome whose forget accuracy did not move
    out = copy.copy(result.outcome)
    out.after = dict(out.after, forget=out.before["forget"])
    assert "nothing measurable was forgotten" in out.verdict()


def test_score_counts_true_and_predicted_label_pairs():
    model, x, y = trained()
    from assd.verify.outcome import score_sets

    score = score_sets(model, {"all": batches(x, y)})["all"]
    with torch.no_grad():
        pred = model(x).argmax(1)
    expected = torch.zeros(4, 4, dtype=torch.long)
    for t, p in zip(y.tolist(), pred.tolist(), strict=True):
        expected[t, p] += 1
    assert torch.equal(score.confusion, expected)


def test_chance_of_wrong_label_is_each_labels_false_positive_rate():
    from assd.methods.auto import chance_of_wrong_label

    counts = torch.tensor([[50, 3, 7], [10, 20, 0], [5, 5, 40]])
    labels = torch.tensor([0, 2, 2, 1])
    # label 0: (10 + 5) of the 80 rows of labels 1 and 2; label 1: (3 + 5) of 110; label 2: 7 of 90
    expected = (15 / 80 + 7 / 90 + 7 / 90 + 8 / 110) / 4
    assert chance_of_wrong_label(counts, labels) == pytest.approx(expected, rel=1e-12)


def mislabelled_model(seed: int = 0):
    """Rows of class 0 with a marker feature, labelled 1 (wrongly), memorised by the model."""
    x, y = one_hot_data(seed, n=320)
    wrong = torch.zeros(len(y), dtype=torch.bool)
    wrong[torch.nonzero(y == 0).squeeze(1)[:24]] = True
    x = torch.cat([x, wrong.float().unsqueeze(1) * 3], dim=1)
    given = torch.where(wrong, torch.tensor(1), y)
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(7, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))
    fit(model, assd.TensorData(x, given, batch_size=64, shuffle=True), epochs=60, lr=0.02,
        optimizer="adam")  # fmt: skip
    test_x, test_y = one_hot_data(seed + 50, n=200)
    test_x = torch.cat([test_x, torch.zeros(len(test_y), 1)], dim=1)
    return model, x, given, wrong, test_x, test_y


def test_assd_auto_mislabelled_target_stops_predicting_the_wrong_labels():
    model, x, given, wrong, test_x, test_y = mislabelled_model()
    assert acc_loss(model, x[wrong], given[wrong])[0] > 0.9  # the wrong labels were learnt
    with torch.no_grad():
        pred = model(test_x).argmax(1).numpy()
    truth = test_y.numpy()
    # the wrong label is 1 for every forget row: how often held-out rows of other labels get 1
    mistake_rate = float(((pred == 1) & (truth != 1)).sum() / (truth != 1).sum())
    sets = {"retain": batches(x[~wrong], given[~wrong]), "test": batches(test_x, test_y)}
    result = assd.get_method("assd-auto", target="mislabelled").unlearn(
        model, forget=batches(x[wrong], given[wrong]), data=batches(x, given), evaluate=sets)
    target = result.outcome.target
    assert target["kind"] == "mislabelled"
    assert target["mistake_rate"] == pytest.approx(mistake_rate, abs=1e-6)
    assert target["met"]
    assert acc_loss(result.model, x[wrong], given[wrong])[0] <= mistake_rate + 1e-9
    retain_before = acc_loss(model, x[~wrong], given[~wrong])[0]
    assert acc_loss(result.model, x[~wrong], given[~wrong])[0] >= retain_before - 0.01 - 1e-9


def test_mislabelled_target_needs_held_out_rows_and_class_labels():
    model, x, given, wrong, _, _ = mislabelled_model()
    method = assd.get_method("assd-auto", target="mislabelled")
    with pytest.raises(ValueError, match="held-out rows"):
        method.unlearn(model, forget=batches(x[wrong], given[wrong]), data=batches(x, given),
                       evaluate={"retain": batches(x[~wrong], given[~wrong])})  # fmt: skip


def test_train_mode_importance_on_batchnorm_keeps_running_statistics_and_the_guard():
    """train_mode=True once moved BatchNorm's running statistics during the importance passes
    and collapsed retain accuracy silently; the statistics must stay and the guard must hold."""
    x, y = one_hot_data(seed=4, n=300)
    x = x * 5 + 3  # far from zero mean / unit variance: moved statistics would show
    torch.manual_seed(4)
    model = torch.nn.Sequential(torch.nn.Linear(6, 32), torch.nn.BatchNorm1d(32),
                                torch.nn.ReLU(), torch.nn.Linear(32, 4))  # fmt: skip
    fit(model, assd.TensorData(x, y, batch_size=60, shuffle=True), epochs=15, lr=0.02,
        optimizer="adam")  # fmt: skip
    model.eval()
    user_state = copy.deepcopy(model.state_dict())
    keep = y != 3
    result = assd.ASSD(train_mode=True, estimator="batch", reference="full", guard=0.01).unlearn(
        model, forget=batches(x[~keep], y[~keep]), data=batches(x, y),
        evaluate={"retain": batches(x[keep], y[keep])})  # fmt: skip
    for name, value in user_state.items():
        assert torch.equal(model.state_dict()[name], value), name  # the user's model untouched
    new_buffers = dict(result.model.named_buffers())
    for name, value in model.named_buffers():
        assert torch.equal(new_buffers[name], value), name  # running statistics not moved
    before = acc_loss(model, x[keep], y[keep])[0]
    after = acc_loss(result.model, x[keep], y[keep])[0]
    assert result.outcome.after["retain"].accuracy == pytest.approx(after, abs=1e-12)
    assert after >= before - 0.01 - 1e-9


def test_repair_pace_rule_against_a_straight_line_projection():
    from assd.methods.auto import out_of_pace

    # gap falls 0.01 per epoch: after 6 epochs 0.05 is left and 19 epochs remain (0.19 reachable)
    steady = [0.1 - 0.01 * e for e in range(6)]
    assert not out_of_pace(steady, epochs=25)
    # the same pace with only 4 epochs left reaches 0.04 < 0.05: hopeless
    assert out_of_pace(steady, epochs=10)
    assert not out_of_pace(steady[:5], epochs=6)  # too few epochs to judge a pace
    assert out_of_pace([0.2, 0.2, 0.21, 0.2, 0.2, 0.2], epochs=25)  # no progress at all


def test_assd_auto_with_the_forgotten_class_in_the_test_set():
    model, x, y = trained()
    keep = y != 3
    test_x, test_y = one_hot_data(seed=9, n=80)  # holds class 3 too
    sets = {"retain": batches(x[keep], y[keep]), "test": batches(test_x, test_y)}
    result = assd.get_method("assd-auto").unlearn(
        model, forget=batches(x[~keep], y[~keep]), data=batches(x, y), evaluate=sets)
    out = result.outcome
    assert out.n_changed > 0 and out.target["met"] and out.guard["ok"]
    part = out.after["test (forgotten part)"]
    assert part.n == int((test_y == 3).sum()) and out.after["test"].n == int((test_y != 3).sum())
    with torch.no_grad():
        held = result.model(test_x[test_y == 3]).argmax(1)
    assert part.accuracy == float((held == 3).double().mean())  # scored, not guarded
    assert out.guard["worst"]["set"] in ("retain", "test")


@pytest.mark.parametrize("name", ["finetune", "gradient-ascent"])
def test_a_baseline_with_evaluate_carries_its_outcome_and_verdict(name):
    # the same scoring as the SSD family: before and after on the forget rows, the sets given
    # and the retained rows given as retain=; the weights changed, counted directly
    model, x, y = trained(seed=2)
    forget, keep = y == 3, y != 3
    result = assd.get_method(name, epochs=1).unlearn(
        model, forget=batches(x[forget], y[forget]), retain=batches(x[keep], y[keep]),
        evaluate={"test": batches(x[keep][:40], y[keep][:40])})  # fmt: skip
    out = result.outcome
    assert list(out.before) == ["forget", "test", "retain"]
    for name_, rows in (("forget", forget), ("retain", keep)):
        assert out.before[name_].n == int(rows.sum())
        assert out.before[name_].accuracy == pytest.approx(acc_loss(model, x[rows], y[rows])[0],
                                                           abs=1e-12)  # fmt: skip
        assert out.after[name_].accuracy == pytest.approx(
            acc_loss(result.model, x[rows], y[rows])[0], abs=1e-12)
    changed = sum(int((a != b).sum()) for a, b in zip(model.parameters(),
                                                     result.model.parameters(), strict=True))
    assert result.n_changed == changed > 0
    assert result.verdict.startswith(f"{changed} of ") and out.guard is None
    # without evaluate= nothing is scored, as before
    assert assd.get_method(name, epochs=1).unlearn(
        model, forget=batches(x[forget], y[forget]),
        retain=batches(x[keep], y[keep])).outcome is None  # fmt: skip


def test_assd_auto_judges_on_the_retained_rows_given_as_retain():
    # no "retain" in evaluate=: the rows passed as retain= are the retained rows it judges on
    model, x, y = trained(seed=2)
    forget, keep = y == 3, y != 3
    result = assd.get_method("assd-auto").unlearn(
        model, forget=batches(x[forget], y[forget]), data=batches(x, y),
        retain=batches(x[keep], y[keep]), evaluate={"test": batches(x[keep][:40], y[keep][:40])})
    retained = result.outcome.before["retain"]
    assert retained.n == int(keep.sum())
    assert retained.accuracy == pytest.approx(acc_loss(model, x[keep], y[keep])[0], abs=1e-12)
    assert result.outcome.target is not None
    with pytest.raises(ValueError, match="pass retain="):  # neither: what to pass
        assd.get_method("assd-auto").unlearn(model, forget=batches(x[forget], y[forget]),
                                             data=batches(x, y), evaluate={})  # fmt: skip

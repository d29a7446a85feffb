"""`assd find-errors`: folds, the group rule by hand, cleanlab's flags, out-of-fold
probabilities recomputed independently, the CLI files, and bad inputs."""

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from assd.cli import main
from assd.data import inject_label_errors, read_forget_ids
from assd.tabular import TabularModel, TrainConfig, find_label_errors, train_mlp, train_table
from assd.tabular.label_issues import fold_indices, guilty_groups, rows_to_write

CLASSES = np.asarray(["blue", "green", "red"])
RECIPE = TrainConfig(epochs=15, batch_size=64)


def shop_table(n=600, seed=0, n_groups=12):
    """A label that follows four sensors; `region` says nothing about it."""
    rng = np.random.default_rng(seed)
    f = rng.normal(size=(n, 4))
    score = np.stack([f[:, 0] + f[:, 1], f[:, 2] - f[:, 0], f[:, 3] - f[:, 1]], 1)
    frame = pd.DataFrame({f"sensor_{i}": f[:, i] for i in range(4)})
    frame["region"] = rng.choice([f"r{i:02d}" for i in range(n_groups)], n)
    frame["colour"] = CLASSES[score.argmax(1)]
    return frame


def with_group_errors(frame, rate=0.1, seed=0):
    y = pd.Index(CLASSES).get_indexer(frame.colour)
    errors = inject_label_errors(y, rate=rate, kind="group", groups=frame.region.to_numpy(),
                                 seed=seed)  # fmt: skip
    noisy = frame.copy()
    noisy["colour"] = CLASSES[errors.labels]
    return noisy, errors


@pytest.fixture(scope="module")
def found_case():
    noisy, errors = with_group_errors(shop_table())
    model = train_table(noisy, target="colour", split="none", config=RECIPE)
    return noisy, errors, model, find_label_errors(model, noisy, group_column="region")


def test_folds_keep_groups_whole_and_are_seeded():
    rng = np.random.default_rng(1)
    y, groups = rng.integers(0, 3, 500), rng.choice(40, 500)
    fold = fold_indices(y, folds=5, groups=groups, seed=3)
    assert sorted(set(fold)) == [0, 1, 2, 3, 4]
    for g in np.unique(groups):  # no group in two folds
        assert len(set(fold[groups == g])) == 1
    assert (fold_indices(y, folds=5, groups=groups, seed=3) == fold).all()
    plain = fold_indices(y, folds=5, seed=0)
    for c in range(3):  # stratified: each class spread evenly over the folds
        counts = np.bincount(plain[y == c], minlength=5)
        assert counts.max() - counts.min() <= 1


def test_group_rule_matches_a_hand_computation():
    # 4 groups of 10 rows: 9, 2, 1 and 0 flags -> rate 12/40 = 0.3
    groups = np.repeat(["a", "b", "c", "d"], 10)
    flagged = np.zeros(40, dtype=bool)
    for start, k in ((0, 9), (10, 2), (20, 1)):
        flagged[start : start + k] = True
    tail = [sum(math.comb(10, j) * 0.3**j * 0.7 ** (10 - j) for j in range(f, 11))
            for f in (9, 2, 1, 0)]  # fmt: skip
    order = np.argsort(tail)  # Benjamini-Hochberg by hand: p_(i) * m / i, made monotone
    adjusted = np.empty(4)
    running = 1.0
    for rank in range(3, -1, -1):
        running = min(running, tail[order[rank]] * 4 / (rank + 1))
        adjusted[order[rank]] = running
    verdict = guilty_groups(flagged, groups)
    assert verdict.p_values == pytest.approx(tail)
    assert verdict.adjusted == pytest.approx(adjusted)
    assert verdict.groups == ["a"]  # adjusted p 0.0006 <= 0.05 and 9 of 10 > half flagged
    mask, _ = rows_to_write(flagged, groups)
    assert mask.tolist() == (groups == "a").tolist()  # the whole group, no stray flags
    only, _ = rows_to_write(flagged, groups, whole_groups=False)
    assert only.tolist() == (flagged & (groups == "a")).tolist()
    none_guilty = flagged & (groups != "a")  # no group stands out: every flag is written
    assert rows_to_write(none_guilty, groups)[0].tolist() == none_guilty.tolist()


def test_written_ids_are_cleanlabs_flags_after_the_group_rule(found_case):
    from cleanlab.filter import find_label_issues

    noisy, errors, _, found = found_case
    labels = pd.Index(CLASSES).get_indexer(noisy.colour)
    flagged = find_label_issues(labels, found.discovery.probs)
    assert (found.discovery.flagged == flagged).all()
    rows = flagged.size
    share = pd.Series(flagged).groupby(noisy.region.to_numpy()).mean()
    assert found.groups and all(share[g] > 0.5 for g in found.groups)
    written = noisy.region.isin(found.groups).to_numpy()
    assert found.ids == [str(i) for i in range(rows) if written[i]]
    # the target: whole-group errors found with precision and recall >= 0.6
    truth = set(errors.rows.tolist())
    hits = len(truth & {int(i) for i in found.ids})
    assert hits / len(found.ids) >= 0.6 and hits / len(truth) >= 0.6


def test_out_of_fold_probabilities_match_fold_models_trained_here(found_case):
    noisy, _, model, found = found_case
    # the fold models see the sensors only (not the held-out region's inputs), min-max
    # scaled in float64 then rounded to float32, as the model's task encodes them
    sensors = noisy[[f"sensor_{i}" for i in range(4)]].to_numpy()
    low, high = sensors.min(0), sensors.max(0)
    x = torch.from_numpy(((sensors - low) / (high - low)).astype(np.float32))
    y = torch.from_numpy(pd.Index(CLASSES).get_indexer(noisy.colour))
    fold = found.discovery.fold
    for g in noisy.region.unique():  # the folds hold regions out whole
        assert len(set(fold[noisy.region.to_numpy() == g])) == 1
    expected = np.zeros((len(y), 3))
    for k in range(5):
        held, kept = fold == k, fold != k
        net = train_mlp(x[kept], y[kept], n_classes=3, config=model.config()).eval()
        with torch.no_grad():
            expected[held] = torch.softmax(net(x[held]).double(), 1).numpy()
    assert found.discovery.probs == pytest.approx(expected, abs=1e-5)


def test_cli_writes_ids_unlearn_reads_scores_and_report(tmp_path, capsys, found_case):
    noisy, _, model, found = found_case
    data, folder = tmp_path / "shops.csv", tmp_path / "m"
    noisy.to_csv(data, index=False)
    model.save(folder)
    out = tmp_path / "suspects.txt"
    args = ["find-errors", "--model", str(folder), "--data", str(data), "--out", str(out),
            "--group-column", "region"]  # fmt: skip
    assert main(args) == 0
    assert read_forget_ids(out) == found.ids
    scores = pd.read_csv(tmp_path / "suspects.scores.csv")
    assert len(scores) == len(noisy) and scores.written.sum() == len(found.ids)
    assert scores.label_quality.to_numpy() == pytest.approx(found.discovery.quality)
    summary = json.loads((tmp_path / "suspects.report.json").read_text())
    assert summary["guilty_groups"] == found.groups
    printed = capsys.readouterr().out
    assert "judged wrong" in printed and (tmp_path / "suspects.report.md").is_file()
    assert main(args) == 2  # existing outputs are not replaced
    unlearn = ["unlearn", "--model", str(folder), "--data", str(data), "--forget", str(out),
               "--out", str(tmp_path / "m2")]  # fmt: skip
    assert main(unlearn) == 0


def test_bad_inputs_get_clear_errors(tmp_path, capsys, found_case):
    noisy, _, model, _ = found_case
    one = noisy.assign(region="r00")
    with pytest.raises(ValueError, match="one value"):
        find_label_errors(model, one, group_column="region")
    huge = noisy.assign(region=np.where(np.arange(len(noisy)) < 550, "big", "small"))
    with pytest.raises(ValueError, match="fewer than one fold"):
        find_label_errors(model, huge, group_column="region", folds=2)
    with pytest.raises(ValueError, match="fewer than the 5 folds"):
        find_label_errors(model, huge, group_column="region")
    with pytest.raises(ValueError, match="no group column"):
        find_label_errors(model, noisy, group_column="shop")
    bare = TabularModel(model.model, model.task, model.architecture, extra={})
    with pytest.raises(ValueError, match="no training recipe"):
        find_label_errors(bare, noisy)
    from assd.store.checkpoints import save_model  # an own model: no task.json, no recipe

    save_model(tmp_path / "own", model.model, architecture="mlp",
               kwargs={"n_features": len(model.task.preprocessor.feature_names),
                       "n_classes": 3})  # fmt: skip
    noisy.to_csv(tmp_path / "t.csv", index=False)
    args = ["find-errors", "--model", str(tmp_path / "own"), "--data", str(tmp_path / "t.csv"),
            "--out", str(tmp_path / "ids.txt")]  # fmt: skip
    assert main(args) == 2
    assert "recipe" in capsys.readouterr().err


def test_zero_padded_ids_are_read_and_written_exactly(tmp_path):
    noisy, _ = with_group_errors(shop_table(n=200))
    noisy.insert(0, "shop_id", [f"{i:05d}" for i in range(len(noisy))])
    data, folder, out = tmp_path / "t.csv", tmp_path / "m", tmp_path / "ids.txt"
    noisy.to_csv(data, index=False)
    recipe = TrainConfig(epochs=3, batch_size=64)
    train_table(noisy, target="colour", id_column="shop_id", split="none",
                config=recipe).save(folder)  # fmt: skip
    args = ["find-errors", "--model", str(folder), "--data", str(data), "--out", str(out),
            "--folds", "2", "--flagged-only"]  # fmt: skip
    assert main(args) == 0
    written = read_forget_ids(out)
    assert written and set(written) <= set(noisy.shop_id)  # '00007', never '7'
    scores = pd.read_csv(tmp_path / "ids.scores.csv", dtype={"id": str})
    assert scores["id"].tolist() == noisy.shop_id.tolist()

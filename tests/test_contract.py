"""The input contract (assd.batches): every case refused with its fix, or handled and
checked against an independent computation (autograd by hand, or a reference batch)."""

import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn
from torch.utils.data import DataLoader, Subset, TensorDataset

import assd
from assd import TensorData, compute_importance
from assd.contract import BatchError


def toy(n=12, features=4, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, features, generator=g), torch.randint(0, classes, (n,), generator=g)


def by_hand(model, inputs, y, loss_fn=F.cross_entropy):
    """Batch-estimator importance of one batch, by autograd: squared gradient of the loss."""
    out = model(*inputs) if isinstance(inputs, tuple) else model(inputs)
    grads = torch.autograd.grad(loss_fn(out, y), list(model.parameters()), allow_unused=True)
    return [
        torch.zeros_like(p) if g is None else g**2
        for p, g in zip(model.parameters(), grads, strict=True)
    ]


def assert_importance(imp, model, expected):
    for (name, _), want in zip(model.named_parameters(), expected, strict=True):
        torch.testing.assert_close(imp.tensors[name], want, rtol=1e-5, atol=1e-8)


# ------------------------------------------------------------------ batches: what reaches the model


class Masked(nn.Module):
    """A model of two inputs: it records what it was called with."""

    def __init__(self):
        super().__init__()
        self.linear, self.calls = nn.Linear(4, 3), []

    def forward(self, x, mask):
        self.calls.append(mask)
        return self.linear(x * mask[:, None])


def test_x_mask_y_batches_reach_the_model_whole():
    model, (x, y) = Masked(), toy()
    mask = (torch.arange(12) % 3 != 0).float()
    imp = compute_importance(model, [(x, mask, y)], estimator="batch")
    assert torch.equal(model.calls[-1], mask)
    assert_importance(imp, model, by_hand(model, (x, mask), y))


def test_dict_and_batch_encoding_batches_pass_keyword_inputs():
    from transformers import BatchEncoding

    model, (x, y) = Masked(), toy()
    mask = torch.ones(12)
    expected = by_hand(model, (x, mask), y)
    for batch in (
        {"x": x, "mask": mask, "labels": y},
        BatchEncoding({"x": x, "mask": mask, "label": y}),
    ):
        assert_importance(compute_importance(model, [batch], estimator="batch"), model, expected)


def test_a_bare_dataset_is_refused_with_the_loader_fix():
    x, y = toy()
    with pytest.raises(ValueError, match=r"single rows, not an iterable of batches.*DataLoader"):
        compute_importance(nn.Linear(4, 3), TensorDataset(x, y), estimator="batch")
    with pytest.raises(ValueError, match=r"not an iterable of batches"):
        assd.ASSD().unlearn(nn.Linear(4, 3), forget=TensorDataset(x[:2], y[:2]), data=[(x, y)])


def test_a_hugging_face_dataset_is_refused_like_a_torch_one():
    rows = type("Dataset", (), {"__module__": "datasets.arrow_dataset", "column_names": ["x"]})()
    with pytest.raises(ValueError, match=r"Dataset, a data set of single rows"):
        compute_importance(nn.Linear(4, 3), rows, estimator="batch")


def test_rows_yielded_one_by_one_are_refused():
    x, y = toy()
    with pytest.raises(ValueError, match=r"single target value.*not batches"):
        compute_importance(nn.Linear(4, 3), [(x[0], y[0])], estimator="batch")


def test_drop_last_loaders_are_refused():
    x, y = toy()
    loader = DataLoader(TensorDataset(x, y), batch_size=5, drop_last=True)
    with pytest.raises(ValueError, match=r"drop_last=True.*drop_last=False"):
        compute_importance(nn.Linear(4, 3), loader, estimator="batch")


# ------------------------------------------------------------------ outputs


class FeaturesAndLogits(nn.Module):
    def __init__(self):
        super().__init__()
        self.body, self.head = nn.Linear(4, 6), nn.Linear(6, 3)

    def forward(self, x):
        features = torch.tanh(self.body(x))
        return features, self.head(features)


def test_an_ambiguous_tuple_output_is_refused_and_output_fn_picks_the_logits():
    model, (x, y) = FeaturesAndLogits(), toy()
    with pytest.raises(ValueError, match=r"tuple of 2 tensors.*output_fn=lambda out: out\[i\]"):
        compute_importance(model, [(x, y)], estimator="batch")
    imp = compute_importance(model, [(x, y)], output_fn=lambda out: out[1], estimator="batch")
    assert_importance(imp, model, by_hand(model, x, y, lambda out, t: F.cross_entropy(out[1], t)))


def test_dict_and_model_output_logits_are_read():
    from transformers.modeling_outputs import SequenceClassifierOutput

    x, y = toy()
    linear = nn.Linear(4, 3)
    expected = by_hand(linear, x, y)
    for wrap in (
        lambda o: {"logits": o, "hidden": o * 2},
        lambda o: SequenceClassifierOutput(logits=o),
    ):
        model = Wrapped(linear, wrap)
        imp = compute_importance(model, [(x, y)], estimator="batch")
        for name, want in zip(("linear.weight", "linear.bias"), expected, strict=True):
            torch.testing.assert_close(imp.tensors[name], want)


class Wrapped(nn.Module):
    def __init__(self, linear, wrap):
        super().__init__()
        self.linear, self.wrap = linear, wrap

    def forward(self, x):
        return self.wrap(self.linear(x))


# ------------------------------------------------------------------ targets


@pytest.mark.parametrize(
    ("targets", "message"),
    [
        (torch.tensor([0, 1, -100, 2]), r"negative labels \(e\.g\. -100.*ignore_index"),
        (torch.tensor([0, 1, 3, 2]), r"holds class 3 but the model outputs 3 classes"),
        (torch.tensor([0.5, 1.0, 2.0, 0.1]), r"float targets \(regression\?\).*loss_fn"),
    ],
)
def test_targets_that_do_not_fit_cross_entropy_are_refused(targets, message):
    x, _ = toy(4)
    with pytest.raises(ValueError, match=message):
        compute_importance(nn.Linear(4, 3), [(x, targets)], estimator="batch")
    with pytest.raises(ValueError, match=message):
        assd.train.fit(nn.Linear(4, 3), [(x, targets)], epochs=1, lr=0.1)


def test_a_single_output_model_needs_a_loss_and_gets_it():
    x, _ = toy(8)
    y = torch.randn(8)
    with pytest.raises(ValueError, match=r"single output.*loss_fn"):
        compute_importance(nn.Linear(4, 1), [(x, y.long().clamp(0, 0))], estimator="batch")

    def mse(out, t):
        return F.mse_loss(out.squeeze(-1), t)

    model = nn.Linear(4, 1)
    assert_importance(
        compute_importance(model, [(x, y)], loss_fn=mse,
                           estimator="batch"), model, by_hand(model, x, y, mse)
    )


def test_ignored_labels_with_a_fitting_loss_equal_the_batch_without_them():
    x, y = toy(10)
    y_ignored = y.clone()
    y_ignored[[2, 7]] = -100
    keep = y_ignored != -100
    model = nn.Linear(4, 3)
    imp = compute_importance(
        model, [(x, y_ignored)], loss_fn=lambda out, t: F.cross_entropy(out, t, ignore_index=-100),
        estimator="batch"
    )
    assert_importance(imp, model, by_hand(model, x[keep], y[keep]))


# ------------------------------------------------------------------ parameters and errors


class WithUnused(nn.Module):
    def __init__(self):
        super().__init__()
        self.used, self.unused = nn.Linear(4, 3), nn.Linear(4, 3)

    def forward(self, x):
        return self.used(x)


@pytest.mark.parametrize("estimator", ["batch", "sample"])
def test_an_unused_parameter_gets_zero_importance_and_is_never_dampened(estimator):
    model, (x, y) = WithUnused(), toy(40)
    imp = compute_importance(model, TensorData(x, y, batch_size=8), estimator=estimator)
    assert torch.count_nonzero(imp.tensors["unused.weight"]) == 0
    assert torch.count_nonzero(imp.tensors["used.weight"]) > 0
    out = assd.ASSD.paper().unlearn(
        model, forget=TensorData(x[:4], y[:4], batch_size=8), data=TensorData(x, y, batch_size=8)
    )
    assert torch.equal(out.model.unused.weight, model.unused.weight)
    assert out.per_layer["unused.weight"][0] == 0


class Fails(nn.Module):
    def __init__(self, fail_on: int):
        super().__init__()
        self.linear, self.fail_on, self.seen = nn.Linear(4, 3), fail_on, 0
        self.armed = False  # then also fail on any batch holding a MARK row

    def forward(self, x):
        self.seen += 1
        if self.seen == self.fail_on or (self.armed and (x[:, 0] == MARK).any()):
            raise RuntimeError("mat1 and mat2 shapes cannot be multiplied (2x5 and 4x3)")
        return self.linear(x)


MARK = 999.0  # an input row Fails cannot take once armed


def test_an_error_inside_the_model_names_the_pass_the_batch_and_the_fix():
    x, y = toy(12)
    x[5, 0] = MARK  # a row of batch 1 (batches of 4)
    model = Fails(fail_on=-1)
    saved = compute_importance(model, TensorData(x, y), estimator="sample", reference="full")
    model.armed = True  # the pass over the forget set fails on batch 1, and says so
    with pytest.raises(
        BatchError, match=r"forget set \(forget=\), batch 1.*RuntimeError: mat1"
    ) as info:
        assd.ASSD().unlearn(model, forget=TensorData(x[:8], y[:8], batch_size=4),
                            importance=saved)  # fmt: skip
    assert "Likely fix: the batch's inputs do not fit the model" in str(info.value)
    assert isinstance(info.value.__cause__, RuntimeError)


def test_extra_batch_items_the_model_does_not_take_are_explained():
    x, y = toy()
    with pytest.raises(BatchError, match=r"importance on data, batch 0.*TypeError.*batch_fn="):
        compute_importance(nn.Linear(4, 3), [(x, y, torch.arange(12))],
                           estimator="batch")  # (x, y, row id)


def test_errors_while_training_name_the_epoch_and_batch():
    x, y = toy(12)
    model = Fails(fail_on=2)
    with pytest.raises(
        BatchError, match=r"training on the retain set \(retain=\), epoch 0, batch 1"
    ):
        assd.FineTune(epochs=1).unlearn(model, forget=None, retain=TensorData(x, y, batch_size=6))


# ------------------------------------------------------------------ forget rows and data=


def test_forget_rows_outside_data_are_refused_by_content_and_by_position():
    x, y = toy(30)
    other_x, other_y = toy(5, seed=9)
    with pytest.raises(ValueError, match=r"5 of 5 forget rows are not part of data="):
        assd.ASSD().unlearn(
            nn.Linear(4, 3), forget=TensorData(other_x, other_y), data=TensorData(x, y)
        )
    batches = [(x[:15], y[:15]), (x[15:], y[15:])]
    with pytest.raises(ValueError, match=r"1 of 3 forget rows are not part of data="):
        forget = [(torch.cat([x[3:5], other_x[:1]]), y[:3])]
        assd.ASSD().unlearn(nn.Linear(4, 3), forget=forget, data=batches)
    assd.ASSD().unlearn(nn.Linear(4, 3), forget=[(x[20:23], y[20:23])], data=batches)
    rows = TensorDataset(x, y)
    forget, _ = assd.forget_retain_loaders(rows, [0, 3], batch_size=8)
    small = DataLoader(Subset(rows, list(range(10, 30))), batch_size=8)
    with pytest.raises(ValueError, match=r"2 of 2 forget rows are not part of data="):
        assd.ASSD().unlearn(nn.Linear(4, 3), forget=forget, data=small)
    with pytest.raises(ValueError, match=r"2 forget rows are also in retain="):
        assd.ASSD(reference="retain").unlearn(
            nn.Linear(4, 3), forget=forget, retain=DataLoader(rows, batch_size=8)
        )


def test_forget_retain_loaders_give_the_same_unlearning_as_tensor_slices():
    x, y = toy(30)
    model, ids = nn.Linear(4, 3), [1, 4, 9]
    forget, retain = assd.forget_retain_loaders(TensorDataset(x, y), ids, batch_size=30)
    keep = torch.ones(30, dtype=torch.bool)
    keep[ids] = False
    assert torch.equal(torch.cat([b[0] for b in retain]), x[keep])
    a = assd.ASSD(reference="retain").unlearn(model, forget=forget, retain=retain)
    b = assd.ASSD(reference="retain").unlearn(
        model,
        forget=TensorData(x[ids], y[ids], batch_size=30),
        retain=TensorData(x[keep], y[keep], batch_size=30),
    )
    assert a.alpha == b.alpha and torch.equal(a.model.weight, b.model.weight)
    with pytest.raises(ValueError, match=r"not row positions"):
        assd.forget_retain_loaders(TensorDataset(x, y), [30])


# ------------------------------------------------------------------ cached importance settings


def test_an_importance_of_other_settings_is_refused_and_the_settings_are_reported(tmp_path):
    x, y = toy(30)
    model, forget = nn.Linear(4, 3), TensorData(x[:3], y[:3])
    imp = compute_importance(model, TensorData(x, y), reference="full", estimator="batch")
    assert (imp.loss, imp.reference) == ("cross_entropy", "full")
    with pytest.raises(
        ValueError, match=r"estimator='batch' but the request uses estimator='sample'"
    ):
        assd.ASSD(estimator="sample").unlearn(model, forget=forget, importance=imp)
    with pytest.raises(ValueError, match=r"loss='cross_entropy' but the request uses loss='torch"):
        assd.SSD.paper(loss_fn=F.nll_loss).unlearn(model, forget=forget, importance=imp)
    with pytest.raises(ValueError, match=r"derived from it, which needs estimator='sample'"):
        assd.ASSD.paper(reference="retain").unlearn(model, forget=forget, importance=imp)
    with pytest.raises(ValueError, match=r"train_mode=False"):
        assd.ASSD.paper(train_mode=True).unlearn(model, forget=forget, importance=imp)
    path = tmp_path / "imp.safetensors"
    imp.save(path)
    result = assd.ASSD.paper().unlearn(model, forget=forget, importance=assd.Importance.load(path))
    assert result.importance_settings == {
        "estimator": "batch", "objective": "loss", "loss": "cross_entropy", "reference": "full",
        "train_mode": False, "n_samples": 30, "batch_size": 30,
    }  # fmt: skip
    assert result.summary()["importance_settings"]["reference"] == "full"


def test_an_importance_file_written_before_the_settings_were_recorded_still_loads(tmp_path):
    import json

    x, y = toy(30)
    model = nn.Linear(4, 3)
    path, old = tmp_path / "new.safetensors", tmp_path / "old.safetensors"
    compute_importance(model, TensorData(x, y), estimator="batch").save(path)
    with safe_open(str(path), framework="pt") as handle:
        meta, tensors = handle.metadata(), {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118
    info = {k: v for k, v in json.loads(meta["info"]).items() if k not in ("loss", "reference")}
    save_file(tensors, str(old), metadata={**meta, "info": json.dumps(info)})
    loaded = assd.Importance.load(old)
    assert (loaded.loss, loaded.reference, loaded.n_samples) == (None, None, 30)
    forget = TensorData(x[:3], y[:3])
    assd.ASSD.paper(loss_fn=F.nll_loss).unlearn(model, forget=forget, importance=loaded)


# ------------------------------------------------------------------ baselines take any batch

BASELINES = ["amnesiac", "bad-teacher", "random-labels", "unsir", "finetune",
             "gradient-ascent", "scrub", "retrain"]  # fmt: skip
FAST = {"unsir": {"noise_steps": 2, "noise_batches": 2}}


def baseline(name):
    return assd.get_method(name, epochs=1, seed=3, **FAST.get(name, {}))


@pytest.mark.parametrize("name", BASELINES)
def test_every_baseline_gives_the_same_model_on_dict_batches_as_on_tuples(name):
    x, y = toy(24)
    model = nn.Linear(4, 3)
    as_tuple = {"forget": [(x[:6], y[:6])], "retain": [(x[6:], y[6:])]}
    as_dict = {k: [{"x": a, "label": b}] for k, [(a, b)] in as_tuple.items()}
    a, b = baseline(name).unlearn(model, **as_tuple), baseline(name).unlearn(model, **as_dict)
    assert not torch.equal(a.model.weight, model.weight)
    assert torch.equal(a.model.weight, b.model.weight)


class MaskedOnes(Masked):
    """Masked, but the mask must be all ones: the same function as its linear layer."""

    def forward(self, x, mask):
        assert torch.equal(mask, torch.ones(len(x)))
        return super().forward(x, mask)


@pytest.mark.parametrize(
    "name", ["finetune", "gradient-ascent", "scrub", "retrain", "random-labels"]
)
def test_baselines_on_two_input_dict_batches_equal_the_one_input_model(name):
    x, y = toy(24)
    masked = MaskedOnes()
    ones = torch.ones(24)
    forget = [{"x": x[:6], "mask": ones[:6], "labels": y[:6]}]
    retain = [{"x": x[6:], "mask": ones[6:], "labels": y[6:]}]
    a = baseline(name).unlearn(masked, forget=forget, retain=retain)
    b = baseline(name).unlearn(masked.linear, forget=[(x[:6], y[:6])], retain=[(x[6:], y[6:])])
    torch.testing.assert_close(a.model.linear.weight, b.model.weight, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["amnesiac", "bad-teacher"])
def test_mixing_baselines_keep_two_input_batches_whole(name):
    x, y = toy(24)
    model, mask = Masked(), (torch.arange(24) % 2).float()
    forget = [(x[:6], mask[:6], y[:6])]
    retain = [(x[6:15], mask[6:15], y[6:15]), (x[15:], mask[15:], y[15:])]
    a = baseline(name).unlearn(model, forget=forget, retain=retain)
    b = baseline(name).unlearn(model, forget=forget, retain=retain)
    assert torch.equal(a.model.linear.weight, b.model.linear.weight)  # seeded
    assert not torch.equal(a.model.linear.weight, model.linear.weight)
    seen = {tuple(m.tolist()) for m in a.model.calls}
    assert tuple(mask[:6].tolist()) in seen  # whole batches, masks and all
    assert {tuple(mask[6:15].tolist()), tuple(mask[15:].tolist())} & seen  # bad teacher: 30 %


def test_unsir_refuses_inputs_it_cannot_add_noise_to():
    _, y = toy(24)
    ids = [{"input_ids": torch.randint(0, 9, (6, 5)), "labels": y[:6]}]
    with pytest.raises(ValueError, match=r"UNSIR optimises noise.*torch.int64 inputs"):
        baseline("unsir").unlearn(nn.Linear(5, 3), forget=ids, retain=ids)


def test_a_full_importance_minus_the_forget_rows_is_a_retain_importance():
    x, y = toy(40)
    model = nn.Linear(4, 3)
    full = compute_importance(model, TensorData(x, y), estimator="sample", reference="full")
    part = compute_importance(model, TensorData(x[:4], y[:4]), estimator="sample")
    rest = full.without(part)
    assert rest.reference == "retain"
    direct = compute_importance(model, TensorData(x[4:], y[4:]), estimator="sample")
    for name in direct.tensors:  # the definition: the importance of the other rows
        torch.testing.assert_close(rest.tensors[name], direct.tensors[name], rtol=1e-4, atol=1e-7)
    forget = TensorData(x[:4], y[:4])
    derived = assd.ASSD(reference="retain", estimator="sample").unlearn(
        model, forget=forget, importance=rest, n_data=40)
    passed = assd.ASSD(reference="retain", estimator="sample").unlearn(
        model, forget=forget, retain=TensorData(x[4:], y[4:]))  # one pass over the other rows
    assert derived.n_data == passed.n_data == 40
    assert derived.alpha == pytest.approx(passed.alpha, rel=1e-4)
    assert derived.n_dampened == passed.n_dampened > 0
    with pytest.raises(ValueError, match=r"reference='retain' but the request uses reference='fu"):
        assd.ASSD(reference="full").unlearn(model, forget=forget, importance=rest)


def test_assd_own_messages_are_not_dressed_up_as_model_errors():
    x, _ = toy()
    with pytest.raises(ValueError, match=r"^objective='loss' needs targets") as info:
        compute_importance(nn.Linear(4, 3), [x], loss_fn=lambda out, t: out.sum(),
                           estimator="batch")
    assert not isinstance(info.value, BatchError)


class DictRows:
    """A data set that is not a torch Dataset (like a Hugging Face one): dict rows by position."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"x": self.x[i], "label": int(self.y[i])}


def test_forget_retain_loaders_take_any_indexable_data_set_of_dict_rows():
    x, y = toy(30)
    model, ids = nn.Linear(4, 3), [2, 8, 20]
    forget, retain = assd.forget_retain_loaders(DictRows(x, y), ids, batch_size=30)
    keep = torch.ones(30, dtype=torch.bool)
    keep[ids] = False
    a = assd.ASSD(reference="retain").unlearn(model, forget=forget, retain=retain)
    b = assd.ASSD(reference="retain").unlearn(
        model, forget=TensorData(x[ids], y[ids]), retain=TensorData(x[keep], y[keep])
    )
    assert a.n_forget == 3 and a.alpha == b.alpha
    assert torch.equal(a.model.weight, b.model.weight)

"""Importance estimators against hand-rolled reference loops, and their storage."""

import pytest
import torch
from torch import nn

import assd
from assd import Importance, TensorData, compute_importance


def small_model() -> nn.Module:
    return nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.Tanh(), nn.Linear(8, 3))


def toy_data(n=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 5, generator=g), torch.randint(0, 3, (n,), generator=g)


@pytest.mark.parametrize("loss_free", [False, True])
def test_batch_estimator_matches_reference_loop(loss_free, reference_loop):
    model, (x, y) = small_model(), toy_data()
    objective = "output_norm" if loss_free else "loss"
    imp = compute_importance(model, TensorData(x, y, batch_size=8), objective=objective,
                             estimator="batch")
    expected = reference_loop(model, x, y, 8, loss_free=loss_free)
    assert imp.n_batches == 3 and imp.n_samples == 24 and imp.batch_size == 8
    for name, tensor in expected.items():
        torch.testing.assert_close(imp.tensors[name], tensor, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("objective", ["loss", "output_norm"])
def test_sample_estimator_equals_batch_estimator_at_batch_size_one(objective):
    model, (x, y) = small_model(), toy_data(12)
    batch = compute_importance(model, TensorData(x, y, batch_size=1), objective=objective,
                               estimator="batch")
    sample = compute_importance(
        model, TensorData(x, y, batch_size=1), objective=objective, estimator="sample"
    )
    for name in batch.tensors:
        torch.testing.assert_close(sample.tensors[name], batch.tensors[name], rtol=1e-5, atol=1e-9)


def test_sample_estimator_does_not_depend_on_batch_size_or_chunking():
    model, (x, y) = small_model(), toy_data(30)
    one = compute_importance(model, TensorData(x, y, batch_size=30), estimator="sample")
    other = compute_importance(
        model, TensorData(x, y, batch_size=7), estimator="sample", max_memory=8 * 200
    )  # tiny budget: chunks of one sample
    for name in one.tensors:
        torch.testing.assert_close(one.tensors[name], other.tensors[name], rtol=1e-5, atol=1e-9)


def test_model_is_left_exactly_as_it_was():
    model, (x, y) = small_model(), toy_data()
    model.train()
    model[1].eval()  # mixed modes must survive
    before = {k: v.clone() for k, v in model.state_dict().items()}
    compute_importance(model, TensorData(x, y, batch_size=8), train_mode=True, estimator="batch")
    assert model.training and not model[1].training
    assert all(p.grad is None for p in model.parameters())
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), f"{k} changed"  # BatchNorm running stats restored


def test_only_trainable_parameters_count():
    model, (x, y) = small_model(), toy_data()
    model[0].weight.requires_grad_(False)
    imp = compute_importance(model, TensorData(x, y, batch_size=8), estimator="batch")
    assert "0.weight" not in imp.tensors and "0.bias" in imp.tensors


class MaskedLinear(nn.Module):
    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x, mask):
        return self.inner(x * mask[:, None])


def test_tuple_dict_and_three_item_batches_give_the_same_importance():
    model, (x, y) = nn.Linear(5, 3), toy_data(8)
    plain = compute_importance(model, [(x, y)], estimator="batch")
    # (x, mask, y): every middle item reaches the model; a mask of ones changes nothing
    masked = MaskedLinear(model)
    three = compute_importance(masked, [(x, torch.ones(8), y)], estimator="batch")
    three.tensors = {k.removeprefix("inner."): v for k, v in three.tensors.items()}
    as_dict = compute_importance(model, [{"features": x, "label": y}], estimator="batch")
    custom = compute_importance(model, [[y, x]], batch_fn=lambda b: (b[1], b[0]), estimator="batch")
    for other in (three, as_dict, custom):
        for name in plain.tensors:
            assert torch.equal(plain.tensors[name], other.tensors[name])


def test_save_load_round_trip_and_stale_weights_refused(tmp_path):
    model, (x, y) = small_model(), toy_data()
    imp = compute_importance(model, TensorData(x, y, batch_size=8), estimator="batch")
    path = tmp_path / "imp.safetensors"
    imp.save(path)
    loaded = Importance.load(path)
    assert loaded.fingerprint == assd.fingerprint(model) and loaded.n_samples == 24
    for name in imp.tensors:
        assert torch.equal(loaded.tensors[name], imp.tensors[name])
    loaded.check_fits(model)
    with torch.no_grad():
        model[0].weight[0, 0] += 1e-3  # change one weight
    with pytest.raises(ValueError, match="stale"):
        loaded.check_fits(model)
    with pytest.raises(ValueError, match="does not belong"):
        loaded.check_fits(nn.Linear(5, 3))


def test_corrupt_and_missing_importance_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no importance file"):
        Importance.load(tmp_path / "nope.safetensors")
    model, (x, y) = small_model(), toy_data()
    path = tmp_path / "imp.safetensors"
    compute_importance(model, TensorData(x, y, batch_size=8), estimator="batch").save(path)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        Importance.load(path)


def test_bad_inputs_get_clear_errors():
    model, (x, y) = small_model(), toy_data()
    with pytest.raises(ValueError, match="empty"):
        compute_importance(model, [], estimator="batch")
    with pytest.raises(ValueError, match="needs targets"):
        compute_importance(model, [x], estimator="batch")
    bad = x.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite input"):
        compute_importance(model, [(bad, y)], estimator="batch")
    frozen = nn.Linear(5, 3).requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        compute_importance(frozen, [(x, y)], estimator="batch")
    broken = nn.Linear(5, 3)
    with torch.no_grad():
        broken.weight[0, 0] = float("inf")
    with pytest.raises(ValueError, match="NaN or infinite values"):
        compute_importance(broken, [(x, y)], estimator="batch")
    with pytest.raises(ValueError, match="unknown estimator"):
        compute_importance(model, [(x, y)], estimator="exact")
    with pytest.raises(ValueError, match="eval mode"):
        compute_importance(model, [(x, y)], estimator="sample", train_mode=True)


def test_retain_importance_is_full_minus_forget_for_the_sample_estimator():
    model, (x, y) = small_model(), toy_data(30)
    full = compute_importance(model, TensorData(x, y, batch_size=11), estimator="sample")
    forget = compute_importance(model, TensorData(x[:7], y[:7]), estimator="sample")
    retain = compute_importance(model, TensorData(x[7:], y[7:]), estimator="sample")
    derived = full.without(forget)
    assert derived.n_samples == 23
    for name in retain.tensors:
        torch.testing.assert_close(
            derived.tensors[name], retain.tensors[name], rtol=1e-4, atol=1e-7
        )
    with pytest.raises(ValueError, match="only estimator='sample'"):
        compute_importance(model, TensorData(x, y), estimator="batch").without(forget)


def test_without_is_bit_identical_to_the_plain_expression():
    g = torch.Generator().manual_seed(3)
    shapes = {"a": (7, 5), "b": (5,), "c": (0,)}
    whole = {n: torch.rand(s, generator=g) for n, s in shapes.items()}
    part = {n: 3 * torch.rand(s, generator=g) for n, s in shapes.items()}  # some ratios < 0
    full = Importance(whole, "loss", "sample", 30, 3, 11)
    derived = full.without(Importance(part, "loss", "sample", 7, 1, 7))
    for name, t in whole.items():
        assert torch.equal(derived.tensors[name], ((30 * t - 7 * part[name]) / 23).clamp_(min=0))
    assert (derived.tensors["a"] == 0).any()  # the clip ran
    assert derived.tensors["a"].data_ptr() != whole["a"].data_ptr()  # the whole is untouched


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), -1e-30])
@pytest.mark.parametrize("where", [0, 4, -1])
def test_check_fits_refuses_any_nan_infinite_or_negative_value(bad, where):
    model = nn.Linear(2, 3)
    tensors = {n: torch.rand_like(p) for n, p in model.named_parameters()}
    Importance(dict(tensors), "loss", "sample", 4, 1, 4).check_fits(model)
    tensors["weight"].view(-1)[where] = bad
    with pytest.raises(ValueError, match="NaN, infinite or negative"):
        Importance(tensors, "loss", "sample", 4, 1, 4).check_fits(model)


def test_weights_edited_in_place_after_a_check_are_refused_however_edited():
    # `.data` and NumPy edits do not bump `tensor._version`, so the fingerprint is
    # hashed on every check, never remembered from an earlier one
    model, (x, y) = small_model(), toy_data()
    imp = compute_importance(model, TensorData(x, y, batch_size=8), estimator="batch")
    edits = [
        lambda w: w.data.add_(1e-3),
        lambda w: w.detach().numpy().__setitem__((0, 0), 7.0),
        lambda w: torch.no_grad()(w.mul_)(1.5),
    ]
    for edit in edits:
        fresh = small_model()
        fresh.load_state_dict(model.state_dict())
        imp.check_fits(fresh)  # fits before the edit
        edit(fresh[0].weight)
        with pytest.raises(ValueError, match="stale"):
            imp.check_fits(fresh)

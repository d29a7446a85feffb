"""SSD / ASSD / LFSSD / ALFSSD against an independent computation, and their errors."""

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

import assd
from assd import ASSD, SSD, TensorData


def setup(n=60, n_forget=6):
    g = torch.Generator().manual_seed(1)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
    x, y = torch.randn(n, 4, generator=g), torch.randint(0, 3, (n,), generator=g)
    return model, x, y, n_forget


def numpy_ssd(model, forget_imp, data_imp, alpha, lam=1.0):
    """Dampen a state dict with NumPy, element by element's definition (in float32, the
    weights' precision, so the result is comparable bit for bit)."""
    out = {}
    for name, p in model.named_parameters():
        w, f, d = p.detach().numpy(), forget_imp[name].numpy(), data_imp[name].numpy()
        selected = f > np.float32(alpha) * d
        factor = np.minimum(np.float32(lam) * d / np.where(selected, f, np.float32(1)), 1)
        out[name] = np.where(selected, w * factor, w)
    return out


@pytest.mark.parametrize("reference", ["full", "retain"])
def test_assd_alpha_and_weights_match_an_independent_computation(reference, reference_loop):
    model, x, y, k = setup()
    forget, retain, data = (
        TensorData(x[:k], y[:k], batch_size=6),
        TensorData(x[k:], y[k:], batch_size=6),
        TensorData(x, y, batch_size=6),
    )
    result = ASSD.paper(reference=reference).unlearn(model, forget=forget, data=data, retain=retain)
    f = reference_loop(model, x[:k], y[:k], 6)
    d = (
        reference_loop(model, x, y, 6)
        if reference == "full"
        else reference_loop(model, x[k:], y[k:], 6)
    )
    # the library's importances equal the reference loop's up to summation order; from
    # them on (percentile, selection, dampening) the result is promised bit for bit
    own = {"f": forget, "d": data if reference == "full" else retain}
    own = {key: assd.compute_importance(model, rows, estimator="batch", fingerprint=False).tensors
           for key, rows in own.items()}  # fmt: skip
    for name in f:
        torch.testing.assert_close(own["f"][name], f[name], rtol=1e-5, atol=1e-10)
        torch.testing.assert_close(own["d"][name], d[name], rtol=1e-5, atol=1e-10)
    f, d = own["f"], own["d"]
    ratios = np.concatenate([(f[n] / d[n]).numpy().ravel() for n in f])
    p = 100 - math.log(1 + 100 * k / len(x))  # |D| = 60 in both cases
    alpha = float(np.percentile(ratios[np.isfinite(ratios)], p))
    assert result.percentile == pytest.approx(p, abs=1e-12)
    assert result.alpha == alpha  # the same importances give the very same percentile
    assert result.n_forget == k and result.n_data == len(x)
    expected = numpy_ssd(model, f, d, result.alpha)
    for name, p_new in result.model.named_parameters():
        np.testing.assert_array_equal(p_new.detach().numpy(), expected[name])
    assert (
        result.n_dampened == sum(int((f[n] > result.alpha * d[n]).sum()) for n in f)
        and result.n_dampened > 0
    )


def test_ssd_uses_its_alpha_and_the_model_is_copied_unless_inplace():
    model, x, y, k = setup()
    before = {n: t.clone() for n, t in model.state_dict().items()}
    forget, data = TensorData(x[:k], y[:k]), TensorData(x, y)
    result = SSD(alpha=2.0, dampening=0.5).unlearn(model, forget=forget, data=data)
    assert result.alpha == 2.0 and result.dampening == 0.5 and result.percentile is None
    assert all(torch.equal(v, before[n]) for n, v in model.state_dict().items())
    assert result.model is not model and result.n_dampened > 0
    inplace = SSD(alpha=2.0, dampening=0.5).unlearn(model, forget=forget, data=data, inplace=True)
    assert inplace.model is model
    for name, p in model.named_parameters():
        assert torch.equal(p, dict(result.model.named_parameters())[name])


def test_cached_importance_gives_the_same_result(tmp_path):
    model, x, y, k = setup()
    forget, data = TensorData(x[:k], y[:k]), TensorData(x, y)
    fresh = ASSD().unlearn(model, forget=forget, data=data)
    path = tmp_path / "train.safetensors"
    assd.compute_importance(model, data, estimator="sample").save(path)
    cached = ASSD().unlearn(model, forget=forget, importance=assd.Importance.load(path))
    assert cached.alpha == fresh.alpha and cached.n_data == fresh.n_data
    for a, b in zip(fresh.model.parameters(), cached.model.parameters(), strict=True):
        assert torch.equal(a, b)
    # the default I_D is the retain set's, derived exactly from the whole set's: same as a pass
    via_retain = ASSD().unlearn(model, forget=forget, retain=TensorData(x[k:], y[k:]))
    assert via_retain.n_data == len(x) and via_retain.alpha == pytest.approx(fresh.alpha, rel=1e-4)


def test_loss_free_methods_need_no_labels(numpy_alpha):
    model, x, _, k = setup()
    data = [x[i : i + 6] for i in range(0, 60, 6)]
    result = assd.ALFSSD().unlearn(model, forget=[x[:k]], data=data)
    imp = {name: assd.compute_importance(model, rows, objective="output_norm",
                                         fingerprint=False).tensors
           for name, rows in (("f", [x[:k]]), ("d", data))}  # fmt: skip
    assert result.n_data == 60 and result.alpha == numpy_alpha(imp["f"], imp["d"], k, 60)
    assert assd.LFSSD(alpha=5).unlearn(model, forget=[x[:k]], data=[x]).alpha == 5


def test_registry_knows_every_method_and_lists_them_on_error():
    assert {"assd", "ssd", "lfssd", "alfssd"} <= set(assd.available_methods())
    assert isinstance(assd.get_method("ASSD"), ASSD)
    with pytest.raises(ValueError, match=r"known methods: .*assd.*ssd"):
        assd.get_method("forget-me-not")
    with pytest.raises(ValueError, match="already registered"):
        assd.register("ssd")(type("Other", (), {}))


def test_bad_requests_are_refused_with_advice():
    model, x, y, k = setup()
    forget, data = TensorData(x[:k], y[:k]), TensorData(x, y)
    with pytest.raises(ValueError, match="empty"):
        ASSD().unlearn(model, forget=[], data=data)
    with pytest.raises(ValueError, match="as large as the training set"):
        ASSD().unlearn(model, forget=data, data=data)
    with pytest.raises(ValueError, match="needs data="):
        ASSD(reference="full").unlearn(model, forget=forget)
    with pytest.raises(ValueError, match="needs retain="):
        ASSD.paper(reference="retain").unlearn(model, forget=forget, data=data)
    with pytest.raises(ValueError, match="chooses alpha itself"):
        ASSD(alpha=3.0)
    loss_imp = assd.compute_importance(model, data, estimator="sample")
    with pytest.raises(ValueError, match="objective 'loss'"):
        assd.ALFSSD().unlearn(model, forget=forget, importance=loss_imp)
    with pytest.raises(ValueError, match="does not belong"):
        ASSD().unlearn(nn.Linear(4, 3), forget=forget, importance=loss_imp)
    with pytest.raises(ValueError, match="reference must be"):
        SSD(reference="test")


def test_training_baselines_retrain_from_scratch_and_fine_tune():
    model, x, y, k = setup()
    retain, forget = TensorData(x[k:], y[k:], batch_size=16), TensorData(x[:k], y[:k])
    before = {n: t.clone() for n, t in model.state_dict().items()}
    zero_epochs = assd.Retrain(epochs=0, seed=3).unlearn(model, forget=forget, retain=retain)
    again = assd.Retrain(epochs=0, seed=3).unlearn(model, forget=forget, retain=retain)
    fresh = assd.methods.reinitialize_(copy.deepcopy(model), seed=3)
    for (n, a), b, c in zip(
        zero_epochs.model.state_dict().items(),
        again.model.state_dict().values(),
        fresh.state_dict().values(),
        strict=True,
    ):
        assert torch.equal(a, b) and torch.equal(a, c), n  # seeded re-initialisation
        assert not torch.equal(a, before[n]), n
    tuned = assd.FineTune(epochs=1, lr=0.1).unlearn(model, forget=forget, retain=retain)
    assert all(torch.equal(v, before[n]) for n, v in model.state_dict().items())
    changed = [not torch.equal(v, before[n]) for n, v in tuned.model.state_dict().items()]
    assert all(changed)
    with pytest.raises(ValueError, match="pass retain="):
        assd.FineTune().unlearn(model, forget=forget)

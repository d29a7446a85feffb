"""Same inputs and seed give bitwise-identical unlearned weights, across processes."""

import json
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import hashlib, json, os
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    import torch
    torch.set_num_threads(2)
    import assd
    from assd.data import load_digits_split
    from assd.models import DigitsCNN
    from assd.train import fit, seed_everything

    seed_everything(7)
    split = load_digits_split(seed=7)
    model = DigitsCNN()
    data = assd.TensorData(split.x_train, split.y_train, batch_size=64, shuffle=True, seed=7)
    fit(model, data, epochs=2, lr=1e-3, optimizer="adam")
    train = assd.TensorData(split.x_train, split.y_train, batch_size=64)
    fives = split.y_train == 5
    forget = assd.TensorData(split.x_train[fives], split.y_train[fives], batch_size=64)
    out = {}
    for method in (assd.ASSD(), assd.ASSD(estimator="sample"), assd.LFSSD()):
        result = method.unlearn(model, forget=forget, data=train)
        digest = hashlib.sha256()
        for name, tensor in sorted(result.model.state_dict().items()):
            digest.update(name.encode() + tensor.numpy().tobytes())
        summary = result.summary()
        summary.pop("seconds"), summary.pop("timings")
        out[result.method + method.importance_options["estimator"]] = [digest.hexdigest(), summary]
    print(json.dumps(out, sort_keys=True))
    """
)


def run_once() -> dict:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True, timeout=300
    )
    return json.loads(done.stdout)


def test_two_processes_give_identical_weights_and_reports():
    first, second = run_once(), run_once()
    assert first == second
    hashes = {v[0] for v in first.values()}
    assert len(hashes) == 3  # the three methods really differ
    assert all(v[1]["n_dampened"] > 0 for v in first.values())

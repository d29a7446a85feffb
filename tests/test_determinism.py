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
    for method in (assd.ASSD.paper(), assd.ASSD(), assd.LFSSD.paper()):
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


def drop_timings(value):
    """A report without its wall-time fields (the only ones that may differ)."""
    if isinstance(value, dict):
        return {k: drop_timings(v) for k, v in value.items() if k not in ("seconds", "timings")}
    if isinstance(value, list):
        return [drop_timings(v) for v in value]
    return value


def test_cli_train_and_unlearn_are_identical_across_processes(tmp_path):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"a": rng.normal(size=400), "b": rng.choice(["x", "y", "z"], 400)})
    frame["label"] = np.where(frame.a + (frame.b == "x") > 0.4, "hi", "lo")
    runs = []
    for name in ("one", "two"):
        folder = tmp_path / name
        folder.mkdir()
        frame.to_csv(folder / "t.csv", index=False)
        (folder / "forget.txt").write_text("\n".join(map(str, range(0, 60, 3))))
        script = (
            "import sys; from assd.cli import main\n"
            "assert main(['train', '--data', 't.csv', '--target', 'label', '--out', 'm',"
            " '--epochs', '3', '--batch-size', '64']) == 0\n"
            "assert main(['unlearn', '--model', 'm', '--data', 't.csv', '--forget',"
            " 'forget.txt', '--out', 'u']) == 0\n"
        )
        subprocess.run(
            [sys.executable, "-c", script], cwd=folder, check=True, capture_output=True, timeout=300
        )
        runs.append(folder)
    one, two = runs
    for name in ("m/model.safetensors", "u/model.safetensors", "m/task.json"):
        assert (one / name).read_bytes() == (two / name).read_bytes(), name
    reports = [json.loads((run / "u" / "report.json").read_text()) for run in runs]
    assert drop_timings(reports[0]) == drop_timings(reports[1])
    assert reports[0]["result"]["n_dampened"] > 0

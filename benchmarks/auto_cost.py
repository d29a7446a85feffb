"""What assd-auto costs beside one-shot ASSD, uncached and with I_D cached.

The digits CNN (trained here, 30 epochs as in the benchmarks) forgets one
class (full-class) or one fine class of its coarse label (sub-class), the
scenarios of docs/benchmarks.md, seed 0. Four conditions, alternating round by
round: ASSD and assd-auto with ``data=`` (uncached: both importance passes
inside the request), and both with ``importance=`` (the training set's
importance cached). assd-auto scores the forget and retained rows on every
try and may run its bounded repair; its tries and repair epochs are printed.

    python benchmarks/auto_cost.py [--scenarios full-class sub-class] [--rounds 3]
"""

from __future__ import annotations

from common import alternate, arguments, header, median, ratio

import assd
from assd.data.scenarios import load_dataset, make_scenario
from assd.reports import markdown_table
from assd.train import fit


def setup(scenario: str, seed: int = 0):
    """The trained CNN, D, Df, the retained rows and the scenario's extra options."""
    data = make_scenario(scenario, load_dataset("digits"), "3", seed=seed)
    assd.train.seed_everything(seed)
    model = assd.models.build_model("cnn", n_classes=data.n_classes, channels=1)
    train = assd.TensorData(data.x_train, data.y_train, batch_size=64, shuffle=True, seed=seed)
    fit(model, train, epochs=30, lr=1e-3, optimizer="adam")
    full = assd.TensorData(data.x_train, data.y_train, batch_size=64)
    forget, retain = (assd.TensorData(*s, batch_size=64) for s in
                      (data.forget_train(), data.retain_train()))  # fmt: skip
    return model.eval(), full, forget, retain


def measure(scenario: str, rounds: int) -> list:
    model, full, forget, retain = setup(scenario)
    imp = assd.compute_importance(model, full, estimator="sample")
    n = full.n_samples
    auto = assd.get_method("assd-auto", target="group")
    sets = {"retain": retain}
    last = {}

    def run(name, method, **kwargs):
        last[name] = method.unlearn(model, forget=forget, **kwargs)

    times = alternate({
        "assd": lambda: run("assd", assd.ASSD(), data=full),
        "auto": lambda: run("auto", auto, data=full, evaluate=sets),
        "assd cached": lambda: run("assd cached", assd.ASSD(), importance=imp, n_data=n),
        "auto cached": lambda: run("auto cached", auto, importance=imp, n_data=n, evaluate=sets),
    }, rounds=rounds)  # fmt: skip
    outcome = last["auto"].outcome
    epochs = next((t.get("repair_epochs") for t in outcome.tries if t.get("repair_epochs")), 0)
    return [
        scenario,
        f"{median(times['assd']):.2f}",
        f"{median(times['auto']):.2f}",
        ratio(times, "auto", "assd").show(),
        f"{median(times['assd cached']):.3f}",
        f"{median(times['auto cached']):.3f}",
        ratio(times, "auto cached", "assd cached").show(),
        len(outcome.tries),
        epochs,
    ]


def main() -> None:
    args = arguments(
        __doc__,
        models=False,
        extra=lambda p: p.add_argument(
            "--scenarios", nargs="+", default=["full-class", "sub-class"]
        ),
    )
    print(header("assd-auto against one-shot ASSD (digits CNN, seed 0)"))
    rows = [measure(s, args.rounds) for s in args.scenarios]
    columns = ["scenario", "assd (s)", "assd-auto (s)", "ratio", "assd, I_D cached (s)",
               "assd-auto, cached (s)", "ratio, cached", "tries", "repair epochs"]  # fmt: skip
    print(markdown_table(columns, rows))


if __name__ == "__main__":
    main()

"""One default for ``max_levels``: what 20, 120 and 200 one-hot levels do to the flights task.

Fits the flights preprocessing (its time split, on the training rows) at each
setting and prints the number of input features, the levels kept per
categorical column, and whether the encoding equals the one at 200 (the default).
Equal encodings give bit-identical models and figures downstream.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/max_levels.py
"""

from assd.data.flights import TARGET, TIME_COLUMN, load_flights
from assd.tabular.task import TableTask


def main() -> None:
    frame = load_flights()
    spec = {"target": TARGET, "id_column": "id", "split": f"time:{TIME_COLUMN}"}  # as the errors
    tasks = {n: TableTask.fit(frame, **spec, max_levels=n)
             for n in (20, 120, 200)}  # fmt: skip
    base = tasks[200].preprocessor
    for n, task in tasks.items():
        prep = task.preprocessor
        kept = {c: len(v) for c, v in prep.levels.items()}
        print(f"max_levels={n}: {len(prep.keep)} features, levels kept {kept}, "
              f"same encoding as 200: {prep.levels == base.levels and prep.keep == base.keep}")


if __name__ == "__main__":
    main()

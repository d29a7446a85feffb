"""A made-up customer table nothing in assd was chosen on: other column names, `;` as separator.

3,000 customers (ids like ``K00205``), age with missing values, income, one of four
regions and an hourly date; the label ``Kündigung?`` ("ja, gekündigt" or "nein")
follows age, income and region with noise. Then 60 % of the labels of region ``Ost``
are flipped, in the training and the held-out period alike, as a batch typed wrongly
together would be. Writes, into the folder given (default: the current one):

- ``kunden.csv``: the table as a user would have it (wrong labels in);
- ``kunden-clean.csv``: the same rows with the true labels, to score against;
- ``kunden-wrong.txt``: the ids whose labels were flipped (for comparison only: the
  point is to find them).

Then, as in docs/errors.md ("The retain guard when the held-out rows carry the errors too"):

    python examples/made_up_customers.py /tmp/kunden && cd /tmp/kunden
    assd train --data kunden.csv --target "Kündigung?" --id-column "Kunden-Nr." \\
        --split time:Datum --out m1
    assd find-errors --model m1 --data kunden.csv --out found.txt --group-column Region --folds 4
    assd unlearn --model m1 --data kunden.csv --forget found.txt --out m2
    assd retrain --model m2 --data kunden.csv --out m3
    for m in m1 m2 m3; do
        assd evaluate --model $m --data kunden-clean.csv --rows test | grep "^accuracy [0-9]"
    done
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd


def made_up_customers(seed: int = 3, n: int = 3000) -> tuple[pd.DataFrame, pd.DataFrame, list]:
    """(the table with wrong labels, the same with the true ones, the flipped ids)."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "Kunden-Nr.": [f"K{i:05d}" for i in rng.permutation(n)],
        "Alter (Jahre)": rng.integers(18, 90, n).astype(float),
        "Einkommen €": rng.lognormal(10, 0.5, n),
        "Region": rng.choice(["Nord", "Süd", "Ost", "West"], n),
        "Datum": pd.date_range("2020-01-01", periods=n, freq="h").strftime("%Y-%m-%d %H:%M"),
    })  # fmt: skip
    score = ((frame["Alter (Jahre)"] - 50) / 20 + (np.log(frame["Einkommen €"]) - 10) * 2
             + (frame["Region"] == "Süd") * 1.0)  # fmt: skip
    yes, no = "ja, gekündigt", "nein"
    frame["Kündigung?"] = np.where(score + rng.normal(0, 0.7, n) > 0.3, yes, no)
    frame.loc[rng.choice(n, 100, replace=False), "Alter (Jahre)"] = np.nan
    clean = frame.copy()
    east = frame.index[frame["Region"] == "Ost"]
    flipped = rng.choice(east, int(0.6 * len(east)), replace=False)
    frame.loc[flipped, "Kündigung?"] = np.where(frame.loc[flipped, "Kündigung?"] == no, yes, no)
    return frame, clean, list(frame.loc[flipped, "Kunden-Nr."])


def main() -> None:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    folder.mkdir(parents=True, exist_ok=True)
    frame, clean, flipped = made_up_customers()
    frame.to_csv(folder / "kunden.csv", index=False, sep=";")
    clean.to_csv(folder / "kunden-clean.csv", index=False, sep=";")
    (folder / "kunden-wrong.txt").write_text("\n".join(flipped) + "\n", encoding="utf-8")
    print(f"wrote {folder}/kunden.csv ({len(frame)} rows, {len(flipped)} labels flipped), "
          f"kunden-clean.csv, kunden-wrong.txt")  # fmt: skip


if __name__ == "__main__":
    main()

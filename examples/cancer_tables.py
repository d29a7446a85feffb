"""Write scikit-learn's breast-cancer table as two CSV files for the table commands.

``cancer-train.csv`` (455 rows) and ``cancer-test.csv`` (114 rows), with an id
column ``patient`` and the label ``diagnosis``; used by docs/tables.md::

    python examples/cancer_tables.py
    assd train --data cancer-train.csv --target diagnosis --id-column patient --split none --out m1
"""

from sklearn.datasets import load_breast_cancer


def main() -> None:
    frame = load_breast_cancer(as_frame=True).frame.rename(columns=lambda c: c.replace(" ", "_"))
    frame["diagnosis"] = frame.pop("target").map({0: "malignant", 1: "benign"})
    frame.insert(0, "patient", [f"p{i:03d}" for i in range(len(frame))])
    test = frame.sample(frac=0.2, random_state=0)
    frame.drop(test.index).to_csv("cancer-train.csv", index=False)
    test.to_csv("cancer-test.csv", index=False)
    print(f"{len(frame) - len(test)} training rows, {len(test)} test rows")


if __name__ == "__main__":
    main()

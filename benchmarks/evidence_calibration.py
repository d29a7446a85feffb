"""The per-example test of assd-auto's verdict, with and without look-alike held-out rows.

For each class or sub-class matrix cell and seed given, this runs assd-auto once
(references from the cell's recipe, as in the matrix) on the originals saved in a
matrix folder, then judges several models on the forget rows with three forms of the
per-example test, all against assd-auto's own references (fpr 5 %):

- "conformal": the verdict's test, each forget row's deviation from its references'
  mean ranked among the judged model's own held-out look-alikes (the forgotten class's
  or sub-class's test rows), :mod:`assd.verify.conformal`;
- "parametric, look-alikes": the references' Gaussian, confidences calibrated on the
  retained classes' test rows and the look-alikes;
- "parametric, test only": the same, calibrated on the retained classes' test rows
  alone (references put a forgotten class below every one of them: censored).

Models: assd-auto's result, retraining (the matrix's recipe and seed), the original,
and the matrix's own retrain-like references (never trained on the forget rows: each
should be flagged at about the false-positive rate, within the chance limit printed).

    python benchmarks/evidence_calibration.py --out runs/m-ev --cells digits-full-class-3:0
"""

from __future__ import annotations

import argparse

from common import THREADS  # noqa: F401  (sets the thread count and OMP policy)

from assd.experiments.matrix_cells import select_cells
from assd.experiments.matrix_run import MatrixRun
from assd.methods import auto
from assd.verify.evidence import LOOK_ALIKES, Evidence, held_out_rows
from assd.verify.references import ReferenceSet


def run_cell(folder: str, cell_id: str, seed: int) -> None:
    cells = select_cells(cell_id)
    run = MatrixRun(folder, cells)
    seen = {}
    choose = auto.AutoASSD.choose

    def spy(self, trials, *, retain=None):
        seen["evidence"], seen["sets"] = trials.target, trials.sets
        out = choose(self, trials, retain=retain)
        seen["model"] = trials.model
        return out

    auto.AutoASSD.choose = spy
    try:
        record = run.run_one({"cell": cell_id, "seed": seed, "method": "assd-auto"})
    finally:
        auto.AutoASSD.choose = choose
    runner = run.runner(cells[0])
    _, retrained = runner.run_spec(seed, "retrain")
    evidence, sets = seen["evidence"], seen["sets"]
    if evidence.kind != "group":
        raise SystemExit(f"{cell_id}: class and sub-class cells only (no reference saw a row)")
    models = {"assd-auto": seen["model"], "retrain": retrained, "original": runner.original,
              **{f"matrix ref {j}": m for j, m in
                 enumerate(run._references(runner, cells[0], seed))}}  # fmt: skip
    print(f"\n{cell_id} seed {seed}: Df {100 * record['df_acc']:.1f} %, "
          f"{len(evidence.models)} assd-auto references")  # fmt: skip
    print("| model | conformal (%) | parametric, look-alikes (%) | parametric, test only (%) |")
    print("|---|---:|---:|---:|")
    refs = ReferenceSet.never_saw(evidence.models)
    judges = {"conformal": evidence}
    for name, held in (("look", held_out_rows(sets)), ("test", sets["test"])):
        profile = refs.profile(sets["forget"], held_out=held)
        judges[name] = Evidence(profile, n_references=len(evidence.models), kind=evidence.kind,
                                fpr=evidence.fpr, held_out=held)  # fmt: skip
    limits = {k: f"{100 * j.share_limit:.1f}" for k, j in judges.items()}
    for name, model in models.items():
        share = {k: judges[k].judge(model, sets["forget"])["member_share"] for k in judges}
        print(f"| {name} | {100 * share['conformal']:.1f} | {100 * share['look']:.1f} | "
              f"{100 * share['test']:.1f} |")  # fmt: skip
    print(f"| chance limit | {limits['conformal']} | {limits['look']} | {limits['test']} |")
    if LOOK_ALIKES not in sets:
        print("(no look-alikes in this cell: the columns use the same held-out rows)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="a matrix folder with saved originals")
    parser.add_argument("--cells", nargs="+", default=["digits-full-class-3:0"],
                        help="cell:seed ...")  # fmt: skip
    args = parser.parse_args()
    for item in args.cells:
        cell_id, seed = item.rsplit(":", 1)
        run_cell(args.out, cell_id, int(seed))


if __name__ == "__main__":
    main()

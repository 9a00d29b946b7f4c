"""Docking results of a fixed set of cases as JSON, to check that a refactor changes nothing.

Run it in two checkouts and compare the files byte for byte:

    PYTHONPATH=OLD python benchmarks/same_results.py old.json
    PYTHONPATH=NEW python benchmarks/same_results.py new.json
    cmp old.json new.json

Refinement is left out (OpenMM's CPU sums are not bit-reproducible) and templates too (their
search has a CPU-time budget); conformer generation gets an unbounded budget, so nothing depends
on how busy the machine is. Cases: 4 PoseBusters pockets simulated at 3 Å (the placement
benchmark's seed-0 sample) and 3 EMDB ligand boxes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ligfit  # noqa: E402
import ligfit.ligand  # noqa: E402
from benchmarks.cases import complex_entries, data_root, em_ligand_boxes, simulated_case  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    out = Path((argv or sys.argv[1:] or ["same_results.json"])[0])
    root = data_root()
    if root is None:
        print("../shared/data is not available; nothing to compare", file=sys.stderr)
        return 0
    generate = ligfit.ligand.generate_conformers

    def unbounded(mol, **options):
        return generate(mol, **{**options, "time_budget": 1e9})

    ligfit.ligand.generate_conformers = unbounded
    entries = [row["entry"] for row in complex_entries(root)]
    sample = list(np.random.default_rng(0).choice(entries, size=6, replace=False))
    cases = [simulated_case(root, entry, 3.0, with_ligand=True) for entry in sample[:4]] + em_ligand_boxes(root)[:3]
    results = {}
    for case in cases:
        result = ligfit.build(case.density, case.smiles, case.model, resolution=case.resolution, refine=False, use_templates=False)
        results[case.name] = {
            "message": result.message,
            "confidence": result.confidence,
            "blobs": [blob.summary() for blob in result.blobs[:3]],
            "poses": [[p.score, p.cc, p.clashes, p.strain, p.source, np.round(p.coordinates[:5], 4).tolist()] for p in result.poses[:5]],
            "ligand_fit": result.ligand_fit,
        }
        print(case.name, result.message[:70], flush=True)
    out.write_text(json.dumps(results, indent=1, default=str) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

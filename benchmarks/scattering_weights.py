"""How each atom is weighed when a pose is fitted to a map: electron scattering against atomic number.

ligfit's fit of a ligand to a map (``ligfit.measures.ligand_cc``, and the screen's ``ranking.blob_fit``) correlates
the map with one Gaussian per heavy atom. A cryo-EM map shows the Coulomb potential: at 3 Å an oxygen peaks at 0.93 of
a carbon, a sulfur at 2.0, an iron at 2.5 (electron scattering factors, ``ligfit.maps.scattering_weights``); atomic
numbers (1.33, 2.7, 4.3) are what X-rays see. This benchmark fits deposited ligands, as deposited, both ways:

- every real map in ../shared/data that holds a ligand: the seven EMDB ligand boxes, the four hemes of EMD-3488 (5NI1
  and the 5ME2 crystal structure's hemes), D2Q and NADPH in 3NZD's 1.8 Å 2mFo-DFc map (X-ray: the control);
- PoseBusters ligands in maps simulated from them alone (gemmi, electron scattering factors, B 40 Å², 3.0 and 3.5 Å).

    python benchmarks/scattering_weights.py            # ~1 min

Prints a Markdown table: the correlation of each ligand with its map, weighted each way.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import gemmi
import numpy as np
from rdkit import Chem

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.cases import complex_entries, data_root, em_ligand_boxes, hemoglobin_hemes, residues_as_mols, xray_3nzd  # noqa: E402
from ligfit import io, maps  # noqa: E402
from ligfit.maps import DensityMap  # noqa: E402
from ligfit.measures import atomic_numbers, ligand_cc  # noqa: E402


def both_ways(density: DensityMap, mol: Chem.Mol, resolution: float) -> tuple[float, float]:
    """(CC weighted by atomic number, CC weighted by electron scattering) of the heavy atoms of ``mol`` as posed."""
    heavy = [atom.GetIdx() for atom in mol.GetAtoms() if atom.GetAtomicNum() > 1]
    xyz = mol.GetConformer().GetPositions()[heavy]
    elements = [mol.GetAtomWithIdx(i).GetSymbol() for i in heavy]
    return ligand_cc(density, xyz, elements, resolution, weights=atomic_numbers(elements)), ligand_cc(density, xyz, elements, resolution)


def real_rows(root: Path) -> list[tuple[str, str, float, float]]:
    rows = []
    for case in em_ligand_boxes(root):
        rows.append(("EMDB ligand box", case.name, *both_ways(case.density, case.reference, case.resolution)))
    density, _, hemes = hemoglobin_hemes(root)
    for model, mols in hemes.items():
        for number, heme in enumerate(mols, start=1):
            rows.append((f"EMD-3488 hemes ({model})", f"HEM #{number}", *both_ways(density, heme, 3.2)))
    deposited, _, xray = xray_3nzd(root, ("D2Q",))
    for name in ("D2Q", "NDP"):
        for mol in residues_as_mols(deposited, name):
            rows.append(("3NZD 2mFo-DFc (X-ray)", name, *both_ways(xray, mol, 1.8)))
    return rows


def simulated_rows(root: Path, count: int, seed: int) -> list[tuple[str, str, float, float]]:
    entries = [row["entry"] for row in complex_entries(root)]
    chosen = np.random.default_rng(seed).choice(len(entries), size=min(count, len(entries)), replace=False)
    rows = []
    for index in chosen:
        entry = entries[index]
        mol = Chem.MolFromMolFile(str(root / "complexes" / entry / f"{entry}_ligand.sdf"))
        if mol is None:
            continue
        elements = [atom.GetSymbol() for atom in mol.GetAtoms()]
        empty = gemmi.Structure()
        empty.add_model(gemmi.Model(1))
        alone = io.add_ligand(
            empty, elements, [f"{e}{i}" for i, e in enumerate(elements)], mol.GetConformer().GetPositions(), b_factor=40.0
        )
        for resolution in (3.0, 3.5):
            density = maps.simulate(alone, resolution, voxel_size=0.8, margin=8.0, use_b_factors=True)
            rows.append((f"simulated alone, {resolution:g} Å", entry, *both_ways(density, mol, resolution)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--simulated", type=int, default=40, help="PoseBusters ligands simulated alone (default: 40)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    root = data_root()
    if root is None:
        print("../shared/data is not available: nothing to measure")
        return
    rows = real_rows(root) + simulated_rows(root, args.simulated, args.seed)
    print("| map | ligand | CC, atomic numbers | CC, electron scattering |")
    print("|---|---|---|---|")
    for group, name, by_number, by_electrons in rows:
        if not group.startswith("simulated"):
            print(f"| {group} | {name} | {by_number:.3f} | {by_electrons:.3f} |")
    print()
    print("| set | ligands | mean CC, atomic numbers | mean CC, electron scattering | higher with electron scattering |")
    print("|---|---|---|---|---|")
    for group in dict.fromkeys(group for group, *_ in rows):
        values = np.array([(a, b) for g, _, a, b in rows if g == group])
        print(
            f"| {group} | {len(values)} | {values[:, 0].mean():.3f} | {values[:, 1].mean():.3f} | {int((values[:, 1] > values[:, 0]).sum())}/{len(values)} |"
        )


if __name__ == "__main__":
    main()

"""ligfit's Vina-like interaction score against AutoDock Vina itself, on the same receptor atoms and poses.

``ligfit.measures.interaction_score`` re-implements Vina's five intermolecular terms (gauss 1 and 2, repulsion,
hydrophobic, hydrogen bond) with Vina's weights, radii and atom types, typing protein atoms from residue and atom
names. This benchmark scores the same poses with AutoDock Vina 1.2 (the ``vina`` package, ``score_only``: its
intermolecular energy, before Vina's rotatable-bond normalisation). The receptor is prepared by Meeko
(``mk_prepare_receptor``) from the pocket's ATOM records; ligfit scores the heavy atoms Meeko kept, so the two
differ only in typing and arithmetic. Each ligand is scored as deposited, turned 180° about its longest axis, and
moved 1.5 Å along each coordinate axis (the clash regime the repulsion term decides).

    pip install -e ".[bench]"                          # vina and meeko among the benchmark extras
    python benchmarks/vina_agreement.py --quick        # 12 PoseBusters pockets of ../shared/data
    python benchmarks/vina_agreement.py --entries 60   # more

Prints a Markdown table (Pearson and Spearman correlation, median and largest difference in kcal/mol) and the cases
that differ most; writes one CSV row per pose to benchmarks/results/vina_agreement.csv.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.cases import data_root  # noqa: E402

if TYPE_CHECKING:
    from ligfit.io import AtomTable

#: Å of box around the ligand for Vina's grid maps (beyond ligfit's 8 Å cutoff on every side).
BOX_MARGIN = 20.0
#: The poses scored per complex: name → (rotation about the longest axis in degrees, shift in Å).
POSES = {"deposited": (0.0, np.zeros(3)), "turned 180°": (180.0, np.zeros(3))} | {
    f"moved 1.5 Å {axis}": (0.0, 1.5 * np.eye(3)[i]) for i, axis in enumerate("xyz")
}

#: AutoDock atom types (PDBQT columns 78–79) that are not their element's symbol.
AUTODOCK_ELEMENTS = {"A": "C", "NA": "N", "NS": "N", "NX": "N", "OA": "O", "OS": "O", "SA": "S", "Cl": "CL", "Br": "BR"}


@dataclass
class Receptor:
    """A pocket prepared by Meeko: its PDBQT text and its heavy atoms as ligfit reads them."""

    pdbqt: str
    heavy_atoms: AtomTable


def prepare_receptor(pdb_text: str) -> Receptor:
    """Meeko's receptor PDBQT of the amino acids in ``pdb_text`` (residues it cannot template are dropped)."""
    from ligfit.io import AtomTable, is_amino_acid

    atoms = "\n".join(line for line in pdb_text.splitlines() if line.startswith("ATOM") and is_amino_acid(line[17:20].strip())) + "\nEND\n"
    with tempfile.TemporaryDirectory() as folder:
        pdb = Path(folder) / "pocket.pdb"
        pdb.write_text(atoms)
        command = [
            sys.executable,
            "-m",
            "meeko.cli.mk_prepare_receptor",
            "--read_pdb",
            str(pdb),
            "-o",
            str(Path(folder) / "pocket"),
            "-p",
            "--delete_bad_res",
        ]
        run = subprocess.run(command, capture_output=True, text=True)
        written = Path(folder) / "pocket.pdbqt"
        if not written.exists():
            raise RuntimeError(f"mk_prepare_receptor failed: {(run.stderr.strip().splitlines() or ['no message'])[-1]}")
        pdbqt = written.read_text()
    records = [line for line in pdbqt.splitlines() if line.startswith(("ATOM", "HETATM"))]
    heavy = [line for line in records if _autodock_type(line) not in ("H", "HD", "HS")]
    names = np.array([line[12:16].strip() for line in heavy], dtype=object)
    table = AtomTable(
        np.array([[float(line[30:38]), float(line[38:46]), float(line[46:54])] for line in heavy]).reshape(-1, 3),
        np.array([AUTODOCK_ELEMENTS.get(_autodock_type(line), _autodock_type(line).upper()) for line in heavy], dtype=object),
        np.array([line[21] for line in heavy], dtype=object),
        np.array([int(line[22:26]) for line in heavy]),
        np.array([line[17:20].strip() for line in heavy], dtype=object),
        names,
    )
    return Receptor(pdbqt, table)


def _autodock_type(line: str) -> str:
    return line[77:79].strip()


def posed(mol, degrees: float, shift: np.ndarray):
    """A copy of ``mol`` turned by ``degrees`` about its heavy atoms' longest axis through their centroid, then shifted (Å)."""
    from rdkit import Chem
    from scipy.spatial.transform import Rotation

    from ligfit.records import principal_spread

    copy = Chem.Mol(mol)
    xyz = copy.GetConformer().GetPositions()
    heavy = xyz[[atom.GetAtomicNum() > 1 for atom in copy.GetAtoms()]]
    centre = heavy.mean(0)
    turn = Rotation.from_rotvec(np.radians(degrees) * principal_spread(heavy)[0][0]).as_matrix()
    moved = (xyz - centre) @ turn.T + centre + shift
    conformer = copy.GetConformer()
    for index, position in enumerate(moved):
        conformer.SetAtomPosition(index, position.tolist())
    return copy


def score_both(receptor: Receptor, mol) -> tuple[float, float]:
    """(Vina's intermolecular energy, ligfit's interaction score × heavy atoms), kcal/mol, of ``mol`` (hydrogens explicit)."""
    from meeko import MoleculePreparation, PDBQTWriterLegacy
    from vina import Vina

    from ligfit.measures import interaction_score, ligand_types

    setup = MoleculePreparation().prepare(mol)[0]
    pdbqt, ok, error = PDBQTWriterLegacy.write_string(setup)
    if not ok:
        raise RuntimeError(f"meeko could not write the ligand: {error}")
    xyz = mol.GetConformer().GetPositions()
    heavy = xyz[[atom.GetAtomicNum() > 1 for atom in mol.GetAtoms()]]
    vina = Vina(sf_name="vina", verbosity=0)
    with tempfile.NamedTemporaryFile("w", suffix=".pdbqt") as handle:  # Vina reads receptors from files only
        handle.write(receptor.pdbqt)
        handle.flush()
        vina.set_receptor(handle.name)
    vina.set_ligand_from_string(pdbqt)
    vina.compute_vina_maps(center=heavy.mean(0).tolist(), box_size=(np.ptp(heavy, 0) + BOX_MARGIN).tolist())
    inter = float(vina.score()[1])
    ligfit = interaction_score(heavy, ligand_types(mol), receptor.heavy_atoms) * len(heavy)
    return inter, float(ligfit)


def compare_complex(pocket_pdb: Path, ligand_sdf: Path) -> list[dict]:
    """Every pose of :data:`POSES` of one complex scored by both."""
    from rdkit import Chem

    receptor = prepare_receptor(pocket_pdb.read_text())
    mol = Chem.AddHs(Chem.MolFromMolFile(str(ligand_sdf), removeHs=False), addCoords=True)
    rows = []
    for name, (degrees, shift) in POSES.items():
        vina, ligfit = score_both(receptor, posed(mol, degrees, shift))
        rows.append({"pose": name, "heavy_atoms": mol.GetNumHeavyAtoms(), "vina": round(vina, 3), "ligfit": round(ligfit, 3)})
    return rows


def summarise(rows: list[dict]) -> str:
    from scipy.stats import pearsonr, spearmanr

    lines = [
        "| poses | complexes | Pearson r | Spearman ρ | median \\|ligfit − Vina\\| (kcal/mol) | largest | median per heavy atom |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, subset in (("deposited", [r for r in rows if r["pose"] == "deposited"]), ("all", rows)):
        vina = np.array([r["vina"] for r in subset])
        ligfit = np.array([r["ligfit"] for r in subset])
        atoms = np.array([r["heavy_atoms"] for r in subset])
        difference = np.abs(ligfit - vina)
        lines.append(
            f"| {label} | {len({r['case'] for r in subset})} | {pearsonr(vina, ligfit)[0]:.4f} | {spearmanr(vina, ligfit)[0]:.4f} | "
            f"{np.median(difference):.2f} | {difference.max():.2f} | {np.median(difference / atoms):.3f} |"
        )
    worst = sorted(rows, key=lambda r: -abs(r["ligfit"] - r["vina"]))[:5]
    lines += [
        "",
        "largest differences: " + "; ".join(f"{r['case']} {r['pose']} Vina {r['vina']:.2f}, ligfit {r['ligfit']:.2f}" for r in worst),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="12 complexes")
    parser.add_argument("--entries", type=int, default=60, help="complexes, evenly spaced over the sorted PoseBusters set")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "vina_agreement.csv")
    args = parser.parse_args(argv)
    try:
        import meeko  # noqa: F401
        import vina  # noqa: F401
    except ImportError:
        print('vina and meeko are not installed (pip install -e ".[bench]"); nothing to compare', file=sys.stderr)
        return 0
    root = data_root()
    if root is None:
        print("../shared/data is not available; nothing to benchmark", file=sys.stderr)
        return 0
    entries = sorted(path.name for path in (root / "complexes").iterdir() if path.is_dir())
    count = 12 if args.quick else args.entries
    chosen = entries[:: max(1, len(entries) // count)][:count]
    rows = []
    for index, entry in enumerate(chosen, 1):
        folder = root / "complexes" / entry
        try:
            found = compare_complex(folder / f"{entry}_pocket.pdb", folder / f"{entry}_ligand.sdf")
        except RuntimeError as error:
            print(f"[{index}/{len(chosen)}] {entry}: skipped ({error})", file=sys.stderr)
            continue
        rows += [{"case": entry, **row} for row in found]
        print(f"[{index}/{len(chosen)}] {entry}: deposited Vina {found[0]['vina']:.2f}, ligfit {found[0]['ligfit']:.2f}", file=sys.stderr)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["case", "pose", "heavy_atoms", "vina", "ligfit"])
        writer.writeheader()
        writer.writerows(rows)
    print(
        f"ligfit interaction score against AutoDock Vina {vina.__version__} (score_only, intermolecular), Meeko {meeko.__version__} receptors"
    )
    print(summarise(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())

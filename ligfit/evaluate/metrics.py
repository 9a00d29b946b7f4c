"""Evaluate one protein–ligand model against its map, and against a reference model when there is one.

:func:`evaluate_model` computes every metric of the EMDataResource ligand challenges for each
ligand and for the whole model, and returns them as plain data (:class:`Evaluation`). The
metrics themselves live in their own modules: :mod:`ligfit.measures.qscore`, :mod:`.correlation`,
:mod:`.reference`, :mod:`.geometry`, :mod:`.clashes`, :mod:`.contacts`, :mod:`.composite`.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import gemmi
import numpy as np
from scipy.spatial import cKDTree

from ligfit import io, maps
from ligfit.checks import check_resolution
from ligfit.errors import BadModelError
from ligfit.evaluate import cell_grid, clashes, composite, contacts, correlation, geometry, model_map, reference
from ligfit.evaluate.cell_grid import CellGrid
from ligfit.evaluate.chemistry import LigandDefinition, ideal_geometry
from ligfit.evaluate.sites import LigandSite, ModelAtoms, ligand_sites, model_atoms
from ligfit.maps import DensityMap, MapSource
from ligfit.measures import qscore
from ligfit.runtime import StageTimer, json_ready

log = logging.getLogger(__name__)

ModelSource = str | os.PathLike | gemmi.Structure

#: Padding (Å) of the box around a ligand for its CCs: phenix.map_box's default cushion.
LIGAND_BOX_CUSHION = 3.0
#: Residues with a heavy atom this close (Å) to the ligand form its pocket.
POCKET_RADIUS = reference.POCKET_RADIUS
#: Fewer model atoms than this fraction inside the map box means model and map do not overlap.
MIN_FRACTION_INSIDE = 0.5


@dataclass(frozen=True)
class Evaluation:
    """Scores of one model: ``model`` (whole-model metrics), ``ligands`` (one dict per ligand), per-residue Q."""

    resolution: float
    expected_q_score: float
    model: dict
    ligands: list[dict]
    residue_q_scores: dict[str, float]
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict:
        """JSON-ready plain data (NaN written as null)."""
        return json_ready(
            {
                "resolution": self.resolution,
                "expected_q_score": self.expected_q_score,
                "model": self.model,
                "ligands": self.ligands,
                "residue_q_scores": self.residue_q_scores,
                "composite_weights": composite.WEIGHTS,
                "notes": self.notes,
                "timings_s": self.timings,
            }
        )

    def table(self) -> str:
        """A readable summary: one line for the model, one block per ligand."""
        m = self.model
        lines = [
            f"model: {m['atoms']} heavy atoms; Q-score {_f(m.get('q_score'))} (expected {self.expected_q_score:.2f} at "
            f"{self.resolution:g} Å); CC_box {_f(m.get('cc_box'))} CC_mask {_f(m.get('cc_mask'))} CC_volume {_f(m.get('cc_volume'))} "
            f"CC_peaks {_f(m.get('cc_peaks'))}; clashscore {_f(m.get('clashscore'), 1)}",
        ]
        header = f"{'ligand':<16}{'Q':>6}{'CCmask':>8}{'CCbox':>7}{'RMSD':>7}{'LDDT-PLI':>9}{'bondZ':>7}{'angZ':>7}{'chir':>5}{'clash':>6}{'score':>7}"
        lines += ["", header, "-" * len(header)]
        for ligand in self.ligands:
            ref = ligand.get("reference") or {}
            geo = ligand.get("geometry") or {}
            lines.append(
                f"{ligand['ligand']:<16}{_f(ligand['q_score']):>6}{_f(ligand['cc_mask']):>8}{_f(ligand['cc_box']):>7}"
                f"{_f(ref.get('rmsd')):>7}{_f(ref.get('lddt_pli')):>9}{_f(geo.get('bond_rmsz'), 1):>7}{_f(geo.get('angle_rmsz'), 1):>7}"
                f"{geo.get('chirality_errors', '-')!s:>5}{ligand['clash_count']:>6}{_f(ligand['composite']):>7}"
            )
        for ligand in self.ligands:
            if ligand["contacts"]:
                kinds = {}
                for contact in ligand["contacts"]:
                    kinds.setdefault(contact["type"], []).append(contact["residue"])
                described = "; ".join(f"{k}: {', '.join(sorted(set(v)))}" for k, v in kinds.items())
                lines.append(f"{ligand['ligand']} contacts — {described}")
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)


def evaluate_model(
    model: ModelSource,
    density_map: MapSource,
    resolution: float,
    *,
    reference_model: ModelSource | None = None,
    ligands: list[str] | set[str] | None = None,
    ligand_definition: LigandDefinition | None = None,
    whole_model: bool = True,
    add_hydrogens: bool = True,
) -> Evaluation:
    """Score every ligand of ``model`` (or those whose residue names are in ``ligands``) against the map.

    ``resolution`` in Å. ``reference_model`` adds RMSD, LDDT-PLI and pocket-backbone scores.
    ``ligand_definition`` (SMILES, SDF/MOL2, ``ccd:CODE`` or RDKit Mol) gives the chemistry the
    geometry is checked against when the residue name is not a CCD code. ``whole_model=False``
    skips the model-wide Q-scores, CCs and clashscore (faster for large models).
    Raises a ``LigfitError`` for bad input.
    """
    resolution = check_resolution(resolution)
    timings: dict[str, float] = {}
    notes: list[str] = []
    clock = StageTimer(timings)
    structure = _load_model(model, notes)
    atoms = model_atoms(structure)
    density = maps.load_map(density_map, atoms.coordinates)
    maps.check_overlap(density, atoms.coordinates, _name(model), MIN_FRACTION_INSIDE)
    cc_grid = _cc_grid(density_map, density)
    names = set(ligands) if ligands else None
    sites = _ligand_sites(atoms, names, model)
    clock.lap("load")

    expected_q = qscore.expected_q_score(resolution)
    scored = np.arange(len(atoms)) if whole_model else _near(atoms, sites, POCKET_RADIUS + 2.0)
    per_atom_q = np.full(len(atoms), np.nan)
    per_atom_q[scored] = qscore.q_scores(density, atoms.coordinates, scored)
    clock.lap("q_score")

    model_summary = {"atoms": len(atoms), "residues": int(atoms.residue_index.max() + 1)}
    polymer = atoms.kind == "polymer"
    model_summary["q_score"] = _nanmean(per_atom_q[polymer]) if whole_model else math.nan
    if whole_model:
        model_summary.update(_phenix_ccs(cc_grid, atoms, np.arange(len(atoms)), resolution))
    clock.lap("cc")

    clash_atoms = atoms if whole_model else atoms.select(_mask(len(atoms), _near(atoms, sites, 10.0)))
    clash_report = clashes.clashscore(clash_atoms, add_hydrogens=add_hydrogens)
    if whole_model:
        model_summary["clashscore"] = clash_report.clashscore
    model_summary["hydrogens"] = clash_report.hydrogens
    clock.lap("clashes")

    ligand_results = [
        _ligand_metrics(site, atoms, cc_grid, per_atom_q, clash_report, resolution, ligand_definition, notes) for site in sites
    ]
    clock.lap("ligands")
    if reference_model is not None:
        _compare_with_reference(ligand_results, sites, atoms, reference_model, names, model_summary, notes)
        clock.lap("reference")
    for result in ligand_results:
        terms = composite.composite_terms(result, expected_q)
        result["composite"], result["composite_uses"] = composite.composite_score(terms)
        result["composite_terms"] = terms
    residue_q = qscore.residue_q_scores(per_atom_q[scored], atoms.residue_keys[scored])
    return Evaluation(resolution, expected_q, model_summary, ligand_results, residue_q, notes, timings)


def _ligand_metrics(
    site: LigandSite,
    atoms: ModelAtoms,
    cc_grid: CellGrid,
    per_atom_q: np.ndarray,
    clash_report: clashes.ClashReport,
    resolution: float,
    definition: LigandDefinition | None,
    notes: list[str],
) -> dict:
    atom_q = per_atom_q[site.atom_indices]
    ideal = ideal_geometry(site, definition)
    geometry_report = geometry.ligand_geometry(site, ideal.coordinates, ideal.source, ideal.torsions) if ideal is not None else None
    if ideal is None:
        notes.append(f"{site.label}: no ideal geometry (not in the CCD and bond orders not perceivable); give --ligand-definition")
    occupancy = float(site.occupancies.mean())
    if occupancy < 1.0:
        notes.append(f"{site.label}: mean occupancy {occupancy:.2f}; Q-scores and CCs are computed as for a full atom")
    ligand_clashes = clash_report.involving(site.label)
    result = {
        "ligand": site.label,
        "residue_name": site.residue_name,
        "heavy_atoms": len(site),
        "occupancy": occupancy,
        "bonds_from": site.bonds_from,
        "q_score": _nanmean(atom_q),
        **_ligand_ccs(site, atoms, cc_grid, resolution),
        "geometry": geometry_report.summary() if geometry_report else None,
        "clash_count": len(ligand_clashes),
        "clashes": ligand_clashes,
        "contacts": contacts.protein_ligand_contacts(site, atoms, geometry.aromatic_rings(site, ideal.coordinates if ideal else None)),
        "pocket": _pocket(site, atoms, per_atom_q),
        "atom_names": list(site.atom_names),
        "elements": list(site.elements),
        "coordinates": np.round(site.coordinates, 3).tolist(),
        "bonds": site.bonds.tolist(),
        "atom_q_scores": atom_q.tolist(),
    }
    return result


def _cc_grid(source: MapSource, density: DensityMap) -> CellGrid:
    """The grid the CCs are computed on, as Phenix: a crystallographic map's own grid (the part stored), else the map's."""
    region = maps.read_cell_region(source)
    return cell_grid.from_cell_region(region) if region is not None else cell_grid.from_density_map(density)


def _ligand_ccs(site: LigandSite, atoms: ModelAtoms, grid: CellGrid, resolution: float) -> dict[str, float]:
    """The four Phenix CCs of the ligand as its own model, in the box phenix.map_box cuts around it (3 Å cushion)."""
    region = correlation.map_box(grid, site.coordinates, LIGAND_BOX_CUSHION)
    return _phenix_ccs(region, atoms, site.atom_indices, resolution)


def _phenix_ccs(region: CellGrid, atoms: ModelAtoms, rows: np.ndarray, resolution: float) -> dict[str, float]:
    """CC_box, CC_mask, CC_volume and CC_peaks of the atoms ``rows`` in ``region``, as phenix.map_model_cc computes them.

    The model map is the Fcalc synthesis to the map's resolution and the mask mmtbx's, both in
    ``region``'s box taken as a periodic unit cell.
    """
    coordinates = atoms.coordinates[rows]
    calculated = model_map.fcalc_map(region, coordinates, atoms.elements[rows], atoms.b_factors[rows], atoms.occupancies[rows], resolution)
    mask = correlation.molecular_mask(region, coordinates, correlation.vdw_radii(atoms.elements[rows]), periodic=True)
    return correlation.five_cc(region.values, calculated, mask)


def _pocket(site: LigandSite, atoms: ModelAtoms, per_atom_q: np.ndarray) -> dict[str, float]:
    """Mean Q-score of each residue within the pocket radius of the ligand."""
    polymer = np.flatnonzero(atoms.kind == "polymer")
    distance = cKDTree(site.coordinates).query(atoms.coordinates[polymer])[0]
    rows = polymer[distance < POCKET_RADIUS]
    return {str(key): _nanmean(per_atom_q[rows][atoms.residue_keys[rows] == key]) for key in dict.fromkeys(atoms.residue_keys[rows])}


def _compare_with_reference(
    results: list[dict],
    sites: list[LigandSite],
    atoms: ModelAtoms,
    reference_model: ModelSource,
    names: set[str] | None,
    model_summary: dict,
    notes: list[str],
) -> None:
    reference_structure = _load_model(reference_model, notes, role="reference")
    reference_atoms = model_atoms(reference_structure)
    reference_sites = ligand_sites(reference_atoms, names)
    pairs, unpaired = reference.pair_ligands(sites, reference_sites)
    model_index, reference_index, numbering = reference.matched_polymer_atoms(atoms, reference_atoms)
    model_summary["reference_numbering"] = numbering
    model_summary["reference_polymer_atoms_paired"] = len(model_index)
    if len(model_index) == 0:
        notes.append(
            "no protein atom of the model pairs with the reference (chain names and numbering differ); LDDT-PLI and pocket scores are empty"
        )
    by_label = {r["ligand"]: r for r in results}
    for pair in pairs:
        reference_contacts = contacts.protein_ligand_contacts(
            pair.reference, reference_atoms, geometry.aromatic_rings(pair.reference, None)
        )
        model_result = by_label[pair.model.label]
        model_result["reference"] = {
            "ligand": pair.reference.label,
            "rmsd": pair.rmsd,
            **reference.lddt_pli(pair, atoms, reference_atoms, model_index, reference_index),
            **reference.pocket_backbone(pair, atoms, reference_atoms, model_index, reference_index),
            "contact_recovery": contacts.contact_recovery(model_result["contacts"], reference_contacts),
        }
    for site in unpaired:
        same_name = [s.label for s in reference_sites if s.residue_name == site.residue_name]
        reason = (
            f"the reference's {', '.join(same_name)} has other atoms or bonds"
            if same_name
            else "no ligand with this chemistry in the reference"
        )
        if reference_sites and len(sites) > len(reference_sites) and not same_name:
            reason = "no ligand with this chemistry in the reference"
        by_label[site.label]["reference"] = {"status": reason}
        notes.append(f"{site.label}: not compared with the reference: {reason}")


# --------------------------------------------------------------------------- inputs


def _read_raw(source: ModelSource, role: str) -> gemmi.Structure:
    """The structure as in the file (alternate conformations and hydrogens kept)."""
    if isinstance(source, gemmi.Structure):
        return source
    path = Path(source)
    if not path.is_file():
        raise BadModelError(f"{path}: no such {role} file; check the path")
    try:
        return gemmi.read_structure(str(path))
    except (RuntimeError, ValueError) as error:
        raise BadModelError(f"{path}: not a readable PDB/mmCIF {role} ({error})") from None


def _load_model(source: ModelSource, notes: list[str], role: str = "model") -> gemmi.Structure:
    """Read a model, noting alternate conformations (the first is kept); hydrogens are ignored later."""
    raw = _read_raw(source, role)
    if len(raw) and any(atom.altloc != "\0" for chain in raw[0] for residue in chain for atom in residue):
        notes.append(f"{role} has alternate conformations: the first of each is scored")
    return io.read_structure(raw)


def load_inputs(model: ModelSource, density_map: MapSource) -> tuple[gemmi.Structure, DensityMap]:
    """The model as read (alternate conformations kept, for :func:`evaluate_model` to note) and its map."""
    raw = _read_raw(model, "model")
    return raw, maps.load_map(density_map, model_atoms(io.read_structure(raw)).coordinates)


def _ligand_sites(atoms: ModelAtoms, names: set[str] | None, model: ModelSource) -> list[LigandSite]:
    sites = ligand_sites(atoms, names)
    if not sites:
        present = sorted(set(atoms.residue_names[atoms.kind == "ligand"].tolist()))
        if names:
            raise BadModelError(
                f"model {_name(model)} has no ligand named {', '.join(sorted(names))}; its ligand residues are: {', '.join(present) or 'none'}"
            )
        raise BadModelError(
            f"model {_name(model)} has no ligand (a non-polymer, non-water residue with at least 2 heavy atoms)"
            + (f"; single-atom residues present: {', '.join(present)} (name one with --ligand to score it)" if present else "")
        )
    return sites


def _name(source: object) -> str:
    if isinstance(source, gemmi.Structure):
        return source.name or "(in memory)"
    if isinstance(source, DensityMap | tuple):
        return "(in memory)"
    return str(source)


# --------------------------------------------------------------------------- helpers


def _near(atoms: ModelAtoms, sites: list[LigandSite], radius: float) -> np.ndarray:
    """Indices of the atoms within ``radius`` Å of any ligand, and of whole residues they belong to."""
    ligand_xyz = np.concatenate([s.coordinates for s in sites])
    close = cKDTree(ligand_xyz).query(atoms.coordinates)[0] < radius
    return np.flatnonzero(np.isin(atoms.residue_index, atoms.residue_index[close]))


def _mask(count: int, rows: np.ndarray) -> np.ndarray:
    mask = np.zeros(count, dtype=bool)
    mask[rows] = True
    return mask


def _nanmean(values: np.ndarray) -> float:
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    return float(values.mean()) if len(values) else math.nan


def _f(value: object, digits: int = 2) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) and math.isfinite(value) else "-"

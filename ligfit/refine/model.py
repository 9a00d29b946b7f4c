"""Refine the ligands already in a model (``ligfit refine``): find each copy, refine it with its pocket, put it back."""

from __future__ import annotations

from dataclasses import dataclass

import gemmi
import numpy as np

from ligfit.errors import BadModelError
from ligfit.ligand import Ligand
from ligfit.maps import DensityMap
from ligfit.refine.options import RefinementOptions
from ligfit.refine.parameters import LigandParameterCache
from ligfit.refine.posing import pose_from_residue
from ligfit.refine.protocol import RefinementResult, refine
from ligfit.runtime import Progress, no_progress


@dataclass(frozen=True)
class ModelRefinement:
    """The model with every copy of the ligand refined in place, and one result per copy (model order)."""

    model: gemmi.Structure
    results: tuple[RefinementResult, ...]
    residues: tuple[str, ...]  # "chain:number" of each copy

    def summary(self) -> dict:
        return {"copies": [{"residue": label, **result.summary()} for label, result in zip(self.residues, self.results)]}


def refine_model(
    model: gemmi.Structure,
    ligand: Ligand,
    density: DensityMap,
    resolution: float,
    *,
    ligand_name: str = "LIG",
    options: RefinementOptions | None = None,
    cache: LigandParameterCache | None = None,
    progress: Progress = no_progress,
) -> ModelRefinement:
    """Refine each residue named ``ligand_name`` in ``model`` (its chemistry from ``ligand``) into ``density``.

    Copies are refined one after another, each with its pocket; the refined pocket of one is
    the starting model of the next (the other copies are left out of each refinement). Residue
    names, numbers and chains are kept.
    """
    if cache is None:  # not `cache or …`: an empty cache is falsy, and the caller's would be dropped
        cache = LigandParameterCache(method=(options or RefinementOptions()).ligand_force_field)
    copies = [(chain.name, residue.seqid) for chain in model[0] for residue in chain if residue.name == ligand_name]
    if not copies:
        names = sorted({residue.name for chain in model[0] for residue in chain if residue.het_flag == "H"})
        raise BadModelError(
            f"no residue named {ligand_name!r} in the model (hetero residues: {', '.join(names) or 'none'}); use --ligand-name"
        )
    refined = model.clone()
    results, labels = [], []
    for number, (chain_name, seqid) in enumerate(copies):
        progress(f"refining {ligand_name} {chain_name}:{seqid.num} ({number + 1} of {len(copies)})")
        residue = _residue(refined, chain_name, seqid)
        pose = pose_from_residue(ligand, residue)
        protein = _without(refined, ligand_name)
        result = refine(protein, ligand, [pose], density, resolution, options=options, cache=cache)
        refined = _merge(refined, result.model, ligand_name)
        _place(_residue(refined, chain_name, seqid), ligand, pose, result.coordinates)
        results.append(result)
        labels.append(f"{chain_name}:{seqid.num}{seqid.icode.strip()}")
    return ModelRefinement(refined, tuple(results), tuple(labels))


def _residue(structure: gemmi.Structure, chain_name: str, seqid: gemmi.SeqId) -> gemmi.Residue:
    return structure[0][chain_name][str(seqid.num) + seqid.icode.strip()][0]


def _without(structure: gemmi.Structure, ligand_name: str) -> gemmi.Structure:
    copy = structure.clone()
    for chain in copy[0]:
        for index in reversed(range(len(chain))):
            if chain[index].name == ligand_name:
                del chain[index]
    return copy


def _merge(with_ligands: gemmi.Structure, protein: gemmi.Structure | None, ligand_name: str) -> gemmi.Structure:
    """``with_ligands`` with every other residue's atoms at their positions in ``protein`` (same residues, ligands removed)."""
    merged = with_ligands.clone()
    if protein is None:
        return merged
    for chain, refined_chain in zip(merged[0], protein[0]):
        residues = [residue for residue in chain if residue.name != ligand_name]
        for residue, refined_residue in zip(residues, refined_chain):
            positions = {atom.name: atom.pos for atom in refined_residue}
            for atom in residue:
                if atom.name in positions:
                    atom.pos = positions[atom.name]
    return merged


def _place(residue: gemmi.Residue, ligand: Ligand, pose: np.ndarray, refined: np.ndarray) -> None:
    """Move each heavy atom of ``residue`` to its refined position (matched through the pose built from it).

    Hydrogens the residue had are removed: they would be left where the ligand used to be.
    """
    heavy_pose = pose[: ligand.heavy_atom_count]
    for index in reversed(range(len(residue))):
        if residue[index].is_hydrogen():
            del residue[index]
    for atom in residue:
        index = int(np.argmin(np.linalg.norm(heavy_pose - np.array(atom.pos.tolist()), axis=1)))
        atom.pos = gemmi.Position(*map(float, refined[index]))

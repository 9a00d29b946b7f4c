"""Unmodelled loops built through the density (ligfit.trace.loops), on the shipped Tyk2 example (no shared data needed)."""

from __future__ import annotations

import dataclasses

import gemmi
import numpy as np
import pytest
from rdkit import Chem
from tyk2_example import EXAMPLE, FAST_BUILD, SMILES

from benchmarks.ligand_placement import ligand_rmsd
from ligfit import io, maps, segment
from ligfit.dock import DockingOptions
from ligfit.ligand import heavy_atom_mol
from ligfit.pipeline import BuildOptions, run_build
from ligfit.trace.loops import build_missing_loops

LOOP = range(139, 143)  # the catalytic loop under the ligand (R139, N140, L142 within 3.2–3.9 Å of it)


def _without(structure: gemmi.Structure, numbers: range) -> gemmi.Structure:
    cut = structure.clone()
    for chain in cut[0]:
        for index in reversed(range(len(chain))):
            if chain[index].seqid.num in numbers:
                del chain[index]
    cut.setup_entities()
    return cut


def _ca(structure: gemmi.Structure, numbers) -> np.ndarray:
    return np.array([r.find_atom("CA", "*").pos.tolist() for chain in structure[0] for r in chain if r.seqid.num in numbers])


@pytest.fixture(scope="module")
def example():
    density = maps.read_map(EXAMPLE / "map.mrc")
    protein = io.read_structure(EXAMPLE / "protein.pdb")
    return density, protein


def test_a_loop_left_out_of_the_model_is_built_where_the_map_has_it(example):
    density, protein = example
    model = _without(protein, LOOP)
    difference = segment.difference_map(density, model, 3.0)
    result = build_missing_loops(model, difference.difference)
    assert [(loop.chain, loop.after, loop.before) for loop in result.built] == [("A", LOOP[0] - 1, LOOP[-1] + 1)]
    loop = result.built[0]
    built = np.array([[xyz for name, _, xyz in atoms if name == "CA"][0] for atoms in loop.atoms])
    deviation = np.linalg.norm(built - _ca(protein, LOOP), axis=1)
    assert deviation.max() < 1.5, deviation
    assert loop.density > 2.5
    residues = [r for r in result.structure[0]["A"] if r.seqid.num in LOOP]
    assert [r.name for r in residues] == ["UNK"] * 4  # the PDB file has no sequence: backbone and Cβ of unknown residues
    assert {a.name for a in residues[0]} == {"N", "CA", "C", "O", "CB"}
    # bonded into the chain: no open backbone end is left at the gap
    assert not [site for site in segment.attachments(result.structure) if site.gap == f"A:{LOOP[0] - 1}-{LOOP[-1] + 1}"]
    assert [site for site in segment.attachments(model) if site.gap == f"A:{LOOP[0] - 1}-{LOOP[-1] + 1}"]


def test_a_loop_the_map_does_not_hold_stays_a_gap(example):
    density, protein = example
    model = _without(protein, LOOP)
    without_loop = maps.simulate(model, 3.0, like=density)
    noise = maps.add_noise(without_loop, 3.0, 0.2 * float(without_loop.interpolate(io.heavy_atoms(model).coordinates).mean()), 3)
    difference = segment.difference_map(noise, model, 3.0)
    result = build_missing_loops(model, difference.difference)
    assert not result.built
    assert len(result.open_gaps) == 1 and "σ" in result.open_gaps[0]
    assert result.structure is model


def _with_sequence(model: gemmi.Structure, protein: gemmi.Structure) -> gemmi.Structure:
    """``model`` carrying chain A's whole sequence, as a deposited mmCIF's entity_poly_seq does."""
    model = model.clone()
    model.entities[0].full_sequence = [r.name for r in protein[0]["A"]]
    first = protein[0]["A"][0].seqid.num
    for residue in model[0]["A"]:
        residue.label_seq = residue.seqid.num - first + 1
    return model


def test_the_sequence_names_the_built_residues(example):
    density, protein = example
    names = [r.name for r in protein[0]["A"] if r.seqid.num in LOOP]
    model = _with_sequence(_without(protein, LOOP), protein)
    difference = segment.difference_map(density, model, 3.0)
    result = build_missing_loops(model, difference.difference)
    assert result.built[0].names == names


def test_with_the_sequence_the_built_loops_side_chains_explain_their_density(example):
    """Named by the sequence, the built loop's side chains are completed into the map: their density leaves the ligand's
    blob, which then matches the ligand, and build's small search places it (without them it finds nothing there)."""
    density, protein = example
    model = _with_sequence(_without(protein, LOOP), protein)
    result = run_build(density, SMILES, model, FAST_BUILD)
    assert result.inputs["truncated_side_chains"]["loop_side_chains"] == ["A139 ARG", "A140 ASN", "A141 VAL", "A142 LEU"]
    side_chains = np.array(
        [a.pos.tolist() for r in protein[0]["A"] if r.seqid.num in LOOP for a in r if a.name not in ("N", "CA", "C", "O", "CB")]
    )
    assert float(result.difference.difference.interpolate(side_chains).mean()) < 2.5  # 4.8 σ with the side chains left out
    ligand_blob = result.blobs[0]
    assert ligand_blob.ligand_match > 0.85 and not ligand_blob.explanation  # 0.67 with them in it
    reference = Chem.MolFromMolFile(str(EXAMPLE / "reference_ligand.sdf"))
    assert result.found and ligand_rmsd(heavy_atom_mol(result.ligand, result.placements[0].coordinates), reference) < 2.0
    # the side chains explain density only: the model written out is the user's, without the loop
    assert result.model is not None and not [r for r in result.model[0]["A"] if r.seqid.num in LOOP]
    unnamed = run_build(density, SMILES, _without(protein, LOOP), FAST_BUILD)
    assert "loop_side_chains" not in unnamed.inputs["truncated_side_chains"]


def test_build_explains_the_loop_and_places_the_ligand_beside_it(example, tmp_path):
    density, protein = example
    model = _without(protein, LOOP)
    reference = Chem.MolFromMolFile(str(EXAMPLE / "reference_ligand.sdf"))
    # build's own docking search: the loop's side chains (not built) share the ligand's blob, which the small search misses
    options = dataclasses.replace(FAST_BUILD, docking=DockingOptions())
    result = run_build(density, SMILES, model, options)
    built = result.inputs["missing_loops"]["built"]
    assert len(built) == 1 and built[0].startswith(f"A:{LOOP[0]}-{LOOP[-1]} (4 residues, ")
    assert result.found
    assert ligand_rmsd(heavy_atom_mol(result.ligand, result.placements[0].coordinates), reference) < 2.0
    folder = result.write(tmp_path / "out")
    assert f"A:{LOOP[0]}-{LOOP[-1]} (4 residues" in (folder / "report.html").read_text()
    # the loop explains density only: the model written out is the user's, without it
    assert result.model is not None and not [r for r in result.model[0]["A"] if r.seqid.num in LOOP]
    off = run_build(density, SMILES, model, dataclasses.replace(FAST_BUILD, build_loops=False))
    assert "missing_loops" not in off.inputs


def test_a_ligand_merged_with_the_unmodelled_loop_is_placed_once_the_loop_is_built(data):
    """7OMJ's GCP at 3.5 Å (realistic maps, seed 5): with the loop a gap its density and the ligand's are one blob,
    marked as unmodelled protein; built, the loop is subtracted and the ligand placed."""
    from benchmarks.realistic_cases import realistic_case

    case, record = realistic_case(data, "7OMJ_GCP", 3.5, seed=5)
    options = BuildOptions(resolution=3.5, refine=False)  # build's own search (the docked pose: refinement is not the point)
    gap = run_build(case.density, case.smiles, case.model, dataclasses.replace(options, build_loops=False))
    assert not gap.found
    built = run_build(case.density, case.smiles, case.model, options)
    first, last = record["loop"].split(",")[0], record["loop"].split(",")[-1]
    assert built.inputs["missing_loops"]["built"][0].startswith(f"A:{first[1:]}-{last[1:]} (4 residues")
    assert built.found and ligand_rmsd(heavy_atom_mol(built.ligand, built.placements[0].coordinates), case.reference) < 2.0

"""Uncertain traced fragments compete with the ligand: the classifier, the search model without them, their removal."""

from __future__ import annotations

import gemmi
import numpy as np
import pytest
from scipy.spatial import cKDTree

from ligfit import io, maps
from ligfit.backbone.data import residue_table
from ligfit.backbone.infer import load_network, predict
from ligfit.trace import (
    COMPETING_TRACE,
    FRAGMENT_TRACE,
    displaced_residues,
    residue_keys,
    search_model,
    trace_predictions,
    uncertain_chains,
    uncertain_residues,
    without_residues,
)
from ligfit.trace.model import BACKBONE_AND_CB, contact_model, unestablished_residues

CHAIN9 = "em/maps_with_models/EMD-2566_3J6B_chain9"
HAEMOGLOBIN = "em/maps_with_models/EMD-3488_5ME2_hemoglobin/5ni1_updated.cif"


@pytest.fixture(scope="module")
def chain9_traces(data):
    """The real 3.2 Å crop of 3J6B chain 9 (EMD-2566) traced for build, with and without competing fragments."""
    density = maps.read_map(data / CHAIN9 / "emd_2566_3J6B_chain9_crop.mrc")
    reference = residue_table(io.read_structure(data / CHAIN9 / "3J6B_chain9.pdb"))
    predictions = predict(density, load_network())
    plain = trace_predictions(predictions, [reference.sequence], options=FRAGMENT_TRACE)
    competing = trace_predictions(predictions, [reference.sequence], options=COMPETING_TRACE)
    return reference, plain, competing


def test_each_fragment_says_what_placed_its_sequence(chain9_traces):
    _, plain, competing = chain9_traces
    evidence = [chain.evidence for chain in competing.chains]
    assert set(evidence) <= {"hmm", "register", "dp", "none"} and "hmm" in evidence
    assert all(chain.sequence_positions is not None for chain in competing.chains if chain.evidence != "none")
    # compete_below changes only which residues are uncertain, not the trace
    assert [len(c.ca) for c in plain.chains] == [len(c.ca) for c in competing.chains]
    assert not uncertain_chains(plain).any() and not uncertain_residues(plain)


def test_uncertain_fragments_are_short_unexplained_ones_and_leave_the_search_model(chain9_traces):
    reference, _, competing = chain9_traces
    flags = uncertain_chains(competing)
    assert flags.any() and not flags.all()
    assert all(len(c.ca) < COMPETING_TRACE.compete_below and c.evidence in ("dp", "none") for c, f in zip(competing.chains, flags) if f)
    # Measured on real data: how many Cα of each class lie within 2 Å of a deposited Cα.
    tree = cKDTree(reference.ca)
    true = [float(np.mean(tree.query(c.ca)[0] < 2.0)) for c in competing.chains]
    confident = np.average([t for t, f in zip(true, flags) if not f], weights=[len(c.ca) for c, f in zip(competing.chains, flags) if not f])
    assert confident > 0.75, confident  # measured 0.82; the uncertain residues 0.76 (68 of 182 residues, 23 of 38 chains)
    # The search model leaves out exactly the uncertain residues; keys match the model's residues.
    keys = residue_keys(competing.chains)
    model_keys = {(ch.name, r.seqid.num, r.seqid.icode) for ch in competing.structure[0] for r in ch}
    assert {key for chain in keys for key in chain} == model_keys and sum(map(len, keys)) == len(model_keys)
    uncertain = uncertain_residues(competing)
    searched = search_model(competing, leave_out=uncertain)
    left = {(ch.name, r.seqid.num, r.seqid.icode) for ch in searched[0] for r in ch}
    assert left == model_keys - uncertain
    assert sum(len(c.ca) for c, f in zip(competing.chains, flags) if f) == len(uncertain)


def test_the_contact_model_guesses_no_side_chain_the_sequence_did_not_establish(chain9_traces):
    # Docking's contacts and clashes: residues of chains threaded only by the DP fill (or not at all) stop at Cβ,
    # residues a significant alignment placed keep their fitted side chains.
    _, _, competing = chain9_traces
    uncertain = uncertain_residues(competing)
    contacts = contact_model(competing, leave_out=uncertain)
    weak = unestablished_residues(competing)
    assert weak and weak != {key for keys in residue_keys(competing.chains) for key in keys}
    beyond_cb = {(ch.name, r.seqid.num, r.seqid.icode): sum(a.name not in BACKBONE_AND_CB for a in r) for ch in contacts[0] for r in ch}
    assert all(beyond_cb[key] == 0 for key in weak if key in beyond_cb)
    assert sum(count for key, count in beyond_cb.items() if key not in weak) > 100
    assert not uncertain & set(beyond_cb)  # the uncertain residues are left out altogether


@pytest.fixture(scope="module")
def haemoglobin(data):
    structure = io.read_structure(data / HAEMOGLOBIN)
    heme = next(r for ch in structure[0] for r in ch if r.name == "HEM")
    heme_xyz = np.array([a.pos.tolist() for a in heme if not a.is_hydrogen()])
    heme_elements = [a.element.name for a in heme if not a.is_hydrogen()]
    protein = io.read_structure(data / HAEMOGLOBIN)
    protein.remove_ligands_and_waters()
    return protein, heme_xyz, heme_elements


def test_a_placed_ligand_displaces_only_the_uncertain_residues_it_overlaps(haemoglobin):
    protein, heme_xyz, elements = haemoglobin
    # A wrong fragment through the heme: three real residues of chain B moved onto the heme's centre, as a chain of their own.
    moved = [protein[0]["B"][k].clone() for k in range(50, 53)]
    shift = gemmi.Position(*(heme_xyz.mean(axis=0) - np.mean([a.pos.tolist() for r in moved for a in r], axis=0)))
    model = protein.clone()
    model[0].add_chain(gemmi.Chain("Z"))
    chain = model[0]["Z"]
    for residue in moved:
        for atom in residue:
            atom.pos = atom.pos + shift
        chain.add_residue(residue)
    wrong = {(chain.name, r.seqid.num, r.seqid.icode) for r in chain}
    heme_chain = protein[0][0].name
    near_heme = {(heme_chain, r.seqid.num, r.seqid.icode) for r in protein[0][0] if r.name == "HIS"}  # the proximal and distal His
    far = {(heme_chain, protein[0][0][0].seqid.num, protein[0][0][0].seqid.icode)}
    # Uncertain: the fragment, the histidines beside the heme (one binds its iron), a residue far away.
    removed = displaced_residues(model, wrong | near_heme | far, heme_xyz, elements)
    assert removed == wrong  # measured: the three moved residues, nothing that only coordinates the iron or lies away
    assert not displaced_residues(model, near_heme | far, heme_xyz, elements)
    assert not displaced_residues(model, set(), heme_xyz, elements)  # a given model: nothing is uncertain
    kept = without_residues(model, removed)
    assert sum(len(c) for c in kept[0]) == sum(len(c) for c in model[0]) - 3
    assert all(c.name != chain.name for c in kept[0])  # the emptied chain is gone

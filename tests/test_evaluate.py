"""The evaluation harness: each metric against a hand-checkable case, an independent implementation, and real maps."""

from __future__ import annotations

import csv
import json
import math

import gemmi
import numpy as np
import pytest
from rdkit import Chem

from ligfit import io, maps
from ligfit.errors import BadModelError
from ligfit.evaluate import composite, contacts, correlation, geometry, reference
from ligfit.evaluate.challenge import read_submissions, run_challenge
from ligfit.evaluate.chemistry import ideal_geometry
from ligfit.evaluate.clashes import clashscore
from ligfit.evaluate.errors import BadSubmissionsError
from ligfit.evaluate.metrics import evaluate_model
from ligfit.evaluate.sites import ligand_sites, model_atoms, site_from_mol
from ligfit.maps import DensityMap
from ligfit.measures import qscore

HEMOGLOBIN = "em/maps_with_models/EMD-3488_5ME2_hemoglobin"
APOFERRITIN = "em/maps_with_models/EMD-20026_apoferritin_crop"


# --------------------------------------------------------------------------- shared real data


@pytest.fixture(scope="module")
def hemoglobin_evaluation(data):
    """5ME2 scored against EMD-3488 (3.2 Å) with the independently built 5NI1 as reference."""
    folder = data / HEMOGLOBIN
    return evaluate_model(folder / "5me2.pdb", folder / "emd_3488.mrc", 3.2, reference_model=folder / "5ni1_updated.cif")


def _structure_with_ligand(data, entry: str, shift: np.ndarray | None = None) -> tuple[gemmi.Structure, Chem.Mol]:
    folder = data / "complexes" / entry
    pocket = io.read_structure(folder / f"{entry}_pocket.pdb")
    mol = Chem.MolFromMolFile(str(folder / f"{entry}_ligand.sdf"))
    xyz = mol.GetConformer().GetPositions() + (0 if shift is None else shift)
    names = [f"{a.GetSymbol()}{a.GetIdx() + 1}" for a in mol.GetAtoms()]
    return io.add_ligand(pocket, [a.GetSymbol() for a in mol.GetAtoms()], names, xyz, residue_name=entry.split("_")[1]), mol


# --------------------------------------------------------------------------- Q-score


def _mapq_sphere_points(centre: np.ndarray, radius: float, n: int) -> list[np.ndarray]:
    """MapQ's SpherePts, loop by loop."""
    thetas, phis = [], []
    for k in range(1, n + 1):
        h = -1.0 + 2.0 * (k - 1) / (n - 1)
        phis.append(math.acos(h))
        thetas.append(0 if k in (1, n) else (thetas[k - 2] + 3.6 / math.sqrt(n * (1.0 - h**2))) % (2 * math.pi))
    return [centre + radius * np.array([math.sin(p) * math.cos(t), math.sin(p) * math.sin(t), math.cos(p)]) for t, p in zip(thetas, phis)]


def _mapq_reference(density: DensityMap, coordinates: np.ndarray, atom: int) -> float:
    """MapQ's Qscore() for one atom, transliterated loop by loop (gregdp/mapq qscores.py)."""
    sphere_points = _mapq_sphere_points
    values = density.values
    mean, std = values.mean(), values.std()
    high, low = min(mean + 10 * std, values.max()), max(mean - std, values.min())
    a, b = high - low, low
    d_vals = [float(density.interpolate(coordinates[atom])[0])] * 8
    g_vals = [a + b] * 8
    radius = 0.1
    while radius < 2.0 + 0.01:
        for attempt in range(100):
            kept = [
                p
                for p in sphere_points(coordinates[atom], radius, 8 + attempt * 2)
                if np.min(np.linalg.norm(coordinates - p, axis=1)) >= 0.9 * radius
            ]
            if len(kept) >= 8 or attempt >= 95:
                break
        for p in kept:
            d_vals.append(float(density.interpolate(p)[0]))
            g_vals.append(a * math.exp(-0.5 * (radius / 0.6) ** 2) + b)
        radius += 0.1
    return float(np.corrcoef(d_vals, g_vals)[0, 1])


def test_spiral_points_are_mapq_sphere_points():
    for n in (8, 10, 31, 198):
        np.testing.assert_allclose(qscore.spiral_directions(n), _mapq_sphere_points(np.zeros(3), 1.0, n), atol=1e-12)
    directions = qscore.spiral_directions(12)
    separation = np.linalg.norm(directions[:, None] - directions[None], axis=-1) + 10 * np.eye(12)
    assert separation.min() > 0.55  # spread over the sphere, not bunched


def test_q_score_matches_a_loop_by_loop_transliteration_of_mapq(hemoglobin):
    """The vectorised shells and exclusion give MapQ's per-atom Q on the real 3.2 Å map."""
    density, structure = hemoglobin
    atoms = io.heavy_atoms(structure, exclude_residues=set())
    heme = np.flatnonzero(atoms.residue_name == "HEM")[:6]
    packed = np.flatnonzero(atoms.residue_name == "TRP")[:4]  # buried ring atoms need many retries
    chosen = np.concatenate([heme, packed])
    ours = qscore.q_scores(density, atoms.coordinates, chosen)
    mapq = [_mapq_reference(density, atoms.coordinates, i) for i in chosen]
    np.testing.assert_allclose(ours, mapq, atol=1e-6)


def test_q_score_of_an_ideal_gaussian_atom_is_one_and_of_noise_near_zero():
    """An isolated atom drawn as the reference Gaussian itself has Q = 1; in pure noise Q ≈ 0."""
    grid = DensityMap(np.zeros((60, 60, 60), np.float32), 0.25, -7.5)
    points = grid.grid_points()
    atoms = np.array([[0.0, 0.0, 0.0], [3.5, 0.5, -0.5]])
    distance_sq = ((points[..., None, :] - atoms) ** 2).sum(-1)
    ideal = grid.with_values(np.exp(-distance_sq / (2 * 0.6**2)).sum(-1))
    assert qscore.q_scores(ideal, atoms) == pytest.approx([1.0, 1.0], abs=0.01)
    noise = grid.with_values(np.random.default_rng(0).standard_normal(grid.shape))
    assert np.abs(qscore.q_scores(noise, atoms)).max() < 0.35
    displaced = qscore.q_scores(ideal, atoms + [1.0, 0, 0])
    assert displaced.max() < 0.6


def test_q_score_follows_mapq_resolution_trend_on_real_maps(data):
    """Apoferritin at 1.75 Å and haemoglobin at 3.2 Å: mean protein Q within 0.1 of Q = −0.178·d + 1.119."""
    measured = {}
    for folder, map_name, model_name, resolution in [
        (APOFERRITIN, "emd20026_prot.mrc", "3ajo_fitted_refined.pdb", 1.75),
        (HEMOGLOBIN, "emd_3488.mrc", "5me2.pdb", 3.2),
    ]:
        density = maps.read_map(data / folder / map_name)
        atoms = model_atoms(io.read_structure(data / folder / model_name))
        per_atom = qscore.q_scores(density, atoms.coordinates)
        measured[resolution] = float(np.nanmean(per_atom[atoms.kind == "polymer"]))
        assert measured[resolution] == pytest.approx(qscore.expected_q_score(resolution), abs=0.1)
    assert measured[1.75] - measured[3.2] == pytest.approx(0.178 * (3.2 - 1.75), abs=0.1)


# --------------------------------------------------------------------------- map-model CCs


def _brute_force_ccs(observed: np.ndarray, calculated: np.ndarray, grid: DensityMap, coordinates: np.ndarray, radii: np.ndarray):
    """Phenix's definitions with every distance computed explicitly (no stamping, no distance transform)."""
    points = grid.grid_points().reshape(-1, 3)
    distance = np.linalg.norm(points[:, None] - coordinates[None], axis=-1)
    protein = (distance <= radii + 1.1).any(axis=1)
    solvent = points[~protein]
    depth = np.linalg.norm(points[protein][:, None] - solvent[None], axis=-1).min(axis=1)
    mask = protein.copy()
    mask[np.flatnonzero(protein)[depth <= 0.9]] = False
    x, y = observed.ravel(), calculated.ravel()
    n = int(mask.sum())
    volume = y >= np.sort(y)[::-1][n]
    peaks = volume | (x >= np.sort(x)[::-1][n])
    cc = lambda sel: float(np.corrcoef(x[sel], y[sel])[0, 1])  # noqa: E731
    return {"cc_box": cc(np.ones_like(mask)), "cc_mask": cc(mask), "cc_volume": cc(volume), "cc_peaks": cc(peaks)}


def test_five_ccs_match_a_direct_numpy_computation_of_the_phenix_definitions(hemoglobin):
    """On a 20 Å box of the real haemoglobin map around a heme, model map from gemmi."""
    density, structure = hemoglobin
    atoms = model_atoms(structure)
    centre = atoms.coordinates[atoms.residue_names == "HEM"].mean(axis=0)
    region = maps.box(density, centre, 14.0)
    near = np.all(np.abs(atoms.coordinates - centre) < 9.0, axis=1)
    calculated = maps.simulate(structure, 3.2, like=region, use_b_factors=True)
    radii = correlation.vdw_radii(atoms.elements[near])
    mask = correlation.molecular_mask(region, atoms.coordinates[near], radii)
    ours = correlation.five_cc(region.values, calculated.values, mask)
    direct = _brute_force_ccs(region.values, calculated.values, region, atoms.coordinates[near], radii)
    for name in direct:
        assert ours[name] == pytest.approx(direct[name], abs=1e-9), name
    assert 0.5 < ours["cc_mask"] < 0.95  # a fitted model in its own map


def test_cc_of_a_map_with_itself_is_one_and_falls_when_the_model_moves():
    grid = DensityMap(np.zeros((40, 40, 40), np.float32), 0.5, -10.0)
    atoms = np.array([[0.0, 0.0, 0.0], [1.5, 0.0, 0.0], [2.2, 1.3, 0.0], [3.7, 1.3, 0.2]])
    points = grid.grid_points()
    density = lambda xyz: np.exp(-((points[..., None, :] - xyz) ** 2).sum(-1) / (2 * 0.9**2)).sum(-1)  # noqa: E731
    observed = density(atoms)
    mask = correlation.molecular_mask(grid, atoms, np.full(len(atoms), 1.7))
    same = correlation.five_cc(observed, observed, mask)
    assert all(v == pytest.approx(1.0, abs=1e-9) for v in same.values())
    moved = correlation.five_cc(observed, density(atoms + [1.2, 0, 0]), mask)
    assert moved["cc_mask"] < 0.8 and moved["cc_box"] < 0.9


# --------------------------------------------------------------------------- comparison with the reference


def test_symmetry_corrected_rmsd_agrees_with_spyrmsd(data):
    """Shuffled atom order plus noise on a real ligand (phenyl ring flips are symmetries): RMSD as spyrmsd's, no superposition."""
    spyrmsd = pytest.importorskip("spyrmsd.rmsd")
    for entry in ("7OFF_VCB", "7RC3_SAH"):
        mol = Chem.MolFromMolFile(str(data / "complexes" / entry / f"{entry}_ligand.sdf"))
        rng = np.random.default_rng(1)
        order = rng.permutation(mol.GetNumAtoms()).tolist()
        moved = Chem.RenumberAtoms(mol, order)
        conformer = moved.GetConformer()
        for i, p in enumerate(conformer.GetPositions() + rng.normal(0, 0.4, (mol.GetNumAtoms(), 3)) + [0.7, -0.3, 0.2]):
            conformer.SetAtomPosition(i, p.tolist())
        pairs, unpaired = reference.pair_ligands([site_from_mol(moved, "model")], [site_from_mol(mol, "reference")])
        assert not unpaired
        adjacency = lambda m: Chem.GetAdjacencyMatrix(m)  # noqa: E731
        expected = spyrmsd.symmrmsd(
            mol.GetConformer().GetPositions(),
            moved.GetConformer().GetPositions(),
            np.array([a.GetAtomicNum() for a in mol.GetAtoms()]),
            np.array([a.GetAtomicNum() for a in moved.GetAtoms()]),
            adjacency(mol),
            adjacency(moved),
            center=False,
            minimize=False,
        )
        assert pairs[0].rmsd == pytest.approx(expected, abs=1e-6)
        assert 0.3 < pairs[0].rmsd < 1.5


def test_lddt_pli_by_hand():
    """One ligand atom, three protein atoms: distances changed by 0.75 Å, 3 Å, and a new model contact."""
    ligand = np.array([[0.0, 0.0, 0.0]])
    reference_protein = np.array([[3.0, 0, 0], [0, 4.0, 0], [0, 0, 7.0]])
    model_protein = np.array([[3.75, 0, 0], [0, 7.0, 0], [0, 0, 5.0]])
    # Pairs: 3→3.75 (kept at 1, 2, 4 Å), 4→7 (kept at 4 Å), 7→5 (a model contact the reference lacks; kept at 4 Å).
    expected = np.mean([0 / 3, 1 / 3, 1 / 3, 3 / 3])
    pair, model, ref = _toy_pair(ligand, model_protein, reference_protein)
    index = np.arange(1, 4)
    assert reference.lddt_pli(pair, model, ref, index, index)["lddt_pli"] == pytest.approx(expected)
    assert reference.lddt_pli(pair, ref, ref, index, index)["lddt_pli"] == pytest.approx(1.0)


def _toy_pair(ligand, model_protein, reference_protein):
    from ligfit.evaluate.sites import ModelAtoms

    def atoms(protein):
        n = 1 + len(protein)
        return ModelAtoms(
            coordinates=np.vstack([ligand, protein]),
            elements=np.array(["C"] * n, dtype=object),
            atom_names=np.array(["C1"] + ["CA"] * (n - 1), dtype=object),
            residue_names=np.array(["LIG"] + ["ALA"] * (n - 1), dtype=object),
            chains=np.array(["A"] * n, dtype=object),
            numbers=np.arange(n),
            insertion_codes=np.array([" "] * n, dtype=object),
            label_chains=np.array([""] * n, dtype=object),
            label_numbers=np.full(n, -1),
            occupancies=np.ones(n),
            b_factors=np.zeros(n),
            residue_index=np.arange(n),
            kind=np.array(["ligand"] + ["polymer"] * (n - 1), dtype=object),
        )

    model, ref = atoms(model_protein), atoms(reference_protein)
    pairs, _ = reference.pair_ligands(ligand_sites(model, min_heavy_atoms=1), ligand_sites(ref, min_heavy_atoms=1))
    return pairs[0], model, ref


def test_hemoglobin_hemes_against_an_independent_model(hemoglobin_evaluation):
    """5ME2 vs 5NI1, both fitted to EMD-3488: hemes A and D agree; B and C are built flipped (vinyls swapped)."""
    by_label = {lig["ligand"]: lig for lig in hemoglobin_evaluation.ligands}
    assert set(by_label) == {"A:HEM 201", "B:HEM 201", "C:HEM 201", "D:HEM 201"}
    for label in ("A:HEM 201", "D:HEM 201"):
        ref = by_label[label]["reference"]
        assert ref["rmsd"] < 1.0 and ref["lddt_pli"] > 0.85
        assert ref["pocket_ca_rmsd"] < 0.8 and ref["pocket_ca_lddt"] > 0.9
    for label in ("B:HEM 201", "C:HEM 201"):
        assert by_label[label]["reference"]["rmsd"] > 4.0 and by_label[label]["reference"]["lddt_pli"] < 0.5
    # The flip costs the composite: the flipped hemes rank below the agreeing ones.
    assert min(by_label[k]["composite"] for k in ("A:HEM 201", "D:HEM 201")) > max(
        by_label[k]["composite"] for k in ("B:HEM 201", "C:HEM 201")
    )


def test_label_numbering_pairs_residues_when_author_numbers_differ(data, hemoglobin_evaluation, tmp_path):
    """An mmCIF model renumbered (author numbers +1000) still pairs with its reference through label_seq_id."""
    folder = data / HEMOGLOBIN
    structure = gemmi.read_structure(str(folder / "5ni1_updated.cif"))
    for chain in structure[0]:
        for residue in chain:
            residue.seqid = gemmi.SeqId(residue.seqid.num + 1000, residue.seqid.icode)
    model, ref = model_atoms(io.read_structure(structure)), model_atoms(io.read_structure(folder / "5ni1_updated.cif"))
    model_index, reference_index, numbering = reference.matched_polymer_atoms(model, ref)
    assert numbering == "label"
    assert len(model_index) == int((ref.kind == "polymer").sum())
    np.testing.assert_allclose(model.coordinates[model_index], ref.coordinates[reference_index])


# --------------------------------------------------------------------------- geometry, clashes, contacts


def test_geometry_z_scores_chirality_and_planarity(data):
    """SAH from 7RC3: ideal geometry from the CCD; a stretched bond, a mirror image and a bent ring are caught."""
    structure, _ = _structure_with_ligand(data, "7RC3_SAH")
    site = ligand_sites(model_atoms(structure), {"SAH"})[0]
    ideal = ideal_geometry(site)
    assert ideal.source == "CCD SAH"
    deposited = geometry.ligand_geometry(site, ideal.coordinates).summary()
    assert deposited["chiral_centres"] >= 5 and deposited["chirality_errors"] == 0
    assert deposited["bond_rmsz"] < 2.5 and deposited["nonplanar_planes"] == 0
    # Identical to the ideal: every Z is 0; one bond stretched by 0.1 Å reads Z = 5.
    ideal_site = _with_coordinates(site, ideal.coordinates)
    assert np.abs(geometry.ligand_geometry(ideal_site, ideal.coordinates).bond_z).max() == pytest.approx(0.0, abs=1e-9)
    terminal = next(int(j) for i, j in site.bonds if np.sum(site.bonds == j) == 1)
    partner = next(int(i) for i, j in site.bonds if j == terminal) if terminal in site.bonds[:, 1] else None
    stretched = ideal.coordinates.copy()
    direction = stretched[terminal] - stretched[partner]
    stretched[terminal] += 0.1 * direction / np.linalg.norm(direction)
    assert np.abs(geometry.ligand_geometry(_with_coordinates(site, stretched), ideal.coordinates).bond_z).max() == pytest.approx(
        5.0, abs=1e-6
    )
    mirrored = geometry.ligand_geometry(_with_coordinates(site, site.coordinates * [-1, 1, 1]), ideal.coordinates).summary()
    assert mirrored["chirality_errors"] == mirrored["chiral_centres"]
    ring = next(p for p in geometry.flat_groups(site, ideal.coordinates) if len(p) >= 9)
    bent = site.coordinates.copy()
    bent[ring[0]] += 0.6 * np.cross(bent[ring[1]] - bent[ring[0]], bent[ring[2]] - bent[ring[0]]) / 2.0
    assert geometry.ligand_geometry(_with_coordinates(site, bent), ideal.coordinates).summary()["nonplanar_planes"] >= 1


def test_torsions_of_the_deposited_ligand_are_common_and_a_turned_one_is_rare(data):
    """SAH from 7RC3: its torsions as crystal structures show them (ETKDG's potentials, mapped onto the site's atoms)."""
    structure, _ = _structure_with_ligand(data, "7RC3_SAH")
    site = ligand_sites(model_atoms(structure), {"SAH"})[0]
    ideal = ideal_geometry(site)
    deposited = geometry.ligand_geometry(site, ideal.coordinates, ideal.source, ideal.torsions).summary()
    assert deposited["torsions_checked"] >= 3 and deposited["rare_torsions"] == 0
    # Renumbered onto the site correctly: the CCD's ideal conformer reads the same in the site's order as in its own.
    from rdkit import Chem

    from ligfit.evaluate.chemistry import _ccd_mol
    from ligfit.measures.torsions import TorsionPreferences

    ccd = Chem.RemoveHs(_ccd_mol("SAH"))
    own = TorsionPreferences.of(ccd).energies(ccd.GetConformer().GetPositions())
    np.testing.assert_allclose(np.sort(ideal.torsions.energies(ideal.coordinates)), np.sort(own), atol=1e-6)
    # Turn the fragment beyond the stiffest preferred torsion's bond through a full circle: somewhere it is rare.
    grid = np.deg2rad(np.arange(360.0))
    heights = [np.ptp(np.cos(np.outer(grid, np.arange(1, 7))) @ terms) for terms in ideal.torsions.coefficients]
    stiffest = int(np.argmax(heights))
    i, j, k, m = (int(atom) for atom in ideal.torsions.atoms[stiffest])
    moving = _side_of(site.bonds, k, j)
    assert m in moving and i not in moving
    worst = 0.0
    for degrees in range(0, 360, 15):
        turned = _turned(site.coordinates, site.coordinates[j], site.coordinates[k], moving, np.deg2rad(degrees))
        energy = geometry.ligand_geometry(_with_coordinates(site, turned), ideal.coordinates, "", ideal.torsions).torsion_energy[stiffest]
        worst = max(worst, energy)
    assert worst > geometry.RARE_TORSION_ENERGY


def _side_of(bonds: np.ndarray, start: int, excluded: int) -> set[int]:
    """Atoms reached from ``start`` without crossing ``excluded`` (the side of a bond that turns)."""
    seen, stack = {start}, [start]
    while stack:
        atom = stack.pop()
        for a, b in bonds:
            other = int(b) if a == atom else int(a) if b == atom else None
            if other is not None and other != excluded and other not in seen:
                seen.add(other)
                stack.append(other)
    return seen


def _turned(coordinates: np.ndarray, origin: np.ndarray, end: np.ndarray, moving: set[int], angle: float) -> np.ndarray:
    """``coordinates`` with the ``moving`` atoms turned by ``angle`` about the axis origin → end (Rodrigues)."""
    axis = (end - origin) / np.linalg.norm(end - origin)
    out = coordinates.copy()
    for atom in moving:
        v = coordinates[atom] - origin
        out[atom] = origin + v * np.cos(angle) + np.cross(axis, v) * np.sin(angle) + axis * (axis @ v) * (1 - np.cos(angle))
    return out


def _with_coordinates(site, coordinates):
    from dataclasses import replace

    return replace(site, coordinates=np.asarray(coordinates, dtype=float))


def test_clashscore_counts_a_hand_placed_overlap():
    """Two carbons in different residues 2.95 Å apart overlap by 0.45 Å (a clash); 3.05 Å apart by 0.35 Å (not)."""
    for distance, clashes in ((2.95, 1), (3.05, 0)):
        structure = gemmi.Structure()
        model = gemmi.Model("1")
        for index, x in enumerate((0.0, distance)):
            chain = gemmi.Chain("AB"[index])
            residue = gemmi.Residue()
            residue.name, residue.seqid = "XE" + str(index), gemmi.SeqId(1, " ")
            atom = gemmi.Atom()
            atom.name, atom.element, atom.pos, atom.occ = "C1", gemmi.Element("C"), gemmi.Position(x, 0, 0), 1.0
            residue.add_atom(atom)
            chain.add_residue(residue)
            model.add_chain(chain)
        structure.add_model(model)
        report = clashscore(model_atoms(structure), add_hydrogens=False)
        assert len(report.pairs) == clashes
        assert report.clashscore == pytest.approx(1000.0 * clashes / 2)


def test_ligand_pushed_into_the_protein_clashes_and_loses_contacts(data):
    pytest.importorskip("hydride")
    placed, _ = _structure_with_ligand(data, "7RC3_SAH")
    atoms = model_atoms(placed)
    site = ligand_sites(atoms, {"SAH"})[0]
    pocket_centre = atoms.coordinates[atoms.kind == "polymer"].mean(axis=0)
    shift = 2.0 * (pocket_centre - site.coordinates.mean(axis=0)) / np.linalg.norm(pocket_centre - site.coordinates.mean(axis=0))
    pushed, _ = _structure_with_ligand(data, "7RC3_SAH", shift)
    label = site.label
    before = clashscore(atoms).involving(label)
    after = clashscore(model_atoms(pushed)).involving(label)
    assert len(before) <= 3 and len(after) >= len(before) + 5
    made = contacts.protein_ligand_contacts(site, atoms, geometry.aromatic_rings(site, None))
    kinds = {c["type"] for c in made}
    assert "hydrogen bond" in kinds and len(made) >= 4
    assert all(2.5 <= c["distance"] <= 3.5 for c in made if c["type"] == "hydrogen bond")


def test_covalent_link_between_ligands_is_a_bond_not_a_clash(data):
    """3NZD (1.8 Å): D2Q C5A is linked to NDP O2D (struct_conn, 1.54 Å); PoseBusters finds no D2Q–protein heavy-atom clash."""
    pytest.importorskip("hydride")
    atoms = model_atoms(io.read_structure(str(data / "xray" / "3NZD" / "3nzd.cif")))
    report = clashscore(atoms)
    d2q = report.involving("A:D2Q 187")
    assert not any("C5A" in " ".join(c["atoms"]) and "NDP" in " ".join(c["atoms"]) for c in d2q)
    heavy_pairs = [c for c in d2q if all(a.split()[-1][0] != "H" for a in c["atoms"]) and "NDP" not in " ".join(c["atoms"])]
    assert len(heavy_pairs) <= 1  # the only one left is intramolecular (N4'–C51, a peri contact)
    assert len(d2q) <= 8 and report.clashscore < 20


def test_hemes_are_coordinated_by_the_proximal_histidines(hemoglobin_evaluation):
    """Fe–NE2 of His F8 (α87, β92), the textbook contact, is found for all four hemes."""
    expected = {"A": "A:HIS 87", "B": "B:HIS 92", "C": "C:HIS 87", "D": "D:HIS 92"}
    for ligand in hemoglobin_evaluation.ligands:
        metal = [c for c in ligand["contacts"] if c["type"] == "metal coordination"]
        assert [c["residue"] for c in metal] == [expected[ligand["ligand"][0]]]
        assert 1.9 < metal[0]["distance"] < 2.8


# --------------------------------------------------------------------------- the whole evaluation


def test_evaluation_is_plain_data_with_every_metric(hemoglobin_evaluation):
    report = json.loads(json.dumps(hemoglobin_evaluation.as_dict()))
    model = report["model"]
    assert {"q_score", "cc_box", "cc_mask", "cc_volume", "cc_peaks", "clashscore"} <= set(model)
    assert 0.5 < model["cc_mask"] < 0.9 and 0 <= model["clashscore"] < 20
    ligand = report["ligands"][0]
    assert len(ligand["atom_q_scores"]) == ligand["heavy_atoms"] == 43
    assert 0.4 < ligand["q_score"] < 0.9 and 0.4 < ligand["cc_mask"] < 0.95
    assert ligand["geometry"]["ideal_geometry"] == "CCD HEM"
    assert set(ligand["composite_uses"]) == set(composite.WEIGHTS)
    assert "HEM" in hemoglobin_evaluation.table()


def test_hydrogens_and_alternate_conformations_do_not_change_the_scores(data, hemoglobin):
    density, structure = hemoglobin
    plain = evaluate_model(structure, density, 3.2, ligands=["HEM"], whole_model=False, add_hydrogens=False)
    edited = structure.clone()
    heme = next(r for ch in edited[0] for r in ch if r.name == "HEM")
    extra = gemmi.Atom()
    extra.name, extra.element, extra.pos, extra.occ = "HXX", gemmi.Element("H"), heme[0].pos + gemmi.Position(1.0, 0, 0), 1.0
    heme.add_atom(extra)
    for atom in list(heme)[:2]:
        atom.altloc, atom.occ = "A", 0.6
        second = atom.clone()
        second.altloc, second.occ = "B", 0.4
        second.pos = atom.pos + gemmi.Position(0.8, 0, 0)
        heme.add_atom(second)
    changed = evaluate_model(edited, density, 3.2, ligands=["HEM"], whole_model=False, add_hydrogens=False)
    assert any("alternate conformations" in note for note in changed.notes)
    assert any("occupancy" in note for note in changed.notes)
    for a, b in zip(plain.ligands, changed.ligands):
        assert a["q_score"] == pytest.approx(b["q_score"], abs=1e-9)
        assert a["heavy_atoms"] == b["heavy_atoms"]


def test_bad_inputs_say_what_is_wrong(data, hemoglobin):
    density, structure = hemoglobin
    far = structure.clone()
    for chain in far[0]:
        for residue in chain:
            for atom in residue:
                atom.pos = atom.pos + gemmi.Position(500, 0, 0)
    with pytest.raises(BadModelError, match="does not overlap"):
        evaluate_model(far, density, 3.2)
    with pytest.raises(BadModelError, match="no ligand named ATP.*HEM"):
        evaluate_model(structure, density, 3.2, ligands=["ATP"])
    apoferritin = io.read_structure(data / APOFERRITIN / "3ajo_fitted_refined.pdb")
    with pytest.raises(BadModelError, match="single-atom residues present: MG"):
        evaluate_model(apoferritin, maps.read_map(data / APOFERRITIN / "emd20026_prot.mrc"), 1.75)


# --------------------------------------------------------------------------- composite, pictures, challenge


def test_composite_weights_sum_to_one_and_rescale_without_reference():
    assert sum(composite.WEIGHTS.values()) == pytest.approx(1.0)
    ligand = {
        "q_score": 0.6,
        "cc_mask": 0.8,
        "clash_count": 0,
        "geometry": {"bond_rmsz": 1.0, "angle_rmsz": 0.5, "chirality_errors": 0, "nonplanar_planes": 0},
    }
    terms = composite.composite_terms(ligand, expected_q=0.6)
    score, used = composite.composite_score(terms)
    assert set(used) == {"q_score", "cc_mask", "geometry", "clashes"}
    assert score == pytest.approx((0.2 * 1 + 0.15 * 0.8 + 0.15 * 1 + 0.15 * 1) / 0.65)
    worse = composite.composite_score(composite.composite_terms({**ligand, "clash_count": 3}, 0.6))[0]
    assert worse < score


@pytest.fixture(scope="module")
def small_challenge(data, tmp_path_factory):
    """SAH in its pocket (7RC3), a map simulated at 2.5 Å, the deposited pose as reference and two submissions."""
    folder = tmp_path_factory.mktemp("challenge")
    deposited, _ = _structure_with_ligand(data, "7RC3_SAH")
    moved, _ = _structure_with_ligand(data, "7RC3_SAH", np.array([1.2, 0.0, 0.0]))
    io.write_structure(deposited, folder / "reference.cif")
    io.write_structure(moved, folder / "moved.cif")
    io.write_structure(deposited, folder / "good.pdb")
    density = maps.simulate(deposited, 2.5, voxel_size=0.8, margin=4.0, use_b_factors=True, noise=0.1)
    maps.write_map(density, folder / "map.mrc")
    rows = [
        ("sah", "map.mrc", "2.5", "reference.cif", "good.pdb", "exact"),
        ("sah", "map.mrc", "2.5", "reference.cif", "moved.cif", "shifted"),
        ("sah", "map.mrc", "2.5", "reference.cif", "absent.cif", "missing"),
    ]
    with open(folder / "submissions.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["target", "map", "resolution", "reference", "model", "group", "ligand"])
        writer.writerows([(*row, "SAH") for row in rows])
    result = run_challenge(folder / "submissions.csv", folder / "results", workers=1, whole_model=False)
    return folder, result


def test_challenge_ranks_the_right_pose_first_and_records_failures(small_challenge):
    folder, result = small_challenge
    assert [r["status"] for r in result.records] == ["ok", "ok", "failed"]
    assert "absent.cif does not exist" in result.failed[0]["error"]
    ranked = {line["group"]: line for line in result.scores if line["status"] == "ok"}
    assert ranked["exact"]["rank"] == 1 and ranked["shifted"]["rank"] == 2
    assert ranked["exact"]["rmsd"] == pytest.approx(0.0, abs=1e-3) and ranked["shifted"]["rmsd"] == pytest.approx(1.2, abs=1e-3)
    # A rigid 1.2 Å shift keeps every contact at the 2 and 4 Å thresholds and loses some at 0.5 and 1 Å.
    assert ranked["exact"]["lddt_pli"] == pytest.approx(1.0) and 0.5 <= ranked["shifted"]["lddt_pli"] < 0.9
    with open(folder / "results" / "scores.csv") as handle:
        assert len(list(csv.DictReader(handle))) == 3
    html = (folder / "results" / "report.html").read_text()
    assert "Target sah" in html and "data:image/png;base64," in html and "absent.cif" in html
    pictures = list((folder / "results" / "pictures").glob("*.png"))
    assert len(pictures) == 2 and all(p.read_bytes()[:4] == b"\x89PNG" for p in pictures)


def test_challenge_resumes_without_redoing_finished_rows(small_challenge):
    folder, first = small_challenge
    rows = sorted((folder / "results" / "rows").glob("*.json"))
    stamps = {p: p.stat().st_mtime_ns for p in rows}
    lines = []
    again = run_challenge(folder / "submissions.csv", folder / "results", workers=1, whole_model=False, progress=lines.append)
    assert {p: p.stat().st_mtime_ns for p in rows} == stamps
    assert lines == ["3 of 3 rows already evaluated; 0 to go"]
    assert [r["status"] for r in again.records] == [r["status"] for r in first.records]


def test_submissions_table_without_required_columns_is_refused(tmp_path):
    (tmp_path / "s.csv").write_text("target,model\nx,y.cif\n")
    with pytest.raises(BadSubmissionsError, match="missing column.*map, resolution"):
        read_submissions(tmp_path / "s.csv")


def test_crystallographic_map_ccs_are_computed_on_the_maps_own_grid(data):
    """3NZD's R3 map (γ = 120°) is scored on its stored grid, as cctbx does: the box and the model map follow the cell."""
    from ligfit import maps
    from ligfit.evaluate import cell_grid, correlation

    folder = data / "xray" / "3NZD"
    region = maps.read_cell_region(folder / "3nzd.ccp4.gz")
    assert region is not None and region.space_group == 146 and region.cell[5] == pytest.approx(120.0)
    grid = cell_grid.from_cell_region(region)
    assert grid.cell().gamma == pytest.approx(120.0) and grid.shape == region.values.shape
    evaluation = evaluate_model(folder / "3nzd.cif", folder / "3nzd.ccp4.gz", 1.8, ligands={"D2Q"}, whole_model=False, add_hydrogens=False)
    (d2q,) = evaluation.ligands
    # mmtbx (phenix.map_model_cc) on this map: CC_mask 0.849, CC_volume 0.776 (benchmarks/phenix_agreement.py).
    assert d2q["cc_mask"] == pytest.approx(0.849, abs=0.005) and d2q["cc_volume"] == pytest.approx(0.776, abs=0.005)
    box = correlation.map_box(grid, np.array(d2q["coordinates"]), 3.0)
    assert isinstance(box, cell_grid.CellGrid) and np.allclose(
        grid.to_index(box.origin[None]), np.round(grid.to_index(box.origin[None])), atol=1e-6
    )
    assert maps.read_cell_region(data / "em" / "maps_with_models" / "EMD-3488_5ME2_hemoglobin" / "emd_3488.mrc") is None

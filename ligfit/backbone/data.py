"""Training examples for the backbone network: maps simulated from real structures, labelled per voxel.

Following DeepTracer (Pfab et al. 2021), every example is a cube of a map simulated from a
deposited model, with targets read off the model's atoms: Gaussian heat-maps of the N, Cα and C
atoms that peak at 1 on the voxel nearest each atom (CenterNet keypoints, Zhou et al. 2019), a
backbone mask (within 1.5 Å of N/Cα/C), and the secondary structure and residue type of the
nearest protein atom within 2 Å. (DeepTracer's one-hot backbone classes, tried first, left Cα
a ~0.3% class that a class-weighted cross-entropy never predicted by argmax.) Maps are simulated from the PoseBusters pockets (every residue within 14 Å of a
ligand, with the ligand itself in the map but not labelled, so that ligand density is learnt as
not protein) at 2–4.5 Å with each atom's B-factor, random rotation, optional sharpening, a smooth
random intensity field and noise low-pass filtered like the signal (``ligfit.maps``).

Coordinates are in Å; voxel arrays are in (x, y, z) order on the 1 Å grid of
:mod:`ligfit.backbone.contract`.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import gemmi
import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from ligfit import io, maps
from ligfit.backbone import contract
from ligfit.backbone.net import AMINO_ACIDS, ONE_LETTER
from ligfit.maps import DensityMap

#: Environment variable naming the unpacked shared data when ``--data`` is not given.
DATA_VARIABLE = "LIGFIT_DATA"


def data_root(given: str | os.PathLike | None = None) -> Path:
    """The unpacked shared data for training: ``given`` (``--data``), else ``$LIGFIT_DATA``; exits with a message otherwise."""
    root = given or os.environ.get(DATA_VARIABLE)
    if not root:
        raise SystemExit(f"no training data: pass --data FOLDER (the unpacked ../shared/data) or set ${DATA_VARIABLE}")
    root = Path(root)
    if not (root / "complexes").is_dir():
        raise SystemExit(f"{root}: not the unpacked shared data (no complexes/ inside); unpack it with ../shared/data/unpack.sh FOLDER")
    return root


IGNORE = -1  # label of voxels that do not count in a loss
HELIX, STRAND, COIL = 0, 1, 2

#: Width (Å) of the Gaussian heat-map around each N, Cα and C atom (a Cα's heat at its own N is ~0.1).
HEATMAP_SIGMA = 0.7
#: Voxels within this distance (Å) of an N, Cα or C atom are backbone ("trace" channel).
BACKBONE_RADIUS = 1.5
#: Radius (Å) within which a voxel takes the residue type and secondary structure of the nearest atom.
RESIDUE_RADIUS = 2.0


# --------------------------------------------------------------------------- residues


@dataclass(frozen=True)
class ResidueTable:
    """Amino-acid residues of a model in chain order; coordinates in Å, NaN where an atom is missing."""

    n: np.ndarray  # (r, 3)
    ca: np.ndarray  # (r, 3)
    c: np.ndarray  # (r, 3)
    o: np.ndarray  # (r, 3)
    aa: np.ndarray  # (r,) index into AMINO_ACIDS, IGNORE for unknown types
    chain: np.ndarray  # (r,) chain names
    number: np.ndarray  # (r,) author residue numbers
    ss: np.ndarray  # (r,) HELIX / STRAND / COIL
    atom_coordinates: np.ndarray  # (a, 3) every heavy atom of these residues
    atom_residue: np.ndarray  # (a,) row of the residue each atom belongs to

    def __len__(self) -> int:
        return len(self.ca)

    def rotated(self, rotation: np.ndarray, center: np.ndarray) -> ResidueTable:
        """The same residues rotated by ``rotation`` (3×3) about ``center`` (Å)."""

        def move(xyz: np.ndarray) -> np.ndarray:
            return (xyz - center) @ rotation.T + center

        return ResidueTable(
            move(self.n), move(self.ca), move(self.c), move(self.o), self.aa, self.chain, self.number, self.ss,
            move(self.atom_coordinates), self.atom_residue,
        )  # fmt: skip

    @property
    def sequence(self) -> str:
        """One-letter sequence (X for unknown types), chains concatenated."""
        return "".join(ONE_LETTER[a] if a >= 0 else "X" for a in self.aa)


def residue_type(name: str) -> int:
    """Index into AMINO_ACIDS of a residue name (modified residues map to their parent), or IGNORE."""
    if name in AMINO_ACIDS:
        return AMINO_ACIDS.index(name)
    info = gemmi.find_tabulated_residue(name)
    if info is None or not info.is_amino_acid():
        return IGNORE
    letter = info.one_letter_code.upper()
    return ONE_LETTER.index(letter) if letter in ONE_LETTER else IGNORE


def residue_table(structure: gemmi.Structure) -> ResidueTable:
    """The amino-acid residues (those with N, Cα and C) of the first model, with DSSP-like secondary structure."""
    backbone, types, chains, numbers, atoms, owners = [], [], [], [], [], []
    for chain in structure[0]:
        for residue in chain:
            names = {atom.name: atom.pos.tolist() for atom in residue if not atom.is_hydrogen()}
            if not {"N", "CA", "C"} <= names.keys():
                continue
            info = gemmi.find_tabulated_residue(residue.name)
            if info is None or not info.is_amino_acid():
                continue
            backbone.append([names["N"], names["CA"], names["C"], names.get("O", [np.nan] * 3)])
            types.append(residue_type(residue.name))
            chains.append(chain.name)
            numbers.append(residue.seqid.num)
            atoms.extend(names.values())
            owners.extend([len(types) - 1] * len(names))
    xyz = np.array(backbone, dtype=float).reshape(-1, 4, 3)
    chain_array = np.array(chains, dtype=object)
    ss = secondary_structure(xyz[:, 0], xyz[:, 1], xyz[:, 2], xyz[:, 3])
    return ResidueTable(
        xyz[:, 0], xyz[:, 1], xyz[:, 2], xyz[:, 3], np.array(types, dtype=int), chain_array, np.array(numbers, dtype=int), ss,
        np.array(atoms, dtype=float).reshape(-1, 3), np.array(owners, dtype=int),
    )  # fmt: skip


def peptide_bonded(c: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Whether residue i+1 follows residue i through a peptide bond (C(i)–N(i+1) < 2 Å), shape (r-1,)."""
    return np.linalg.norm(n[1:] - c[:-1], axis=1) < 2.0


def secondary_structure(n: np.ndarray, ca: np.ndarray, c: np.ndarray, o: np.ndarray) -> np.ndarray:
    """Helix/strand/coil per residue from backbone H-bonds (DSSP, Kabsch & Sander 1983, simplified).

    H-bond energies use DSSP's electrostatic model with the amide H placed opposite the previous
    carbonyl; consecutive 4-turns (α) or 3-turns (3₁₀) make helix, any β-bridge makes strand.
    Chain breaks are detected from the C–N distance, so fragments (pockets) work.
    """
    count = len(ca)
    ss = np.full(count, COIL, dtype=int)
    if count < 3:
        return ss
    linked = np.zeros(count + 1, dtype=bool)  # linked[i]: residue i-1 → i peptide bond
    linked[1:count] = peptide_bonded(c, n)
    away = c[:-1] - o[:-1]
    h = np.full_like(n, np.nan)
    h[1:] = n[1:] + away / np.linalg.norm(away, axis=1, keepdims=True)
    h[~linked[:count]] = np.nan

    def distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.linalg.norm(a[:, None] - b[None], axis=-1)

    with np.errstate(invalid="ignore", divide="ignore"):
        # energy[i, j]: C=O of residue i accepting from N–H of residue j (kcal/mol)
        energy = 27.888 * (1 / distance(o, n) + 1 / distance(c, h) - 1 / distance(o, h) - 1 / distance(c, n))
    hbond = np.nan_to_num(energy, nan=0.0) < -0.5
    np.fill_diagonal(hbond, False)
    index = np.arange(count)

    for step in (4, 3):
        turn = np.zeros(count, dtype=bool)
        valid = _consecutive(linked, count, step)
        turn[: count - step] = hbond[index[: count - step], index[: count - step] + step] & valid[: count - step]
        start = np.flatnonzero(turn[:-1] & turn[1:]) + 1  # turns at i-1 and i → helix i..i+step-1
        for k in range(step):
            target = start + k
            target = target[target < count]
            ss[target] = np.where(ss[target] == COIL, HELIX, ss[target])

    previous = np.where(linked[:count], index - 1, -1)
    following = np.where(np.append(linked[1:count], False), index + 1, -1)
    bridge = _bridges(hbond, previous, following)
    ss[(bridge.any(axis=1)) & (ss == COIL)] = STRAND
    return ss


def _consecutive(linked: np.ndarray, count: int, step: int) -> np.ndarray:
    """Whether residues i..i+step are chained by peptide bonds, shape (count,)."""
    ok = np.ones(count, dtype=bool)
    for k in range(1, step + 1):
        link = np.zeros(count, dtype=bool)
        link[: count - k] = linked[k:count]
        ok &= link
    return ok


def _bridges(hbond: np.ndarray, previous: np.ndarray, following: np.ndarray) -> np.ndarray:
    """β-bridge partners (parallel or antiparallel), shape (count, count)."""
    count = len(hbond)

    def bond(i: np.ndarray, j: np.ndarray) -> np.ndarray:
        ok = (i >= 0) & (j >= 0)
        return ok & hbond[np.clip(i, 0, None), np.clip(j, 0, None)]

    i = np.arange(count)[:, None].repeat(count, axis=1)
    j = i.T
    pi, fi, pj, fj = previous[i], following[i], previous[j], following[j]
    parallel = (bond(pi, j) & bond(j, fi)) | (bond(pj, i) & bond(i, fj))
    antiparallel = (bond(i, j) & bond(j, i)) | (bond(pi, fj) & bond(pj, fi))
    return (parallel | antiparallel) & (np.abs(i - j) > 2)


# --------------------------------------------------------------------------- labels


def voxel_labels(origin: np.ndarray, shape: tuple[int, int, int], residues: ResidueTable) -> dict[str, np.ndarray]:
    """Per-voxel targets on the 1 Å grid at ``origin`` (Å): atom heat-maps, backbone mask, secondary structure, residue type.

    heat (3, *shape) float32: for N, Cα and C, exp(-d²/2σ²) of the nearest such atom (σ =
    ``HEATMAP_SIGMA``), set to exactly 1 at the voxel nearest each atom (the peaks a CenterNet
    focal loss treats as positives; Zhou et al. 2019, arXiv:1904.07850). trace: 1 within
    ``BACKBONE_RADIUS`` of any N/Cα/C. ss and aa: those of the residue of the nearest protein
    atom within 2 Å, IGNORE elsewhere (and for unknown types).
    """
    axes = [origin[a] + np.arange(shape[a]) * contract.VOXEL_SIZE for a in range(3)]
    points = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    heat = np.zeros((3, len(points)), dtype=np.float32)
    trace = np.zeros(len(points), dtype=np.float32)
    ss = np.full(len(points), IGNORE, dtype=np.int64)
    aa = np.full(len(points), IGNORE, dtype=np.int64)
    if len(residues):
        for channel, atoms in enumerate((residues.n, residues.ca, residues.c)):
            atoms = atoms[np.isfinite(atoms).all(axis=1)]
            distance, _ = cKDTree(atoms).query(points, distance_upper_bound=3 * HEATMAP_SIGMA)
            hit = np.isfinite(distance)
            heat[channel, hit] = np.exp(-(distance[hit] ** 2) / (2 * HEATMAP_SIGMA**2))
            peak = np.round((atoms - origin) / contract.VOXEL_SIZE).astype(int)
            inside = np.all((peak >= 0) & (peak < np.array(shape)), axis=1)
            heat[channel, np.ravel_multi_index(tuple(peak[inside].T), shape)] = 1.0
        backbone_atoms = np.concatenate([residues.n, residues.ca, residues.c])
        distance, _ = cKDTree(backbone_atoms).query(points, distance_upper_bound=BACKBONE_RADIUS)
        trace[np.isfinite(distance)] = 1.0
        distance, nearest = cKDTree(residues.atom_coordinates).query(points, distance_upper_bound=RESIDUE_RADIUS)
        hit = np.isfinite(distance)
        owner = residues.atom_residue[nearest[hit]]
        ss[hit] = residues.ss[owner]
        aa[hit] = residues.aa[owner]
    return {
        "heat": heat.reshape(3, *shape),
        "trace": trace.reshape(shape),
        "ss": ss.reshape(shape),
        "aa": aa.reshape(shape),
    }


# --------------------------------------------------------------------------- split


@dataclass(frozen=True)
class Split:
    """Entries assigned to train/validation/test, with the sequence family of each."""

    assignment: dict[str, str]  # entry → "train" | "validation" | "test"
    family: dict[str, int]  # entry → family id
    rule: str

    def entries(self, part: str) -> list[str]:
        return sorted(entry for entry, assigned in self.assignment.items() if assigned == part)

    def as_json(self) -> str:
        return json.dumps({"rule": self.rule, "assignment": self.assignment, "family": self.family}, indent=1, sort_keys=True) + "\n"

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.as_json().encode()).hexdigest()


def kmers(residues: ResidueTable, k: int = 5) -> set[str]:
    """Sequence k-mers of the chain-contiguous stretches of a (possibly fragmented) model."""
    sequence = residues.sequence
    breaks = np.flatnonzero(~peptide_bonded(residues.c, residues.n)) + 1
    words = set()
    for segment in np.split(np.arange(len(sequence)), breaks):
        text = "".join(sequence[i] for i in segment)
        words.update(text[i : i + k] for i in range(len(text) - k + 1))
    return words


def family_split(
    root: Path,
    validation: float = 0.08,
    test: float = 0.08,
    held_out_models: dict[str, gemmi.Structure] | None = None,
    overlap: float = 0.2,
) -> Split:
    """Split the PoseBusters pockets by PDB ID and sequence family.

    Two entries are one family when they share a PDB ID or when ≥ ``overlap`` of the smaller's
    sequence 5-mers are shared (near-identical proteins, different ligands); families are joined
    transitively and assigned whole. Families that resemble ``held_out_models`` (the real maps'
    models) go to test, so that nothing near a real test map is trained on.
    """
    rows = list(csv.DictReader(open(root / "complexes" / "index.csv")))
    entries = [row["entry"] for row in rows]
    words = {entry: kmers(residue_table(io.read_structure(root / "complexes" / entry / f"{entry}_pocket.pdb"))) for entry in entries}
    parent = list(range(len(entries)))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    pdb_first: dict[str, int] = {}
    for index, row in enumerate(rows):
        parent[find(index)] = find(pdb_first.setdefault(row["pdb_id"].upper(), index))
    for a in range(len(entries)):
        for b in range(a + 1, len(entries)):
            smaller = min(len(words[entries[a]]), len(words[entries[b]]))
            if smaller and len(words[entries[a]] & words[entries[b]]) >= overlap * smaller:
                parent[find(a)] = find(b)
    held = [kmers(residue_table(model)) for model in (held_out_models or {}).values()]
    near_held = {find(i) for i, e in enumerate(entries) for w in held if words[e] and len(words[e] & w) >= overlap * len(words[e])}
    roots = sorted({find(i) for i in range(len(entries))})
    family_id = {r: k for k, r in enumerate(roots)}
    assignment = {}
    for index, entry in enumerate(entries):
        family = find(index)
        # A family's place comes from a hash of its first entry: stable when entries are added.
        first = min(entries[i] for i in range(len(entries)) if find(i) == family)
        draw = int(hashlib.sha256(first.encode()).hexdigest()[:8], 16) / 2**32
        part = "test" if family in near_held or draw < test else "validation" if draw < test + validation else "train"
        assignment[entry] = part
    rule = (
        f"families: same PDB ID or >= {overlap:.0%} shared sequence 5-mers (transitive); part by sha256 of the family's "
        f"first entry (test < {test}, validation < {test + validation}); families like {sorted(held_out_models or {})} -> test"
    )
    return Split(assignment, {e: family_id[find(i)] for i, e in enumerate(entries)}, rule)


def read_split(path: str | os.PathLike) -> Split:
    values = json.loads(Path(path).read_text())
    return Split(values["assignment"], {k: int(v) for k, v in values["family"].items()}, values["rule"])


# --------------------------------------------------------------------------- examples


@dataclass(frozen=True)
class Augmentation:
    """Ranges of the random map degradations (DeepTracer-style simulated training maps)."""

    resolution: tuple[float, float] = (2.0, 4.5)  # Å
    noise: tuple[float, float] = (0.05, 0.5)  # σ as a fraction of the mean density at atom centres
    margin: tuple[float, float] = (3.0, 16.0)  # Å of solvent around the model
    sharpen_probability: float = 0.5
    sharpen: tuple[float, float] = (0.0, 0.7)  # fraction of the resolution's blur B taken back
    intensity_field: tuple[float, float] = (0.0, 0.5)  # log-amplitude of a smooth multiplicative field
    gamma: tuple[float, float] = (0.75, 1.3)  # power applied to positive density
    include_ligand: bool = True  # the pocket's ligand is in the map (not labelled backbone): the network learns it is not protein
    # Cryo-EM maps show side chains weaker than the backbone (mobility, radiation damage); off unless a trainer sets them:
    side_chain_b: tuple[float, float] = (0.0, 0.0)  # Å²: extra B at a side chain's tip, ramped up from 1.5 Å off Cα to 5.5 Å
    acid_damage_b: tuple[float, float] = (0.0, 0.0)  # Å²: extra B on Asp/Glu carboxyl groups (decarboxylation under the beam)


@dataclass(frozen=True)
class Example:
    """One training cube: normalised density (size³), targets (see ``voxel_labels``) and the Cα inside (Å from the cube's origin)."""

    density: np.ndarray
    heat: np.ndarray
    trace: np.ndarray
    ss: np.ndarray
    aa: np.ndarray
    ca: np.ndarray
    resolution: float


class ExampleSource:
    """Makes training cubes from the pockets of ``entries``; parsed models are kept in memory."""

    def __init__(self, root: Path, entries: list[str], cube: int = 48, augmentation: Augmentation = Augmentation()) -> None:
        if not entries:
            raise ValueError("no entries to make examples from")
        self.root = root
        self.entries = list(entries)
        self.cube = cube
        self.augmentation = augmentation
        self._models: dict[str, tuple[gemmi.Structure, ResidueTable]] = {}

    def model(self, entry: str) -> tuple[gemmi.Structure, ResidueTable]:
        """The pocket (with its ligand when ``augmentation.include_ligand``) and its protein residues."""
        if entry not in self._models:
            structure = io.read_structure(self.root / "complexes" / entry / f"{entry}_pocket.pdb")
            structure.remove_hydrogens()
            residues = residue_table(structure)
            if self.augmentation.include_ligand:
                structure = with_ligand(structure, self.root / "complexes" / entry / f"{entry}_ligand.sdf")
            self._models[entry] = (structure, residues)
        return self._models[entry]

    def example(self, rng: np.random.Generator, entry: str | None = None, resolution: float | None = None) -> Example:
        """A random cube from a random (or the given) entry."""
        entry = entry or self.entries[int(rng.integers(len(self.entries)))]
        structure, residues = self.model(entry)
        aug = self.augmentation
        resolution = float(rng.uniform(*aug.resolution)) if resolution is None else resolution
        rotation = Rotation.random(random_state=int(rng.integers(2**31))).as_matrix()
        center = residues.atom_coordinates.mean(axis=0)
        moved = structure.clone()
        shift = center - rotation @ center
        moved[0].transform_pos_and_adp(gemmi.Transform(gemmi.Mat33(rotation.tolist()), gemmi.Vec3(*shift)))
        residues = residues.rotated(rotation, center)
        density = simulated_map(moved, resolution, rng, aug)
        values, fill = contract.normalise(density.values)
        # Centre the cube on a random Cα, jittered, so cubes hold protein but also its edges.
        middle = residues.ca[int(rng.integers(len(residues)))] + rng.uniform(-10, 10, 3)
        start = np.round(density.to_index(middle)).astype(int) - self.cube // 2
        origin = density.to_points(start[None])[0]
        labels = voxel_labels(origin, (self.cube,) * 3, residues)
        cube = contract.cut_cube(values, start, self.cube, fill)
        ca = residues.ca - origin
        ca = ca[np.all((ca >= -0.5) & (ca <= self.cube - 0.5), axis=1)]
        return Example(cube, labels["heat"], labels["trace"], labels["ss"], labels["aa"], ca, resolution)


def with_ligand(structure: gemmi.Structure, sdf: Path) -> gemmi.Structure:
    """``structure`` plus the heavy atoms of the ligand in ``sdf`` (B-factor: the pocket's median), if it reads."""
    from rdkit import Chem

    molecule = next(iter(Chem.SDMolSupplier(str(sdf), sanitize=False, removeHs=False)), None) if sdf.is_file() else None
    if molecule is None or molecule.GetNumConformers() == 0:
        return structure
    heavy = [atom.GetIdx() for atom in molecule.GetAtoms() if atom.GetAtomicNum() > 1]
    elements = [molecule.GetAtomWithIdx(i).GetSymbol() for i in heavy]
    coordinates = molecule.GetConformer().GetPositions()[heavy]
    b_factor = float(np.median([site.atom.b_iso for site in structure[0].all()]))
    return io.add_ligand(structure, elements, [f"X{k}" for k in range(len(heavy))], coordinates, b_factor=b_factor)


def simulated_map(
    structure: gemmi.Structure, resolution: float, rng: np.random.Generator, aug: Augmentation = Augmentation()
) -> DensityMap:
    """A 1 Å map of ``structure`` degraded like a real one (B-factors, weak side chains, sharpening, intensity field, noise)."""
    if aug.side_chain_b[1] > 0 or aug.acid_damage_b[1] > 0:
        structure = weakened_side_chains(structure, float(rng.uniform(*aug.side_chain_b)), float(rng.uniform(*aug.acid_damage_b)))
    coordinates = io.heavy_atoms(structure).coordinates
    grid = maps.grid_around(coordinates, contract.VOXEL_SIZE, float(rng.uniform(*aug.margin)))
    density = maps.simulate(structure, resolution, like=grid, use_b_factors=True)
    values = density.values
    if rng.random() < aug.sharpen_probability:
        values = _sharpen(values, resolution, float(rng.uniform(*aug.sharpen)) * maps.blur_for_resolution(resolution))
    values = values * _smooth_field(values.shape, float(rng.uniform(*aug.intensity_field)), rng)
    positive = np.clip(values, 0, None)
    scale = float(positive.max()) or 1.0
    values = np.where(values > 0, scale * (positive / scale) ** float(rng.uniform(*aug.gamma)), values)
    density = density.with_values(values.astype(np.float32))
    signal = float(np.mean(density.interpolate(coordinates)))
    return maps.add_noise(density, resolution, float(rng.uniform(*aug.noise)) * signal, int(rng.integers(2**31)))


BACKBONE_ATOMS = frozenset({"N", "CA", "C", "O", "OXT"})
#: The carboxyl atoms of acidic side chains, which cryo-EM maps lose first.
CARBOXYL_ATOMS = {"ASP": frozenset({"CG", "OD1", "OD2"}), "GLU": frozenset({"CD", "OE1", "OE2"})}


def weakened_side_chains(structure: gemmi.Structure, tip_b: float, acid_b: float) -> gemmi.Structure:
    """A copy with side-chain B raised: up to ``tip_b`` Å² with distance from Cα (1.5 → 5.5 Å), plus ``acid_b`` on carboxyls."""
    weakened = structure.clone()
    for residue in (residue for model in weakened for chain in model for residue in chain):
        ca = residue.find_atom("CA", "*")
        if ca is None:
            continue
        carboxyl = CARBOXYL_ATOMS.get(residue.name, frozenset())
        for atom in residue:
            if atom.name in BACKBONE_ATOMS:
                continue
            ramp = min(max((atom.pos.dist(ca.pos) - 1.5) / 4.0, 0.0), 1.0)
            atom.b_iso += tip_b * ramp + (acid_b if atom.name in carboxyl else 0.0)
    return weakened


def _sharpen(values: np.ndarray, resolution: float, b_sharpen: float) -> np.ndarray:
    """Take back ``b_sharpen`` Å² of blur and low-pass to ``resolution`` (Butterworth), as map sharpening does."""
    spectrum = np.fft.rfftn(values)
    frequencies = np.meshgrid(
        *[np.fft.fftfreq(n, contract.VOXEL_SIZE) for n in values.shape[:2]],
        np.fft.rfftfreq(values.shape[2], contract.VOXEL_SIZE),
        indexing="ij",
    )
    s2 = sum(f**2 for f in frequencies)
    gain = np.exp(b_sharpen * s2 / 4) / (1 + (s2 * resolution**2) ** 4)
    return np.fft.irfftn(spectrum * gain, s=values.shape).astype(np.float32)


def _smooth_field(shape: tuple[int, ...], amplitude: float, rng: np.random.Generator) -> np.ndarray:
    """exp(amplitude × noise smooth over ~10 Å): uneven local intensity, as occupancy or local resolution give."""
    coarse = rng.standard_normal(tuple(max(2, n // 10 + 2) for n in shape))
    field = ndimage.zoom(coarse, [n / c for n, c in zip(shape, coarse.shape)], order=3, grid_mode=True, mode="nearest")
    return np.exp(amplitude * field[: shape[0], : shape[1], : shape[2]]).astype(np.float32)

"""Reports and output files of a build: report.json, model.cif/pdb, ligand.sdf, poses.sdf, difference.mrc."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Protocol

import gemmi
from rdkit import Chem

from ligfit import io, maps
from ligfit.ligand import Ligand, heavy_atom_mol
from ligfit.records import Blob, Pose
from ligfit.runtime import json_ready, versions


class BuildOutcome(Protocol):
    """What the report reads of a build's result (``ligfit.pipeline.BuildResult`` is one)."""

    ligand: Ligand
    difference: object  # segment.DifferenceMap
    blobs: list[Blob]
    docking: object  # dock.DockingResult
    options: object  # pipeline.BuildOptions
    timings: dict[str, float]
    inputs: dict
    message: str
    templates: object | None
    refinements: list
    ligand_fit: list[dict]

    @property
    def found(self) -> bool: ...

    @property
    def confidence(self) -> float: ...

    @property
    def best_pose(self) -> Pose | None: ...

    @property
    def poses(self) -> list[Pose]: ...

    @property
    def placements(self) -> list[Pose]: ...

    def complex_structure(self) -> gemmi.Structure | None: ...


def build_report(result: BuildOutcome, command: str | None = None) -> dict:
    """Plain-data report of a build: inputs, options, blobs, poses, verdict, timings, versions."""
    difference = result.difference
    best = result.best_pose
    options = result.options
    report = {
        "status": getattr(result, "status", "found" if result.found else "no convincing density"),
        "blob_fraction_explained": list(getattr(result.docking, "explained", ())),
        "message": result.message,
        "confidence": result.confidence,
        "confidence_label": confidence_label(result.confidence) if result.found else "none",
        "command": command,
        "versions": versions(),
        "inputs": result.inputs,
        "ligand": {
            "name": options.ligand_name,
            "smiles": result.ligand.smiles,
            "heavy_atoms": result.ligand.heavy_atom_count,
            "rotatable_bonds": len(result.ligand.rotatable_bonds),
            "conformers": result.ligand.mol.GetNumConformers(),
            "force_field": result.ligand.force_field,
        },
        "options": {
            **{k: v for k, v in options.__dict__.items() if k not in ("docking", "refinement", "template_options", "templates", "trace")},
            "templates": None if options.templates is None else str(options.templates),
            "docking": options.docking.as_dict(),
            "template_search": options.template_options.as_dict(),
            "refinement": options.refinement.as_dict(),
            "trace": dataclasses.asdict(options.trace),
        },
        "difference_map": {
            "noise_sigma": difference.noise,
            "model_scale": difference.scale,
            "model_matched_resolution_A": difference.model_resolution,
            "model_map_cc": round(difference.model_cc, 4),
        },
        "blobs": [blob.summary() for blob in result.blobs],
        "poses": [pose.summary() for pose in result.poses],
        "best_pose": None if best is None else best.summary(),
        "placements": [pose.summary() for pose in result.placements],
        "ligand_fit": result.ligand_fit,
        "templates": None if result.templates is None else result.templates.summary(None if best is None else result.docking.best.source),
        "refinement": [refinement.summary() for refinement in result.refinements],
        "timings_s": result.timings,
    }
    return json_ready(report)


def confidence_label(confidence: float) -> str:
    return "high" if confidence >= 0.7 else "medium" if confidence >= 0.4 else "low"


def write_build_outputs(result: BuildOutcome, folder: Path, force: bool, command: str | None = None) -> Path:
    """Write every output into ``folder`` as a whole: all files appear together or none do."""
    with io.output_folder(folder, force=force) as staging:
        report = build_report(result, command)
        structure = result.complex_structure()
        if structure is not None:
            io.write_structure(structure, staging / "model.cif")
            io.write_structure(structure, staging / "model.pdb")
            _write_sdf(result.placements, result, staging / "ligand.sdf")
        if result.poses:
            _write_sdf(result.poses, result, staging / "poses.sdf")
        maps.write_map(result.difference.difference, staging / "difference.mrc")
        io.write_text(staging / "report.json", json.dumps(report, indent=2) + "\n")
    return folder


def _write_sdf(poses, result: BuildOutcome, path: Path) -> None:
    """Heavy-atom poses (hydrogens removed, as in model.cif) with their scores as SD properties."""
    with io.atomic_path(path) as temporary:
        writer = Chem.SDWriter(str(temporary))
        for rank, pose in enumerate(poses):
            mol = heavy_atom_mol(result.ligand, pose.coordinates)
            mol.SetProp("_Name", f"{result.options.ligand_name} pose {rank + 1}")
            for key, value in pose.summary().items():
                mol.SetProp(key, str(value))
            writer.write(mol)
        writer.close()

"""Reports and output files of a build: report.json, model.cif/pdb, ligand.sdf, poses.sdf, difference.mrc."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Protocol

import gemmi

from ligfit import io, maps
from ligfit.ligand import Ligand, protonation_summary, write_ligand_sdf
from ligfit.maps import DensityMap
from ligfit.records import Blob, Pose, confidence_label, confidence_meaning
from ligfit.report_html import write_build_presentation
from ligfit.runtime import json_ready, torch_device, versions


class BuildOutcome(Protocol):
    """What the report reads of a build's result (``ligfit.pipeline.BuildResult`` is one)."""

    density_map: DensityMap
    model: gemmi.Structure | None
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
    label = confidence_label(result.confidence) if result.found else "none"
    report = {
        "status": getattr(result, "status", "found" if result.found else "no convincing density"),
        "blob_fraction_explained": list(getattr(result.docking, "explained", ())),
        "message": result.message,
        "confidence": result.confidence,
        "confidence_label": label,
        "confidence_meaning": confidence_meaning(label),
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
            # the σ used at each voxel is measured locally (segment.NOISE_BLOCK blocks); its range relative to noise_sigma
            "local_noise_range": _local_noise_range(difference),
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
        "docking_device": str(torch_device(options.docking.device)),
    }
    return json_ready(report)


def write_build_outputs(result: BuildOutcome, folder: Path, force: bool, command: str | None = None) -> Path:
    """Write every output into ``folder`` as a whole: all files appear together or none do."""
    with io.output_folder(folder, force=force) as staging:
        report = build_report(result, command)
        report["ligand"].update(protonation_summary(result.ligand))
        structure = result.complex_structure()
        if structure is not None:
            io.write_structure(structure, staging / "model.cif")
            io.write_structure(structure, staging / "model.pdb")
            _write_sdf(result.placements, result, staging / "ligand.sdf")
            _write_sdf(result.placements, result, staging / "ligand_protonated.sdf", chemistry="used")
        if result.poses:
            _write_sdf(result.poses, result, staging / "poses.sdf")
        maps.write_map(result.difference.difference, staging / "difference.mrc")
        io.write_text(staging / "report.json", json.dumps(report, indent=2) + "\n")
        placed = [pose.coordinates for pose in result.placements]
        model = structure if structure is not None else result.model
        write_build_presentation(staging, folder, report, result.density_map, result.difference.difference, result.ligand, placed, model)
    return folder


def _write_sdf(poses, result: BuildOutcome, path: Path, chemistry: str = "given") -> None:
    """Poses as the user gave the ligand (or with hydrogens as protonated for scoring), their scores as SD properties."""
    titles = [f"{result.options.ligand_name} pose {rank + 1}" for rank in range(len(poses))]
    coordinates = [pose.coordinates for pose in poses]
    write_ligand_sdf(path, result.ligand, coordinates, titles=titles, properties=[p.summary() for p in poses], chemistry=chemistry)


def _local_noise_range(difference: object) -> list[float]:  # segment.DifferenceMap
    """Smallest and largest local σ relative to the whole region's ([1, 1] when σ is one number)."""
    if difference.local_noise is None or difference.noise <= 0:
        return [1.0, 1.0]
    return [
        round(float(difference.local_noise.min() / difference.noise), 3),
        round(float(difference.local_noise.max() / difference.noise), 3),
    ]

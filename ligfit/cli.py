"""Command line: parse, call the API, print, exit. No science here.

Exit codes:

- 0: done (``build``: a pose was placed — its report says "found" or "partial" — or --allow-empty);
- 1: bad input or data (one line on stderr, ``ligfit: error: ...``, says what and how to fix it),
  including an output path that exists or cannot be written, checked before any work starts;
- 2: usage error (a missing or impossible option: not a number, nan/inf, out of range; one line);
- 3: ``build``: the density supports no pose (unless --allow-empty);
- 4: ``challenge``: a row hit a bug in ligfit (its traceback is in rows/*.json);
- 130: interrupted (Ctrl-C or SIGTERM); temporary files are removed and nothing half-written is left.
"""

from __future__ import annotations

import _thread
import argparse
import gc
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from rdkit import rdBase

from ligfit import api, checks, io, maps
from ligfit.dock import DockingOptions
from ligfit.errors import LigfitError
from ligfit.pipeline import AUTO_COPIES, BuildOptions
from ligfit.predicted import PLDDT_CUTOFF
from ligfit.progress import ProgressReporter
from ligfit.records import confidence_label
from ligfit.runtime import versions

EXIT_BAD_INPUT, EXIT_USAGE, EXIT_NOTHING_FITS, EXIT_BUG, EXIT_INTERRUPTED = 1, 2, 3, 4, 130

log = logging.getLogger("ligfit")

#: Seconds between RDKit's "Interrupted" log message and the KeyboardInterrupt (RDKit returns at once).
RDKIT_INTERRUPT_DELAY = 0.05
#: Seconds an interrupted run waits for its worker threads to stop before it exits without them (:func:`run`): their
#: tasks are cancelled and the running ones end within seconds (the ligand's parameters, whose thread cleans up
#: AmberTools' scratch files, take ~1–5 s), unless the interrupt left them waiting on a lock.
INTERRUPT_GRACE = 10.0


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    args.command_line = " ".join(["ligfit", *(argv if argv is not None else sys.argv[1:])])
    _configure_logging(args.quiet)
    args.progress = ProgressReporter.for_stream(sys.stderr, quiet=args.quiet)
    log.info("ligfit %s | %s", versions()["ligfit"], args.command_line)
    previous = _interrupt_on_sigterm()
    rdkit_interrupts = _RDKitInterrupts.install()
    gc.freeze()  # what the imports made lives as long as the process: the collector need not walk it again and again
    try:
        return args.handler(args)
    except LigfitError as error:
        print(f"ligfit: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the atomic writes have removed their temporary files on the way out
        print("ligfit: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as error:
        if _interrupted(error):
            print("ligfit: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        print("ligfit: internal error (this is a bug in ligfit; please report it with the command line):", file=sys.stderr)
        raise
    finally:
        gc.unfreeze()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        if rdkit_interrupts is not None:
            rdkit_interrupts.remove()


def _interrupt_on_sigterm():
    """Handle SIGTERM (kill, timeout, batch schedulers) like Ctrl-C; return the previous handler (None off the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, interrupt)


def _interrupted(error: Exception) -> bool:
    """Whether ``error`` is a Ctrl-C that surfaced inside a C extension's callback (a SystemError caused by KeyboardInterrupt)."""
    return isinstance(error, SystemError) and isinstance(error.__cause__, KeyboardInterrupt)


class _RDKitInterrupts(logging.Handler):
    """Ctrl-C during RDKit's conformer generation stops the run, as it does everywhere else.

    RDKit takes SIGINT for itself while it embeds conformers: it stops, logs "Interrupted,
    cancelling conformer generation" and returns no conformers, and the run would go on with
    fewer (or retry) and exit 0. With RDKit's log routed through Python's logging (its "rdkit"
    logger still prints to stderr), that message raises KeyboardInterrupt in the main thread a
    moment later, once RDKit has returned (raised inside RDKit's logging callback it would come
    back as a SystemError, see :func:`_interrupted`).
    """

    @classmethod
    def install(cls) -> _RDKitInterrupts | None:
        """Route RDKit's log through Python and watch it (None off the main thread)."""
        if threading.current_thread() is not threading.main_thread():
            return None
        handler = cls(level=logging.WARNING)
        rdBase.LogToPythonLogger()
        logging.getLogger("rdkit").addHandler(handler)
        return handler

    def remove(self) -> None:
        """Stop watching; RDKit logs to its own C++ streams again (its default outside notebooks)."""
        logging.getLogger("rdkit").removeHandler(self)
        rdBase.LogToCppStreams()

    def emit(self, record: logging.LogRecord) -> None:
        if "Interrupted" in record.getMessage():
            threading.Timer(RDKIT_INTERRUPT_DELAY, _thread.interrupt_main).start()


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line (``ligfit build: error: ...``), exit 2."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _number(integer: bool = False, **limits) -> Callable[[str], float | int]:
    """An argparse type: a finite number within ``limits`` (see :func:`ligfit.checks.check_number`)."""

    def parse(text: str) -> float | int:
        try:
            value = int(text) if integer else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{'a whole number' if integer else 'a number'} is needed, got {text!r}") from None
        try:
            return checks.check_number(value, "the value", integer=integer, **limits)
        except LigfitError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    parse.__name__ = "integer" if integer else "number"
    return parse


def _checked(check: Callable[[str], object]) -> Callable[[str], object]:
    """An argparse type from a ``checks`` function (its BadOptionError becomes a usage error)."""

    def parse(text: str) -> object:
        try:
            return check(float(text)) if check is checks.check_resolution else check(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"a number is needed, got {text!r}") from None
        except LigfitError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    parse.__name__ = check.__name__
    return parse


_RESOLUTION = _checked(checks.check_resolution)
_RESIDUE_NAME = _checked(checks.check_residue_name)
_POSITIVE = _number(minimum=0.0, exclusive_minimum=True)
_NON_NEGATIVE = _number(minimum=0.0)
_COUNT = _number(integer=True, minimum=1)


def _copies(text: str) -> int | str:
    """An argparse type for --copies: a whole number ≥ 1 or 'auto'."""
    return AUTO_COPIES if text.strip().lower() == AUTO_COPIES else _COUNT(text)


_SEED = _number(integer=True, minimum=0, maximum=2**32 - 1)


def _configure_logging(quiet: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger("ligfit")
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING if quiet else logging.INFO)
    root.propagate = False


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ligfit",
        description="Fit a ligand into a cryo-EM (or crystallographic) density map around a protein model, "
        "and report how well the density supports it.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_command in (
        _add_build,
        _add_simulate,
        _add_refine,
        _add_trace,
        _add_fit,
        _add_templates,
        _add_evaluate,
        _add_challenge,
        _add_screening_commands,
    ):
        add_command(commands)
    return parser


def _add_build(commands: argparse._SubParsersAction) -> None:
    build = commands.add_parser(
        "build",
        help="place a ligand into the unexplained density of a map",
        description="Subtract the protein model's simulated density from the map, find the blobs of density the model "
        "does not explain, dock the ligand into the best ones, and write the protein–ligand model with a report.",
    )
    build.add_argument("map", type=Path, help="density map (MRC/CCP4, optionally .gz)")
    build.add_argument("--ligand", required=True, help="SMILES, SDF/MOL2 file, or CCD code (e.g. ccd:ATP)")
    build.add_argument(
        "--model",
        type=Path,
        help="protein model (PDB/mmCIF): fitted into the map, or a predicted one (see --fit-model); omit if the map holds only "
        "the ligand, or give --sequence instead",
    )
    build.add_argument(
        "--fit-model",
        choices=("auto", "yes", "no"),
        default="auto",
        help="place the model in the map first, as `ligfit fit` does (auto: when it carries pLDDT in its B-factors and is not "
        "placed yet; default: %(default)s)",
    )
    build.add_argument(
        "--sequence",
        help="without --model: trace a protein model de novo (backbone network) and thread this sequence (FASTA file or one-letter)",
    )
    build.add_argument("--resolution", type=_RESOLUTION, required=True, help="map resolution in Å (e.g. the FSC=0.143 value)")
    build.add_argument("-o", "--output", type=Path, default=Path("ligfit_out"), help="output folder (default: ligfit_out)")
    build.add_argument(
        "--ligand-name",
        type=_RESIDUE_NAME,
        default=BuildOptions.ligand_name,
        help="residue name of the ligand in the output model, 1–3 letters or digits (default: %(default)s)",
    )
    build.add_argument(
        "--site",
        help="skip the search and fit at x,y,z (Å; write --site=-7.2,3,4 when it starts with a minus) or around residue CHAIN:NUMBER, e.g. A:123",
    )
    build.add_argument(
        "--threshold",
        type=_POSITIVE,
        default=BuildOptions.threshold,
        help="blob threshold in σ of the difference map (default: %(default)s)",
    )
    build.add_argument(
        "--max-blobs",
        type=_COUNT,
        default=BuildOptions.max_blobs,
        help="how many of the best-ranked blobs to dock into (default: %(default)s)",
    )
    build.add_argument(
        "--copies",
        type=_copies,
        default=BuildOptions.copies,
        metavar="N|auto",
        help="place up to N copies in distinct blobs, e.g. one per subunit, or 'auto': every site the density supports "
        "(default: %(default)s)",
    )
    build.add_argument(
        "--protonation", choices=("ph7", "as-given"), default=BuildOptions.protonation, help="ligand charge state (default: %(default)s)"
    )
    build.add_argument(
        "--max-conformers",
        type=_COUNT,
        default=BuildOptions.max_conformers,
        metavar="N",
        help="ligand conformers to dock from (default: 10 + 6 per rotatable bond, at most 60, as 16 CPU-seconds of embedding "
        "allow; a macrocycle, whose ring docking does not turn, 150 with the budget raised to match)",
    )
    build.add_argument(
        "--templates",
        type=Path,
        metavar="DIR",
        help="template library to seed docking from related complexes (default: the shipped library; see `ligfit templates`)",
    )
    build.add_argument("--no-templates", action="store_true", help="dock from the density alone, without template seeds")
    build.add_argument(
        "--no-loops",
        action="store_true",
        help="do not build the short gaps of the model whose loop the map holds (built only to explain their density; never written)",
    )
    build.add_argument(
        "--no-side-chains",
        action="store_true",
        help="do not complete the side chains the model cuts short at Cβ, nor those of built loops the sequence names (completed into the map only to explain their density; never written)",
    )
    build.add_argument(
        "--no-refine", action="store_true", help="skip the OpenMM refinement of ligand and pocket against the map (write the docked pose)"
    )
    build.add_argument("--seed", type=_SEED, default=BuildOptions.seed, help="random seed (default: %(default)s)")
    _add_device(build)
    build.add_argument("--force", action="store_true", help="replace the output folder if it exists")
    build.add_argument("--allow-empty", action="store_true", help="exit 0 even when the density supports no pose")
    _add_quiet(build)
    build.set_defaults(handler=_build)


def _add_simulate(commands: argparse._SubParsersAction) -> None:
    simulate = commands.add_parser(
        "simulate",
        help="simulate a density map from a model",
        description="Simulate the density of a model at a resolution with electron scattering factors (gemmi), "
        "optionally with noise low-pass filtered like the signal.",
    )
    simulate.add_argument("model", type=Path, help="model (PDB/mmCIF)")
    simulate.add_argument("--resolution", type=_RESOLUTION, required=True, help="resolution in Å")
    simulate.add_argument("-o", "--output", type=Path, required=True, help="map to write (.mrc or .mrc.gz)")
    simulate.add_argument("--like", type=Path, help="use this map's grid (box, voxel size, origin)")
    simulate.add_argument("--voxel-size", type=_POSITIVE, help="voxel size in Å (default: min(1, resolution/3))")
    simulate.add_argument(
        "--margin", type=_NON_NEGATIVE, default=maps.SIMULATION_MARGIN, help="box margin around the model in Å (default: %(default)s)"
    )
    simulate.add_argument("--b-factors", action="store_true", help="blur each atom by its B-factor (median atom at the resolution)")
    simulate.add_argument(
        "--noise", type=_NON_NEGATIVE, default=0.0, help="noise σ as a fraction of the mean density at atom centres (e.g. 0.2)"
    )
    simulate.add_argument("--seed", type=_SEED, default=0, help="noise seed (default: 0)")
    simulate.add_argument("--force", action="store_true", help="overwrite the output map")
    _add_quiet(simulate)
    simulate.set_defaults(handler=_simulate)


def _add_refine(commands: argparse._SubParsersAction) -> None:
    refine = commands.add_parser(
        "refine",
        help="refine the ligand(s) already in a model, with their pockets, against the map",
        description="Refine every copy of the ligand in a model (residues named --ligand-name) together with the protein "
        "around it against the map in OpenMM: Amber14 for the protein, GAFF2/AM1-BCC (or MMFF94 without AmberTools) for "
        "the ligand, plus a density term as strong as the ligand's ideal geometry allows. Writes the refined model and "
        "a JSON report with before/after fit, strain, clashes and geometry.",
    )
    refine.add_argument("model", type=Path, help="protein–ligand model (PDB/mmCIF) fitted into the map")
    refine.add_argument("map", type=Path, help="density map (MRC/CCP4, optionally .gz)")
    refine.add_argument("--resolution", type=_RESOLUTION, required=True, help="map resolution in Å")
    refine.add_argument("--ligand", required=True, help="the ligand's chemistry: SMILES, SDF/MOL2 file, or CCD code (e.g. ccd:ATP)")
    refine.add_argument(
        "--ligand-name",
        type=_RESIDUE_NAME,
        default=BuildOptions.ligand_name,
        help="residue name of the ligand in the model (default: %(default)s)",
    )
    refine.add_argument("-o", "--output", type=Path, required=True, help="refined model to write (.cif or .pdb)")
    refine.add_argument("--json", type=Path, help="write the before/after report as JSON to this file")
    refine.add_argument("--force", action="store_true", help="overwrite the output files")
    _add_quiet(refine)
    refine.set_defaults(handler=_refine)


def _add_trace(commands: argparse._SubParsersAction) -> None:
    trace = commands.add_parser(
        "trace",
        help="build a protein model de novo from a map (backbone network + Cα tracing + sequence threading)",
        description="Run ligfit's 3D U-Net over the map (1 Å voxels, overlapping cubes) to find backbone atoms, trace the "
        "Cα into chains, thread the sequence onto them, and build full atoms. Reliable at 5 Å or better; the shipped "
        "network was trained briefly on CPU, so check the traced model (see README for its measured recall).",
    )
    trace.add_argument("map", type=Path, help="density map (MRC/CCP4, optionally .gz)")
    trace.add_argument("--resolution", type=_RESOLUTION, required=True, help="map resolution in Å")
    trace.add_argument("--sequence", help="FASTA file or one-letter sequence (omit: most likely residue types, said in the output)")
    trace.add_argument("-o", "--output", type=Path, required=True, help="model to write (.cif or .pdb)")
    trace.add_argument("--device", default="cpu", help="torch device for the network, e.g. cuda (default: cpu)")
    trace.add_argument(
        "--sequence-method",
        choices=["hmm", "dp"],
        default="hmm",
        help="hmm: a profile HMM per traced chain aligned with HMMER3, as ModelAngelo; dp: the earlier dynamic-programming "
        "threading (default: %(default)s)",
    )
    trace.add_argument(
        "--ss-map", type=Path, help="also write the per-voxel secondary structure (MRC: 0 not backbone, 1 helix, 2 strand, 3 coil)"
    )
    trace.add_argument("--force", action="store_true", help="overwrite the output model (and --ss-map)")
    _add_quiet(trace)
    trace.set_defaults(handler=_trace)


def _add_fit(commands: argparse._SubParsersAction) -> None:
    fit = commands.add_parser(
        "fit",
        help="place a predicted model (AlphaFold, a homologue) that is not yet fitted into the map",
        description="Trim residues of low pLDDT, search every rotation and translation of the map for each chain (FFT "
        "local correlation, as powerfit), refine the best placements rigidly and by domains, then the whole model flexibly "
        "(OpenMM, Amber14, restraints scaled by pLDDT), and say how well each chain fits (CC_mask, per-residue CC). "
        "Exits 3 when a chain fits nowhere.",
    )
    fit.add_argument("model", type=Path, help="predicted model (PDB/mmCIF), pLDDT in the B-factor column if any")
    fit.add_argument("map", type=Path, help="density map (MRC/CCP4, optionally .gz)")
    fit.add_argument("--resolution", type=_RESOLUTION, required=True, help="map resolution in Å")
    fit.add_argument("-o", "--output", type=Path, required=True, help="fitted model to write (.cif or .pdb)")
    fit.add_argument("--json", type=Path, help="write the fit record (placements, CC, trimmed residues) as JSON")
    fit.add_argument("--copies", type=_COUNT, default=1, help="place each chain this many times (default: %(default)s)")
    fit.add_argument(
        "--plddt-cutoff", type=_NON_NEGATIVE, default=PLDDT_CUTOFF, help="leave out residues of pLDDT below this (default: %(default)s)"
    )
    fit.add_argument("--no-trim", action="store_true", help="keep every residue whatever its pLDDT")
    fit.add_argument("--pae", type=Path, help="AlphaFold PAE JSON, to split domains")
    fit.add_argument("--no-refine", action="store_true", help="rigid fit only (no domain refinement)")
    fit.add_argument(
        "--no-flexible", action="store_true", help="no flexible whole-model refinement against the map after the rigid/domain fit"
    )
    fit.add_argument("--partial", action="store_true", help="keep the chains that fit when others fit nowhere")
    fit.add_argument("--force", action="store_true", help="overwrite the output files")
    _add_quiet(fit)
    fit.set_defaults(handler=_fit)


def _add_templates(commands: argparse._SubParsersAction) -> None:
    templates = commands.add_parser(
        "templates",
        help="make or describe a library of template complexes that seeds docking",
        description="Template complexes (a protein with a ligand posed in it) seed `ligfit build` with chemically informed poses "
        "when a similar ligand has been solved in the same or a homologous pocket.",
    )
    template_commands = templates.add_subparsers(dest="templates_command", required=True, metavar="ACTION")
    templates_build = template_commands.add_parser(
        "build",
        help="make a library from complexes",
        description="Each SRC is a PDB/mmCIF complex (every ligand of ≥ 6 heavy atoms, additives excepted, bond orders "
        "from the CCD), PROTEIN.pdb,LIGANDS.sdf (every molecule of the SDF posed in that protein), or a folder with one "
        "protein and SDF files.",
    )
    templates_build.add_argument("sources", nargs="+", metavar="SRC", help="complex file, PROTEIN,LIGANDS.sdf pair, or folder")
    templates_build.add_argument("-o", "--output", type=Path, required=True, help="library folder to write")
    templates_build.add_argument("--force", action="store_true", help="replace the folder if it exists")
    _add_quiet(templates_build)
    templates_build.set_defaults(handler=_templates_build)
    templates_info = template_commands.add_parser("info", help="describe a library", description="Describe a template library.")
    templates_info.add_argument("folder", type=Path, nargs="?", help="library folder (default: the shipped library)")
    templates_info.add_argument("--json", action="store_true", help="print the description as JSON")
    _add_quiet(templates_info)
    templates_info.set_defaults(handler=_templates_info)


def _add_evaluate(commands: argparse._SubParsersAction) -> None:
    evaluate = commands.add_parser(
        "evaluate",
        help="score a protein–ligand model against its map (and a reference model)",
        description="Compute the EMDataResource ligand-challenge metrics for every ligand of a model: Q-score, the Phenix CCs "
        "(box, mask, volume, peaks), ligand geometry (bond/angle Z-scores, chirality, planarity), clashes and contacts, and, "
        "with --reference, the symmetry-corrected ligand RMSD, LDDT-PLI and the pocket backbone. Prints a table; --json writes everything.",
    )
    evaluate.add_argument("model", type=Path, help="model to score (PDB/mmCIF)")
    evaluate.add_argument("--map", dest="density_map", type=Path, required=True, help="density map (MRC/CCP4, optionally .gz)")
    evaluate.add_argument("--resolution", type=_RESOLUTION, required=True, help="map resolution in Å (e.g. the FSC=0.143 value)")
    evaluate.add_argument(
        "--reference", type=Path, help="reference model (PDB/mmCIF) in the same frame, for RMSD, LDDT-PLI and pocket scores"
    )
    evaluate.add_argument(
        "--ligand",
        action="append",
        metavar="NAME",
        help="residue name of a ligand to score (repeatable; default: every non-polymer, non-water residue with ≥ 2 heavy atoms)",
    )
    evaluate.add_argument(
        "--ligand-definition", help="the ligand's chemistry when its residue name is not a CCD code: SMILES, SDF/MOL2 file or ccd:CODE"
    )
    evaluate.add_argument(
        "--ligands-only", action="store_true", help="skip the whole-model Q-score, CCs and clashscore (faster for big models)"
    )
    evaluate.add_argument("--json", type=Path, help="write every score as JSON to this file")
    evaluate.add_argument("--force", action="store_true", help="overwrite the JSON file if it exists")
    _add_quiet(evaluate)
    evaluate.set_defaults(handler=_evaluate)


def _add_challenge(commands: argparse._SubParsersAction) -> None:
    challenge = commands.add_parser(
        "challenge",
        help="evaluate every model of a ligand-model challenge, in parallel and resumably",
        description="Evaluate each row of a submissions table (CSV with columns target, map, resolution, model and optionally "
        "reference, group, ligand, ligand_definition; paths relative to the CSV) and write OUTPUT/scores.csv, OUTPUT/report.html "
        "and one JSON per row in OUTPUT/rows/. Rerunning skips rows already evaluated with unchanged inputs.",
    )
    challenge.add_argument("submissions", type=Path, help="submissions table (CSV)")
    challenge.add_argument(
        "-o", "--output", type=Path, default=Path("challenge_results"), help="results folder (default: challenge_results)"
    )
    challenge.add_argument("--workers", type=_COUNT, help="parallel processes (default: every core)")
    challenge.add_argument("--scheduler", help="run the rows on a Dask cluster (e.g. tcp://host:8786) that sees the same files")
    challenge.add_argument("--retry-failed", action="store_true", help="evaluate again the rows recorded as failed")
    challenge.add_argument("--ligands-only", action="store_true", help="skip whole-model Q-scores, CCs and clashscores")
    _add_quiet(challenge)
    challenge.set_defaults(handler=_challenge)


def _add_quiet(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-q", "--quiet", action="store_true", help="print warnings and errors only")


def _add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device",
        default=DockingOptions.device,
        help="where the docking search runs: auto (a CUDA GPU when torch sees one, else the CPU), cpu, cuda or cuda:N (default: %(default)s)",
    )


def _add_quick(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--quick", action="store_true", help="about a quarter of build's docking search per ligand: twice as fast, more true ligands missed"
    )


def _refuse_existing(*paths: Path | None, force: bool) -> None:
    """Refuse an output file that exists (unless --force), is a folder, or cannot be written (checked before any work starts)."""
    for path in paths:
        if path is not None:
            io.check_output_file(path, force)


def _build(args: argparse.Namespace) -> int:
    io.check_output_folder(args.output, args.force)
    started = time.perf_counter()
    result = api.build(
        args.map,
        args.ligand,
        args.model,
        resolution=args.resolution,
        ligand_name=args.ligand_name,
        site=args.site,
        threshold=args.threshold,
        max_blobs=args.max_blobs,
        copies=args.copies,
        protonation=args.protonation,
        max_conformers=args.max_conformers,
        seed=args.seed,
        docking=DockingOptions(seed=args.seed, device=args.device),
        use_templates=not args.no_templates,
        templates=args.templates,
        refine=not args.no_refine,
        sequence=args.sequence,
        build_loops=not args.no_loops,
        complete_side_chains=not args.no_side_chains,
        fit_model={"auto": None, "yes": True, "no": False}[args.fit_model],
        progress=args.progress,
    )
    result.write(args.output, force=args.force, command=args.command_line)
    elapsed = time.perf_counter() - started
    for blob in result.blobs[:5]:
        size = "" if blob.estimated_heavy_atoms is None else f", ~{blob.estimated_heavy_atoms:.0f} heavy atoms"
        log.info("blob %d: peak %.1f σ, %.0f Å³%s, ligand match %.2f", blob.rank + 1, blob.peak, blob.volume, size, blob.ligand_match)
    if result.found:
        for pose in result.placements:
            print(
                f"ligfit: placed {args.ligand_name} in blob {pose.blob_rank + 1}: CC {pose.cc:.2f}, {pose.fraction_in_density:.0%} of atoms "
                f"in density, confidence {pose.confidence:.2f} ({confidence_label(pose.confidence)}), found by {pose.source}"
            )
        for refinement in result.refinements:
            print(f"ligfit: {refinement.message} ({refinement.seconds:.0f} s)")
        print(f"ligfit: {result.message}. Wrote {args.output}/ in {elapsed:.0f} s.")
        return 0
    print(f"ligfit: {result.message}. Wrote the report to {args.output}/report.json.", file=sys.stderr)
    return 0 if args.allow_empty else EXIT_NOTHING_FITS


def _simulate(args: argparse.Namespace) -> int:
    _refuse_existing(args.output, force=args.force)
    density = api.simulate(
        args.model,
        args.resolution,
        like=args.like,
        voxel_size=args.voxel_size,
        margin=args.margin,
        use_b_factors=args.b_factors,
        noise=args.noise,
        seed=args.seed,
    )
    maps.write_map(density, args.output)
    print(f"ligfit: wrote {args.output} ({'x'.join(map(str, density.shape))} voxels of {density.voxel_size[0]:.3f} Å)")
    return 0


def _refine(args: argparse.Namespace) -> int:
    _refuse_existing(args.output, args.json, force=args.force)
    refinement = api.refine(
        args.model,
        args.map,
        args.ligand,
        resolution=args.resolution,
        ligand_name=args.ligand_name,
        progress=args.progress,
    )
    io.write_structure(refinement.model, args.output)
    if args.json:
        report = {"command": args.command_line, "versions": versions(), **refinement.summary()}
        io.write_text(args.json, json.dumps(report, indent=2) + "\n")
    for label, result in zip(refinement.residues, refinement.results):
        print(f"ligfit: {args.ligand_name} {label}: {result.message}")
    print(f"ligfit: wrote {args.output}")
    return 0


def _trace(args: argparse.Namespace) -> int:
    _refuse_existing(args.output, args.ss_map, force=args.force)
    from ligfit.trace import TraceOptions

    options = TraceOptions(sequence_method=args.sequence_method)
    result = api.trace(
        args.map, resolution=args.resolution, sequence=args.sequence, options=options, device=args.device, progress=args.progress
    )
    result.write(args.output)
    if args.ss_map is not None:
        result.write_secondary_structure_map(args.ss_map)
    ss = result.secondary_structure_counts()
    written = f"{args.output} and {args.ss_map}" if args.ss_map is not None else f"{args.output}"
    print(f"ligfit: {result.message}; {ss['helix']} helix, {ss['strand']} strand, {ss['coil']} coil residues. Wrote {written}.")
    return 0


def _fit(args: argparse.Namespace) -> int:
    from ligfit.predicted import ModelDoesNotFitError

    _refuse_existing(args.output, args.json, force=args.force)
    try:
        result = api.fit(
            args.model,
            args.map,
            args.resolution,
            copies=args.copies,
            plddt_cutoff=None if args.no_trim else args.plddt_cutoff,
            pae=args.pae,
            refine=not args.no_refine,
            flexible=not args.no_flexible,
            partial=args.partial,
            progress=args.progress,
        )
    except ModelDoesNotFitError as error:
        print(f"ligfit: {error}", file=sys.stderr)
        return EXIT_NOTHING_FITS
    io.write_structure(result.structure, args.output)
    if args.json:
        report = {"command": args.command_line, "versions": versions(), **result.as_dict()}
        io.write_text(args.json, json.dumps(report, indent=2) + "\n")
    for placement in result.placements:
        print(
            f"ligfit: chain {placement.chain} (from {placement.source_chain}): CC_mask {placement.cc_mask:.3f}, overlap {placement.overlap:.2f}"
        )
    print(f"ligfit: {result.verdict}. Wrote {args.output}.")
    return 0


def _templates_build(args: argparse.Namespace) -> int:
    io.check_output_folder(args.output, args.force)
    library = api.build_templates(args.sources, args.output, force=args.force, progress=args.progress)
    print(f"ligfit: wrote {args.output} ({len(library)} templates)")
    return 0


def _templates_info(args: argparse.Namespace) -> int:
    description = api.template_library(args.folder).describe()
    if args.json:
        print(json.dumps(description, indent=2))
        return 0
    for key, value in description.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in value.items())
        elif isinstance(value, list):
            value = f"{len(value)} listed (see --json)"
        print(f"{key.replace('_', ' ')}: {value}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    _refuse_existing(args.json, force=args.force)
    evaluation = api.evaluate(
        args.model,
        args.density_map,
        resolution=args.resolution,
        reference=args.reference,
        ligands=args.ligand,
        ligand_definition=args.ligand_definition,
        whole_model=not args.ligands_only,
    )
    print(evaluation.table())
    if args.json:
        io.write_text(args.json, json.dumps(evaluation.as_dict(), indent=2) + "\n")
        log.info("wrote %s", args.json)
    return 0


def _challenge(args: argparse.Namespace) -> int:
    io.check_writable(args.output / "scores.csv")
    result = api.challenge(
        args.submissions,
        args.output,
        workers=args.workers,
        retry_failed=args.retry_failed,
        whole_model=not args.ligands_only,
        progress=args.progress,
        scheduler=args.scheduler,
    )
    done = len(result.records) - len(result.failed) - len(result.bugs)
    print(f"ligfit: evaluated {done} of {len(result.records)} submissions; wrote {args.output}/scores.csv and {args.output}/report.html")
    if result.failed:
        print(f"ligfit: {len(result.failed)} row(s) had bad input; the reasons are in scores.csv and the report", file=sys.stderr)
    if result.bugs:
        print(
            f"ligfit: internal error in {len(result.bugs)} row(s) (a bug in ligfit; please report it with the rows/*.json files, "
            "which hold the tracebacks)",
            file=sys.stderr,
        )
        return EXIT_BUG
    return EXIT_BAD_INPUT if result.failed else 0


# Screening and identification ------------------------------------------------------------------


def _add_screening_commands(commands: argparse._SubParsersAction) -> None:
    screen = commands.add_parser(
        "screen",
        help="dock a library of ligands into a map's unexplained density and rank them",
        description="Dock every ligand of a library (SMILES one per line with optional name, SDF, or CSV with a SMILES column) "
        "into the map's unexplained density and rank them with size-neutral fit scores, each less its pose's strain. Writes OUTPUT/ranking.csv, one JSON per "
        "ligand in OUTPUT/ligands/ (a rerun resumes) and a folder per top ligand in OUTPUT/top/.",
    )
    screen.add_argument("map", type=Path, help="density map (MRC/CCP4)")
    screen.add_argument("--model", type=Path, help="protein model (PDB/mmCIF)")
    screen.add_argument("--ligands", type=Path, required=True, help="ligand library (.smi, .sdf or .csv)")
    screen.add_argument("--resolution", type=_RESOLUTION, required=True, help="map resolution (Å)")
    screen.add_argument("-o", "--output", type=Path, default=Path("screen"), help="results folder (default: screen)")
    screen.add_argument("--site", help="dock only here: CHAIN:NUMBER of a residue or x,y,z in Å")
    screen.add_argument("--top", type=_COUNT, default=20, help="write a folder for this many top ligands (default: %(default)s)")
    screen.add_argument("--workers", type=_COUNT, help="local processes (default: every core)")
    screen.add_argument("--scheduler", help="address of a running Dask scheduler, e.g. tcp://host:8786")
    screen.add_argument(
        "--threshold",
        type=_POSITIVE,
        default=BuildOptions.threshold,
        help="blob threshold in σ of the difference map (default: %(default)s)",
    )
    screen.add_argument("--seed", type=_SEED, default=BuildOptions.seed, help="random seed (default: %(default)s)")
    _add_device(screen)
    _add_quick(screen)
    _add_quiet(screen)
    screen.set_defaults(handler=_screen)

    identify = commands.add_parser(
        "identify",
        help="what is this blob? rank the shipped library of common ligands against it",
        description="Rank the shipped library of ligands common in maps (nucleotides, cofactors, heme, buffer and cryo "
        "components, detergents, lipids, sugars) against one blob; writes OUTPUT/ranking.csv and OUTPUT/blobs.csv.",
    )
    identify.add_argument("map", type=Path, help="density map (MRC/CCP4)")
    identify.add_argument("--model", type=Path, help="protein model (PDB/mmCIF)")
    identify.add_argument("--resolution", type=_RESOLUTION, required=True, help="map resolution (Å)")
    identify.add_argument("--blob", type=_COUNT, default=1, help="blob number, 1 = the largest (see OUTPUT/blobs.csv; default 1)")
    identify.add_argument("--site", help="instead of a blob: CHAIN:NUMBER of a residue or x,y,z in Å")
    identify.add_argument("-o", "--output", type=Path, default=Path("identify"), help="results folder (default: identify)")
    identify.add_argument("--top", type=_COUNT, default=10, help="write a folder for this many top ligands (default: %(default)s)")
    identify.add_argument("--workers", type=_COUNT, help="local processes (default: every core)")
    identify.add_argument("--scheduler", help="address of a running Dask scheduler, e.g. tcp://host:8786")
    identify.add_argument(
        "--threshold",
        type=_POSITIVE,
        default=BuildOptions.threshold,
        help="blob threshold in σ of the difference map (default: %(default)s)",
    )
    _add_device(identify)
    _add_quick(identify)
    _add_quiet(identify)
    identify.set_defaults(handler=_identify)


def _screen(args: argparse.Namespace) -> int:
    result = api.screen(
        str(args.map),
        model=None if args.model is None else str(args.model),
        ligands=args.ligands,
        resolution=args.resolution,
        site=args.site,
        top=args.top,
        workers=args.workers,
        scheduler=args.scheduler,
        out=args.output,
        seed=args.seed,
        threshold=args.threshold,
        quick=args.quick,
        device=args.device,
        progress=args.progress,
    )
    print(result.table(args.top))
    print(f"ligfit: wrote {args.output}/ranking.csv")
    return 0


def _identify(args: argparse.Namespace) -> int:
    result = api.identify(
        str(args.map),
        model=None if args.model is None else str(args.model),
        resolution=args.resolution,
        blob=args.blob,
        site=args.site,
        top=args.top,
        workers=args.workers,
        scheduler=args.scheduler,
        out=args.output,
        threshold=args.threshold,
        quick=args.quick,
        device=args.device,
        progress=args.progress,
    )
    print(result.table(args.top))
    print(f"ligfit: wrote {args.output}/ranking.csv")
    return 0


def run() -> None:
    """The console script: :func:`main`, then exit with its code.

    After an interrupt, worker threads the interrupt left waiting on a lock it took from them would hold the process
    open (Python joins them at exit); the outputs are already cleaned up by then, so the process ends without them.
    """
    code = main()
    if code == EXIT_INTERRUPTED and _threads_still_running(grace=INTERRUPT_GRACE):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def _threads_still_running(grace: float) -> bool:
    """Whether non-daemon threads besides this one are still alive after waiting up to ``grace`` seconds in all."""

    def others() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t is not threading.current_thread() and not t.daemon]

    deadline = time.monotonic() + grace
    for thread in others():
        thread.join(max(0.0, deadline - time.monotonic()))
    return any(thread.is_alive() for thread in others())


if __name__ == "__main__":
    run()

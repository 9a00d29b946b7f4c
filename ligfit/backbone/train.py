"""Train the backbone network on maps simulated from the PoseBusters pockets (DeepTracer, Pfab et al. 2021).

    nice -n 19 python -m ligfit.backbone.train --minutes 80 --out .ligfit-data/backbone-train
    python -m ligfit.backbone.train --out .ligfit-data/backbone-train --install   # ship the best checkpoint

Writes into ``--out``: ``split.json`` (train/validation/test by PDB ID and sequence family),
``config.json`` (every option, versions, the split's sha256), ``checkpoint.pt`` (latest, to
resume), ``best.pt`` (lowest validation loss), ``log.csv`` (losses and validation scores), and
``backbone.pt`` + ``backbone.json`` (the exported weights with config, scores and sha256).
``--install`` copies the exported pair into ``ligfit/backbone/weights/``.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import platform
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional

from ligfit import io
from ligfit.backbone import contract, data
from ligfit.backbone.net import BackboneUNet, NetConfig
from ligfit.backbone.weights import sha256
from ligfit.runtime import versions

log = logging.getLogger("ligfit.backbone.train")

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
#: Real maps' models: their sequence families never enter training.
HELD_OUT_MODELS = {
    "apoferritin EMD-20026": "em/maps_with_models/EMD-20026_apoferritin_crop/3ajo_fitted_refined.pdb",
    "3J6B chain 9 EMD-2566": "em/maps_with_models/EMD-2566_3J6B_chain9/3J6B_chain9.pdb",
    "haemoglobin 5NI1 EMD-3488": "em/maps_with_models/EMD-3488_5ME2_hemoglobin/5ni1_updated.cif",
}


@dataclass(frozen=True)
class TrainConfig:
    """Training options (recorded in config.json beside the weights)."""

    net: NetConfig = field(default_factory=NetConfig)
    augmentation: data.Augmentation = field(default_factory=data.Augmentation)
    cube: int = 48
    batch: int = 2
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    minutes: float | None = 80.0  # wall-time budget; the learning rate decays over it
    steps: int | None = None  # or a fixed number of steps
    trace_positive_weight: float = 4.0  # BCE weight of backbone voxels in the "trace" channel (~1% of voxels)
    ss_weight: float = 0.5
    aa_weight: float = 0.5
    validation_every: int = 250
    validation_cubes: int = 24
    threads: int = 2
    seed: int = 0


def heatmap_focal_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float = 2.0, beta: float = 4.0) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss (Zhou et al. 2019) per positive: peaks are voxels with target 1.

    Unlike a class-weighted cross-entropy it is not swamped by the ~99% of empty voxels, and
    voxels next to an atom (target near 1) are barely penalised for firing.
    """
    log_p = functional.logsigmoid(logits)
    log_not_p = functional.logsigmoid(-logits)
    p = log_p.exp()
    positive = target >= 1.0
    positive_loss = -(log_p * (1 - p) ** alpha)[positive].sum()
    negative_loss = -(log_not_p * p**alpha * (1 - target) ** beta)[~positive].sum()
    return (positive_loss + negative_loss) / positive.sum().clamp(min=1)


def loss_terms(outputs: dict[str, torch.Tensor], labels: dict[str, torch.Tensor], config: TrainConfig) -> dict[str, torch.Tensor]:
    """Focal heat-map loss for N/Cα/C, BCE for the backbone mask, cross-entropy near protein for ss and aa."""
    backbone = outputs["backbone"]  # channels: trace, N, Cα, C (logits)
    terms = {
        "heat": heatmap_focal_loss(backbone[:, 1:], labels["heat"]),
        "trace": functional.binary_cross_entropy_with_logits(
            backbone[:, 0], labels["trace"], pos_weight=torch.tensor(config.trace_positive_weight, dtype=backbone.dtype)
        ),
    }
    for head in ("ss", "aa"):
        if bool((labels[head] >= 0).any()):
            terms[head] = functional.cross_entropy(outputs[head], labels[head], ignore_index=data.IGNORE)
        else:
            terms[head] = outputs[head].sum() * 0.0
    terms["total"] = terms["heat"] + terms["trace"] + config.ss_weight * terms["ss"] + config.aa_weight * terms["aa"]
    return terms


def batch_tensors(examples: list[data.Example]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    density = torch.from_numpy(np.stack([e.density for e in examples])[:, None])
    labels = {head: torch.from_numpy(np.stack([getattr(e, head) for e in examples])) for head in ("heat", "trace", "ss", "aa")}
    return density, labels


#: Validation peaks: P(Cα) local maxima at least this high, matched to a true Cα within this distance (Å).
PEAK_THRESHOLD = 0.3
PEAK_MATCH = 1.5


def ca_peaks(probability: np.ndarray, threshold: float = PEAK_THRESHOLD) -> np.ndarray:
    """Voxel indices (k, 3) of local maxima (3×3×3) of a P(Cα) cube at or above ``threshold``."""
    from scipy import ndimage

    local_max = probability == ndimage.maximum_filter(probability, size=3, mode="constant")
    return np.argwhere(local_max & (probability >= threshold))


@torch.no_grad()
def validation_scores(model: BackboneUNet, examples: list[data.Example], config: TrainConfig) -> dict[str, float]:
    """Loss and scores on fixed validation cubes.

    Cα peak precision/recall/F1: local maxima of P(Cα) ≥ 0.3 matched one-to-one (greedy, nearest
    first) to the cube's true Cα within 1.5 Å, away from the cube's 4-voxel rim; backbone-mask
    IoU; ss and aa voxel accuracy (aa also at Cα voxels).
    """
    from scipy.spatial import cKDTree

    model.eval()
    loss = 0.0
    matched = predicted = labelled = 0
    intersection = union = 0.0
    ss_right = ss_total = aa_right = aa_total = ca_aa_right = ca_aa_total = 0
    for example in examples:
        density, labels = batch_tensors([example])
        outputs = model(density)
        loss += float(loss_terms(outputs, labels, config)["total"]) / len(examples)
        probability = torch.sigmoid(outputs["backbone"][0, 2]).numpy()
        peaks = ca_peaks(probability).astype(float)
        size = config.cube
        rim = 4
        peaks = peaks[np.all((peaks >= rim) & (peaks < size - rim), axis=1)]
        truth = example.ca[np.all((example.ca >= rim) & (example.ca < size - rim), axis=1)]
        predicted += len(peaks)
        labelled += len(truth)
        if len(peaks) and len(truth):
            distance, nearest = cKDTree(truth).query(peaks, distance_upper_bound=PEAK_MATCH)
            used: set[int] = set()
            for index in np.argsort(distance):
                if np.isfinite(distance[index]) and nearest[index] not in used:
                    used.add(int(nearest[index]))
            matched += len(used)
        mask_pred = torch.sigmoid(outputs["backbone"][0, 0]).numpy() >= 0.5
        mask_true = example.trace >= 0.5
        intersection += float((mask_pred & mask_true).sum())
        union += float((mask_pred | mask_true).sum())
        ca_voxel = labels["heat"][0, 1] >= 1.0
        known = labels["ss"][0] >= 0
        ss_right += int((outputs["ss"][0].argmax(0) == labels["ss"][0])[known].sum())
        ss_total += int(known.sum())
        known = labels["aa"][0] >= 0
        right = outputs["aa"][0].argmax(0) == labels["aa"][0]
        aa_right += int(right[known].sum())
        aa_total += int(known.sum())
        ca_aa_right += int(right[known & ca_voxel].sum())
        ca_aa_total += int((known & ca_voxel).sum())
    model.train()
    precision = matched / max(predicted, 1)
    recall = matched / max(labelled, 1)
    scores = {
        "loss": loss,
        "ca_peak_precision": precision,
        "ca_peak_recall": recall,
        "ca_peak_f1": 2 * precision * recall / max(precision + recall, 1e-9),
        "trace_iou": intersection / max(union, 1.0),
        "ss_accuracy": ss_right / max(ss_total, 1),
        "aa_accuracy": aa_right / max(aa_total, 1),
        "aa_accuracy_at_ca": ca_aa_right / max(ca_aa_total, 1),
    }
    return {name: float(value) for name, value in scores.items()}


def learning_rate(config: TrainConfig, step: int, progress: float) -> float:
    """Linear warm-up, then cosine decay over the budget (``progress`` in [0, 1])."""
    warm = min(1.0, (step + 1) / config.warmup_steps)
    return config.learning_rate * warm * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


#: The packages whose versions a training run records.
TRAINING_PACKAGES = ("ligfit", "torch", "numpy", "scipy", "gemmi")


def train(root: Path, out: Path, config: TrainConfig, resume: bool = False) -> dict:
    """Train (or resume) into ``out``; returns the exported config (see module docstring)."""
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    out.mkdir(parents=True, exist_ok=True)
    split_path = out / "split.json"
    if resume and split_path.exists():
        split = data.read_split(split_path)
    else:
        held = {name: io.read_structure(root / path) for name, path in HELD_OUT_MODELS.items()}
        split = data.family_split(root, held_out_models=held)
        io.write_text(split_path, split.as_json())
    counts = {part: len(split.entries(part)) for part in ("train", "validation", "test")}
    log.info("split %s: %s (sha256 %s)", split_path, counts, split.sha256[:12])
    run_info = {"train": asdict(config), "split": {"file": "split.json", "sha256": split.sha256, "counts": counts, "rule": split.rule}}
    run_info.update(
        versions=versions(TRAINING_PACKAGES),
        command=" ".join(sys.argv),
        hardware=f"{platform.processor() or platform.machine()}, {config.threads} threads",
    )
    io.write_text(out / "config.json", json.dumps(run_info, indent=2, default=list) + "\n")

    model = BackboneUNet(config.net)
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    step, elapsed_before, best = 0, 0.0, math.inf
    if resume and (out / "checkpoint.pt").exists():
        state = torch.load(out / "checkpoint.pt", weights_only=True)
        model.load_state_dict(state["model"], strict=True)
        optimiser.load_state_dict(state["optimiser"])
        step, elapsed_before, best = int(state["step"]), float(state["elapsed"]), float(state["best"])
        log.info("resumed at step %d (%.1f min)", step, elapsed_before / 60)

    training = data.ExampleSource(root, split.entries("train"), config.cube, config.augmentation)
    validation = data.ExampleSource(root, split.entries("validation"), config.cube, config.augmentation)
    check_rng = np.random.default_rng([config.seed, 1])
    resolutions = np.linspace(config.augmentation.resolution[0], config.augmentation.resolution[1], config.validation_cubes)
    validation_cubes = [validation.example(check_rng, resolution=float(r)) for r in resolutions]
    if resume and (out / "best.pt").exists():
        # The validation cubes are rebuilt on resume (and change with the data, e.g. include_ligand):
        # score the best checkpoint on them again, or a loss measured on other cubes decides "best".
        previous = BackboneUNet(config.net)
        previous.load_state_dict(torch.load(out / "best.pt", weights_only=True)["model"], strict=True)
        best = validation_scores(previous, validation_cubes, config)["loss"]
        log.info("best.pt re-scored on this run's validation cubes: loss %.4f", best)
    rng = np.random.default_rng([config.seed, 2, step])  # a resumed run draws fresh examples
    log_path = out / "log.csv"
    started = time.perf_counter() - elapsed_before
    running: dict[str, float] = {}

    def validate() -> None:
        """Score the validation cubes, log them, save the checkpoint, and best.pt when the loss is the lowest yet."""
        nonlocal best
        scores = validation_scores(model, validation_cubes, config)
        row = {"step": step, "minutes": round((time.perf_counter() - started) / 60, 2), "lr": optimiser.param_groups[0]["lr"]}
        row.update({f"train_{k}": round(v, 4) for k, v in running.items()})
        row.update({f"val_{k}": round(v, 4) for k, v in scores.items()})
        _append_row(log_path, row)
        log.info("%s", row)
        state = {"model": model.state_dict(), "optimiser": optimiser.state_dict(), "step": step, "best": min(best, scores["loss"])}
        state["elapsed"] = time.perf_counter() - started
        if scores["loss"] < best:
            best = scores["loss"]
            torch.save({"model": model.state_dict(), "step": step, "scores": scores}, out / "best.pt")
        torch.save(state, out / "checkpoint.pt")

    while True:
        elapsed = time.perf_counter() - started
        progress = step / config.steps if config.steps else elapsed / (60 * config.minutes)
        if progress >= 1.0:
            break
        for group in optimiser.param_groups:
            group["lr"] = learning_rate(config, step, progress)
        density, labels = batch_tensors([training.example(rng) for _ in range(config.batch)])
        terms = loss_terms(model(density), labels, config)
        optimiser.zero_grad(set_to_none=True)
        terms["total"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimiser.step()
        step += 1
        for name, value in terms.items():
            running[name] = 0.98 * running.get(name, float(value.detach())) + 0.02 * float(value.detach())
        if step % config.validation_every == 0:
            validate()
    if step % config.validation_every != 0:
        validate()  # the steps after the last validation count too
    log.info("stopped at step %d after %.1f min", step, (time.perf_counter() - started) / 60)
    if not (out / "best.pt").exists():
        torch.save(
            {"model": model.state_dict(), "step": step, "scores": validation_scores(model, validation_cubes, config)}, out / "best.pt"
        )
    return export(out, config, validation_cubes, run_info, total_steps=step, minutes=(time.perf_counter() - started) / 60)


def export(out: Path, config: TrainConfig, validation_cubes: list[data.Example], run_info: dict, total_steps: int, minutes: float) -> dict:
    """Write backbone.pt (state dict of the best checkpoint) and backbone.json (config, scores, sha256)."""
    best = torch.load(out / "best.pt", weights_only=True)
    # Shipped as float16 (half the size); the scores below are those of the rounded weights.
    state = {name: value.half() if value.is_floating_point() else value for name, value in best["model"].items()}
    weights_path = out / "backbone.pt"
    torch.save(state, weights_path)
    model = BackboneUNet(config.net)
    model.load_state_dict(torch.load(weights_path, weights_only=True), strict=True)
    scores = validation_scores(model, validation_cubes, config)
    exported = {
        "format": "ligfit-backbone",
        "contract_version": contract.CONTRACT_VERSION,
        "voxel_size": contract.VOXEL_SIZE,
        "net": asdict(config.net),
        "weights": weights_path.name,
        "sha256": sha256(weights_path),
        "training": {**run_info, "best_step": int(best["step"]), "total_steps": total_steps, "minutes": round(minutes, 1)},
        "validation": {k: round(float(v), 4) for k, v in scores.items()},
    }
    io.write_text(out / "backbone.json", json.dumps(exported, indent=2, default=list) + "\n")
    return exported


def install(out: Path, destination: Path = WEIGHTS_DIR) -> None:
    """Copy the exported weights, their config and the split into the package."""
    for name in ("backbone.pt", "backbone.json", "split.json"):
        shutil.copyfile(out / name, destination / name)


def _append_row(path: Path, row: dict) -> None:
    new = not path.exists()
    with open(path, "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)


def main(argv: list[str] | None = None) -> int:
    defaults = TrainConfig()
    parser = argparse.ArgumentParser(
        prog="python -m ligfit.backbone.train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, help="unpacked shared data (default: $LIGFIT_DATA)")
    parser.add_argument("--out", type=Path, default=Path(".ligfit-data/backbone-train"), help="run folder")
    parser.add_argument("--minutes", type=float, default=defaults.minutes, help="wall-time budget (default: %(default)s)")
    parser.add_argument("--steps", type=int, help="a fixed number of steps instead of --minutes")
    parser.add_argument("--batch", type=int, default=defaults.batch)
    parser.add_argument("--cube", type=int, default=defaults.cube, help="cube edge in voxels of 1 Å")
    parser.add_argument("--base-channels", type=int, default=defaults.net.base_channels)
    parser.add_argument("--levels", type=int, default=defaults.net.levels)
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
    parser.add_argument("--validation-every", type=int, default=defaults.validation_every)
    parser.add_argument("--threads", type=int, default=defaults.threads)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--resume", action="store_true", help="continue from checkpoint.pt in --out")
    parser.add_argument("--install", action="store_true", help="copy the exported weights into ligfit/backbone/weights/ and stop")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.install:
        install(args.out)
        log.info("installed %s into %s", args.out / "backbone.pt", WEIGHTS_DIR)
        return 0
    root = data.data_root(args.data)
    config = TrainConfig(
        net=NetConfig(base_channels=args.base_channels, levels=args.levels),
        cube=args.cube,
        batch=args.batch,
        learning_rate=args.learning_rate,
        minutes=None if args.steps else args.minutes,
        steps=args.steps,
        validation_every=args.validation_every,
        threads=args.threads,
        seed=args.seed,
    )
    exported = train(root, args.out, config, resume=args.resume)
    log.info("validation: %s", exported["validation"])
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The early-phase experiment as stages: an IMP trunk rewinding to k, then each perturbation of
the rewound weights trained with the trunk's last-level mask (early_phase.md §2, §6).

    workdir/pretrain/                   with pretrain.variant: P steps on the modified task (S_P)
    workdir/trunk/level_0 … level_L     lib.procedure.imp (dense run keeps S_k; or all from S_P)
    workdir/perturb_<name>/             from S_k, mask of level L, perturb.name = name
    workdir/results.json                {"trunk": {level: …}, "perturb": {name: …}}, and config.json

Every stage is a resumable lib.train.run; re-running resumes the first unfinished one.
"""

from __future__ import annotations

import ml_collections

from experiments.early_phase import perturb, pretrain
from lib import config as config_lib
from lib import files, procedure, train


def check(config: ml_collections.ConfigDict) -> None:
    """Every stage's settings, checked before the first stage starts."""
    names = [n for n in config.perturb.names if n]
    unknown = [n for n in names if n not in perturb.PERTURBATIONS]
    if unknown:
        raise config_lib.ConfigError(
            f"perturb.names: unknown perturbation {unknown[0]!r}; valid choices: "
            f"{', '.join(perturb.PERTURBATIONS)}")
    if "gaussian_noise" in names and config.perturb.noise_ref not in perturb.NOISE_REFS:
        raise config_lib.ConfigError(
            f"perturb.noise_ref={config.perturb.noise_ref!r}; valid choices: "
            f"{', '.join(perturb.NOISE_REFS)}")
    if config.pretrain.variant:
        pretrain.stage_changes(config)
        config = config_lib.updated(config, pretrain.from_pretrained("pretrain",
                                                                     config.pretrain.steps))
    procedure.check_imp(config)


def run(config: ml_collections.ConfigDict, workdir) -> dict:
    check(config)
    names = [n for n in config.perturb.names if n]
    workdir = files.as_path(workdir)
    original, summary = config, {}
    if config.pretrain.variant:
        stage = procedure.stage_config(config, **pretrain.stage_changes(config))
        summary["pretrain"] = procedure.summary(train.run(stage, workdir / "pretrain"))
        config = config_lib.updated(config, pretrain.from_pretrained(workdir / "pretrain",
                                                                     config.pretrain.steps))
    trunk_dir = workdir / "trunk"
    summary.update({"trunk": procedure.imp(config, trunk_dir), "perturb": {}})
    last = trunk_dir / f"level_{config.imp.levels}"
    k = config.imp.rewind_step
    for name in names:
        changes = {"sparsity.mask": str(last / "mask.npz"), "perturb.name": name,
                   "init.transform": "experiments.early_phase.perturb:transform"}
        if k > 0 and not config.init.workdir:  # pretrained: from S_P, as the levels
            changes.update({"init.workdir": str(trunk_dir / "level_0"), "init.step": k})
        stage = procedure.stage_config(config, **changes)
        summary["perturb"][name] = procedure.summary(train.run(stage, workdir / f"perturb_{name}"))
    return procedure.finish(workdir, original, summary)

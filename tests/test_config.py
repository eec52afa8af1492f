"""Config arg parsing, validation against configs/base.py, and every config file loading."""

import json
import pathlib

import ml_collections
import pytest

from configs import base
from experiments.early_phase import config as early_phase_config
from experiments.pruning_stability import config as pruning_config
from lib import config as config_lib
from lib import train

REPO = pathlib.Path(__file__).resolve().parent.parent
CONFIG_FILES = sorted(REPO.glob("experiments/*/configs/*.py"))
CONFIG_FILES = [p for p in CONFIG_FILES if not p.name.startswith("_")]


def test_parse_arg_types_and_flags():
    a = config_lib.parse_arg("quick,depth=56,lr=0.05,trainable=bn_only",
                             quick=False, depth=20, lr=0.1, trainable="all", flag=True)
    assert a.quick is True and a.depth == 56 and a.lr == 0.05 and a.trainable == "bn_only"
    assert a.flag is True
    assert config_lib.parse_arg(None, depth=20).depth == 20


@pytest.mark.parametrize("arg, message", [
    ("dpeth=3", "unknown config option 'dpeth'"),
    ("depth=abc", "expects int"),
    ("quick=maybe", "boolean"),
])
def test_parse_arg_errors(arg, message):
    with pytest.raises(config_lib.ConfigError, match=message):
        config_lib.parse_arg(arg, quick=False, depth=20)


def test_validate_unknown_key_names_closest():
    c = base.get_config()
    c.optim.learning_rate = 0.1
    with pytest.raises(config_lib.ConfigError, match=r"optim.learning_rate.*Did you mean: lr"):
        config_lib.validate(c)


def test_validate_wrong_type():
    c = base.get_config()
    c.data = ml_collections.ConfigDict({**c.data.to_dict(), "batch_size": "128"})
    with pytest.raises(config_lib.ConfigError, match="data.batch_size.*expects int"):
        config_lib.validate(c)


def test_validate_accepts_base():
    config_lib.validate(base.get_config())


# Options documented in the config docstrings beyond the get_sweep() points.
EXTRA_ARGS = {  # by "slug/file.py"
    "batchnorm_only/cifar_resnet.py": ["width=512,depth=14", "lr=0.05",
                                       "quick,trainable=all_no_affine"],
    "batchnorm_only/imagenet_resnet.py": ["lr=0.2", "depth=50,trainable=all"],
    "batchnorm_only/cifar_vgg.py": ["lr=0.05,bn_init=fixed", "depth=19,trainable=random_count"],
    "batchnorm_only/fashion_mnist.py": ["steps=10", "trainable=gamma_only", "quick,seed=4"],
    "batchnorm_only/digits.py": ["steps=10", "trainable=beta_only", "quick,seed=4"],
    "early_phase/digits.py": ["k=0,perturbations=", "levels=3,fraction=0.2",
                              "perturbations=gaussian_noise+rewind"],
    "early_phase/cifar.py": ["model=vgg13,quick", "model=wrn16_8,quick,perturbations=reinit",
                             "pretrain=blur,pretrain_steps=391,blur=8", "quick,pretrain=rotation",
                             "pretrain=subsample,fraction=0.2"],
    "background_aug/spurious.py": ["quick,method=moco,variant=bg_swaps",
                                   "method=byol,variant=bg_random,seed=1"],
    "plan2vec/maze.py": ["env=hui_maze,latent=2,seed=3", "objective=value_iteration,quick"],
    "plan2vec/pointmass.py": ["env=hui_maze,inputs=frames,quick", "env=goal_mass,latent=100"],
    "plan2vec/user_data.py": ["data=rope,steps=100,latent=2"],
    "reservoir/synthetic.py": ["encoder=LTLGLCL,backskip=stochastic,steps=10"],
    "reservoir/enwik8.py": ["layers=18,reservoirs=6,type=T,placement=middle,backskip=identity",
                            "encoder=LFLDL,steps=1000", "layers=12,type=D", "quick,seed=1"],
    "reservoir/roberta.py": ["corpus=lm1b,layers=12,reservoirs=4,batch=256,lr=5e-4,steps=1000",
                             "encoder=LGLCL,backskip=stochastic", "quick,corpus=lm1b"],
    "reservoir/glue.py": ["task=mnli,pretrained=/runs/roberta_L12,frozen=2+4+6+8,lr=2e-5",
                          "task=sst2,layers=12,reservoirs=4,type=G,pretrained_root=/runs/r,"
                          "epochs=3", "quick,pretrained=/runs/roberta_quick,frozen=1+3"],
    "joslim/cifar.py": ["epochs=300,dataset=cifar10,wd_gamma=none", "quick,method=slim"],
    "joslim/imagenet.py": ["quick,model=mobilenet_v3", "model=resnet18,cost=memory,wd_gamma=none"],
    "joslim/digits.py": ["method=twostage,wd_gamma=all", "target=area,seed=2"],
    "invariance/imagenet.py": ["quick,model=vit_b16", "recipe=standard",
                               "train=False,space=normalized", "quick,variant=TS,train=False"],
    "class_selectivity/fashion_mnist.py": ["data=digits,alpha=-2", "alpha=2,seed=4"],
    "class_selectivity/cifar10.py": ["alpha=-30,seed=2", "quick,alpha=2", "corruptions=on_the_fly"],
    "pruning_stability/digits.py": ["data=fashion_mnist,target=scratch", "lr=0.001,score=EBN",
                                    "quick,target=R,fractions=0.5+0.9"],
    "class_selectivity/tiny_imagenet.py": ["depth=50,stem=cifar", "corruptions=on_the_fly"],
    "pruning_stability/cifar.py": [
        "model=resnet18,table_c1", "model=resnet18,b2", "b2,target=S,period=4",
        "experiment=c3,model=resnet18,period=1,fraction=0.06", "experiment=f1,model=resnet18",
        "noise=zero,noise_steps=1105", "noise=gauss,noise_steps=50,mask_bn=false",
        "noise=zero_restore,noise_steps=89", "flatness", "quick,model=resnet18",
        "quick,experiment=fig4,model=resnet20,target=S", "quick,noise=zero_restore,noise_steps=2",
        "quick,flatness"],
}


OFFLINE_SOURCES = ("experiments.background_aug.spurious:source",  # built from Fashion-MNIST
                   "experiments.invariance.shifted:source",
                   "experiments.reservoir.synthetic:translation",
                   "experiments.reservoir.synthetic_text:tokens",
                   "experiments.reservoir.synthetic_text:labelled",
                   "experiments.plan2vec.samples:transitions")


def _documented_args(path):
    """None, 'quick', every point of the file's get_sweep() and EXTRA_ARGS as arg strings."""
    module = config_lib._import_file(path)
    args = [None, "quick", *EXTRA_ARGS.get(f"{path.parent.parent.name}/{path.name}", [])]
    for point in module.get_sweep() if hasattr(module, "get_sweep") else []:
        args.append(",".join(f"{k}={v}" for k, v in point.items()))
    return args


def test_config_files_exist():
    assert len(CONFIG_FILES) >= 5, CONFIG_FILES


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_every_config_loads_with_every_documented_arg(path):
    module = config_lib._import_file(path)
    assert module.__doc__ and "Command" in module.__doc__ and "Hardware" in module.__doc__
    assert "wall time" in module.__doc__
    for arg in _documented_args(path):
        config = config_lib.load_file(path, arg)
        assert config.total_steps > 0
        if arg == "quick":  # offline data: the built-in sets or a paper's procedural source
            assert (config.data.name in ("fashion_mnist", "digits")
                    or config.data.name in OFFLINE_SOURCES), config.data.name
            assert config.total_steps <= 100


def test_a_saved_config_without_newer_keys_reads_with_their_defaults():
    saved = json.loads(pruning_config.get_config().to_json_best_effort())
    del saved["data"]["labels"], saved["filter_pruning"]["target"]  # keys a later version added
    saved["optim"]["lr"] = 0.3
    config = config_lib.from_saved(saved)
    config_lib.validate(config)
    assert config.data.labels == "true" and config.filter_pruning.target == "L"
    assert config.optim.lr == 0.3


def test_paper_sections_are_declared_by_their_modules():
    config = early_phase_config.get_config()
    assert config.sections == ("experiments.early_phase.config",)
    config_lib.validate(config)
    assert "perturb" not in base.get_config() and "filter_pruning" not in base.get_config()
    config.perturb.epsilon = -1.0  # the rule and the comment come from the paper's module
    with pytest.raises(config_lib.ConfigError, match="noise std as a multiple"):
        config_lib.validate(config)
    stray = base.get_config()  # a section no listed module declares
    stray.perturb = early_phase_config.get_config().perturb
    with pytest.raises(config_lib.ConfigError, match="unknown config key 'perturb'.*`sections`"):
        config_lib.validate(stray)
    stray.sections = ("lib.nowhere",)
    with pytest.raises(config_lib.ConfigError, match="sections: no module 'lib.nowhere'"):
        config_lib.validate(stray)


def test_a_config_json_from_before_the_sections_moved_still_reads():
    """Written when configs/base.py declared every paper's sections: no `sections` key, and a
    batchnorm_only run's file holds the other papers' sections at their defaults."""
    saved = json.loads(base.get_config().to_json_best_effort())
    del saved["sections"]
    for module in (early_phase_config, pruning_config):
        saved.update(json.loads(module.get_config().to_json_best_effort()))
    del saved["sections"]
    config = config_lib.from_saved(saved)
    config_lib.validate(config)
    assert config.perturb.name == "rewind" and config.flatness.method == "power"


def test_config_file_errors_are_config_errors_but_project_bugs_keep_their_traceback(tmp_path):
    own = tmp_path / "own.py"
    own.write_text("def get_config(arg=None):\n    raise KeyError('nope')\n")
    with pytest.raises(config_lib.ConfigError, match=r"raised KeyError: 'nope' \(line 2\)"):
        config_lib.load_file(own)
    calls_project = tmp_path / "calls_project.py"  # raises inside configs/common.py
    calls_project.write_text("from configs import common\n\ndef get_config(arg=None):\n"
                             "    return common.steps_per_epoch('x', 2)\n")
    with pytest.raises(TypeError):
        config_lib.load_file(calls_project)


def test_a_workdir_from_before_the_sections_moved_resumes_with_todays_config(tmp_path):
    """Its config.json holds every paper's sections at their defaults: not a different run.
    A moved section at a non-default value is one."""
    config = config_lib.load_file(REPO / "experiments/batchnorm_only/configs/digits.py", "quick")
    saved = json.loads(config.to_json_best_effort())
    del saved["sections"]
    for module in (early_phase_config, pruning_config):
        sections = json.loads(module.get_config().to_json_best_effort())
        saved.update({k: sections[k] for k in ("pretrain", "perturb", "filter_pruning")
                      if k in sections})
    (tmp_path / "config.json").write_text(json.dumps(saved))
    assert set(train._changed_keys(tmp_path, config)) == {  # recorded in run.json
        "sections", "pretrain", "perturb", "filter_pruning"}
    saved["perturb"]["name"] = "reinit"
    (tmp_path / "config.json").write_text(json.dumps(saved))
    with pytest.raises(train.WorkdirConfigMismatchError, match="differs at: perturb"):
        train._changed_keys(tmp_path, config)

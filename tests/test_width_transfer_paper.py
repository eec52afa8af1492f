"""width_transfer at paper scale: the ImageNet families (ResNet-18 layout and MobileNetV2,
scaled), their MorphNet BN groups against the built models, the configs' proxies and the
320× decomposition's counted overhead recomputed by hand, one optimiser stage of the
MobileNetV2 quick config, and the plan command."""

import math

import numpy as np
import pytest
from flax import nnx

from configs import base
from experiments.width_transfer import nets
from tests.helpers import REPO

CONFIG = REPO / "experiments/width_transfer/configs/imagenet.py"
FAMILIES = [nets.CifarResNet(),
            nets.ImageNetResNet((2, 1, 1, 2), (8, 16, 32, 64), image=32),
            nets.MobileNetV2(1.0, 0.5, image=32)]


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: type(f).__name__)
def test_bn_groups_name_every_batchnorm_of_the_model_once(family):
    model = family.model(None, base.get_config().model, nnx.Rngs(0))
    norms = {"/".join(map(str, p)) for p, m in nnx.iter_modules(model)
             if isinstance(m, nnx.BatchNorm)}
    grouped = [p for paths in family.bn_groups().values() for p in paths]
    assert len(grouped) == len(set(grouped))
    fixed = {"last_bn"} if isinstance(family, nets.MobileNetV2) else set()  # 1280: no dim
    assert set(grouped) == norms - fixed
    assert list(family.bn_groups()) == list(family.dims)
    for dim, paths in family.bn_groups().items():  # each BN has the dim's channels
        for p in paths:
            module = model
            for part in p.split("/"):
                module = getattr(module, part)
            assert module.scale.value.shape == (family.base[dim],), (dim, p)


def test_mobilenet_bn_groups_by_hand():
    groups = nets.MobileNetV2(0.25, 0.5, image=32).bn_groups()
    assert groups["stem"] == ["stem_bn", "stage1/block0/dw_bn"]
    assert groups["stage1/residual"] == ["stage1/block0/project_bn"]
    assert groups["stage2/block0"] == ["stage2/block0/expand_bn", "stage2/block0/dw_bn"]
    assert groups["stage3/residual"] == ["stage3/block0/project_bn", "stage3/block1/project_bn"]


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: type(f).__name__)
def test_a_proxy_has_the_targets_stages_and_no_more_blocks(family):
    proxy = family.proxy(0.5, 0.5, 0.5)
    assert proxy.image == round(family.image / 2)
    stages = lambda f: {d.split("/")[0] for d in f.dims if "/" in d}  # noqa: E731
    assert stages(proxy) == stages(family)
    assert len(proxy.dims) < len(family.dims)
    assert proxy.flops(proxy.base) < family.flops(family.base) / 4
    with pytest.raises(ValueError, match="never wider, deeper or larger"):
        family.proxy(depth=1.5)


def _config(arg):
    from lib import config as config_lib
    return config_lib.load_file(CONFIG, arg)


@pytest.mark.parametrize("model, target_dims, proxy_dims", [
    ("resnet18", 20, 12), ("mobilenet_v2", 40, 24)])
def test_the_320x_decomposition_counted_and_recomputed_by_hand(model, target_dims, proxy_dims):
    from experiments.width_transfer import plan, procedure

    config = _config(f"model={model},proxy=all")
    procedure.check(config)
    planned = procedure.planned(config, plan.info_of(config))
    (target, t_run), (proxy, p_run) = planned["optimise_target"], planned["optimise_proxy"]
    assert (len(target.dims), len(proxy.dims)) == (target_dims, proxy_dims)
    assert (target.image, proxy.image) == (224, 112)
    train = 1_281_167 - 10_000
    epochs = {"resnet18": 100, "mobilenet_v2": 250}[model]
    images_t = math.ceil(epochs * train / 1024) * 1024
    images_p = math.ceil(epochs * round(0.1 * train) / 1024) * 1024
    assert (t_run.images, p_run.images) == (images_t, images_p)
    if model == "resnet18":  # tests/test_slim_cost.py counts the scaled-up ResNet-18 by hand
        assert t_run.macs_per_image == 14_417_993_728
    factor = (t_run.macs_per_image * images_t) / (p_run.macs_per_image * images_p)
    assert factor == pytest.approx(overhead_factor(planned), rel=1e-12)
    # below the 320 of exact width², depth, side² scaling: fixed image channels and ceil'd
    # sides do not shrink
    assert 250 < factor < 320


def overhead_factor(planned):
    from experiments.width_transfer import overhead
    return overhead.reduction(planned["optimise_target"][1], planned["optimise_proxy"][1])


@pytest.mark.parametrize("model", ["resnet18", "mobilenet_v2"])
def test_each_single_axis_proxy_is_cheaper_and_together_they_multiply(model):
    from experiments.width_transfer import plan, procedure

    factors = {}
    for axis in ("width", "depth", "resolution", "data", "all"):
        config = _config(f"model={model},proxy={axis}")
        factors[axis] = overhead_factor(procedure.planned(config, plan.info_of(config)))
    assert all(factors[a] > 1.5 for a in ("width", "depth", "resolution", "data"))
    product = np.prod([factors[a] for a in ("width", "depth", "resolution", "data")])
    assert factors["all"] == pytest.approx(product, rel=0.1)


def test_mobilenet_quick_optimiser_stage_runs_and_lands_on_budget(tmp_path):
    from experiments.width_transfer import procedure
    from lib import config as config_lib
    from lib import data, train

    config = _config("quick=True,model=mobilenet_v2")
    info = data.get_info(config.data)
    stage = procedure.stages(config, info)["optimise_target"]
    stage = config_lib.updated(stage, {"total_steps": 2})
    train.run(stage, tmp_path / "target")
    family, counts, _, _ = procedure.optimised(tmp_path / "target", config)
    assert family == procedure.planned(config, info)["optimise_target"][0]
    budget = family.flops(family.base)
    assert 0.99 * budget <= family.flops(counts) <= budget


@pytest.mark.parametrize("changes, message", [
    ({"model.depth": 34}, "is ResNet-18's layout"),
    ({"model.layout": (2, 2, 2)}, "four positive integers"),
    ({"data.image_size": 1}, "crops the proxy's inputs"),
])
def test_bad_paper_scale_settings_are_config_errors(changes, message):
    from experiments.width_transfer import procedure
    from lib import config as config_lib

    with pytest.raises(config_lib.ConfigError, match=message):
        procedure.check(config_lib.updated(_config("model=resnet18"), changes))


def test_autoslims_warm_up_shrinks_with_its_run():
    from experiments.width_transfer import plan, procedure

    config = _config("model=resnet18,optimizer=autoslim")
    stages = procedure.stages(config, plan.info_of(config))
    warmup = config.optim.warmup_steps  # 5 of the final training's 100 epochs
    final = config.width_transfer.final_steps
    for stage in stages.values():
        assert stage.optim.warmup_steps == round(warmup * stage.total_steps / final)
    assert stages["optimise_proxy"].optim.warmup_steps < warmup / 5
    morphnet = procedure.stages(_config("model=resnet18"), plan.info_of(config))
    assert {s.optim.warmup_steps for s in morphnet.values()} == {0}


def test_plan_prints_the_factor_and_refuses_bad_input(capsys):
    from experiments.width_transfer import plan

    assert plan.main([f"{CONFIG}:model=resnet18"]) == 0
    assert "overhead-reduction factor: 297.1×" in capsys.readouterr().out
    assert plan.main([f"{CONFIG}:model=vgg"]) == 2
    assert "model='vgg'; valid choices" in capsys.readouterr().err
    assert plan.main([]) == 2

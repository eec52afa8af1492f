"""Meshes and state shardings: the FSDP rule, and FSDP runs equal to one device."""

import jax
import numpy as np
import pytest
from helpers import DIGITS, digits_config, final_params, train_losses
from jax.sharding import PartitionSpec as P

from lib import config as config_lib
from lib import sharding, train


@pytest.mark.parametrize("shape, size, min_size, spec", [
    ((3, 3, 16, 32), 4, 1, P(None, None, None, "fsdp")),  # largest dimension
    ((3, 3, 32, 32), 4, 1, P(None, None, None, "fsdp")),  # tie: the later dimension
    ((384, 1536), 8, 1, P(None, "fsdp")),
    ((1536, 384), 8, 1, P("fsdp", None)),
    ((10, 12), 4, 1, P(None, "fsdp")),  # 12 is the only dimension divisible by 4
    ((10, 6), 4, 1, P()),  # none divisible: replicated
    ((384,), 8, 1000, P()),  # below min_size: replicated
    ((384, 384), 1, 1, P()),  # fsdp=1: data parallel
    ((), 8, 0, P()),
])
def test_fsdp_spec(shape, size, min_size, spec):
    assert sharding.fsdp_spec(shape, size, min_size) == spec


def _mesh(**keys):
    c = config_lib.load_file(DIGITS, "")
    for k, v in keys.items():
        c.mesh[k] = v
    return sharding.make_mesh(c.mesh)


def test_mesh_shapes_and_errors():
    assert dict(_mesh().shape) == {"data": 8, "fsdp": 1}
    assert dict(_mesh(fsdp=4).shape) == {"data": 2, "fsdp": 4}
    assert dict(_mesh(data=1, fsdp=2).shape) == {"data": 1, "fsdp": 2}
    with pytest.raises(config_lib.ConfigError, match="mesh.fsdp=3 must be a divisor of the 8"):
        _mesh(fsdp=3)
    with pytest.raises(config_lib.ConfigError, match="mesh.data=4 × mesh.fsdp=4 does not fit"):
        _mesh(data=4, fsdp=4)


def test_fsdp_shards_parameters_and_optimizer_state():
    trainer = train.Trainer(digits_config(**{"mesh.fsdp": 8, "mesh.fsdp_min_size": 1024}))
    shardings = trainer.state_sharding
    name = "stage3/block0/conv2/kernel"  # 3×3×64×64
    assert shardings["params"][name].spec == P(None, None, None, "fsdp")
    momentum = [s for s in jax.tree.leaves(shardings["opt_state"]) if s.spec != P()]
    assert len(momentum) == sum(s.spec != P() for s in shardings["params"].values()) > 0
    assert shardings["params"]["head/bias"].spec == P()  # 10 elements: replicated
    state = trainer.initial_state()
    shard = state["params"][name].addressable_shards[0].data
    assert shard.shape == (3, 3, 64, 8)  # each device holds an eighth


@pytest.mark.parametrize("mesh", [{"fsdp": 8}, {"fsdp": 4}])  # 1×8 and 2 data × 4 fsdp
def test_fsdp_resnet_equals_one_device(tmp_path, mesh):
    train.run(digits_config(**{"mesh.data": 1}), tmp_path / "one")
    fsdp = {f"mesh.{k}": v for k, v in mesh.items()}
    train.run(digits_config(**fsdp, **{"mesh.fsdp_min_size": 256}), tmp_path / "fsdp")
    _assert_close(tmp_path / "one", tmp_path / "fsdp")


def _assert_close(a, b):
    np.testing.assert_allclose(train_losses(a), train_losses(b), rtol=1e-5)
    (pa, sa), (pb, sb) = final_params(a), final_params(b)
    for k in pa:
        np.testing.assert_allclose(pa[k], pb[k], rtol=1e-3, atol=1e-4, err_msg=k)
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-3, atol=1e-4), sa, sb)


def vit_s_config(**overrides):
    """ViT-S (width 384, 12 layers, 6 heads, MLP 1536: 21.3 M parameters) with 4×4 patches on
    8×8 digits, AdamW: the size of ViT-S/16, at the cost of 4 tokens per image."""
    return digits_config(steps=3, **{
        "model.name": "vit", "model.variant": "S", "model.patch_size": 4,
        "optim.name": "adamw", "optim.lr": 1e-3, "optim.weight_decay": 1e-4,
        "optim.schedule": "constant", "optim.milestones": (0,),
        "data.batch_size": 32, "eval.top_k": 0, **overrides})


@pytest.fixture(scope="module")
def vit_s_one_device(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("vit_s") / "one_device"
    assert train.run(vit_s_config(**{"mesh.data": 1}), workdir)["total_params"] > 21_000_000
    return workdir


@pytest.mark.parametrize("mesh", [{"mesh.fsdp": 8}, {"mesh.data": 8}])  # FSDP, data parallel
def test_vit_s_equals_one_device(tmp_path, vit_s_one_device, mesh):
    train.run(vit_s_config(**mesh), tmp_path)
    _assert_close(vit_s_one_device, tmp_path)

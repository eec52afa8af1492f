"""Mixed precision: the matmul FLOP count by dtype against hand counts, bfloat16 compute with
float32 state in every model family's train step, and 50 steps of bfloat16 against float32."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lib import bench, precision, train
from lib import config as config_lib
from lib.models.layers import LayerSpec

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_matmul_flops_of_a_dot_a_conv_and_a_scan_by_hand():
    def fn(a, b, x, w, c):
        d = a @ b  # [2, 3] @ [3, 4]: 2·(2·4)·3 = 48
        y = jax.lax.conv_general_dilated(  # [1, 5, 5, 2] * [3, 3, 2, 4], VALID: out 1×3×3×4
            x, w, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))

        def body(carry, _):  # 5 × ([1, 4] @ [4, 4]): 5 · 2·4·4 = 160
            return carry @ c, None

        z, _ = jax.lax.scan(body, d[:1].astype(jnp.bfloat16), None, length=5)
        return d, y, z

    flops = precision.matmul_flops(
        fn, jnp.ones((2, 3)), jnp.ones((3, 4)), jnp.ones((1, 5, 5, 2)), jnp.ones((3, 3, 2, 4)),
        jnp.ones((4, 4), jnp.bfloat16))
    conv = 2 * (3 * 3 * 4) * (3 * 3 * 2)  # 2 · outputs · (kernel taps × input channels)
    assert flops == {"float32×float32": 48 + conv, "bfloat16×bfloat16": 160}
    assert precision.share(flops) == pytest.approx(160 / (48 + conv + 160))
    assert precision.share({}) == 0.0


def test_a_depthwise_convolution_and_its_weight_gradient_count_their_multiply_adds():
    """Feature groups (forward) and batch groups (XLA's form of the weight gradient) are
    counted as their multiply-adds: 2·(2·8·8·8 outputs)·(3·3 taps × 1 input channel) each."""
    def conv(x, w):
        return jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", feature_group_count=8,
                                            dimension_numbers=("NHWC", "HWIO", "NHWC"))

    x, w = jnp.ones((2, 8, 8, 8)), jnp.ones((3, 3, 1, 8))
    forward = 2 * (2 * 8 * 8 * 8) * 9
    assert precision.matmul_flops(conv, x, w) == {"float32×float32": forward}
    weight_grad = jax.grad(lambda x, w: jnp.sum(conv(x, w)), 1)  # the forward, then a
    assert precision.matmul_flops(weight_grad, x, w) == {  # batch-grouped convolution
        "float32×float32": 2 * forward}


# One config per model family, at its quick size: (config file, arg, overrides).
FAMILIES = {
    "cifar_resnet": ("batchnorm_only/configs/fashion_mnist.py", "quick", {}),
    "cifar_vgg": ("batchnorm_only/configs/cifar_vgg.py", "quick", {}),
    "imagenet_resnet": ("invariance/configs/imagenet.py", "quick", {}),
    "convnet": ("early_phase/configs/digits.py", None, {}),
    "mlp": ("class_selectivity/configs/fashion_mnist.py", None, {}),
    "vit": ("batchnorm_only/configs/fashion_mnist.py", "quick",
            {"model.name": "vit", "model.variant": "Ti", "model.patch_size": 7,
             "optim.trainable": "all"}),
    "slim_mobilenet_v2": ("joslim/configs/imagenet.py", "quick,model=mobilenet_v2", {}),
    "slim_mobilenet_v3": ("joslim/configs/imagenet.py", "quick,model=mobilenet_v3", {}),
    "slim_cifar_resnet": ("joslim/configs/cifar.py", "quick", {}),
    "width_transfer_resnet": ("width_transfer/configs/fashion.py", None, {}),
    "moco_v2": ("background_aug/configs/imagenet.py", "quick,method=mocov2", {}),
    "swav": ("background_aug/configs/imagenet.py", "quick,method=swav", {}),
    "transformer_seq2seq": ("reservoir/configs/iwslt.py", "quick", {}),
    "transformer_bigru_reservoir": ("reservoir/configs/iwslt.py",
                                    "quick,layers=5,reservoirs=2,type=G", {}),
    "transformer_masked_lm": ("reservoir/configs/roberta.py", "quick", {}),
}


def _bfloat16_setup(name):
    path, arg, overrides = FAMILIES[name]
    config = config_lib.load_file(os.path.join(ROOT, "experiments", path), arg)
    for key, value in overrides.items():
        section, field = key.split(".")
        config[section][field] = value
    config.model.dtype = "bfloat16"
    setup = train.build(config)
    info = setup.info
    batch = (bench.token_batch(info, 4, 16) if info.keys and info.vocab_size
             else bench.synthetic_batch(info, 8))
    return setup, batch


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_bfloat16_compute_with_float32_state_in_every_model_family(name):
    """≥ 98 % of the step's matmul FLOPs (forward and backward) in bfloat16; what may stay
    float32 is on-device augmentation (SSL views' blur) and losses (contrastive logits). Every
    floating array of the new state, and the loss, is float32."""
    setup, batch = _bfloat16_setup(name)

    def step(state, batch):
        return train.train_step(setup, state, batch)

    flops = precision.matmul_flops(step, setup.init_state, batch)
    assert precision.share(flops) >= 0.98, flops
    state, metrics = jax.eval_shape(step, setup.init_state, batch)
    assert metrics["loss"].dtype == jnp.float32
    for path, leaf in jax.tree_util.tree_leaves_with_path(state):
        if jnp.issubdtype(leaf.dtype, jnp.floating):
            assert leaf.dtype == jnp.float32, jax.tree_util.keystr(path)


@pytest.mark.parametrize("net", ["mlp", "conv_large"])
def test_plan2vec_metric_nets_in_bfloat16(net):
    from experiments.plan2vec import models as plan2vec_models

    model = plan2vec_models.local_metric(net, (64, 64, 1), LayerSpec(dtype="bfloat16"),
                                         nnx.Rngs(0))
    a = jnp.ones((4, 64, 64, 1))
    graphdef, state = nnx.split(model)

    def forward(state, a):
        return nnx.merge(graphdef, state)(a, a, train=True)

    assert precision.share(precision.matmul_flops(forward, state, a)) == 1.0
    assert forward(state, a).dtype == jnp.float32
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(nnx.state(model, nnx.Param)))


def _losses(workdir) -> tuple[list[float], float]:
    lines = [json.loads(x) for x in open(os.path.join(workdir, "metrics.jsonl"))]
    results = json.load(open(os.path.join(workdir, "results.json")))
    return [x["train/loss"] for x in lines if "train/loss" in x], results["eval/loss"]


@pytest.mark.parametrize("config", ["batchnorm_only/configs/fashion_mnist.py:quick",
                                    "reservoir/configs/synthetic.py:quick"])
def test_50_steps_in_bfloat16_stay_within_2_percent_of_float32(config, tmp_path):
    """The same 50 steps (a CIFAR ResNet; a Transformer) from the same initialisation through
    `python -m lib.main`: every logged train loss (means over 10 steps) and the final eval
    loss in bfloat16 within 2 % of float32's (measured: 0.3 % at most)."""
    out = {}
    for dtype in ("float32", "bfloat16"):
        workdir = tmp_path / dtype
        subprocess.run(
            [sys.executable, "-m", "lib.main", f"--config=experiments/{config}",
             f"--workdir={workdir}", f"--config.model.dtype={dtype}", "--config.total_steps=50",
             "--config.log_every=10", "--config.eval_every=0", "--config.checkpoint_every=0",
             "--config.progress=False"],
            cwd=ROOT, check=True, capture_output=True, text=True)
        out[dtype] = _losses(workdir)
    (train32, eval32), (train16, eval16) = out["float32"], out["bfloat16"]
    assert len(train32) == len(train16) == 5
    assert train32[-1] < train32[0]  # it learns at all
    np.testing.assert_allclose(train16, train32, rtol=0.02)
    assert np.isfinite(eval16) and abs(eval16 - eval32) <= 0.02 * eval32


def test_cpu_bfloat16_guard_sets_the_flag_before_the_backend_starts():
    code = ("import os; from lib import precision; precision.guard_cpu_bfloat16('{}'); "
            "print(os.environ.get('XLA_FLAGS', ''))")
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    flags = {dtype: subprocess.run([sys.executable, "-c", code.format(dtype)], cwd=ROOT,
                                   env=env, check=True, capture_output=True, text=True
                                   ).stdout.strip() for dtype in ("bfloat16", "float32")}
    assert precision.YNN_OFF in flags["bfloat16"].split()
    assert "ynn" not in flags["float32"]

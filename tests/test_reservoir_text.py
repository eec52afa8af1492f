"""reservoir's language-model, masked-LM and GLUE configs: the synthetic token streams their
quick runs read, the refusals of each config, the frozen-finetuned arg, the pre-trained run a
GLUE run finds by its args, and masked-LM pre-training followed by fine-tuning end to end."""

import importlib.util

import numpy as np
import pytest

from experiments.reservoir import synthetic_text
from experiments.reservoir.configs import glue, roberta
from lib import config as config_lib
from lib import train
from lib.config import ConfigError
from lib.text import BOS, EOS
from tests.helpers import REPO

CONFIGS = REPO / "experiments/reservoir/configs"


def load(name, arg):
    return config_lib.load_file(CONFIGS / f"{name}.py", arg)


def test_synthetic_token_streams_walk_their_chains():
    data_cfg = load("roberta", "quick").data
    plain = synthetic_text.tokens(data_cfg, "train")
    labelled = synthetic_text.labelled(data_cfg, "validation")
    assert (plain.vocab_size, plain.num_classes, labelled.num_classes) == (36, 0, 2)
    assert len(plain.records) == 4000 and len(labelled.records) == 500
    chains = [synthetic_text.successors(c) + synthetic_text.FIRST for c in (0, 1)]
    follows = []
    for split, limit in ((plain, 300), (labelled, 500)):
        for i in range(limit):
            record = split.records[i]
            tokens, chain = record["tokens"], chains[int(record.get("label", 0))]
            assert tokens[0] == BOS and tokens[-1] == EOS and 14 <= len(tokens) <= 30
            walk = tokens[1:-1]
            for a, b in zip(walk[:-1], walk[1:]):
                assert b in chain[a - synthetic_text.FIRST]
                follows.append(b == chain[a - synthetic_text.FIRST][0])
    assert abs(np.mean(follows) - synthetic_text.FOLLOW) < 0.02
    assert 200 < labelled.records.labels.sum() < 300
    again = synthetic_text.tokens(data_cfg, "train").records[5]["tokens"]
    np.testing.assert_array_equal(again, plain.records[5]["tokens"])
    with pytest.raises(ConfigError, match="splits train, validation, test, not 'valid'"):
        synthetic_text.tokens(data_cfg, "valid")
    with pytest.raises(ConfigError, match="data.max_length to at least 30"):
        synthetic_text.tokens(config_lib.updated(data_cfg, {"max_length": 16}), "train")


@pytest.mark.parametrize("arg", ["type=G,layers=7,reservoirs=3", "encoder=LLCLL"])
def test_language_model_refuses_bidirectional_reservoirs(arg):
    with pytest.raises(ConfigError, match=r"reservoirs, which read later positions .* a causal "
                                          r"language model cannot use them"):
        load("enwik8", arg)
    config = load("enwik8", "layers=18,reservoirs=6,type=T")
    assert config.model.encoder_types == "LLLTLTLTLTLTLTLLLL"
    assert (config.data.max_length, config.task) == (513, "lib.text.tasks:LanguageModel")


def test_roberta_and_glue_build_the_same_encoder():
    pre = load("roberta", "layers=12,reservoirs=4,type=T,corpus=lm1b")
    fine = load("glue", "layers=12,reservoirs=4,type=T,pretrained=/runs/pre,task=mnli")
    for key in ("encoder_types", "width", "mlp_dim", "num_heads", "activation", "positions",
                "layer_types"):
        assert pre.model[key] == fine.model[key], key
    assert pre.data.max_length == fine.data.max_length == 512
    assert (pre.optim.eps, pre.optim.b2, pre.optim.weight_decay) == (1e-6, 0.98, 0.01)
    assert pre.data.name == "lm1b" and pre.data.validation_examples == 10_000
    assert (fine.init.workdir, fine.init.mode, fine.data.tokenizer) == (
        "/runs/pre", "params", "/runs/pre/tokenizer")
    assert fine.data.eval_split == "validation_matched" and fine.total_steps == 122_720
    with pytest.raises(ConfigError, match="corpus='wiki'; valid choices: lines, lm1b"):
        load("roberta", "corpus=wiki")


def test_glue_frozen_layers_become_a_freeze_pattern():
    assert load("glue", "frozen=2+4+6+8").optim.freeze == "^encoder/layer(2|4|6|8)/"
    assert load("glue", "").optim.freeze == ""
    for arg, message in [("frozen=1+x", "joined by '\\+'"),
                         ("frozen=12", "layer 12 is not in the encoder"),
                         ("layers=7,reservoirs=3,frozen=1", "layer 1 of 'LFLFLFL' is a "
                                                            "reservoir")]:
        with pytest.raises(ConfigError, match=message):
            load("glue", arg)


def test_glue_finds_each_pretrained_run_where_the_roberta_sweep_put_it():
    spec = importlib.util.spec_from_file_location("sweep", REPO / "launch/sweep.py")
    sweep = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sweep)
    names = {sweep.workdir_name(p) for p in roberta.get_sweep()}
    glue_points = glue.get_sweep("pretrained_root=/runs/roberta")
    found = set()
    for point in glue_points:
        config = load("glue", sweep.point_arg(point))
        root, _, name = config.init.workdir.rpartition("/")
        assert root == "/runs/roberta" and name in names, point
        found.add(name)
    assert found == names and len(glue_points) == 2 * (33 + 9)
    with pytest.raises(ConfigError, match="not both"):
        load("glue", "pretrained=/a,pretrained_root=/b")


def test_masked_lm_pretraining_then_frozen_finetuning(tmp_path):
    """roberta.py:quick pre-trains a 3-layer LFL encoder; glue.py:quick fine-tunes it with layer
    0 frozen: every pre-trained encoder parameter is mapped, layer 0 and the reservoir stay
    bit-identical, layer 2 and the fresh classifier train."""
    shape = "layers=3,reservoirs=1"
    pre = load("roberta", f"quick,{shape}")
    pre = config_lib.updated(pre, {"total_steps": 4, "checkpoint_every": 4, "eval_every": 4,
                                   "progress": False, "async_checkpointing": False})
    train.run(pre, tmp_path / "pre")
    fine = load("glue", f"quick,{shape},frozen=0,pretrained={tmp_path / 'pre'}")
    assert fine.init.workdir == str(tmp_path / "pre") and fine.data.tokenizer == ""
    fine = config_lib.updated(fine, {"total_steps": 4, "checkpoint_every": 4, "eval_every": 4,
                                     "progress": False, "async_checkpointing": False})
    results = train.run(fine, tmp_path / "fine")
    assert np.isfinite(results["eval/accuracy"])
    _, pre_setup, start = train.load_final(tmp_path / "pre")
    _, setup, end = train.load_final(tmp_path / "fine")
    before, after = start["params"], end["params"]
    encoder = [k for k in before if k.startswith("encoder/")]
    layer0 = [k for k in encoder if k.startswith("encoder/layer0/") and k.endswith("kernel")]
    assert layer0 and not np.array_equal(before[layer0[0]],  # pre-training moved it
                                         pre_setup.init_state["params"][layer0[0]])
    assert encoder and all(k in after for k in encoder)
    for k in encoder:
        same = np.array_equal(before[k], after[k])
        if k.startswith(("encoder/layer0/", "encoder/layer1/")):
            assert same and k not in setup.trainable.names, k
        elif k.startswith("encoder/layer2/") and k.endswith("kernel"):
            assert not same, k
    assert any(k.startswith("classifier/") for k in after)

"""lib.evaluators.translation: decoded hypotheses against a step-by-step argmax of the model,
BLEU in the trainer's evaluation, and the id-text form of tokenizer-free data."""

import numpy as np
import pytest

from lib import config as config_lib
from lib import train
from lib.evaluators import translation
from tests.helpers import REPO

SYNTHETIC = REPO / "experiments/reservoir/configs/synthetic.py"


def trainer(**eval_overrides):
    config = config_lib.load_file(SYNTHETIC, "quick=True,encoder=LFL")
    config = config_lib.updated(config, {"data.eval_split": "test", "data.eval_batch_size": 8,
                                         **{f"eval.{k}": v for k, v in eval_overrides.items()}})
    return train.Trainer(config)


def test_ids_text_stops_at_eos_and_drops_specials():
    assert translation.ids_text([1, 5, 7, 2, 9, 0]) == "5 7"
    assert translation.ids_text([0, 0]) == ""


def test_greedy_hypotheses_equal_a_stepwise_argmax():
    t = trainer()
    state = t.initial_state()
    batch = next(iter(t.eval_batches()))
    small = {k: v[:8] for k, v in batch.items()}
    hyps, refs = translation.Translator(t, 1, 1.0).translations(state, [small])
    model = t.setup.model(state)
    for row in range(2):
        inputs = small["inputs"][row:row + 1]
        prefix = np.zeros((1, inputs.shape[1]), np.int32)
        prefix[0, 0] = 1
        out = []
        for pos in range(inputs.shape[1]):
            logits = np.asarray(model(inputs, prefix)[0, pos])
            token = int(np.argmax(logits[2:])) + 2  # PAD and BOS are never generated
            out.append(token)
            if token == 2 or pos + 1 == inputs.shape[1]:
                break
            prefix[0, pos + 1] = token
        assert hyps[row] == translation.ids_text(out)
        assert refs[row] == translation.ids_text(small["targets"][row])


def test_bleu_in_evaluation_and_bad_variant():
    t = trainer(bleu=True, beam_size=2, bleu_variant="tok")
    values = t.evaluate(t.initial_state())
    assert 0 <= values["eval/bleu"] < 5  # an untrained model
    with pytest.raises(config_lib.ConfigError, match="eval.bleu_variant"):
        trainer(bleu=True, bleu_variant="chrf")

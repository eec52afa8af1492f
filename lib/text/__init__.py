"""Text tooling shared by the sequence papers: tokenisation, BLEU, decoding, sequence tasks.

The modules import their libraries (sentencepiece, sacrebleu; the `[text]` extra) only when a
function needs them, so importing `lib.text` costs nothing for the papers that do not use text.
"""

PAD, BOS, EOS, UNK = 0, 1, 2, 3  # token ids fixed across the project: models, data, tokenizers

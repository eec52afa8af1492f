"""RoBERTa-style token masking for masked-language-model pre-training (jit-able, on device).

Among the real tokens (the special ids PAD, BOS, EOS and UNK, 0–3, are never chosen), each is
selected independently with probability `rate`; a selected token becomes MASK with probability
`replace`, a uniformly drawn regular token (ids 4..vocab_size − 1) with probability `random`,
and stays as it is otherwise (BERT's 80/10/10). The loss is taken at the selected positions only.

The MASK id is the caller's choice. lib.text.tasks gives the model one embedding row more than
the data's vocabulary and uses the data's vocab_size as MASK, so no tokenizer has to reserve
an id for it and the data's ids keep their meaning.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lib.text import UNK

REGULAR = UNK + 1  # the first id that can be selected or drawn as a replacement


def mask_tokens(tokens: jax.Array, rng: jax.Array, *, vocab_size: int, mask_id: int,
                rate: float = 0.15, replace: float = 0.8, random: float = 0.1
                ) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(inputs, targets, weights) for integer `tokens` of any shape: inputs with the selected
    positions replaced, targets = the original tokens, weights 1.0 at selected positions."""
    if vocab_size <= REGULAR:
        raise ValueError(f"masking draws replacements from ids {REGULAR}..vocab_size − 1: "
                         f"vocab_size {vocab_size} leaves none")
    if not 0 <= rate <= 1 or replace < 0 or random < 0 or replace + random > 1:
        raise ValueError(f"need 0 <= rate <= 1 and replace, random >= 0 with replace + random "
                         f"<= 1; got rate={rate}, replace={replace}, random={random}")
    select_rng, action_rng, draw_rng = jax.random.split(rng, 3)
    selected = (tokens >= REGULAR) & jax.random.bernoulli(select_rng, rate, tokens.shape)
    action = jax.random.uniform(action_rng, tokens.shape)
    drawn = jax.random.randint(draw_rng, tokens.shape, REGULAR, vocab_size, tokens.dtype)
    replaced = jnp.where(action < replace, jnp.asarray(mask_id, tokens.dtype),
                         jnp.where(action < replace + random, drawn, tokens))
    return jnp.where(selected, replaced, tokens), tokens, selected.astype(jnp.float32)

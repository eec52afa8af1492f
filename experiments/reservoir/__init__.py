"""Reservoir Transformers (Shen et al., ACL 2021): frozen random layers interleaved with
trainable ones (spec: /work/shared/papers/reservoir.md)."""

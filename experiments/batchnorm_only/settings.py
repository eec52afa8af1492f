"""The trainable-subset settings of the paper (batchnorm_only.md §2) and what each implies."""

from lib.optim import TRAINABLE_SUBSETS as SETTINGS

PAPER_SETTINGS = ("all", "bn_only", "output_only", "random_k_per_channel", "bn_and_output",
                  "all_no_affine")
# The small-scale ordering the claims check, best first.
ORDERED_SETTINGS = ("all", "bn_and_output", "bn_only", "output_only", "random_k_per_channel",
                    "none")


def apply(c, trainable: str) -> None:
    """Sets optim.trainable; `all_no_affine` needs BN at γ=1, β=0 (the Figure 1 baseline)."""
    if trainable not in SETTINGS:
        raise ValueError(f"unknown setting {trainable!r}; valid: {', '.join(SETTINGS)}")
    c.optim.trainable = trainable
    if trainable == "all_no_affine":
        c.model.bn_init = "fixed"

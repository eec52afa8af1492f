"""Where the reservoirs go in an encoder of n layers (spec §2, "Placement").

The paper's rule is "alternating, starting from the middle": with k reservoirs (n ≥ 2k + 1),
pad p = floor((n − (2k + 1)) / 2) and put reservoirs at 0-based positions p + 1 + 2i,
i = 0 … k − 1. The rule is reconstructed; it gives the paper's examples (n = 7: k = 3 →
L R L R L R L, k = 2 → L L R L R L L). The appendix's other placements are options:
'bottom' (the first k layers), 'top' (the last k) and 'middle' (k consecutive layers centred).
"""

from __future__ import annotations

from lib.config import ConfigError

PLACEMENTS = ("alternating", "bottom", "middle", "top")


def positions(n: int, k: int, placement: str = "alternating") -> list[int]:
    """0-based indices of the k reservoir layers among n."""
    if placement not in PLACEMENTS:
        raise ConfigError(f"unknown reservoir placement {placement!r}; valid choices: "
                          f"{', '.join(PLACEMENTS)}")
    if n < 1 or k < 0:
        raise ConfigError(f"need n >= 1 layers and k >= 0 reservoirs, got n={n}, k={k}")
    if placement == "alternating":
        if n < 2 * k + 1:
            raise ConfigError(f"alternating placement of {k} reservoirs needs at least "
                              f"2k + 1 = {2 * k + 1} layers (each between two regular "
                              f"ones); the encoder has {n}. Use fewer reservoirs, more "
                              "layers, or another placement")
        pad = (n - (2 * k + 1)) // 2
        return [pad + 1 + 2 * i for i in range(k)]
    if k > n:
        raise ConfigError(f"{k} reservoirs do not fit in {n} layers")
    start = {"bottom": 0, "top": n - k, "middle": (n - k) // 2}[placement]
    return list(range(start, start + k))


def layer_types(n: int, k: int, kind: str = "F", placement: str = "alternating") -> str:
    """The encoder's type string: 'L' for regular layers, `kind` at the reservoirs."""
    chosen = set(positions(n, k, placement))
    return "".join(kind if i in chosen else "L" for i in range(n))

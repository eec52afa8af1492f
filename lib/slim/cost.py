"""The cost of a slimmable sub-network (joslim.md §2 "Cost"), counted over the convolutions of
a lib.slim.space.Arch with their active channels.

MACs (the paper's cost): k·k·(c_in / groups)·c_out·H·W summed over the listed convs, where a
depthwise conv has one group per active channel (so c_in / groups = 1). What each network's
list covers is in its builder and in `Arch.counted`; BN, activations, pooling (also the SE's),
adds and Linear layers are never counted, a 1×1-conv classifier is.

Memory footprint (the paper's second objective) is not defined in the material we have
(joslim.md §8: "likely activation + weight memory of the sub-network"). Our reading, and
only that: the weights of the listed convs plus their output activations for one image, in
elements (k·k·(c_in / groups)·c_out + c_out·H·W per conv); multiply by the bytes per element
for bytes. Both enter the search as a ratio to the full network, C(α) = cost(α) / cost(1).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from lib.slim.space import Arch

KINDS = ("macs", "memory")


def _active(arch: Arch, channels: Mapping[str, int], bounded: bool = True) -> None:
    """Raise a ValueError unless `channels` gives every count the convs use, within bounds
    (1..full width; with bounded=False any positive count)."""
    limits = arch.space.full_channels
    needed = sorted({k for c in arch.convs for k in (c.cin, c.cout)})
    missing = [k for k in needed if k not in channels]
    if missing:
        raise ValueError(f"{arch.name}: the channel counts lack {missing}; decode a width "
                         "configuration with arch.space.decode(alpha)")
    bad = [f"{k} = {channels[k]!r} (full width {limits[k]})" for k in needed
           if not (isinstance(channels[k], int | np.integer) and 1 <= channels[k]
                   and (channels[k] <= limits[k] or not bounded))]
    if bad:
        allowed = "integers in 1..full width" if bounded else "positive integers"
        raise ValueError(f"{arch.name}: active channel counts must be {allowed}; got "
                         f"{', '.join(bad)}")


def macs(arch: Arch, channels: Mapping[str, int], bounded: bool = True) -> int:
    """Multiply-accumulates of the listed convs at the active `channels` (decoded counts).
    bounded=False allows counts above the arch's bases (a network widened past them, as
    width_transfer's expand step does)."""
    _active(arch, channels, bounded)
    return _macs(arch, channels)


def _macs(arch: Arch, widths: Mapping):
    return sum(c.kernel * c.kernel * (1 if c.depthwise else widths[c.cin])
               * widths[c.cout] * c.out_size * c.out_size for c in arch.convs)


def expected_macs(arch: Arch, widths: Mapping):
    """The same sum at real-valued (or traced) widths: the expected MACs of random channel
    counts, independent across dims, with these means. Each conv's MACs are linear in each
    of its two dims (a depthwise conv's in its one), so the expectation is exact; a
    non-depthwise conv from a dim to itself would make it inexact and is refused."""
    same = [c.name for c in arch.convs if c.cin == c.cout and not c.depthwise]
    if same:
        raise ValueError(f"{arch.name}: convs {same} map a dim to itself; their expected MACs "
                         "are not the MACs at the expected widths")
    return _macs(arch, widths)


def memory(arch: Arch, channels: Mapping[str, int]) -> int:
    """Our reading of the memory footprint: the listed convs' weights plus their output
    activations for one image, in elements."""
    _active(arch, channels)
    return sum(c.kernel * c.kernel * (1 if c.depthwise else channels[c.cin]) * channels[c.cout]
               + channels[c.cout] * c.out_size * c.out_size for c in arch.convs)


def count(arch: Arch, channels: Mapping[str, int], kind: str = "macs") -> int:
    """The absolute cost of `kind` ("macs" or "memory") at the active `channels`."""
    if kind not in KINDS:
        raise ValueError(f"unknown cost kind {kind!r}; valid: {', '.join(KINDS)}")
    return (macs if kind == "macs" else memory)(arch, channels)


def cost(arch: Arch, alpha, kind: str = "macs") -> float:
    """C(α): the cost of `kind` of the sub-network α as a ratio to the full network."""
    return (count(arch, arch.space.decode(alpha), kind)
            / count(arch, arch.space.full_channels, kind))


def ratio(arch: Arch, alpha) -> float:
    """The paper's cost: the MAC ratio of α to the full network."""
    return cost(arch, alpha, "macs")

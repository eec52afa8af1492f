"""Width machinery for slimmable networks, shared by the joslim and width_transfer papers: the
width space of a network (fused dimensions, decoding, the residual chain rule), its
convolutions for cost counting, the cost counter, channel masks and slicing, BN
recalibration and Pareto utilities."""

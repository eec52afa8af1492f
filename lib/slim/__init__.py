"""Width machinery of slimmable networks (joslim, width_transfer): width spaces and their
decoding, the conv cost counter, channel masks and slicing, BatchNorm recalibration, Pareto
utilities."""

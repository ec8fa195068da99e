"""The benchmark behind `make bench`: a private stack, measured against its own baselines."""

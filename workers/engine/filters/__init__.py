"""Filters: one module per concern, all sharing the contract in `base`."""

"""The fast tier: faster implementations of textbook ops, registered per backend and dtype."""

"""civicat catalogue: the normalised store, and what is built on it."""

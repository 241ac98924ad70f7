"""civicat catalogue: the normalised store, and what is built on it."""

# how to install the optional embedding signal (catalog.overlap.embeddings), for every message
# that names it: here, so that the CLI's help says it without importing the overlap detector
EMBEDDINGS_INSTALL = "pip install -e '.[embeddings]'"

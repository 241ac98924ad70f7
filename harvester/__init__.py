"""civicat harvester: talks to open-data portals and feeds the catalogue."""

__version__ = "0.1.0"

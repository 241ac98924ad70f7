"""`python -m harvester`: the `civicat` command, its stop handlers installed first (harvester.command)."""
from harvester.command import main

main()

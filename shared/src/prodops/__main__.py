"""`python -m prodops`: the same command line as the `prodops` script."""

from prodops.cli import main

main()

"""`python -m prodops_cli`: the same command line as the `prodops` script."""

from prodops_cli.commands import main

main()

"""prodops benchmarks (`make bench`): real processes, figures against baselines of the same run."""

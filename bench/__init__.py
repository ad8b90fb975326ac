"""`make bench`: the service measured against baselines run side by side (issue 8).

Every figure is a ratio against a baseline measured in the same run, the median of a
few rounds. See ``python -m bench --help`` and ``bench/results.md`` (last full run).
"""

"""The benchmarks: how many people one edge instance serves, and how fast a turn moves.

`make bench` (`python -m bench`) starts the real stack on the emulators, runs the scenarios in
`bench/scenarios/`, prints one table and writes the figures to `bench/results/`. See the
README's "Performance" section for what each figure means.
"""

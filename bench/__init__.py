"""Benchmarks (not tests): each measures the bot against a baseline run in the same process and reports ratios.

Run them all with `make bench` (`python -m bench`); `--quick` is the tiny mode the smoke test uses.
"""

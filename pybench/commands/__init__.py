"""The commands that run training: `compare`, `parity` and `sweep`, side by side. Each imports
only `pybench.run` (and the layers below it), never another command; what they print is
`pybench.report.console`'s, and `pybench.cli` parses their options.
"""

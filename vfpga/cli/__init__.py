"""Command-line interface of vfpga (``vfpga`` and ``vfpga-opt``)."""

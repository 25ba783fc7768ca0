"""The vfpga accelerator instruction set (see docs/isa.md)."""

"""The static compiler: quantized graph to accelerator binary (see docs/compiler.md)."""

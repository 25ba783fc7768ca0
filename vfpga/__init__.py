"""vfpga: compiler toolchain, emulator and runtime for a virtualized multi-core FPGA DNN
accelerator."""

__version__ = "0.1.0"

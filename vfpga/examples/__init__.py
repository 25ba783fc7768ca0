"""Bundled sample programs for the emulator (hand-written, not compiled)."""

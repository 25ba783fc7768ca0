"""``vfpga serve``: the multi-tenant pool as a KServe v2 inference server (docs/serving.md).

Modules: :mod:`~vfpga.serve.app` (HTTP routes, :class:`~vfpga.serve.app.Server`),
:mod:`~vfpga.serve.protocol` (KServe v2 tensors), :mod:`~vfpga.serve.repository`
(Triton-style repository, tenants.toml), :mod:`~vfpga.serve.state` (SQLite state),
:mod:`~vfpga.serve.auth` (bearer tokens), :mod:`~vfpga.serve.scheduler` (the thread that
owns the pool), :mod:`~vfpga.serve.policy` (fixed, elastic), :mod:`~vfpga.serve.metrics`.
"""

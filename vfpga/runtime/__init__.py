"""Host side of the accelerator: host ops, and (later) the multi-tenant resource pool."""

// RUN: vfpga-opt %s --split-input-file --parsing-diagnostics | filecheck %s

// Errors of the isa custom syntax.

// CHECK: isa.pool has no field 'to' (fields: core, layer, mode, in_addr
isa.pool to=ibuf

// -----
// CHECK: isa.load: 'n0' given twice
isa.load n0=1 n0=2

// -----
// CHECK: isa.load: field 'n0' = 70000 is outside [0, 65535]
isa.load n0=70000

// -----
// CHECK: Expected one of 'signal_next', 'signal_prev', 'wait_next', 'wait_prev' (a dependency name)
isa.load deps [wait_later]

// -----
// CHECK: for 'act' (or one of none, relu, relu6)
isa.conv act=gelu

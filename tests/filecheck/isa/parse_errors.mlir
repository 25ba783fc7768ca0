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
// CHECK: for 'act' (or one of none, relu, relu6, table)
isa.conv act=gelu

// -----
// CHECK: isa.eltwise: field 'scale_a' = 1e+39 does not fit a float32
isa.eltwise scale_a=1.0e39

// -----
// CHECK: Expected a float literal for 'offset'
isa.eltwise offset=big

// -----
// CHECK: isa.pool: field 'scale': 0x100000000 is not 32 bits
isa.pool scale=0x100000000

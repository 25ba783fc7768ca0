// RUN: vfpga-opt %s --split-input-file --verify-diagnostics | filecheck %s

// One chunk per isa verifier error; each message names the op and the problem.

// CHECK: isa.load: dependency wait_prev is not allowed for an instruction of the LOAD module
"isa.load"() <{to = 0 : i64, n0 = 1 : i64, n1 = 1 : i64, n2 = 1 : i64, deps = ["wait_prev"]}> : () -> ()

// -----
// CHECK: isa.save: dependency signal_next is not allowed for an instruction of the SAVE module
isa.save from=obuf n2=1 n0=1 n1=1 deps [signal_next]

// -----
// CHECK: isa.sync: dependency wait_next is not allowed for an instruction of the CTRL module
isa.sync layer=1 deps [wait_next]

// -----
// CHECK: isa.conv: field 'kh' = 300 is outside [0, 255]
"isa.conv"() <{kh = 300 : i64}> : () -> ()

// -----
// CHECK: isa.conv: 'kh' = 12 must be in 1..11
isa.conv in_h=12 in_w=12 in_c=8 out_c=8 groups=1 kh=12 kw=3 stride_h=1 stride_w=1

// -----
// CHECK: isa.conv: in_c 8 and out_c 6 must be divisible by groups 4
isa.conv in_h=3 in_w=3 in_c=8 out_c=6 groups=4 kh=1 kw=1 stride_h=1 stride_w=1

// -----
// CHECK: isa.conv: the 3x3 kernel does not fit the padded 2x2 input
isa.conv in_h=2 in_w=2 in_c=8 out_c=8 groups=1 kh=3 kw=3 stride_h=1 stride_w=1

// -----
// CHECK: isa.conv: 'acc_addr' = 6 must be a multiple of 4
isa.conv acc_in=1 acc_addr=6 in_h=3 in_w=3 in_c=8 out_c=8 groups=1 kh=1 kw=1 stride_h=1 stride_w=1

// -----
// CHECK: isa.load: 'to' must be ibuf, wbuf or pbuf
"isa.load"() <{to = 3 : i64, n0 = 1 : i64, n1 = 1 : i64, n2 = 1 : i64}> : () -> ()

// -----
// CHECK: isa.load: 'to' = 6 is not a valid value
"isa.load"() <{to = 6 : i64, n0 = 1 : i64, n1 = 1 : i64, n2 = 1 : i64}> : () -> ()

// -----
// CHECK: isa.save: 'from' must be obuf
isa.save n2=1 n0=1 n1=1

// -----
// CHECK: isa.load: 'n0' = 0 must be >= 1 (an empty box)
isa.load to=wbuf n2=16 n1=1

// -----
// CHECK: isa.pool: 'kh' = 2 must be in 0..0 for mode=global_avg
isa.pool mode=global_avg in_h=4 in_w=4 c=8 kh=2

// -----
// CHECK: isa.eltwise: 'n' = 0 must be >= 1
isa.eltwise mult_a=1

// -----
// CHECK: isa.end: field 'core' = 64 is outside [0, 63]
"isa.end"() <{core = 64 : i64}> : () -> ()

// -----
// CHECK: isa.sync has no field 'ddr' (fields: core, layer, deps)
"isa.sync"() <{ddr = 1 : i64}> : () -> ()

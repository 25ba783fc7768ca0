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
isa.eltwise scale_a=1.0

// -----
// CHECK: isa.eltwise: field 'offset' = nan is not finite (a non-finite requantization constant is an invalid-parameter fault on the machine)
"isa.eltwise"() <{n = 1 : i64, offset = 0x7FC00000 : f32}> : () -> ()

// -----
// CHECK: isa.pool: field 'out_scale' = -inf is not finite
"isa.pool"() <{mode = 2 : i64, c = 1 : i64, in_h = 2 : i64, in_w = 2 : i64, kh = 1 : i64, kw = 1 : i64, stride_h = 1 : i64, stride_w = 1 : i64, out_scale = 0xFF800000 : f32}> : () -> ()

// -----
// CHECK: isa.eltwise: field 'scale_a' must be an f32 float
"isa.eltwise"() <{n = 1 : i64, scale_a = 1 : i64}> : () -> ()

// -----
// CHECK: isa.eltwise: field 'scale_b' must be an f32 float
"isa.eltwise"() <{n = 1 : i64, scale_b = 5.000000e-01 : f64}> : () -> ()

// -----
// CHECK: isa.pool: 'scale' = 0.5 must be 0 for mode=max (max pooling does not requantize)
isa.pool mode=max in_h=4 in_w=4 c=1 kh=2 kw=2 stride_h=2 stride_w=2 scale=0.5

// -----
// CHECK: isa.pool: 'in_zp' = -3 must be 0 for mode=max
isa.pool mode=max in_h=4 in_w=4 c=1 kh=2 kw=2 stride_h=2 stride_w=2 in_zp=-3

// -----
// CHECK: isa.pool: 'out_scale' must be non-zero for the average modes (it divides the window mean)
isa.pool mode=avg in_h=4 in_w=4 c=1 kh=2 kw=2 stride_h=2 stride_w=2 scale=0.5

// -----
// CHECK: isa.pool: 'out_scale' = 0.25 must be 0 for mode=global_avg
isa.pool mode=global_avg in_h=4 in_w=4 c=1 scale=0.5 out_scale=0.25

// -----
// CHECK: isa.end: field 'core' = 64 is outside [0, 63]
"isa.end"() <{core = 64 : i64}> : () -> ()

// -----
// CHECK: isa.sync has no field 'ddr' (fields: core, layer, deps)
"isa.sync"() <{ddr = 1 : i64}> : () -> ()

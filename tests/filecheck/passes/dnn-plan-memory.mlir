// RUN: vfpga-opt %s --split-input-file -p dnn-plan-memory | filecheck %s
// RUN: vfpga-opt %s --split-input-file -p dnn-plan-memory,dnn-plan-memory | filecheck %s
// RUN: vfpga-opt %s --split-input-file -p dnn-plan-memory | vfpga-opt --split-input-file -p dnn-tile | filecheck %s --check-prefix=TILE

// DDR plan: input x at 0 (8 channels); conv c (16 ch) at 320; p reuses x's bytes at 0 (x is
// dead after c); a at 192; the DATA blob (weights 16x3x3x8 = 1152 B at 896, then 16
// parameter records of 12 B at 2048) ends at 2240. The printed plan is enough to go on.

dnn.graph @net(%x: !dnn.qtensor<1x8x6x6, scale = 0.5, zp = -3> as "x") {
    %c = dnn.conv %x name "c" out "c" pad [1, 1, 1, 1] act relu(-5, 127) bias [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15] multiplier [1073741824, 1073741824, 1073741824, 1073741824, 1073741824, 1073741824, 1073741824, 1073741824, 1073741824, 1073741824, 1073741824, 1073741824, 1073741824, 1073741824, 1073741824, 1073741824] shift [38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38] weight 16x8x3x3 splat 3 : (!dnn.qtensor<1x8x6x6, scale = 0.5, zp = -3>) -> !dnn.qtensor<1x16x6x6, scale = 0.25, zp = -5>
    %p = dnn.pool %c name "p" out "p" kind max kernel [2, 2] stride [2, 2] : (!dnn.qtensor<1x16x6x6, scale = 0.25, zp = -5>) -> !dnn.qtensor<1x16x3x3, scale = 0.25, zp = -5>
    %a = dnn.add %p, %p name "a" out "a" mult_a 1048576 mult_b 1048576 shift 21 : (!dnn.qtensor<1x16x3x3, scale = 0.25, zp = -5>, !dnn.qtensor<1x16x3x3, scale = 0.25, zp = -5>) -> !dnn.qtensor<1x16x3x3, scale = 0.25, zp = -5>
    dnn.return %a : !dnn.qtensor<1x16x3x3, scale = 0.25, zp = -5>
}

// CHECK:      builtin.module attributes {vfpga.data_offset = 896 : i64, vfpga.ddr_size = 2240 : i64} {
// CHECK-NEXT:   dnn.graph @net({{.*}}) attributes {input_ddr_offsets = array<i64: 0>, input_c_strides = array<i64: 8>} {
// CHECK-NEXT:     %c = dnn.conv %x name "c" {{.*}} {ddr_offset = 320 : i64, c_stride = 16 : i64, weights_offset = 896 : i64, params_offset = 2048 : i64} :
// CHECK-NEXT:     %p = dnn.pool %c {{.*}} {ddr_offset = 0 : i64, c_stride = 16 : i64} :
// CHECK-NEXT:     %a = dnn.add %p, %p {{.*}} {ddr_offset = 192 : i64, c_stride = 16 : i64} :

// TILE: ifp.layer 0 "c" conv out 16x6x6 macs 41472 {

// -----

// A graph output cannot be a view of a concatenation: the planner copies q with an
// identity depthwise conv (plan_copy) and the concat reads the copy; p is written straight
// into the concat's storage (offset 128, channel stride 16), the copy at channel 8 (136).

dnn.graph @cat(%x: !dnn.qtensor<1x8x4x4, scale = 0.5, zp = 0> as "x") {
  %p = dnn.pool %x name "p" out "p" kind max kernel [1, 1] : (!dnn.qtensor<1x8x4x4, scale = 0.5, zp = 0>) -> !dnn.qtensor<1x8x4x4, scale = 0.5, zp = 0>
  %q = dnn.pool %x name "q" out "q" kind max kernel [1, 1] : (!dnn.qtensor<1x8x4x4, scale = 0.5, zp = 0>) -> !dnn.qtensor<1x8x4x4, scale = 0.5, zp = 0>
  %k = dnn.concat %p, %q name "k" out "k" : (!dnn.qtensor<1x8x4x4, scale = 0.5, zp = 0>, !dnn.qtensor<1x8x4x4, scale = 0.5, zp = 0>) -> !dnn.qtensor<1x16x4x4, scale = 0.5, zp = 0>
  dnn.return %k, %q : !dnn.qtensor<1x16x4x4, scale = 0.5, zp = 0>, !dnn.qtensor<1x8x4x4, scale = 0.5, zp = 0>
}

// CHECK:      builtin.module attributes {vfpga.data_offset = 512 : i64, vfpga.ddr_size = 704 : i64, vfpga.plan_notes = ["copy inserted for 'q' into concat 'k': a graph input/output or host-op operand"]} {
// CHECK:        %p = dnn.pool %x name "p" {{.*}} {ddr_offset = 128 : i64, c_stride = 16 : i64} :
// CHECK-NEXT:   %q = dnn.pool %x name "q" {{.*}} {ddr_offset = 384 : i64, c_stride = 8 : i64} :
// CHECK-NEXT:   %[[COPY:.*]] = dnn.conv %q name "k.copy1" out "q@k.copy1" groups 8 {{.*}} weight 8x1x1x1 splat 1 {plan_copy, ddr_offset = 136 : i64, c_stride = 16 : i64, weights_offset = 512 : i64, params_offset = 576 : i64} :
// CHECK-NEXT:   %k = dnn.concat %p, %[[COPY]] name "k" out "k" {ddr_offset = 128 : i64, c_stride = 16 : i64} :

// TILE: ifp.layer 2 "k.copy1" conv out 8x4x4 macs 128 {

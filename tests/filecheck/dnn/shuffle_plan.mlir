// RUN: vfpga-opt %s -p dnn-plan-memory | filecheck %s
// RUN: vfpga-opt %s -p dnn-plan-memory,dnn-plan-memory | filecheck %s
// RUN: vfpga-opt %s -p dnn-plan-memory | vfpga-opt -p dnn-annotate-placement,dnn-tile | filecheck %s --check-prefix=TILE

// dnn.shuffle after dnn-plan-memory: the grouped conv g writes straight into the storage
// of shuffle s (same ddr_offset; its channels land at their shuffled positions). The
// shuffle of the graph input x reads a copy layer the pass inserts just before it. Neither
// shuffle becomes an accelerator layer (dnn-tile lists only g, the copy and d).

dnn.graph @shuffle(%x: !dnn.qtensor<1x4x4x4, scale = 0.02, zp = -5> as "x") {
  %g = dnn.conv %x name "g" out "g" groups 2 bias [0, 0, 0, 0] multiplier [1073741824, 1073741824, 1073741824, 1073741824] shift [31, 31, 31, 31] weight 4x2x1x1 splat 1 : (!dnn.qtensor<1x4x4x4, scale = 0.02, zp = -5>) -> !dnn.qtensor<1x4x4x4, scale = 0.02, zp = -5>
  %s = dnn.shuffle %g name "s" out "s" groups 2 : (!dnn.qtensor<1x4x4x4, scale = 0.02, zp = -5>) -> !dnn.qtensor<1x4x4x4, scale = 0.02, zp = -5>
  %xs = dnn.shuffle %x name "xs" out "xs" groups 4 : (!dnn.qtensor<1x4x4x4, scale = 0.02, zp = -5>) -> !dnn.qtensor<1x4x4x4, scale = 0.02, zp = -5>
  %d = dnn.add %s, %xs name "d" out "d" mult_a 1048576 mult_b 1048576 shift 21 : (!dnn.qtensor<1x4x4x4, scale = 0.02, zp = -5>, !dnn.qtensor<1x4x4x4, scale = 0.02, zp = -5>) -> !dnn.qtensor<1x4x4x4, scale = 0.02, zp = -5>
  dnn.return %d : !dnn.qtensor<1x4x4x4, scale = 0.02, zp = -5>
}

// CHECK:      builtin.module attributes {{{.*}}vfpga.plan_notes = ["copy inserted for 'x' into channel shuffle 'xs': a graph input/output or host-op operand"]} {
// CHECK-NEXT:   dnn.graph @shuffle(
// CHECK-NEXT:     %g = dnn.conv %x name "g" {{.*}} {ddr_offset = [[S:[0-9]+]] : i64, c_stride = 4 : i64, weights_offset = {{.*}}} :
// CHECK-NEXT:     %s = dnn.shuffle %g name "s" out "s" groups 2 {ddr_offset = [[S]] : i64, c_stride = 4 : i64} :
// CHECK-NEXT:     %[[COPY:.*]] = dnn.conv %x name "xs.copy" out "x@xs.copy" groups 4 {{.*}} {plan_copy, ddr_offset = [[XS:[0-9]+]] : i64, c_stride = 4 : i64, {{.*}}} :
// CHECK-NEXT:     %xs = dnn.shuffle %[[COPY]] name "xs" out "xs" groups 4 {ddr_offset = [[XS]] : i64, c_stride = 4 : i64} :
// CHECK-NEXT:     %d = dnn.add %s, %xs name "d"
// CHECK-NEXT:     dnn.return %d

// TILE:      dnn.shuffle %g {{.*}} placement = "accel", macs = 0 : i64}
// TILE:      ifp.layer 0 "g" conv out 4x4x4
// TILE-NOT:  ifp.layer {{.*}} "s"
// TILE:      ifp.layer 1 "xs.copy" conv out 4x4x4
// TILE-NEXT: ifp.candidate
// TILE-NOT:  ifp.layer {{.*}} "xs"
// TILE:      ifp.layer 2 "d" add out 4x4x4

// RUN: vfpga-opt %s -p dnn-plan-memory | filecheck %s
// RUN: vfpga-opt %s -p dnn-plan-memory,dnn-plan-memory | filecheck %s
// RUN: vfpga-opt %s -p dnn-plan-memory | vfpga-opt -p dnn-annotate-placement,dnn-tile | filecheck %s --check-prefix=TILE

// dnn.slice after dnn-plan-memory: each slice of conv c is a view of c's storage at its
// channel offset (ddr_offset + start, c's c_stride 8); conv e and add d read those
// channels in place. The slice hi feeding concat k gets a copy layer (a view cannot also
// be a view of the concat). No slice becomes an accelerator layer.

!t8 = !dnn.qtensor<1x8x4x4, scale = 0.02, zp = -5>
!t4 = !dnn.qtensor<1x4x4x4, scale = 0.02, zp = -5>
dnn.graph @slices(%x: !t8 as "x") {
  %c = dnn.conv %x name "c" out "c" groups 8 bias [0, 0, 0, 0, 0, 0, 0, 0] multiplier [1073741824, 1073741824, 1073741824, 1073741824, 1073741824, 1073741824, 1073741824, 1073741824] shift [30, 30, 30, 30, 30, 30, 30, 30] weight 8x1x1x1 splat 1 : (!t8) -> !t8
  %lo = dnn.slice %c name "lo" out "lo" start 0 : (!t8) -> !t4
  %hi = dnn.slice %c name "hi" out "hi" start 4 : (!t8) -> !t4
  %e = dnn.conv %hi name "e" out "e" groups 4 bias [0, 0, 0, 0] multiplier [1073741824, 1073741824, 1073741824, 1073741824] shift [30, 30, 30, 30] weight 4x1x1x1 splat 1 : (!t4) -> !t4
  %d = dnn.add %lo, %e name "d" out "d" mult_a 1048576 mult_b 1048576 shift 21 : (!t4, !t4) -> !t4
  %k = dnn.concat %d, %hi name "k" out "k" : (!t4, !t4) -> !t8
  dnn.return %k : !t8
}

// CHECK:      builtin.module attributes {{{.*}}vfpga.plan_notes = ["copy inserted for 'hi' into concat 'k': a channel range of another tensor (a view)"]} {
// CHECK-NEXT:   dnn.graph @slices(
// CHECK-NEXT:     %c = dnn.conv %x name "c" {{.*}} {ddr_offset = [[C:[0-9]+]] : i64, c_stride = 8 : i64, weights_offset = {{.*}}} :
// CHECK-NEXT:     %lo = dnn.slice %c name "lo" out "lo" start 0 {ddr_offset = [[C]] : i64, c_stride = 8 : i64} :
// CHECK-NEXT:     %hi = dnn.slice %c name "hi" out "hi" start 4 {ddr_offset = [[HI:[0-9]+]] : i64, c_stride = 8 : i64} :
// CHECK-NEXT:     %e = dnn.conv %hi name "e"
// CHECK-NEXT:     %d = dnn.add %lo, %e name "d"
// CHECK-NEXT:     %[[COPY:.*]] = dnn.conv %hi name "k.copy1" out "hi@k.copy1" groups 4 {{.*}} {plan_copy, {{.*}}} :
// CHECK-NEXT:     %k = dnn.concat %d, %[[COPY]] name "k"
// CHECK-NEXT:     dnn.return %k

// TILE:      dnn.slice %c {{.*}} placement = "accel", macs = 0 : i64}
// TILE:      ifp.layer 0 "c" conv out 8x4x4
// TILE-NOT:  ifp.layer {{.*}} "lo"
// TILE-NOT:  ifp.layer {{.*}} "hi"
// TILE:      ifp.layer 1 "e" conv out 4x4x4

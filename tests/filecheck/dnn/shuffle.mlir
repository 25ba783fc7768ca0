// RUN: vfpga-opt %s | filecheck %s
// RUN: vfpga-opt %s | vfpga-opt | filecheck %s
// RUN: vfpga-opt %s --print-op-generic | vfpga-opt | filecheck %s
// RUN: vfpga-opt %s --print-op-generic | filecheck %s --check-prefix=GENERIC
// RUN: xdsl-opt %s | filecheck %s

// dnn.shuffle in its custom format (groups is always printed), after a grouped conv as in
// ShuffleNet; printing is canonical, also after a trip through the generic format.

dnn.graph @shuffle(%x: !dnn.qtensor<1x6x4x4, scale = 0.02, zp = -5> as "x") {
  %g = dnn.conv %x name "gconv" out "g" groups 3 bias [0, 0, 0, 0, 0, 0] multiplier [1073741824, 1073741824, 1073741824, 1073741824, 1073741824, 1073741824] shift [30, 30, 30, 30, 30, 30] weight 6x2x1x1 splat 1 : (!dnn.qtensor<1x6x4x4, scale = 0.02, zp = -5>) -> !dnn.qtensor<1x6x4x4, scale = 0.04, zp = 3>
  %s = dnn.shuffle %g name "shuffle" out "/s/out:0" groups 3 : (!dnn.qtensor<1x6x4x4, scale = 0.04, zp = 3>) -> !dnn.qtensor<1x6x4x4, scale = 0.04, zp = 3>
  %one = dnn.shuffle %s name "one" out "one" groups 1 {placement = "accel", macs = 0 : i64} : (!dnn.qtensor<1x6x4x4, scale = 0.04, zp = 3>) -> !dnn.qtensor<1x6x4x4, scale = 0.04, zp = 3>
  dnn.return %one : !dnn.qtensor<1x6x4x4, scale = 0.04, zp = 3>
}

// CHECK:      builtin.module {
// CHECK-NEXT:   dnn.graph @shuffle(%x: !dnn.qtensor<1x6x4x4, scale = 0.02, zp = -5> as "x") {
// CHECK-NEXT:     %g = dnn.conv %x name "gconv" out "g" groups 3 bias [0, 0, 0, 0, 0, 0] multiplier [1073741824, 1073741824, 1073741824, 1073741824, 1073741824, 1073741824] shift [30, 30, 30, 30, 30, 30] weight 6x2x1x1 splat 1 : (!dnn.qtensor<1x6x4x4, scale = 0.02, zp = -5>) -> !dnn.qtensor<1x6x4x4, scale = 0.04, zp = 3>
// CHECK-NEXT:     %s = dnn.shuffle %g name "shuffle" out "/s/out:0" groups 3 : (!dnn.qtensor<1x6x4x4, scale = 0.04, zp = 3>) -> !dnn.qtensor<1x6x4x4, scale = 0.04, zp = 3>
// CHECK-NEXT:     %one = dnn.shuffle %s name "one" out "one" groups 1 {placement = "accel", macs = 0 : i64} : (!dnn.qtensor<1x6x4x4, scale = 0.04, zp = 3>) -> !dnn.qtensor<1x6x4x4, scale = 0.04, zp = 3>
// CHECK-NEXT:     dnn.return %one : !dnn.qtensor<1x6x4x4, scale = 0.04, zp = 3>
// CHECK-NEXT:   }
// CHECK-NEXT: }

// GENERIC: "dnn.shuffle"(%{{.*}}) <{name = "shuffle", out = "/s/out:0", groups = 3 : i64}> : (!dnn.qtensor<1x6x4x4, scale = 0.04, zp = 3>) -> !dnn.qtensor<1x6x4x4, scale = 0.04, zp = 3>

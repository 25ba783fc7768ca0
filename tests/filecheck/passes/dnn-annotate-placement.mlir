// RUN: vfpga-opt %s -p dnn-annotate-placement | filecheck %s
// RUN: xdsl-opt %s -p dnn-annotate-placement | filecheck %s
// RUN: vfpga-opt %s -p dnn-annotate-placement,dnn-annotate-placement | filecheck %s

// Every node op gets placement (accel, or host for dnn.host) and its exact MAC count:
// grouped 3x3 conv 1x4x8x8 -> 1x6x8x8, groups 2: 6*8*8 outputs x 2*3*3 = 6912;
// 1x1 conv 6 -> 8 channels on 8x8: 8*8*8 x 6 = 3072; host MatMul [2,3,16] x [16,5]:
// 2*3*5 outputs x 16 = 480; pool/add/concat and other host ops: 0.

dnn.graph @g(%x: !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0> as "x", %m: !dnn.qtensor<2x3x16, scale = 0.5, zp = 0> as "m") {
  %c = dnn.conv %x name "c" out "c" pad [1, 1, 1, 1] groups 2 bias [0, 0, 0, 0, 0, 0] multiplier [1, 1, 1, 1, 1, 1] shift [1, 1, 1, 1, 1, 1] weight 6x2x3x3 splat 1 : (!dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>) -> !dnn.qtensor<1x6x8x8, scale = 0.5, zp = 0>
  %d = dnn.conv %c name "d" out "d" bias [0, 0, 0, 0, 0, 0, 0, 0] multiplier [1, 1, 1, 1, 1, 1, 1, 1] shift [1, 1, 1, 1, 1, 1, 1, 1] weight 8x6x1x1 splat 1 {placement = "host", macs = 1 : i64} : (!dnn.qtensor<1x6x8x8, scale = 0.5, zp = 0>) -> !dnn.qtensor<1x8x8x8, scale = 0.5, zp = 0>
  %p = dnn.pool %d name "p" out "p" kind max kernel [2, 2] stride [2, 2] : (!dnn.qtensor<1x8x8x8, scale = 0.5, zp = 0>) -> !dnn.qtensor<1x8x4x4, scale = 0.5, zp = 0>
  %a = dnn.add %p, %p name "a" out "a" mult_a 1 mult_b 1 shift 0 : (!dnn.qtensor<1x8x4x4, scale = 0.5, zp = 0>, !dnn.qtensor<1x8x4x4, scale = 0.5, zp = 0>) -> !dnn.qtensor<1x8x4x4, scale = 0.5, zp = 0>
  %k = dnn.concat %a, %p name "k" out "k" : (!dnn.qtensor<1x8x4x4, scale = 0.5, zp = 0>, !dnn.qtensor<1x8x4x4, scale = 0.5, zp = 0>) -> !dnn.qtensor<1x16x4x4, scale = 0.5, zp = 0>
  %s = dnn.host %k name "s" out "s" op "Softmax" attrs {axis = 1 : i64} : (!dnn.qtensor<1x16x4x4, scale = 0.5, zp = 0>) -> !dnn.qtensor<1x16x4x4, scale = 0.5, zp = 0>
  %mm = dnn.host %m name "mm" out "mm" op "MatMul" : (!dnn.qtensor<2x3x16, scale = 0.5, zp = 0>) -> !dnn.qtensor<2x3x5, scale = 0.5, zp = 0>
  dnn.return %s, %mm : !dnn.qtensor<1x16x4x4, scale = 0.5, zp = 0>, !dnn.qtensor<2x3x5, scale = 0.5, zp = 0>
}

// CHECK:      %c = dnn.conv %x name "c" {{.*}} weight 6x2x3x3 splat 1 {placement = "accel", macs = 6912 : i64} :
// CHECK-NEXT: %d = dnn.conv %c name "d" {{.*}} weight 8x6x1x1 splat 1 {placement = "accel", macs = 3072 : i64} :
// CHECK-NEXT: %p = dnn.pool %d name "p" {{.*}} {placement = "accel", macs = 0 : i64} :
// CHECK-NEXT: %a = dnn.add %p, %p name "a" {{.*}} {placement = "accel", macs = 0 : i64} :
// CHECK-NEXT: %k = dnn.concat %a, %p name "k" out "k" {placement = "accel", macs = 0 : i64} :
// CHECK-NEXT: %s = dnn.host %k name "s" out "s" op "Softmax" attrs {axis = 1 : i64} {placement = "host", macs = 0 : i64} :
// CHECK-NEXT: %mm = dnn.host %m name "mm" out "mm" op "MatMul" {placement = "host", macs = 480 : i64} :
// CHECK-NEXT: dnn.return %s, %mm :

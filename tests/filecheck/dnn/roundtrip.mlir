// RUN: vfpga-opt %s | filecheck %s
// RUN: vfpga-opt %s | vfpga-opt | filecheck %s
// RUN: vfpga-opt %s --print-op-generic | vfpga-opt | filecheck %s
// RUN: xdsl-opt %s | filecheck %s

// Every dnn op in its custom format; printing is canonical (defaults omitted), so the
// output equals the input, also after a trip through the generic format.

dnn.graph @"tiny-net"(%in.0: !dnn.qtensor<1x3x8x8, scale = 0.0186, zp = -14> as "in.0") {
  %c1 = dnn.conv %in.0 name "conv1" out "c1" stride [2, 2] pad [1, 1, 1, 1] act relu(-3, 127) bias [-2, -1, 0, 1] multiplier [1073741824, 1073741824, 1073741824, 0] shift [35, 35, 0, 62] weight 4x3x3x3 "0xCACBCCCDCECFD0D1D2D3D4D5D6D7D8D9DADBDCDDDEDFE0E1E2E3E4E5E6E7E8E9EAEBECEDEEEFF0F1F2F3F4F5F6F7F8F9FAFBFCFDFEFF000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F202122232425262728292A2B2C2D2E2F303132333435" : (!dnn.qtensor<1x3x8x8, scale = 0.0186, zp = -14>) -> !dnn.qtensor<1x4x4x4, scale = 0.05, zp = -3>
  %dw = dnn.conv %c1 name "dw" out "dw" groups 4 bias [0, 0, 0, 0] multiplier [1, 2, 3, 4] shift [1, 1, 1, 1] weight 4x1x3x3 splat -7 : (!dnn.qtensor<1x4x4x4, scale = 0.05, zp = -3>) -> !dnn.qtensor<1x4x2x2, scale = 0.05, zp = -3>
  %rq = dnn.conv %c1 name "rq" out "rq" groups 4 bias [0, 0, 0, 0] multiplier [13421773, 13421773, 13421773, 13421773] shift [28, 28, 28, 28] divisor 0.0235 weight 4x1x1x1 splat 1 : (!dnn.qtensor<1x4x4x4, scale = 0.05, zp = -3>) -> !dnn.qtensor<1x4x4x4, scale = 0.0235, zp = 7>
  %p1 = dnn.pool %c1 name "pool1" out "p1" kind max kernel [2, 2] stride [2, 2] : (!dnn.qtensor<1x4x4x4, scale = 0.05, zp = -3>) -> !dnn.qtensor<1x4x2x2, scale = 0.05, zp = -3>
  %p2 = dnn.pool %c1 name "pool2" out "p2" kind avg kernel [3, 3] stride [2, 2] pad [1, 1, 1, 1] count_include_pad : (!dnn.qtensor<1x4x4x4, scale = 0.05, zp = -3>) -> !dnn.qtensor<1x4x2x2, scale = 0.05, zp = -3>
  %a1 = dnn.add %p1, %p2 name "add" out "a1" mult_a 1048576 mult_b 1572864 shift 21 act relu6(0, 60) : (!dnn.qtensor<1x4x2x2, scale = 0.05, zp = -3>, !dnn.qtensor<1x4x2x2, scale = 0.05, zp = -3>) -> !dnn.qtensor<1x4x2x2, scale = 0.1, zp = 0>
  %cat = dnn.concat %a1, %a1 name "cat" out "cat" : (!dnn.qtensor<1x4x2x2, scale = 0.1, zp = 0>, !dnn.qtensor<1x4x2x2, scale = 0.1, zp = 0>) -> !dnn.qtensor<1x8x2x2, scale = 0.1, zp = 0>
  %gap = dnn.pool %cat name "gap" out "/gap/out:0" kind global_avg : (!dnn.qtensor<1x8x2x2, scale = 0.1, zp = 0>) -> !dnn.qtensor<1x8x1x1, scale = 1.0e-05, zp = 3>
  %sm = dnn.host %gap name "softmax" out "sm" op "Softmax" attrs {axis = 1 : i64, eps = 5.000000e-01 : f64, perm = array<i64: 0, 2>, modes = ["a", "b"]} output_float : (!dnn.qtensor<1x8x1x1, scale = 1.0e-05, zp = 3>) -> !dnn.qtensor<1x8x1x1, scale = 0.00390625, zp = -128>
  dnn.return %gap, %sm reshape [1, 8] : !dnn.qtensor<1x8x1x1, scale = 1.0e-05, zp = 3>, !dnn.qtensor<1x8x1x1, scale = 0.00390625, zp = -128>
}

// CHECK:      builtin.module {
// CHECK-NEXT:   dnn.graph @"tiny-net"(%in.0: !dnn.qtensor<1x3x8x8, scale = 0.0186, zp = -14> as "in.0") {
// CHECK-NEXT:     %c1 = dnn.conv %in.0 name "conv1" out "c1" stride [2, 2] pad [1, 1, 1, 1] act relu(-3, 127) bias [-2, -1, 0, 1] multiplier [1073741824, 1073741824, 1073741824, 0] shift [35, 35, 0, 62] weight 4x3x3x3 "0xCACBCCCDCECFD0D1D2D3D4D5D6D7D8D9DADBDCDDDEDFE0E1E2E3E4E5E6E7E8E9EAEBECEDEEEFF0F1F2F3F4F5F6F7F8F9FAFBFCFDFEFF000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F202122232425262728292A2B2C2D2E2F303132333435" : (!dnn.qtensor<1x3x8x8, scale = 0.0186, zp = -14>) -> !dnn.qtensor<1x4x4x4, scale = 0.05, zp = -3>
// CHECK-NEXT:     %dw = dnn.conv %c1 name "dw" out "dw" groups 4 bias [0, 0, 0, 0] multiplier [1, 2, 3, 4] shift [1, 1, 1, 1] weight 4x1x3x3 splat -7 : (!dnn.qtensor<1x4x4x4, scale = 0.05, zp = -3>) -> !dnn.qtensor<1x4x2x2, scale = 0.05, zp = -3>
// CHECK-NEXT:     %rq = dnn.conv %c1 name "rq" out "rq" groups 4 bias [0, 0, 0, 0] multiplier [13421773, 13421773, 13421773, 13421773] shift [28, 28, 28, 28] divisor 0.0235 weight 4x1x1x1 splat 1 : (!dnn.qtensor<1x4x4x4, scale = 0.05, zp = -3>) -> !dnn.qtensor<1x4x4x4, scale = 0.0235, zp = 7>
// CHECK-NEXT:     %p1 = dnn.pool %c1 name "pool1" out "p1" kind max kernel [2, 2] stride [2, 2] : (!dnn.qtensor<1x4x4x4, scale = 0.05, zp = -3>) -> !dnn.qtensor<1x4x2x2, scale = 0.05, zp = -3>
// CHECK-NEXT:     %p2 = dnn.pool %c1 name "pool2" out "p2" kind avg kernel [3, 3] stride [2, 2] pad [1, 1, 1, 1] count_include_pad : (!dnn.qtensor<1x4x4x4, scale = 0.05, zp = -3>) -> !dnn.qtensor<1x4x2x2, scale = 0.05, zp = -3>
// CHECK-NEXT:     %a1 = dnn.add %p1, %p2 name "add" out "a1" mult_a 1048576 mult_b 1572864 shift 21 act relu6(0, 60) : (!dnn.qtensor<1x4x2x2, scale = 0.05, zp = -3>, !dnn.qtensor<1x4x2x2, scale = 0.05, zp = -3>) -> !dnn.qtensor<1x4x2x2, scale = 0.1, zp = 0>
// CHECK-NEXT:     %cat = dnn.concat %a1, %a1 name "cat" out "cat" : (!dnn.qtensor<1x4x2x2, scale = 0.1, zp = 0>, !dnn.qtensor<1x4x2x2, scale = 0.1, zp = 0>) -> !dnn.qtensor<1x8x2x2, scale = 0.1, zp = 0>
// CHECK-NEXT:     %gap = dnn.pool %cat name "gap" out "/gap/out:0" kind global_avg : (!dnn.qtensor<1x8x2x2, scale = 0.1, zp = 0>) -> !dnn.qtensor<1x8x1x1, scale = 1.0e-05, zp = 3>
// CHECK-NEXT:     %sm = dnn.host %gap name "softmax" out "sm" op "Softmax" attrs {axis = 1 : i64, eps = 5.000000e-01 : f64, perm = array<i64: 0, 2>, modes = ["a", "b"]} output_float : (!dnn.qtensor<1x8x1x1, scale = 1.0e-05, zp = 3>) -> !dnn.qtensor<1x8x1x1, scale = 0.00390625, zp = -128>
// CHECK-NEXT:     dnn.return %gap, %sm reshape [1, 8] : !dnn.qtensor<1x8x1x1, scale = 1.0e-05, zp = 3>, !dnn.qtensor<1x8x1x1, scale = 0.00390625, zp = -128>
// CHECK-NEXT:   }
// CHECK-NEXT: }

// RUN: vfpga-opt %s | filecheck %s
// RUN: vfpga-opt %s --print-op-generic | vfpga-opt | filecheck %s

// dnn.conv's float32 divisor: printed only when it is not 1.0, as the shortest decimal
// that reads back to the same float32 (a literal is read as float64, then rounded to
// float32).

dnn.graph @g(%x: !dnn.qtensor<1x2x2x2, scale = 0.5, zp = 0> as "x") {
  %a = dnn.conv %x name "a" out "a" groups 2 bias [0, 0] multiplier [1, 1] shift [1, 1] divisor 1.0 weight 2x1x1x1 splat 1 : (!dnn.qtensor<1x2x2x2, scale = 0.5, zp = 0>) -> !dnn.qtensor<1x2x2x2, scale = 0.5, zp = 0>
  %b = dnn.conv %x name "b" out "b" groups 2 bias [0, 0] multiplier [1, 1] shift [1, 1] divisor 0.10000000149011612 weight 2x1x1x1 splat 1 : (!dnn.qtensor<1x2x2x2, scale = 0.5, zp = 0>) -> !dnn.qtensor<1x2x2x2, scale = 0.5, zp = 0>
  %c = dnn.conv %x name "c" out "c" groups 2 bias [0, 0] multiplier [1, 1] shift [1, 1] divisor 3 weight 2x1x1x1 splat 1 : (!dnn.qtensor<1x2x2x2, scale = 0.5, zp = 0>) -> !dnn.qtensor<1x2x2x2, scale = 0.5, zp = 0>
  %d = dnn.conv %x name "d" out "d" groups 2 bias [0, 0] multiplier [1, 1] shift [1, 1] divisor 1.0e-40 weight 2x1x1x1 splat 1 : (!dnn.qtensor<1x2x2x2, scale = 0.5, zp = 0>) -> !dnn.qtensor<1x2x2x2, scale = 0.5, zp = 0>
  %e = dnn.conv %x name "e" out "e" groups 2 bias [0, 0] multiplier [1, 1] shift [1, 1] divisor 3.4028234e38 weight 2x1x1x1 splat 1 : (!dnn.qtensor<1x2x2x2, scale = 0.5, zp = 0>) -> !dnn.qtensor<1x2x2x2, scale = 0.5, zp = 0>
  dnn.return %a, %b, %c, %d, %e : !dnn.qtensor<1x2x2x2, scale = 0.5, zp = 0>, !dnn.qtensor<1x2x2x2, scale = 0.5, zp = 0>, !dnn.qtensor<1x2x2x2, scale = 0.5, zp = 0>, !dnn.qtensor<1x2x2x2, scale = 0.5, zp = 0>, !dnn.qtensor<1x2x2x2, scale = 0.5, zp = 0>
}

// CHECK:      %a = dnn.conv %x name "a" out "a" groups 2 bias [0, 0] multiplier [1, 1] shift [1, 1] weight 2x1x1x1 splat 1 :
// CHECK-NEXT: %b = dnn.conv %x name "b" out "b" groups 2 bias [0, 0] multiplier [1, 1] shift [1, 1] divisor 0.1 weight 2x1x1x1 splat 1 :
// CHECK-NEXT: %c = dnn.conv %x name "c" out "c" groups 2 bias [0, 0] multiplier [1, 1] shift [1, 1] divisor 3.0 weight 2x1x1x1 splat 1 :
// CHECK-NEXT: %d = dnn.conv %x name "d" out "d" groups 2 bias [0, 0] multiplier [1, 1] shift [1, 1] divisor 1.0e-40 weight 2x1x1x1 splat 1 :
// CHECK-NEXT: %e = dnn.conv %x name "e" out "e" groups 2 bias [0, 0] multiplier [1, 1] shift [1, 1] divisor 3.4028235e+38 weight 2x1x1x1 splat 1 :

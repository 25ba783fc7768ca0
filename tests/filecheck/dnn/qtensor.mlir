// RUN: vfpga-opt %s | filecheck %s
// RUN: vfpga-opt %s | vfpga-opt | filecheck %s

// !dnn.qtensor prints the shortest decimal that round-trips the float64 scale exactly
// (always with a '.'), for any rank >= 1; dnn.graph and dnn.return keep extra attributes.

dnn.graph @"scales"(%a: !dnn.qtensor<4, scale = 0.30000000000000004, zp = 0> as "a", %b: !dnn.qtensor<1x2x3x4x5, scale = 1.0e-20, zp = -128> as "b", %c: !dnn.qtensor<2x2, scale = 100000000000000000000.0, zp = 127> as "c", %d: !dnn.qtensor<7, scale = 2, zp = 1> as "d") attributes {source = "m.onnx"} {
  dnn.return %a, %b, %c, %d {note = 1 : i64} : !dnn.qtensor<4, scale = 0.30000000000000004, zp = 0>, !dnn.qtensor<1x2x3x4x5, scale = 1.0e-20, zp = -128>, !dnn.qtensor<2x2, scale = 100000000000000000000.0, zp = 127>, !dnn.qtensor<7, scale = 2, zp = 1>
}

// CHECK:      dnn.graph @scales(%a: !dnn.qtensor<4, scale = 0.30000000000000004, zp = 0> as "a", %b: !dnn.qtensor<1x2x3x4x5, scale = 1.0e-20, zp = -128> as "b", %c: !dnn.qtensor<2x2, scale = 1.0e+20, zp = 127> as "c", %d: !dnn.qtensor<7, scale = 2.0, zp = 1> as "d") attributes {source = "m.onnx"} {
// CHECK-NEXT:   dnn.return %a, %b, %c, %d {note = 1 : i64} : !dnn.qtensor<4, scale = 0.30000000000000004, zp = 0>, !dnn.qtensor<1x2x3x4x5, scale = 1.0e-20, zp = -128>, !dnn.qtensor<2x2, scale = 1.0e+20, zp = 127>, !dnn.qtensor<7, scale = 2.0, zp = 1>
// CHECK-NEXT: }

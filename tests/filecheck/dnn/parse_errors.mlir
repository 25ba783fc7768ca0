// RUN: vfpga-opt %s --split-input-file --parsing-diagnostics | filecheck %s
// RUN: xdsl-opt %s --split-input-file --parsing-diagnostics | filecheck %s

// One chunk per error of the dnn custom syntax; each names the op and the problem.

// CHECK: dnn.pool: 'kind' must be one of max, avg, global_avg
dnn.graph @g(%x: !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0> as "x") {
  %p = dnn.pool %x name "p" out "p" kind mean : (!dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>) -> !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>
  dnn.return %x : !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>
}

// -----
// CHECK: dnn.conv: activation must be one of none, relu, relu6
dnn.graph @g(%x: !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0> as "x") {
  %c = dnn.conv %x name "c" out "c" act gelu(0, 1) bias [0, 0] multiplier [1, 1] shift [1, 1] weight 2x4x1x1 splat 1 : (!dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>) -> !dnn.qtensor<1x2x8x8, scale = 0.5, zp = 0>
  dnn.return %x : !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>
}

// -----
// CHECK: dnn.conv: missing 'weight' clause
dnn.graph @g(%x: !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0> as "x") {
  %c = dnn.conv %x name "c" out "c" bias [0, 0] multiplier [1, 1] shift [1, 1] : (!dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>) -> !dnn.qtensor<1x2x8x8, scale = 0.5, zp = 0>
  dnn.return %x : !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>
}

// -----
// CHECK: dnn.conv: 'groups' given twice
dnn.graph @g(%x: !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0> as "x") {
  %c = dnn.conv %x name "c" out "c" groups 1 groups 1 bias [0, 0] multiplier [1, 1] shift [1, 1] weight 2x4x1x1 splat 1 : (!dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>) -> !dnn.qtensor<1x2x8x8, scale = 0.5, zp = 0>
  dnn.return %x : !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>
}

// -----
// CHECK: dnn.conv: weight shape 2x4x1x1 needs 8 bytes, the hex string has 3
dnn.graph @g(%x: !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0> as "x") {
  %c = dnn.conv %x name "c" out "c" bias [0, 0] multiplier [1, 1] shift [1, 1] weight 2x4x1x1 "0x010203" : (!dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>) -> !dnn.qtensor<1x2x8x8, scale = 0.5, zp = 0>
  dnn.return %x : !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>
}

// -----
// CHECK: dnn.conv: invalid hex in the weight string
dnn.graph @g(%x: !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0> as "x") {
  %c = dnn.conv %x name "c" out "c" bias [0, 0] multiplier [1, 1] shift [1, 1] weight 2x4x1x1 "0x01020G" : (!dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>) -> !dnn.qtensor<1x2x8x8, scale = 0.5, zp = 0>
  dnn.return %x : !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>
}

// -----
// CHECK: dnn.conv: weight bytes must be a "0x..." hex string
dnn.graph @g(%x: !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0> as "x") {
  %c = dnn.conv %x name "c" out "c" bias [0, 0] multiplier [1, 1] shift [1, 1] weight 2x4x1x1 "01" : (!dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>) -> !dnn.qtensor<1x2x8x8, scale = 0.5, zp = 0>
  dnn.return %x : !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>
}

// -----
// CHECK: dnn.conv: splat weight 200 is outside int8
dnn.graph @g(%x: !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0> as "x") {
  %c = dnn.conv %x name "c" out "c" bias [0, 0] multiplier [1, 1] shift [1, 1] weight 2x4x1x1 splat 200 : (!dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>) -> !dnn.qtensor<1x2x8x8, scale = 0.5, zp = 0>
  dnn.return %x : !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>
}

// -----
// CHECK: dnn.conv: multiplier has values outside int32
dnn.graph @g(%x: !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0> as "x") {
  %c = dnn.conv %x name "c" out "c" bias [0, 0] multiplier [1, 2147483648] shift [1, 1] weight 2x4x1x1 splat 1 : (!dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>) -> !dnn.qtensor<1x2x8x8, scale = 0.5, zp = 0>
  dnn.return %x : !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>
}

// -----
// CHECK: dnn.conv: 1 operands but 2 operand types
dnn.graph @g(%x: !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0> as "x") {
  %c = dnn.conv %x name "c" out "c" bias [0, 0] multiplier [1, 1] shift [1, 1] weight 2x4x1x1 splat 1 : (!dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>, !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>) -> !dnn.qtensor<1x2x8x8, scale = 0.5, zp = 0>
  dnn.return %x : !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>
}

// -----
// CHECK: dnn.host: 'attrs' must be a dictionary {...}
dnn.graph @g(%x: !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0> as "x") {
  %h = dnn.host %x name "h" out "h" op "Relu" attrs [1] : (!dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>) -> !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>
  dnn.return %x : !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>
}

// -----
// CHECK: !dnn.qtensor: zero point must be in [-128, 127], got 200
dnn.graph @g(%x: !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 200> as "x") {

  dnn.return %x : !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 200>
}

// -----
// CHECK: !dnn.qtensor: scale must be finite and > 0, got -0.5
dnn.graph @g(%x: !dnn.qtensor<1x4x8x8, scale = -0.5, zp = 0> as "x") {

  dnn.return %x : !dnn.qtensor<1x4x8x8, scale = -0.5, zp = 0>
}

// -----
// CHECK: !dnn.qtensor: every dimension must be >= 1 (and rank >= 1), got [1, 0, 8, 8]
dnn.graph @g(%x: !dnn.qtensor<1x0x8x8, scale = 0.5, zp = 0> as "x") {

  dnn.return %x : !dnn.qtensor<1x0x8x8, scale = 0.5, zp = 0>
}

// -----
// CHECK: Expected 'as' after a dnn.graph argument type
dnn.graph @g(%x: !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>) {
  dnn.return %x : !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>
}

// -----
// CHECK: dnn.return: 1 operands but 2 types
dnn.graph @g(%x: !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0> as "x") {

  dnn.return %x : !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>, !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>
}

// -----
// CHECK: dnn.conv: 'bias' hex has 6 bytes, not a multiple of 4
dnn.graph @g(%x: !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0> as "x") {
  %c = dnn.conv %x name "c" out "c" bias "0x000000000000" multiplier [1, 1] shift [1, 1] weight 2x4x1x1 splat 1 : (!dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>) -> !dnn.qtensor<1x2x8x8, scale = 0.5, zp = 0>
  dnn.return %c : !dnn.qtensor<1x2x8x8, scale = 0.5, zp = 0>
}

// -----
// CHECK: dnn.conv: 'shift' must be [...] or "0xHEX"
dnn.graph @g(%x: !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0> as "x") {
  %c = dnn.conv %x name "c" out "c" bias [0, 0] multiplier [1, 1] shift "12" weight 2x4x1x1 splat 1 : (!dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>) -> !dnn.qtensor<1x2x8x8, scale = 0.5, zp = 0>
  dnn.return %c : !dnn.qtensor<1x2x8x8, scale = 0.5, zp = 0>
}

// -----
// CHECK: integer or float literal expected for 'divisor' of dnn.conv
dnn.graph @g(%x: !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0> as "x") {
  %c = dnn.conv %x name "c" out "c" bias [0, 0] multiplier [1, 1] shift [1, 1] divisor "2" weight 2x4x1x1 splat 1 : (!dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>) -> !dnn.qtensor<1x2x8x8, scale = 0.5, zp = 0>
  dnn.return %c : !dnn.qtensor<1x2x8x8, scale = 0.5, zp = 0>
}

// -----
// CHECK: dnn.conv: 'divisor' 1e+39 is outside the float32 range
dnn.graph @g(%x: !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0> as "x") {
  %c = dnn.conv %x name "c" out "c" bias [0, 0] multiplier [1, 1] shift [1, 1] divisor 1.0e39 weight 2x4x1x1 splat 1 : (!dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>) -> !dnn.qtensor<1x2x8x8, scale = 0.5, zp = 0>
  dnn.return %c : !dnn.qtensor<1x2x8x8, scale = 0.5, zp = 0>
}

// -----
// dnn.pool has no multiplier / shift since ISA v2 (the average pools use the tensor scales)
// CHECK: Expected ':' before the type of dnn.pool
dnn.graph @g(%x: !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0> as "x") {
  %p = dnn.pool %x name "p" out "p" kind avg kernel [2, 2] stride [2, 2] multiplier 12345 shift 20 : (!dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>) -> !dnn.qtensor<1x4x4x4, scale = 0.5, zp = 0>
  dnn.return %p : !dnn.qtensor<1x4x4x4, scale = 0.5, zp = 0>
}

// -----
// CHECK: dnn.shuffle: missing 'groups' clause
dnn.graph @g(%x: !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0> as "x") {
  %s = dnn.shuffle %x name "s" out "s" : (!dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>) -> !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>
  dnn.return %s : !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>
}

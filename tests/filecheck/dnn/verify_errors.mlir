// RUN: vfpga-opt %s --split-input-file --verify-diagnostics | filecheck %s
// RUN: xdsl-opt %s --split-input-file --verify-diagnostics | filecheck %s

// One chunk per dnn verifier error; each message names the op and the problem.

// CHECK: dnn.conv "c": input has 4 channels but weight IC 3 x groups 1 = 3
dnn.graph @g(%x: !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0> as "x") {
  %c = dnn.conv %x name "c" out "c" bias [0, 0] multiplier [1, 1] shift [1, 1] weight 2x3x1x1 splat 1 : (!dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>) -> !dnn.qtensor<1x2x8x8, scale = 0.5, zp = 0>
  dnn.return %c : !dnn.qtensor<1x2x8x8, scale = 0.5, zp = 0>
}

// -----
// CHECK: dnn.conv "c": output channels 3 are not divisible by groups 2
dnn.graph @g(%x: !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0> as "x") {
  %c = dnn.conv %x name "c" out "c" groups 2 bias [0, 0, 0] multiplier [1, 1, 1] shift [1, 1, 1] weight 3x2x1x1 splat 1 : (!dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>) -> !dnn.qtensor<1x3x8x8, scale = 0.5, zp = 0>
  dnn.return %c : !dnn.qtensor<1x3x8x8, scale = 0.5, zp = 0>
}

// -----
// CHECK: dnn.conv "c": output shape [1, 2, 8, 8] does not match the convolution formula, expected [1, 2, 6, 6]
dnn.graph @g(%x: !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0> as "x") {
  %c = dnn.conv %x name "c" out "c" bias [0, 0] multiplier [1, 1] shift [1, 1] weight 2x4x3x3 splat 1 : (!dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>) -> !dnn.qtensor<1x2x8x8, scale = 0.5, zp = 0>
  dnn.return %c : !dnn.qtensor<1x2x8x8, scale = 0.5, zp = 0>
}

// -----
// CHECK: dnn.conv "c": bias has 3 entries, expected 2 (one per output channel)
dnn.graph @g(%x: !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0> as "x") {
  %c = dnn.conv %x name "c" out "c" bias [0, 0, 0] multiplier [1, 1] shift [1, 1] weight 2x4x1x1 splat 1 : (!dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>) -> !dnn.qtensor<1x2x8x8, scale = 0.5, zp = 0>
  dnn.return %c : !dnn.qtensor<1x2x8x8, scale = 0.5, zp = 0>
}

// -----
// CHECK: dnn.conv "c": multiplier[1] = -5 is outside [0, 2**31)
dnn.graph @g(%x: !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0> as "x") {
  %c = dnn.conv %x name "c" out "c" bias [0, 0] multiplier [1, -5] shift [1, 1] weight 2x4x1x1 splat 1 : (!dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>) -> !dnn.qtensor<1x2x8x8, scale = 0.5, zp = 0>
  dnn.return %c : !dnn.qtensor<1x2x8x8, scale = 0.5, zp = 0>
}

// -----
// CHECK: dnn.conv "c": shift[0] = 63 is outside [0, 62] (2 bad entries)
dnn.graph @g(%x: !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0> as "x") {
  %c = dnn.conv %x name "c" out "c" bias [0, 0] multiplier [1, 1] shift [63, -1] weight 2x4x1x1 splat 1 : (!dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>) -> !dnn.qtensor<1x2x8x8, scale = 0.5, zp = 0>
  dnn.return %c : !dnn.qtensor<1x2x8x8, scale = 0.5, zp = 0>
}

// -----
// CHECK: dnn.conv "c": weight must be 4-D [OC, IC/groups, KH, KW], got [2, 4]
dnn.graph @g(%x: !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0> as "x") {
  %c = dnn.conv %x name "c" out "c" bias [0, 0] multiplier [1, 1] shift [1, 1] weight 2x4 splat 1 : (!dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>) -> !dnn.qtensor<1x2x8x8, scale = 0.5, zp = 0>
  dnn.return %c : !dnn.qtensor<1x2x8x8, scale = 0.5, zp = 0>
}

// -----
// CHECK: dnn.conv "c": strides must be 2 values >= 1, got [0, 1]
dnn.graph @g(%x: !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0> as "x") {
  %c = dnn.conv %x name "c" out "c" stride [0, 1] bias [0, 0] multiplier [1, 1] shift [1, 1] weight 2x4x1x1 splat 1 : (!dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>) -> !dnn.qtensor<1x2x8x8, scale = 0.5, zp = 0>
  dnn.return %c : !dnn.qtensor<1x2x8x8, scale = 0.5, zp = 0>
}

// -----
// CHECK: dnn.conv "c": pads must be 4 values >= 0, got [0, -1, 0, 0]
dnn.graph @g(%x: !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0> as "x") {
  %c = dnn.conv %x name "c" out "c" pad [0, -1, 0, 0] bias [0, 0] multiplier [1, 1] shift [1, 1] weight 2x4x1x1 splat 1 : (!dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>) -> !dnn.qtensor<1x2x8x8, scale = 0.5, zp = 0>
  dnn.return %c : !dnn.qtensor<1x2x8x8, scale = 0.5, zp = 0>
}

// -----
// CHECK: dnn.conv "c": kernel 9x9 does not fit the padded input 8x8
dnn.graph @g(%x: !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0> as "x") {
  %c = dnn.conv %x name "c" out "c" bias [0, 0] multiplier [1, 1] shift [1, 1] weight 2x4x9x9 splat 1 : (!dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>) -> !dnn.qtensor<1x2x1x1, scale = 0.5, zp = 0>
  dnn.return %c : !dnn.qtensor<1x2x1x1, scale = 0.5, zp = 0>
}

// -----
// CHECK: dnn.conv "c": activation range must be lo <= hi within [-128, 127], got [10, 5]
dnn.graph @g(%x: !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0> as "x") {
  %c = dnn.conv %x name "c" out "c" act relu(10, 5) bias [0, 0] multiplier [1, 1] shift [1, 1] weight 2x4x1x1 splat 1 : (!dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>) -> !dnn.qtensor<1x2x8x8, scale = 0.5, zp = 0>
  dnn.return %c : !dnn.qtensor<1x2x8x8, scale = 0.5, zp = 0>
}

// -----
// CHECK: dnn.conv "c": input and output must be 4-D NCHW, got [4, 8] -> [1, 2, 8, 8]
dnn.graph @g(%x: !dnn.qtensor<4x8, scale = 0.5, zp = 0> as "x") {
  %c = dnn.conv %x name "c" out "c" bias [0, 0] multiplier [1, 1] shift [1, 1] weight 2x4x1x1 splat 1 : (!dnn.qtensor<4x8, scale = 0.5, zp = 0>) -> !dnn.qtensor<1x2x8x8, scale = 0.5, zp = 0>
  dnn.return %c : !dnn.qtensor<1x2x8x8, scale = 0.5, zp = 0>
}

// -----
// CHECK: dnn.conv "c": placement must be "accel" or "host"
dnn.graph @g(%x: !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0> as "x") {
  %c = dnn.conv %x name "c" out "c" bias [0, 0] multiplier [1, 1] shift [1, 1] weight 2x4x1x1 splat 1 {placement = "gpu"} : (!dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>) -> !dnn.qtensor<1x2x8x8, scale = 0.5, zp = 0>
  dnn.return %c : !dnn.qtensor<1x2x8x8, scale = 0.5, zp = 0>
}

// -----
// CHECK: dnn.pool "p": max pooling must keep the input quantization (scale 0.5, zp 0), output has scale 0.25, zp 0
dnn.graph @g(%x: !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0> as "x") {
  %p = dnn.pool %x name "p" out "p" kind max kernel [2, 2] stride [2, 2] : (!dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>) -> !dnn.qtensor<1x4x4x4, scale = 0.25, zp = 0>
  dnn.return %p : !dnn.qtensor<1x4x4x4, scale = 0.25, zp = 0>
}

// -----
// CHECK: dnn.pool "p": output shape [1, 4, 4, 4] does not match avg pooling, expected [1, 4, 3, 3]
dnn.graph @g(%x: !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0> as "x") {
  %p = dnn.pool %x name "p" out "p" kind avg kernel [3, 3] stride [2, 2] : (!dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>) -> !dnn.qtensor<1x4x4x4, scale = 0.5, zp = 0>
  dnn.return %p : !dnn.qtensor<1x4x4x4, scale = 0.5, zp = 0>
}

// -----
// CHECK: dnn.pool "p": pads [2, 0, 0, 0] must be smaller than the kernel [2, 2]
dnn.graph @g(%x: !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0> as "x") {
  %p = dnn.pool %x name "p" out "p" kind avg kernel [2, 2] stride [2, 2] pad [2, 0, 0, 0] : (!dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>) -> !dnn.qtensor<1x4x4x4, scale = 0.5, zp = 0>
  dnn.return %p : !dnn.qtensor<1x4x4x4, scale = 0.5, zp = 0>
}

// -----
// CHECK: dnn.pool "p": output shape [1, 4, 4, 4] does not match global_avg pooling, expected [1, 4, 1, 1]
dnn.graph @g(%x: !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0> as "x") {
  %p = dnn.pool %x name "p" out "p" kind global_avg : (!dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>) -> !dnn.qtensor<1x4x4x4, scale = 0.5, zp = 0>
  dnn.return %p : !dnn.qtensor<1x4x4x4, scale = 0.5, zp = 0>
}

// -----
// CHECK: dnn.conv "c": divisor must be finite and > 0, got -0.5
dnn.graph @g(%x: !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0> as "x") {
  %c = dnn.conv %x name "c" out "c" bias [0, 0] multiplier [1, 1] shift [1, 1] divisor -0.5 weight 2x4x1x1 splat 1 : (!dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>) -> !dnn.qtensor<1x2x8x8, scale = 0.5, zp = 0>
  dnn.return %c : !dnn.qtensor<1x2x8x8, scale = 0.5, zp = 0>
}

// -----
// CHECK: dnn.conv "c": divisor must be finite and > 0, got 0.0
dnn.graph @g(%x: !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0> as "x") {
  %c = dnn.conv %x name "c" out "c" bias [0, 0] multiplier [1, 1] shift [1, 1] divisor 0.0 weight 2x4x1x1 splat 1 : (!dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>) -> !dnn.qtensor<1x2x8x8, scale = 0.5, zp = 0>
  dnn.return %c : !dnn.qtensor<1x2x8x8, scale = 0.5, zp = 0>
}

// -----
// CHECK: dnn.conv "c": divisor must be finite and > 0, got inf
dnn.graph @g(%x: !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0> as "x") {
  %c = "dnn.conv"(%x) <{name = "c", out = "c", weight = dense<1> : tensor<2x4x1x1xi8>, bias = array<i32: 0, 0>, multiplier = array<i32: 1, 1>, shift = array<i32: 1, 1>, divisor = 0x7F800000 : f32, strides = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, groups = 1 : i64, act = "none", act_range = array<i64: -128, 127>, act_table = array<i32>}> : (!dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>) -> !dnn.qtensor<1x2x8x8, scale = 0.5, zp = 0>
  dnn.return %c : !dnn.qtensor<1x2x8x8, scale = 0.5, zp = 0>
}

// -----
// CHECK: dnn.conv "c": divisor must be an f32 value, got f64
dnn.graph @g(%x: !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0> as "x") {
  %c = "dnn.conv"(%x) <{name = "c", out = "c", weight = dense<1> : tensor<2x4x1x1xi8>, bias = array<i32: 0, 0>, multiplier = array<i32: 1, 1>, shift = array<i32: 1, 1>, divisor = 2.0 : f64, strides = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, groups = 1 : i64, act = "none", act_range = array<i64: -128, 127>, act_table = array<i32>}> : (!dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>) -> !dnn.qtensor<1x2x8x8, scale = 0.5, zp = 0>
  dnn.return %c : !dnn.qtensor<1x2x8x8, scale = 0.5, zp = 0>
}

// -----
// CHECK: dnn.pool "p": kernel must be 2 values >= 1, got [0, 2]
dnn.graph @g(%x: !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0> as "x") {
  %p = dnn.pool %x name "p" out "p" kind avg kernel [0, 2] : (!dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>) -> !dnn.qtensor<1x4x4x4, scale = 0.5, zp = 0>
  dnn.return %p : !dnn.qtensor<1x4x4x4, scale = 0.5, zp = 0>
}

// -----
// CHECK: dnn.add "a": operand a and the result must have the same shape and b that shape or [N, C, 1, 1], got [1, 4, 8, 8] + [1, 4, 8, 8] -> [1, 4, 4, 4]
dnn.graph @g(%x: !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0> as "x") {
  %a = dnn.add %x, %x name "a" out "a" mult_a 1 mult_b 1 shift 0 : (!dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>, !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>) -> !dnn.qtensor<1x4x4x4, scale = 0.5, zp = 0>
  dnn.return %a : !dnn.qtensor<1x4x4x4, scale = 0.5, zp = 0>
}

// -----
// CHECK: dnn.add "a": mult_b = 2147483648 is outside [0, 2**31)
dnn.graph @g(%x: !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0> as "x") {
  %a = dnn.add %x, %x name "a" out "a" mult_a 1 mult_b 2147483648 shift 0 : (!dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>, !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>) -> !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>
  dnn.return %a : !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>
}

// -----
// CHECK: dnn.concat "k": operand 1 has scale 0.25, zp 0; every operand must have the result's scale 0.5, zp 0
dnn.graph @g(%x: !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0> as "x", %y: !dnn.qtensor<1x4x8x8, scale = 0.25, zp = 0> as "y") {
  %k = dnn.concat %x, %y name "k" out "k" : (!dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>, !dnn.qtensor<1x4x8x8, scale = 0.25, zp = 0>) -> !dnn.qtensor<1x8x8x8, scale = 0.5, zp = 0>
  dnn.return %k : !dnn.qtensor<1x8x8x8, scale = 0.5, zp = 0>
}

// -----
// CHECK: dnn.concat "k": operand sizes along axis 1 sum to 8, result has 9
dnn.graph @g(%x: !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0> as "x") {
  %k = dnn.concat %x, %x name "k" out "k" : (!dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>, !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>) -> !dnn.qtensor<1x9x8x8, scale = 0.5, zp = 0>
  dnn.return %k : !dnn.qtensor<1x9x8x8, scale = 0.5, zp = 0>
}

// -----
// CHECK: dnn.concat "k": axis 4 is out of range for rank 4
dnn.graph @g(%x: !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0> as "x") {
  %k = dnn.concat %x, %x name "k" out "k" axis 4 : (!dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>, !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>) -> !dnn.qtensor<1x8x8x8, scale = 0.5, zp = 0>
  dnn.return %k : !dnn.qtensor<1x8x8x8, scale = 0.5, zp = 0>
}

// -----
// CHECK: dnn.concat "k": operand 0 has shape [1, 4, 8, 8], incompatible with the result [1, 8, 8, 9] along axis 1
dnn.graph @g(%x: !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0> as "x") {
  %k = dnn.concat %x, %x name "k" out "k" : (!dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>, !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>) -> !dnn.qtensor<1x8x8x9, scale = 0.5, zp = 0>
  dnn.return %k : !dnn.qtensor<1x8x8x9, scale = 0.5, zp = 0>
}

// -----
// CHECK: dnn.shuffle "s": 4 input channels are not divisible by groups 3
dnn.graph @g(%x: !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0> as "x") {
  %s = dnn.shuffle %x name "s" out "s" groups 3 : (!dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>) -> !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>
  dnn.return %s : !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>
}

// -----
// CHECK: dnn.shuffle "s": groups must be >= 1, got 0
dnn.graph @g(%x: !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0> as "x") {
  %s = dnn.shuffle %x name "s" out "s" groups 0 : (!dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>) -> !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>
  dnn.return %s : !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>
}

// -----
// CHECK: dnn.shuffle "s": result shape [1, 4, 8, 4] must equal the input shape [1, 4, 8, 8] (a shuffle only permutes channels)
dnn.graph @g(%x: !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0> as "x") {
  %s = dnn.shuffle %x name "s" out "s" groups 2 : (!dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>) -> !dnn.qtensor<1x4x8x4, scale = 0.5, zp = 0>
  dnn.return %s : !dnn.qtensor<1x4x8x4, scale = 0.5, zp = 0>
}

// -----
// CHECK: dnn.shuffle "s": result has scale 0.25, zp 0; a shuffle keeps the input's scale 0.5, zp 0
dnn.graph @g(%x: !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0> as "x") {
  %s = dnn.shuffle %x name "s" out "s" groups 2 : (!dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>) -> !dnn.qtensor<1x4x8x8, scale = 0.25, zp = 0>
  dnn.return %s : !dnn.qtensor<1x4x8x8, scale = 0.25, zp = 0>
}

// -----
// CHECK: dnn.shuffle "s": result has scale 0.5, zp 1; a shuffle keeps the input's scale 0.5, zp 0
dnn.graph @g(%x: !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0> as "x") {
  %s = dnn.shuffle %x name "s" out "s" groups 2 : (!dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>) -> !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 1>
  dnn.return %s : !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 1>
}

// -----
// CHECK: dnn.shuffle "s": input and output must be 4-D NCHW, got [1, 4, 64] -> [1, 4, 64]
dnn.graph @g(%x: !dnn.qtensor<1x4x64, scale = 0.5, zp = 0> as "x") {
  %s = dnn.shuffle %x name "s" out "s" groups 2 : (!dnn.qtensor<1x4x64, scale = 0.5, zp = 0>) -> !dnn.qtensor<1x4x64, scale = 0.5, zp = 0>
  dnn.return %s : !dnn.qtensor<1x4x64, scale = 0.5, zp = 0>
}

// -----
// CHECK: dnn.host "h": op_type must not be empty
dnn.graph @g(%x: !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0> as "x") {
  %h = dnn.host %x name "h" out "h" op "" : (!dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>) -> !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>
  dnn.return %h : !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>
}

// -----
// CHECK: dnn.return: output 0 reshape [1, 200] does not keep the 256 elements of [1, 4, 8, 8]
dnn.graph @g(%x: !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0> as "x") {

  dnn.return %x reshape [1, 200] : !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>
}

// -----
// CHECK: dnn.graph @g: tensor name 'x' is defined twice (dnn.host "h")
dnn.graph @g(%x: !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0> as "x") {
  %h = dnn.host %x name "h" out "x" op "Relu" : (!dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>) -> !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>
  dnn.return %h : !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>
}

// -----
// CHECK: dnn.graph @g: 'arith.constant' is not a dnn node op
dnn.graph @g(%x: !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0> as "x") {
  %z = arith.constant 0 : i32
  dnn.return %x : !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>
}

// -----
// CHECK: Operation arith.constant terminates block in single-block region but is not a terminator
dnn.graph @g(%x: !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0> as "x") {
  %z = arith.constant 0 : i32
}

// -----
// CHECK: 'dnn.return' expects parent op 'dnn.graph'
func.func @f(%x: !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>) {
  dnn.return %x : !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>
}

// -----
// CHECK: dnn.slice "s": channels [2, 6) are not a non-empty range of the input's 4 channels
dnn.graph @g(%x: !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0> as "x") {
  %s = dnn.slice %x name "s" out "s" start 2 : (!dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>) -> !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>
  dnn.return %s : !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>
}

// -----
// CHECK: dnn.slice "s": result shape [1, 2, 8, 4] must keep the input's N, H, W [1, 4, 8, 8] (a slice takes channels only)
dnn.graph @g(%x: !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0> as "x") {
  %s = dnn.slice %x name "s" out "s" start 0 : (!dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>) -> !dnn.qtensor<1x2x8x4, scale = 0.5, zp = 0>
  dnn.return %s : !dnn.qtensor<1x2x8x4, scale = 0.5, zp = 0>
}

// -----
// CHECK: dnn.slice "s": result has scale 0.25, zp 0; a slice keeps the input's scale 0.5, zp 0
dnn.graph @g(%x: !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0> as "x") {
  %s = dnn.slice %x name "s" out "s" start 1 : (!dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>) -> !dnn.qtensor<1x2x8x8, scale = 0.25, zp = 0>
  dnn.return %s : !dnn.qtensor<1x2x8x8, scale = 0.25, zp = 0>
}

// -----
// CHECK: dnn.slice "s": channels [-1, 1) are not a non-empty range of the input's 4 channels
dnn.graph @g(%x: !dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0> as "x") {
  %s = dnn.slice %x name "s" out "s" start -1 : (!dnn.qtensor<1x4x8x8, scale = 0.5, zp = 0>) -> !dnn.qtensor<1x2x8x8, scale = 0.5, zp = 0>
  dnn.return %s : !dnn.qtensor<1x2x8x8, scale = 0.5, zp = 0>
}

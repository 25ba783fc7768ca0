// RUN: vfpga-opt %s -p 'dnn-plan-memory,dnn-tile{hw=pool16}' | filecheck %s
// RUN: vfpga-opt %s -p 'dnn-plan-memory,dnn-tile{hw=large1}' | filecheck %s --check-prefix=LARGE
// RUN: vfpga-opt %s -p 'dnn-plan-memory,dnn-tile{hw=large1},dnn-tile{hw=pool16}' | filecheck %s
// RUN: not vfpga-opt %s -p 'dnn-tile' 2>&1 | filecheck %s --check-prefix=NOPLAN
// RUN: not vfpga-opt %s -p 'dnn-plan-memory,dnn-tile{hw=nosuchhw}' 2>&1 | filecheck %s --check-prefix=BADHW

// Candidates per layer (compiler/tiling.py: candidates): the balanced partition into k
// tiles for every k = 1 .. 16 that has one, in increasing k (a one-axis one is named by
// its axis, `w` or `c`; others are `tiles`: rows x columns x output channels, channel
// bounds aligned to 8, pool16's output-channel parallelism), then the plain width and
// channel splits not among them (large1 has 16-channel parallelism: a 16-channel layer is
// not split along channels).

dnn.graph @net(%x: !dnn.qtensor<1x8x6x6, scale = 0.5, zp = -3> as "x") {
    %c = dnn.conv %x name "c" out "c" pad [1, 1, 1, 1] act relu(-5, 127) bias [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15] multiplier [1073741824, 1073741824, 1073741824, 1073741824, 1073741824, 1073741824, 1073741824, 1073741824, 1073741824, 1073741824, 1073741824, 1073741824, 1073741824, 1073741824, 1073741824, 1073741824] shift [38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38] weight 16x8x3x3 splat 3 : (!dnn.qtensor<1x8x6x6, scale = 0.5, zp = -3>) -> !dnn.qtensor<1x16x6x6, scale = 0.25, zp = -5>
    %p = dnn.pool %c name "p" out "p" kind max kernel [2, 2] stride [2, 2] : (!dnn.qtensor<1x16x6x6, scale = 0.25, zp = -5>) -> !dnn.qtensor<1x16x3x3, scale = 0.25, zp = -5>
    %a = dnn.add %p, %p name "a" out "a" mult_a 1048576 mult_b 1048576 shift 21 : (!dnn.qtensor<1x16x3x3, scale = 0.25, zp = -5>, !dnn.qtensor<1x16x3x3, scale = 0.25, zp = -5>) -> !dnn.qtensor<1x16x3x3, scale = 0.25, zp = -5>
    dnn.return %a : !dnn.qtensor<1x16x3x3, scale = 0.25, zp = -5>
}

// CHECK:      builtin.module attributes {{{.*}}, vfpga.hw = "pool16", vfpga.hw_config = "{{.*}}", vfpga.buffers = {ibuf = 131072 : i64, wbuf = 131072 : i64, pbuf = 8192 : i64, obuf = 65536 : i64, abuf = 65536 : i64}} {
// CHECK:        ifp.layer 0 "c" conv out 16x6x6 macs 41472 {
// CHECK-NEXT:     ifp.candidate w parts 1 at [0, 6]
// CHECK-NEXT:     ifp.candidate c parts 2 at [0, 8, 16]
// CHECK-NEXT:     ifp.candidate tiles parts 3 at [0, 6, 0, 8, 0, 4, 0, 6, 8, 16, 0, 4, 0, 6, 0, 16, 4, 6]
// CHECK-NEXT:     ifp.candidate tiles parts 4 at [{{[0-9, ]+}}]
// CHECK-NEXT:     ifp.candidate tiles parts 5 at [{{[0-9, ]+}}]
// CHECK-NEXT:     ifp.candidate tiles parts 6 at [{{[0-9, ]+}}]
// CHECK-NEXT:     ifp.candidate tiles parts 7 at [{{[0-9, ]+}}]
// CHECK-NEXT:     ifp.candidate tiles parts 8 at [{{[0-9, ]+}}]
// CHECK-NEXT:     ifp.candidate tiles parts 9 at [{{[0-9, ]+}}]
// CHECK-NEXT:     ifp.candidate tiles parts 10 at [{{[0-9, ]+}}]
// CHECK-NEXT:     ifp.candidate tiles parts 11 at [{{[0-9, ]+}}]
// CHECK-NEXT:     ifp.candidate tiles parts 12 at [{{[0-9, ]+}}]
// CHECK-NEXT:     ifp.candidate tiles parts 13 at [{{[0-9, ]+}}]
// CHECK-NEXT:     ifp.candidate tiles parts 14 at [{{[0-9, ]+}}]
// CHECK-NEXT:     ifp.candidate tiles parts 15 at [{{[0-9, ]+}}]
// CHECK-NEXT:     ifp.candidate tiles parts 16 at [{{[0-9, ]+}}]
// CHECK-NEXT:     ifp.candidate w parts 2 at [0, 3, 6]
// CHECK-NEXT:     ifp.candidate w parts 4 at [0, 1, 3, 4, 6]
// CHECK-NEXT:   }
// CHECK-NEXT:   ifp.layer 1 "p" pool out 16x3x3 macs 0 {
// CHECK-NEXT:     ifp.candidate w parts 1 at [0, 3]
// CHECK-NEXT:     ifp.candidate c parts 2 at [0, 8, 16]
// CHECK-NEXT:     ifp.candidate tiles parts 3 at [0, 3, 0, 16, 0, 1, 0, 3, 0, 16, 1, 2, 0, 3, 0, 16, 2, 3]
// CHECK-NEXT:     ifp.candidate tiles parts 4 at [{{[0-9, ]+}}]
// CHECK-NEXT:     ifp.candidate tiles parts 5 at [{{[0-9, ]+}}]
// CHECK-NEXT:     ifp.candidate tiles parts 6 at [{{[0-9, ]+}}]
// CHECK-NEXT:     ifp.candidate tiles parts 7 at [{{[0-9, ]+}}]
// CHECK-NEXT:     ifp.candidate tiles parts 8 at [{{[0-9, ]+}}]
// CHECK-NEXT:     ifp.candidate tiles parts 9 at [{{[0-9, ]+}}]
// CHECK-NEXT:     ifp.candidate w parts 2 at [0, 1, 3]
// CHECK-NEXT:   }
// CHECK-NEXT:   ifp.layer 2 "a" add out 16x3x3 macs 0 {
// CHECK-NOT:    ifp.layer

// LARGE:      vfpga.hw = "large1"
// LARGE-SAME: vfpga.buffers = {ibuf = 2097152 : i64, wbuf = 2097152 : i64, pbuf = 131072 : i64, obuf = 1048576 : i64, abuf = 1048576 : i64}
// LARGE:      ifp.layer 0 "c" conv out 16x6x6 macs 41472 {
// LARGE-NOT:  ifp.candidate c

// NOPLAN: vfpga-opt: error: the module has no memory plan (module attributes vfpga.data_offset / vfpga.ddr_size): run the dnn-plan-memory pass first
// BADHW: vfpga-opt: error: dnn-tile: unknown hardware 'nosuchhw'

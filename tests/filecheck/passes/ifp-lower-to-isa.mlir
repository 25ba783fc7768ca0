// RUN: vfpga-opt %s -p 'dnn-plan-memory,dnn-tile,ifp-package,ifp-lower-to-isa,ifp-materialize-isa' | filecheck %s
// RUN: vfpga-opt %s -p 'dnn-plan-memory,dnn-tile,ifp-package,ifp-lower-to-isa,ifp-materialize-isa' | vfpga-opt | filecheck %s
// RUN: vfpga-opt %s -p 'dnn-plan-memory,dnn-tile,ifp-package,ifp-lower-to-isa' | vfpga-opt -p ifp-materialize-isa | filecheck %s
// RUN: vfpga-opt %s -p 'dnn-plan-memory,dnn-tile,ifp-package,ifp-lower-to-isa' | filecheck %s --check-prefix=CODE

// ifp-lower-to-isa packs each package's instructions into `code` (64-byte words, hex;
// the first word: opcode 1 = LOAD, deps 0x0a); ifp-materialize-isa unpacks them into isa
// ops, also from printed and re-parsed IR.
// CODE:      ifp.package w=0:1 c=0:16 h=0:2 og=16 rb=2 chunk=0 in_cols=2 ibuf=128 wbuf=0 pbuf=0 obuf=32 abuf=0 code="010000000a00
// CODE-NOT:  isa.load

// Each package: LOAD the input box (rows x columns x its channels, NHWC with row stride
// 4*16 and column stride 16), POOL, SAVE into the output at its column / channel offset
// (y lives at DDR 256); the tokens hand the buffer credits on. Usage: the bytes written.

dnn.graph @p(%x: !dnn.qtensor<1x16x4x4, scale = 0.5, zp = -3> as "x") {
  %p = dnn.pool %x name "pool" out "y" kind max kernel [2, 2] stride [2, 2] : (!dnn.qtensor<1x16x4x4, scale = 0.5, zp = -3>) -> !dnn.qtensor<1x16x2x2, scale = 0.5, zp = -3>
  dnn.return %p : !dnn.qtensor<1x16x2x2, scale = 0.5, zp = -3>
}

// CHECK:      ifp.candidate c parts 2 at [0, 8, 16] {
// CHECK-NEXT:   ifp.package w=0:2 c=0:8 h=0:2 og=8 rb=2 chunk=0 in_cols=4 ibuf=128 wbuf=0 pbuf=0 obuf=32 abuf=0 {
// CHECK-NEXT:     isa.load to=ibuf stride0=64 stride1=16 n2=8 n0=4 n1=4 deps [wait_next, signal_next]
// CHECK:        ifp.package w=0:2 c=8:16 h=0:2 og=8 rb=2 chunk=0 in_cols=4 ibuf=128 wbuf=0 pbuf=0 obuf=32 abuf=0 {
// CHECK-NEXT:     isa.load to=ibuf ddr=8 stride0=64 stride1=16 n2=8 n0=4 n1=4 deps [wait_next, signal_next]
// CHECK:      ifp.candidate w parts 2 at [0, 1, 2] {
// CHECK-NEXT:   ifp.package w=0:1 c=0:16 h=0:2 og=16 rb=2 chunk=0 in_cols=2 ibuf=128 wbuf=0 pbuf=0 obuf=32 abuf=0 {
// CHECK-NEXT:     isa.load to=ibuf stride0=64 stride1=16 n2=16 n0=4 n1=2 deps [wait_next, signal_next]
// CHECK-NEXT:     isa.pool mode=max in_h=4 in_w=2 c=16 kh=2 kw=2 stride_h=2 stride_w=2 deps [wait_prev, wait_next, signal_prev, signal_next]
// CHECK-NEXT:     isa.save from=obuf ddr=256 stride0=32 stride1=16 n2=16 n0=2 n1=1 deps [wait_prev, signal_prev]
// CHECK-NEXT:   }
// CHECK-NEXT:   ifp.package w=1:2 c=0:16 h=0:2 og=16 rb=2 chunk=0 in_cols=2 ibuf=128 wbuf=0 pbuf=0 obuf=32 abuf=0 {
// CHECK-NEXT:     isa.load to=ibuf ddr=32 stride0=64 stride1=16 n2=16 n0=4 n1=2 deps [wait_next, signal_next]
// CHECK-NEXT:     isa.pool
// CHECK-NEXT:     isa.save from=obuf ddr=272 stride0=32 stride1=16 n2=16 n0=2 n1=1 deps [wait_prev, signal_prev]
// CHECK-NEXT:   }
// CHECK-NEXT: }

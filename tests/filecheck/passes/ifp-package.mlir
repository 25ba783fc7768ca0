// RUN: vfpga-opt %s -p 'dnn-plan-memory,dnn-tile,ifp-package' | filecheck %s
// RUN: vfpga-opt %s -p 'dnn-plan-memory,dnn-tile,ifp-package,ifp-package' | filecheck %s
// RUN: not vfpga-opt %s -p 'dnn-plan-memory,ifp-package' 2>&1 | filecheck %s --check-prefix=NOTILE

// One package per tile of every candidate, with the loop nest choose_plan picks (all the
// tile's channels and output rows at once; the input columns of the tile); no
// instructions or buffer usage yet.

dnn.graph @p(%x: !dnn.qtensor<1x16x4x4, scale = 0.5, zp = -3> as "x") {
  %p = dnn.pool %x name "pool" out "y" kind max kernel [2, 2] stride [2, 2] : (!dnn.qtensor<1x16x4x4, scale = 0.5, zp = -3>) -> !dnn.qtensor<1x16x2x2, scale = 0.5, zp = -3>
  dnn.return %p : !dnn.qtensor<1x16x2x2, scale = 0.5, zp = -3>
}

// CHECK:      ifp.layer 0 "pool" pool out 16x2x2 macs 0 {
// CHECK-NEXT:   ifp.candidate w parts 1 at [0, 2] {
// CHECK-NEXT:     ifp.package w=0:2 c=0:16 h=0:2 og=16 rb=2 chunk=0 in_cols=4
// CHECK-NEXT:   }
// CHECK-NEXT:   ifp.candidate c parts 2 at [0, 8, 16] {
// CHECK-NEXT:     ifp.package w=0:2 c=0:8 h=0:2 og=8 rb=2 chunk=0 in_cols=4
// CHECK-NEXT:     ifp.package w=0:2 c=8:16 h=0:2 og=8 rb=2 chunk=0 in_cols=4
// CHECK-NEXT:   }
// CHECK-NEXT:   ifp.candidate tiles parts 3 at [0, 2, 0, 8, 0, 1, 0, 2, 8, 16, 0, 1, 0, 2, 0, 16, 1, 2] {
// CHECK-NEXT:     ifp.package w=0:2 c=0:8 h=0:1 og=8 rb=1 chunk=0 in_cols=4
// CHECK-NEXT:     ifp.package w=0:2 c=8:16 h=0:1 og=8 rb=1 chunk=0 in_cols=4
// CHECK-NEXT:     ifp.package w=0:2 c=0:16 h=1:2 og=16 rb=1 chunk=0 in_cols=4
// CHECK-NEXT:   }
// CHECK-NEXT:   ifp.candidate tiles parts 4 at [0, 2, 0, 8, 0, 1, 0, 2, 8, 16, 0, 1, 0, 2, 0, 8, 1, 2, 0, 2, 8, 16, 1, 2] {
// CHECK-NEXT:     ifp.package w=0:2 c=0:8 h=0:1 og=8 rb=1 chunk=0 in_cols=4
// CHECK-NEXT:     ifp.package w=0:2 c=8:16 h=0:1 og=8 rb=1 chunk=0 in_cols=4
// CHECK-NEXT:     ifp.package w=0:2 c=0:8 h=1:2 og=8 rb=1 chunk=0 in_cols=4
// CHECK-NEXT:     ifp.package w=0:2 c=8:16 h=1:2 og=8 rb=1 chunk=0 in_cols=4
// CHECK-NEXT:   }
// CHECK-NEXT:   ifp.candidate w parts 2 at [0, 1, 2] {
// CHECK-NEXT:     ifp.package w=0:1 c=0:16 h=0:2 og=16 rb=2 chunk=0 in_cols=2
// CHECK-NEXT:     ifp.package w=1:2 c=0:16 h=0:2 og=16 rb=2 chunk=0 in_cols=2
// CHECK-NEXT:   }
// CHECK-NEXT: }

// NOTILE: vfpga-opt: error: the module has no hardware (module attribute vfpga.hw_config): run the dnn-tile{hw=...} pass first

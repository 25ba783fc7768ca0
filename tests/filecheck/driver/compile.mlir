// vfpga compile on dnn IR: the default pipeline and its options, -p, --print-ir-after,
// --time-passes; the same bytes as vfpga-opt with the printed pipeline.
// RUN: vfpga compile --print-pipeline | filecheck %s --check-prefix=PIPE
// RUN: vfpga compile --print-pipeline --hw large1 --cores 1 | filecheck %s --check-prefix=PIPE-LARGE
// RUN: vfpga compile %s -o %t.a.vfb --cores 2 --time-passes | filecheck %s --check-prefix=TIME
// RUN: vfpga-opt %s -p 'dnn-plan-memory,dnn-tile{hw=pool16},ifp-package,ifp-lower-to-isa,ifp-estimate-latency,ifp-select{cores=2}' -t vfb -o %t.b.vfb
// RUN: cmp %t.a.vfb %t.b.vfb
// RUN: vfpga compile %s -o %t.c.vfb -p 'dnn-plan-memory,dnn-tile{hw=pool16},ifp-package,ifp-lower-to-isa,ifp-estimate-latency,ifp-select{cores=2}'
// RUN: cmp %t.a.vfb %t.c.vfb
// RUN: vfpga compile %s -o %t.d.vfb --print-ir-after ifp-select 2>&1 >/dev/null | filecheck %s --check-prefix=IRSEL
// RUN: vfpga compile %s -o %t.e.vfb --print-ir-after all 2>&1 >/dev/null | filecheck %s --check-prefix=ALL
// RUN: not vfpga compile %s -o %t.f.vfb -p 'dnn-plan-memory,no-such-pass' 2>&1 | filecheck %s --check-prefix=BAD
// RUN: not vfpga compile %s -o %t.g.vfb -p 'dnn-plan-memory,dnn-tile' 2>&1 | filecheck %s --check-prefix=SHORT
// RUN: not test -e %t.g.vfb

dnn.graph @p(%x: !dnn.qtensor<1x16x4x4, scale = 0.5, zp = -3> as "x") {
  %p = dnn.pool %x name "pool" out "y" kind max kernel [2, 2] stride [2, 2] : (!dnn.qtensor<1x16x4x4, scale = 0.5, zp = -3>) -> !dnn.qtensor<1x16x2x2, scale = 0.5, zp = -3>
  dnn.return %p : !dnn.qtensor<1x16x2x2, scale = 0.5, zp = -3>
}

// PIPE: dnn-plan-memory,dnn-tile{hw=pool16},ifp-package,ifp-lower-to-isa,ifp-estimate-latency,ifp-select{cores=1}
// PIPE-LARGE: dnn-plan-memory,dnn-tile{hw=large1},ifp-package,ifp-lower-to-isa,ifp-estimate-latency,ifp-select{cores=1}

// TIME: predicted latency on 2 core(s)
// TIME: pass timings
// TIME: verify
// TIME: dnn-plan-memory
// TIME: ifp-select
// TIME: link
// TIME: total

// IRSEL:    // -----// IR Dump After ifp-select //----- //
// IRSEL-NEXT: builtin.module attributes {
// IRSEL:    ifp.layer 0 "pool" pool out 16x2x2 macs 0 selected
// IRSEL-NOT: IR Dump After

// ALL: IR Dump After dnn-plan-memory
// ALL: IR Dump After dnn-tile
// ALL: IR Dump After ifp-package
// ALL: IR Dump After ifp-lower-to-isa
// ALL: IR Dump After ifp-estimate-latency
// ALL: IR Dump After ifp-select

// BAD: error: pass pipeline 'dnn-plan-memory,no-such-pass': Unrecognized passes: ['no-such-pass']
// SHORT: error: the module has no core count (vfpga.cores): run ifp-select first

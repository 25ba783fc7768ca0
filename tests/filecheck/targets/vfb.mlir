// The .vfb target (and its assembly text) from vfpga-opt and plain xdsl-opt.
// RUN: vfpga-opt %s -p 'dnn-plan-memory,dnn-tile{hw=pool16},ifp-package,ifp-lower-to-isa,ifp-estimate-latency,ifp-select{cores=2}' -t vfb -o %t.a.vfb
// RUN: xdsl-opt %s -p 'dnn-plan-memory,dnn-tile{hw=pool16},ifp-package,ifp-lower-to-isa,ifp-estimate-latency,ifp-select{cores=2}' -t vfb -o %t.b.vfb
// RUN: cmp %t.a.vfb %t.b.vfb
// RUN: vfpga objdump %t.a.vfb | filecheck %s --check-prefix=OBJ
// RUN: vfpga-opt %s -p 'dnn-plan-memory,dnn-tile{hw=pool16},ifp-package,ifp-lower-to-isa,ifp-estimate-latency,ifp-select{cores=2}' -t vfb-asm -o %t.s
// RUN: filecheck %s --check-prefix=ASM < %t.s
// RUN: vfpga asm %t.s -o %t.c.vfb
// RUN: cmp %t.a.vfb %t.c.vfb
// A later stage of the pipeline, printed and read back, links to the same bytes; so do
// the isa ops of ifp-materialize-isa.
// RUN: vfpga-opt %s -p 'dnn-plan-memory,dnn-tile{hw=pool16},ifp-package' | vfpga-opt -p 'ifp-lower-to-isa,ifp-materialize-isa,ifp-estimate-latency,ifp-select{cores=2}' -t vfb -o %t.d.vfb
// RUN: cmp %t.a.vfb %t.d.vfb
// Without the whole pipeline the target says which pass is missing.
// RUN: not vfpga-opt %s -p 'dnn-plan-memory,dnn-tile,ifp-package,ifp-lower-to-isa,ifp-estimate-latency' -t vfb -o %t.e.vfb 2>&1 | filecheck %s --check-prefix=NOSEL

dnn.graph @p(%x: !dnn.qtensor<1x16x4x4, scale = 0.5, zp = -3> as "x") {
  %p = dnn.pool %x name "pool" out "y" kind max kernel [2, 2] stride [2, 2] : (!dnn.qtensor<1x16x4x4, scale = 0.5, zp = -3>) -> !dnn.qtensor<1x16x2x2, scale = 0.5, zp = -3>
  dnn.return %p : !dnn.qtensor<1x16x2x2, scale = 0.5, zp = -3>
}

// OBJ: ; hardware: pool16
// OBJ: 1 layers, 2 logical core(s)

// ASM:      .hw pool16
// ASM-NEXT: .program ddr_size={{[0-9]+}} data_offset={{[0-9]+}} cores=2 isa=5
// ASM:      .layer pool kind=pool macs=0 ifps=0:12

// NOSEL: vfpga-opt: error: the module has no core count (vfpga.cores): run ifp-select first

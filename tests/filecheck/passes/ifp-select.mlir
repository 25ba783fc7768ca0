// RUN: vfpga-opt %s -p 'dnn-plan-memory,dnn-tile,ifp-package,ifp-lower-to-isa,ifp-estimate-latency' | filecheck %s --check-prefix=LAT
// RUN: vfpga-opt %s -p 'dnn-plan-memory,dnn-tile,ifp-package,ifp-lower-to-isa,ifp-estimate-latency,ifp-select{cores=2}' | filecheck %s --check-prefix=TWO
// RUN: vfpga-opt %s -p 'dnn-plan-memory,dnn-tile,ifp-package,ifp-lower-to-isa,ifp-estimate-latency,ifp-select{cores=1}' | filecheck %s --check-prefix=ONE
// RUN: not vfpga-opt %s -p 'dnn-plan-memory,dnn-tile,ifp-package,ifp-select' 2>&1 | filecheck %s --check-prefix=NOLAT
// RUN: not vfpga-opt %s -p 'dnn-plan-memory,dnn-tile,ifp-package,ifp-estimate-latency' 2>&1 | filecheck %s --check-prefix=NOISA
// RUN: not vfpga-opt %s -p 'dnn-plan-memory,dnn-tile,ifp-package,ifp-lower-to-isa,ifp-estimate-latency,ifp-select{cores=17}' 2>&1 | filecheck %s --check-prefix=CORES

// Latencies from the cycle-level core model (LOAD/CALC/SAVE overlap under the tokens),
// then per candidate the LPT makespan on N cores and each package's default core. On two
// cores the channel split (2 x 92 cycles in parallel, candidate 1) wins over the row x
// channel tilings (3 or 4 tiles: 172) and the width split (94); on one core the whole
// layer.

dnn.graph @p(%x: !dnn.qtensor<1x16x4x4, scale = 0.5, zp = -3> as "x") {
  %p = dnn.pool %x name "pool" out "y" kind max kernel [2, 2] stride [2, 2] : (!dnn.qtensor<1x16x4x4, scale = 0.5, zp = -3>) -> !dnn.qtensor<1x16x2x2, scale = 0.5, zp = -3>
  dnn.return %p : !dnn.qtensor<1x16x2x2, scale = 0.5, zp = -3>
}

// LAT: ifp.package w=0:2 c=0:16 h=0:2 {{.*}} latency=104 code="{{[0-9a-f]+}}"
// LAT: ifp.package w=0:2 c=0:8 h=0:2 {{.*}} latency=92 code="{{[0-9a-f]+}}"
// LAT: ifp.package w=0:2 c=8:16 h=0:2 {{.*}} latency=92 code="{{[0-9a-f]+}}"
// LAT: ifp.package w=0:2 c=0:8 h=0:1 {{.*}} latency=86 code="{{[0-9a-f]+}}"
// LAT: ifp.package w=0:2 c=0:16 h=1:2 {{.*}} latency=92 code="{{[0-9a-f]+}}"
// LAT: ifp.package w=0:1 c=0:16 h=0:2 {{.*}} latency=94 code="{{[0-9a-f]+}}"
// LAT: ifp.package w=1:2 c=0:16 h=0:2 {{.*}} latency=94 code="{{[0-9a-f]+}}"

// TWO:      vfpga.cores = 2 : i64
// TWO:      ifp.layer 0 "pool" pool out 16x2x2 macs 0 selected 1 {
// TWO-NEXT:   ifp.candidate w parts 1 at [0, 2] makespan 104 {
// TWO-NEXT:     ifp.package w=0:2 {{.*}} latency=104 core=0 code="{{[0-9a-f]+}}"
// TWO:        ifp.candidate c parts 2 at [0, 8, 16] makespan 92 {
// TWO-NEXT:     ifp.package w=0:2 c=0:8 {{.*}} latency=92 core=0 code="{{[0-9a-f]+}}"
// TWO:          ifp.package w=0:2 c=8:16 {{.*}} latency=92 core=1 code="{{[0-9a-f]+}}"
// TWO:        ifp.candidate tiles parts 3 at [{{[0-9, ]+}}] makespan 172 {
// TWO:        ifp.candidate tiles parts 4 at [{{[0-9, ]+}}] makespan 172 {
// TWO:        ifp.candidate w parts 2 at [0, 1, 2] makespan 94 {
// TWO-NEXT:     ifp.package w=0:1 {{.*}} latency=94 core=0 code="{{[0-9a-f]+}}"
// TWO:          ifp.package w=1:2 {{.*}} latency=94 core=1 code="{{[0-9a-f]+}}"

// ONE: ifp.layer 0 "pool" pool out 16x2x2 macs 0 selected 0 {
// ONE: ifp.candidate w parts 2 at [0, 1, 2] makespan 188 {

// NOLAT: vfpga-opt: error: ifp.layer 0 "pool": a package has no latency: run ifp-estimate-latency first
// NOISA: vfpga-opt: error: ifp.layer 0 "pool": package w=0:2 c=0:16 has no instructions: run ifp-lower-to-isa first
// CORES: vfpga-opt: error: ifp-select: cores must be 1..16 for pool16, got 17

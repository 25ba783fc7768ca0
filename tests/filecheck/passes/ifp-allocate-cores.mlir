// RUN: vfpga-opt %s -p 'ifp-allocate-cores{cores=5,2}' | filecheck %s --check-prefix=LPT
// RUN: xdsl-opt %s -p 'ifp-allocate-cores{cores=5,2}' | filecheck %s --check-prefix=LPT
// RUN: vfpga-opt %s -p 'ifp-allocate-cores{cores=5,2 strategy=lpt-refine}' | filecheck %s --check-prefix=REFINE
// RUN: vfpga-opt %s -p 'ifp-allocate-cores{cores=9}' | filecheck %s --check-prefix=ONE
// RUN: not vfpga-opt %s -p 'ifp-allocate-cores{cores=3,3}' 2>&1 | filecheck %s --check-prefix=TWICE
// RUN: not vfpga-opt %s -p 'ifp-allocate-cores{cores=0 strategy=random}' 2>&1 | filecheck %s --check-prefix=UNKNOWN

// Layer 0: candidate 0 is the whole layer (130 cycles), candidate 1 five tiles of
// 30, 30, 20, 20, 20 cycles. On two cores LPT gives candidate 1 the loads 70 / 50 (the
// classic LPT worst case) and chooses it; the local search of lpt-refine swaps a 30 and
// a 20 to reach the optimum 60 / 60. Layer 1 has a single package. (Generic syntax: the
// input only needs packages with latencies.)

builtin.module {
  "ifp.layer"() <{index = 0 : i64, node = "conv0", kind = "conv", out = array<i64: 16, 4, 5>, macs = 100 : i64}> ({
    "ifp.candidate"() <{axis = "w", parts = 1 : i64, at = array<i64: 0, 5>}> ({
      "ifp.package"() <{w0 = 0 : i64, w1 = 5 : i64, c0 = 0 : i64, c1 = 16 : i64, h0 = 0 : i64, h1 = 4 : i64, latency = 130 : i64}> ({}) : () -> ()
    }) : () -> ()
    "ifp.candidate"() <{axis = "w", parts = 5 : i64, at = array<i64: 0, 1, 2, 3, 4, 5>}> ({
      "ifp.package"() <{w0 = 0 : i64, w1 = 1 : i64, c0 = 0 : i64, c1 = 16 : i64, h0 = 0 : i64, h1 = 4 : i64, latency = 30 : i64}> ({}) : () -> ()
      "ifp.package"() <{w0 = 1 : i64, w1 = 2 : i64, c0 = 0 : i64, c1 = 16 : i64, h0 = 0 : i64, h1 = 4 : i64, latency = 30 : i64}> ({}) : () -> ()
      "ifp.package"() <{w0 = 2 : i64, w1 = 3 : i64, c0 = 0 : i64, c1 = 16 : i64, h0 = 0 : i64, h1 = 4 : i64, latency = 20 : i64}> ({}) : () -> ()
      "ifp.package"() <{w0 = 3 : i64, w1 = 4 : i64, c0 = 0 : i64, c1 = 16 : i64, h0 = 0 : i64, h1 = 4 : i64, latency = 20 : i64}> ({}) : () -> ()
      "ifp.package"() <{w0 = 4 : i64, w1 = 5 : i64, c0 = 0 : i64, c1 = 16 : i64, h0 = 0 : i64, h1 = 4 : i64, latency = 20 : i64}> ({}) : () -> ()
    }) : () -> ()
  }) : () -> ()
  "ifp.layer"() <{index = 1 : i64, node = "pool1", kind = "pool", out = array<i64: 16, 2, 2>, macs = 0 : i64}> ({
    "ifp.candidate"() <{axis = "w", parts = 1 : i64, at = array<i64: 0, 2>}> ({
      "ifp.package"() <{w0 = 0 : i64, w1 = 2 : i64, c0 = 0 : i64, c1 = 16 : i64, h0 = 0 : i64, h1 = 2 : i64, latency = 7 : i64}> ({}) : () -> ()
    }) : () -> ()
  }) : () -> ()
}

// LPT: builtin.module attributes {vfpga.cores = 2 : i64, vfpga.core_map = array<i64: 5, 2>}
// LPT-NEXT: ifp.layer 0 "conv0" conv out 16x4x5 macs 100 selected 1 {
// LPT-NEXT: ifp.candidate w parts 1 at [0, 5] makespan 130 {
// LPT-NEXT: ifp.package w=0:5 c=0:16 h=0:4 latency=130 core=0
// LPT:      ifp.candidate w parts 5 at [0, 1, 2, 3, 4, 5] makespan 70 {
// LPT-NEXT: ifp.package w=0:1 c=0:16 h=0:4 latency=30 core=0
// LPT-NEXT: ifp.package w=1:2 c=0:16 h=0:4 latency=30 core=1
// LPT-NEXT: ifp.package w=2:3 c=0:16 h=0:4 latency=20 core=0
// LPT-NEXT: ifp.package w=3:4 c=0:16 h=0:4 latency=20 core=1
// LPT-NEXT: ifp.package w=4:5 c=0:16 h=0:4 latency=20 core=0
// LPT:      ifp.layer 1 "pool1" pool out 16x2x2 macs 0 selected 0 {
// LPT-NEXT: ifp.candidate w parts 1 at [0, 2] makespan 7 {
// LPT-NEXT: ifp.package w=0:2 c=0:16 h=0:2 latency=7 core=0

// REFINE:      ifp.candidate w parts 5 at [0, 1, 2, 3, 4, 5] makespan 60 {
// REFINE-NEXT: ifp.package w=0:1 c=0:16 h=0:4 latency=30 core=1
// REFINE-NEXT: ifp.package w=1:2 c=0:16 h=0:4 latency=30 core=1
// REFINE-NEXT: ifp.package w=2:3 c=0:16 h=0:4 latency=20 core=0
// REFINE-NEXT: ifp.package w=3:4 c=0:16 h=0:4 latency=20 core=0
// REFINE-NEXT: ifp.package w=4:5 c=0:16 h=0:4 latency=20 core=0

// ONE: builtin.module attributes {vfpga.cores = 1 : i64, vfpga.core_map = array<i64: 9>}
// ONE: ifp.candidate w parts 1 at [0, 5] makespan 130 {
// ONE: ifp.candidate w parts 5 at [0, 1, 2, 3, 4, 5] makespan 120 {
// ONE-NEXT: ifp.package w=0:1 c=0:16 h=0:4 latency=30 core=0
// ONE-NEXT: ifp.package w=1:2 c=0:16 h=0:4 latency=30 core=0

// TWICE: ifp-allocate-cores: core set [3, 3] names a core twice
// UNKNOWN: ifp-allocate-cores: unknown allocation strategy 'random' (known: lpt, lpt-refine)

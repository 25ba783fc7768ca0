// RUN: vfpga-opt %s | filecheck %s
// RUN: vfpga-opt %s | vfpga-opt | filecheck %s
// RUN: vfpga-opt %s --print-op-generic | vfpga-opt | filecheck %s

// ifp.layer / ifp.candidate / ifp.package in their custom formats (a candidate before
// packaging, packages before and after lowering); printing is the identity.

builtin.module attributes {vfpga.buffers = {ibuf = 131072 : i64, wbuf = 131072 : i64, pbuf = 8192 : i64, obuf = 65536 : i64, abuf = 65536 : i64}} {
  ifp.layer 0 "pool" pool out 16x2x2 macs 0 selected 1 {
    ifp.candidate w parts 1 at [0, 2]
    ifp.candidate w parts 2 at [0, 1, 2] makespan 94 {
      ifp.package w=0:1 c=0:16 h=0:2 og=16 rb=2 chunk=0 in_cols=2 ibuf=128 wbuf=0 pbuf=0 obuf=32 abuf=0 latency=94 core=0 {
        isa.load to=ibuf stride0=64 stride1=16 n2=16 n0=4 n1=2 deps [wait_next, signal_next]
        isa.pool mode=max in_h=4 in_w=2 c=16 kh=2 kw=2 stride_h=2 stride_w=2 deps [wait_prev, wait_next, signal_prev, signal_next]
        isa.save from=obuf ddr=256 stride0=32 stride1=16 n2=16 n0=2 n1=1 deps [wait_prev, signal_prev]
      }
      ifp.package w=1:2 c=0:16 h=0:2 og=16 rb=2 chunk=0 in_cols=2 attributes {note = "not lowered yet"}
    }
    ifp.candidate c parts 2 at [0, 8, 16] {
      ifp.package w=0:2 c=0:8 h=0:2
      ifp.package w=0:2 c=8:16 h=0:2
    }
  }
  ifp.layer 1 "conv" conv out 8x4x4 macs 1024 {
  }
}

// CHECK:      builtin.module attributes {vfpga.buffers = {ibuf = 131072 : i64, wbuf = 131072 : i64, pbuf = 8192 : i64, obuf = 65536 : i64, abuf = 65536 : i64}} {
// CHECK-NEXT:   ifp.layer 0 "pool" pool out 16x2x2 macs 0 selected 1 {
// CHECK-NEXT:     ifp.candidate w parts 1 at [0, 2]
// CHECK-NEXT:     ifp.candidate w parts 2 at [0, 1, 2] makespan 94 {
// CHECK-NEXT:       ifp.package w=0:1 c=0:16 h=0:2 og=16 rb=2 chunk=0 in_cols=2 ibuf=128 wbuf=0 pbuf=0 obuf=32 abuf=0 latency=94 core=0 {
// CHECK-NEXT:         isa.load to=ibuf stride0=64 stride1=16 n2=16 n0=4 n1=2 deps [wait_next, signal_next]
// CHECK-NEXT:         isa.pool mode=max in_h=4 in_w=2 c=16 kh=2 kw=2 stride_h=2 stride_w=2 deps [wait_prev, wait_next, signal_prev, signal_next]
// CHECK-NEXT:         isa.save from=obuf ddr=256 stride0=32 stride1=16 n2=16 n0=2 n1=1 deps [wait_prev, signal_prev]
// CHECK-NEXT:       }
// CHECK-NEXT:       ifp.package w=1:2 c=0:16 h=0:2 og=16 rb=2 chunk=0 in_cols=2 attributes {note = "not lowered yet"}
// CHECK-NEXT:     }
// CHECK-NEXT:     ifp.candidate c parts 2 at [0, 8, 16] {
// CHECK-NEXT:       ifp.package w=0:2 c=0:8 h=0:2
// CHECK-NEXT:       ifp.package w=0:2 c=8:16 h=0:2
// CHECK-NEXT:     }
// CHECK-NEXT:   }
// CHECK-NEXT:   ifp.layer 1 "conv" conv out 8x4x4 macs 1024 {
// CHECK-NEXT:   }
// CHECK-NEXT: }

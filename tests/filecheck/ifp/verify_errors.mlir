// RUN: vfpga-opt %s --split-input-file --verify-diagnostics | filecheck %s

// One chunk per ifp verifier error.

// CHECK: ifp.package w=0:2 c=0:16: uses 70000 bytes of obuf, which has 65536 (module attribute vfpga.buffers)
builtin.module attributes {vfpga.buffers = {ibuf = 131072 : i64, wbuf = 131072 : i64, pbuf = 8192 : i64, obuf = 65536 : i64, abuf = 65536 : i64}} {
  ifp.layer 0 "p" pool out 16x2x2 macs 0 {
    ifp.candidate w parts 1 at [0, 2] {
      ifp.package w=0:2 c=0:16 h=0:2 ibuf=128 wbuf=0 pbuf=0 obuf=70000 abuf=0
    }
  }
}

// -----
// CHECK: ifp.package w=0:3 c=0:16 h=0:2: tile exceeds the layer's output 16x2x2 (channels x rows x columns)
ifp.layer 0 "p" pool out 16x2x2 macs 0 {
  ifp.candidate w parts 1 at [0, 2] {
    ifp.package w=0:3 c=0:16 h=0:2
  }
}

// -----
// CHECK: ifp.candidate w parts 2: package 1 has tile w=1:2 c=0:8 h=0:2, expected w=1:2 c=0:16 h=0:2 (the candidate's tiles in order)
ifp.layer 0 "p" pool out 16x2x2 macs 0 {
  ifp.candidate w parts 2 at [0, 1, 2] {
    ifp.package w=0:1 c=0:16 h=0:2
    ifp.package w=1:2 c=0:8 h=0:2
  }
}

// -----
// CHECK: ifp.candidate c parts 2: has 1 packages, expected one per tile (2)
ifp.layer 0 "p" pool out 16x2x2 macs 0 {
  ifp.candidate c parts 2 at [0, 8, 16] {
    ifp.package w=0:2 c=0:8 h=0:2
  }
}

// -----
// CHECK: ifp.candidate c parts 2: 'at' must end at the layer's channels 16, got [0, 8, 12]
ifp.layer 0 "p" pool out 16x2x2 macs 0 {
  ifp.candidate c parts 2 at [0, 8, 12]
}

// -----
// CHECK: ifp.candidate w parts 2: 'at' must increase strictly from 0, got [0, 2, 2]
ifp.layer 0 "p" pool out 16x2x2 macs 0 {
  ifp.candidate w parts 2 at [0, 2, 2]
}

// -----
// CHECK: ifp.layer 0 "p": selected 3 is not a candidate index (0..0)
ifp.layer 0 "p" pool out 16x2x2 macs 0 selected 3 {
  ifp.candidate w parts 1 at [0, 2]
}

// -----
// CHECK: ifp.package w=0:2 c=0:16: 'isa.sync' is not allowed in a package (only isa.load, isa.conv, isa.pool, isa.eltwise, isa.save)
ifp.layer 0 "p" pool out 16x2x2 macs 0 {
  ifp.candidate w parts 1 at [0, 2] {
    ifp.package w=0:2 c=0:16 h=0:2 {
      isa.sync layer=0
    }
  }
}

// -----
// CHECK: isa.save: an instruction of an ifp.package must not set 'core' or 'layer' (the linker sets them from the package)
ifp.layer 0 "p" pool out 16x2x2 macs 0 {
  ifp.candidate w parts 1 at [0, 2] {
    ifp.package w=0:2 c=0:16 h=0:2 {
      isa.save core=1 from=obuf n2=16 n0=2 n1=2
    }
  }
}

// -----
// CHECK: 'ifp.package' expects parent op 'ifp.candidate'
ifp.package w=0:2 c=0:16 h=0:2

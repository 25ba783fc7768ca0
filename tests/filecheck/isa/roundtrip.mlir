// RUN: vfpga-opt %s | filecheck %s
// RUN: vfpga-opt %s | vfpga-opt | filecheck %s
// RUN: vfpga-opt %s --print-op-generic | vfpga-opt | filecheck %s
// RUN: xdsl-opt %s | filecheck %s

// Every instruction op in its custom format. Fields equal to 0 are omitted (absent means
// 0, as in the assembler), symbolic flags print by name (to and mode even when 0), float32
// fields print as the shortest decimal that reads back to the same bits (a hexadecimal
// integer is read as the raw bits), and the output equals the input, also after a trip
// through the generic format.

isa.load to=ibuf ddr=4096 buf=65536 stride0=160 stride1=16 n2=16 n0=6 n1=10 pad_t=1 pad_l=1 pad_r=1 pad_value=-3 deps [wait_next, signal_next]
isa.load to=pbuf ddr=8192 n2=192 n0=1 n1=1
isa.conv act=relu6 acc_in=1 in_addr=65536 w_addr=128 out_addr=32768 p_addr=4 acc_addr=8 in_h=10 in_w=10 in_c=8 out_c=16 groups=1 kh=3 kw=3 stride_h=1 stride_w=1 pad_value=-3 out_zp=-5 act_lo=-5 act_hi=60 deps [wait_prev, wait_next, signal_prev, signal_next]
isa.conv acc_out=1 in_h=3 in_w=3 in_c=32 out_c=32 groups=32 kh=3 kw=3 stride_h=2 stride_w=2
isa.pool mode=max in_h=4 in_w=4 c=16 kh=2 kw=2 stride_h=2 stride_w=2 deps [wait_prev, signal_next]
isa.pool mode=avg_pad scale=0.1 in_h=4 in_w=4 c=16 kh=3 kw=3 stride_h=1 stride_w=1 pad_t=1 pad_b=1 pad_l=1 pad_r=1 in_zp=-3 out_zp=5 out_scale=1.0e-40
isa.pool mode=global_avg scale=0.00024414062 in_h=7 in_w=7 c=64 in_zp=1 out_zp=2
isa.eltwise act=relu b_addr=256 n=256 scale_a=0.5 scale_b=-0.75 offset=0x42A00001 act_lo=3 act_hi=127 deps [wait_prev]
isa.save from=obuf ddr=256 buf=32768 stride0=32 stride1=16 n2=16 n0=2 n1=2 deps [wait_prev, signal_prev]
isa.sync core=3 layer=7
isa.end core=63 layer=65535
isa.load core=1 layer=2 to=wbuf n2=1 n0=1 n1=1 {note = "discardable attributes are kept"}

// CHECK:      builtin.module {
// CHECK-NEXT:   isa.load to=ibuf ddr=4096 buf=65536 stride0=160 stride1=16 n2=16 n0=6 n1=10 pad_t=1 pad_l=1 pad_r=1 pad_value=-3 deps [wait_next, signal_next]
// CHECK-NEXT:   isa.load to=pbuf ddr=8192 n2=192 n0=1 n1=1
// CHECK-NEXT:   isa.conv act=relu6 acc_in=1 in_addr=65536 w_addr=128 out_addr=32768 p_addr=4 acc_addr=8 in_h=10 in_w=10 in_c=8 out_c=16 groups=1 kh=3 kw=3 stride_h=1 stride_w=1 pad_value=-3 out_zp=-5 act_lo=-5 act_hi=60 deps [wait_prev, wait_next, signal_prev, signal_next]
// CHECK-NEXT:   isa.conv acc_out=1 in_h=3 in_w=3 in_c=32 out_c=32 groups=32 kh=3 kw=3 stride_h=2 stride_w=2
// CHECK-NEXT:   isa.pool mode=max in_h=4 in_w=4 c=16 kh=2 kw=2 stride_h=2 stride_w=2 deps [wait_prev, signal_next]
// CHECK-NEXT:   isa.pool mode=avg_pad scale=0.1 in_h=4 in_w=4 c=16 kh=3 kw=3 stride_h=1 stride_w=1 pad_t=1 pad_b=1 pad_l=1 pad_r=1 in_zp=-3 out_zp=5 out_scale=1.0e-40
// CHECK-NEXT:   isa.pool mode=global_avg scale=0.00024414062 in_h=7 in_w=7 c=64 in_zp=1 out_zp=2
// CHECK-NEXT:   isa.eltwise act=relu b_addr=256 n=256 scale_a=0.5 scale_b=-0.75 offset=80.00001 act_lo=3 act_hi=127 deps [wait_prev]
// CHECK-NEXT:   isa.save from=obuf ddr=256 buf=32768 stride0=32 stride1=16 n2=16 n0=2 n1=2 deps [wait_prev, signal_prev]
// CHECK-NEXT:   isa.sync core=3 layer=7
// CHECK-NEXT:   isa.end core=63 layer=65535
// CHECK-NEXT:   isa.load core=1 layer=2 to=wbuf n2=1 n0=1 n1=1 {note = "discardable attributes are kept"}
// CHECK-NEXT: }

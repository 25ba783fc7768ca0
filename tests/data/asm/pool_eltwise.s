; pool_eltwise.s: a 2x2 max pool followed by an element-wise add and a host Softmax, on
; one core. The pooled tensor goes through DDR (pool writes obuf, eltwise reads ibuf); the
; layer barrier orders layer 1's loads after layer 0's pool and save.
.hw pool16
.program ddr_size=1536 data_offset=1536 cores=1    ; no constants: the DATA blob is empty

.layer pool1 kind=pool    macs=0
.layer add1  kind=eltwise macs=0

.tensor a       role=input      dtype=int8    layout=nhwc shape=1x8x8x8 offset=0   scale=0.1 zp=0
.tensor b       role=input      dtype=int8    layout=nhwc shape=1x4x4x8 offset=512 scale=0.1 zp=0
.tensor pooled  role=activation dtype=int8    layout=nhwc shape=1x4x4x8 offset=640 scale=0.1 zp=0
.tensor sum     role=activation dtype=int8    layout=nhwc shape=1x4x4x8 offset=768 scale=0.2 zp=0
.tensor "prob (float)" role=output dtype=float32 layout=nhwc shape=1x4x4x8 offset=1024
.hostop softmax op=Softmax after=add1 in=sum out="prob (float)" attrs={"axis": -1}

.ifp layer=pool1 core=0 w=0:4 h=0:4 c=0:8 latency=180 ibuf=512 obuf=128
  load deps=signal_next to=ibuf ddr=0 buf=0 stride0=64 stride1=8 n2=8 n0=8 n1=8
  pool deps=wait_prev,signal_next mode=max in_addr=0 out_addr=0 in_h=8 in_w=8 c=8 kh=2 kw=2 stride_h=2 stride_w=2
  save deps=wait_prev from=obuf ddr=640 buf=0 stride0=32 stride1=8 n2=8 n0=4 n1=4
.endifp
sync layer=0

.ifp layer=add1 core=0 w=0:4 h=0:4 c=0:8 latency=150 ibuf=256 obuf=128
  load deps=- to=ibuf ddr=640 buf=0 stride0=128 stride1=128 n2=128 n0=1 n1=1
  load deps=signal_next to=ibuf ddr=512 buf=128 stride0=128 stride1=128 n2=128 n0=1 n1=1
  ; sum = (pooled + b) / 2 at scale 0.2: scale_a = scale_b = 0.1 / 0.2 = 0.5; all zero
  ; points 0, so offset = 128 - (0.5 * 128 + 0.5 * 128) = 0 (the biased operands cancel)
  eltwise deps=wait_prev,signal_next op=add act=none a_addr=0 b_addr=128 out_addr=0 n=128 scale_a=0.5 scale_b=0.5 offset=0.0 act_lo=-128 act_hi=127
  save deps=wait_prev from=obuf ddr=768 buf=0 stride0=128 stride1=128 n2=128 n0=1 n1=1
.endifp
sync layer=1
end layer=1

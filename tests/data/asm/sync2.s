; sync2.s: two layers on two logical cores with layer barriers.
; Layer 0, a 1x1 convolution 8 -> 16 channels on a 4x8 image, is tiled along output
; channels (core 0: 0..7, core 1: 8..15); each core writes its channels into the shared
; activation tensor. After the barrier (SYNC layer=0 on both cores), layer 1, a 2x2 max
; pool, is tiled along width (core 0: output columns 0..1, core 1: 2..3).
.hw pool16
.program ddr_size=1536 data_offset=1024 cores=2

.layer conv1x1 kind=conv macs=4096         ; 4*8 pixels * 16 out-ch * 8 in-ch
.layer pool2   kind=pool macs=0

.tensor input   role=input      dtype=int8  layout=nhwc shape=1x4x8x8  offset=0   scale=0.02 zp=-3
.tensor act1    role=activation dtype=int8  layout=nhwc shape=1x4x8x16 offset=256 scale=0.04 zp=-128
.tensor output  role=output     dtype=int8  layout=nhwc shape=1x2x4x16 offset=768 scale=0.04 zp=-128
.tensor weights role=constant   dtype=int8  layout=raw  shape=16x1x1x8 offset=1024
.tensor params  role=constant   dtype=int32 layout=raw  shape=16x3     offset=1152

; layer 0 output channels 0..7 on logical core 0
.ifp layer=conv1x1 core=0 w=0:8 h=0:4 c=0:8 latency=310 ibuf=256 wbuf=64 pbuf=96 obuf=256
  load deps=- to=wbuf ddr=1024 buf=0 stride0=64 stride1=64 n2=64 n0=1 n1=1
  load deps=- to=pbuf ddr=1152 buf=0 stride0=96 stride1=96 n2=96 n0=1 n1=1
  load deps=signal_next to=ibuf ddr=0 buf=0 stride0=64 stride1=8 n2=8 n0=4 n1=8
  conv deps=wait_prev,signal_next act=relu in_addr=0 w_addr=0 out_addr=0 p_addr=0 in_h=4 in_w=8 in_c=8 out_c=8 groups=1 kh=1 kw=1 stride_h=1 stride_w=1 out_zp=-128 act_lo=-128 act_hi=127
  ; write 8 of the 16 channels of every pixel: stride1=16 > n2=8 (free concatenation)
  save deps=wait_prev from=obuf ddr=256 buf=0 stride0=128 stride1=16 n2=8 n0=4 n1=8
.endifp
; layer 0 output channels 8..15 on logical core 1
.ifp layer=conv1x1 core=1 w=0:8 h=0:4 c=8:16 latency=310 ibuf=256 wbuf=64 pbuf=96 obuf=256
  load deps=- to=wbuf ddr=1088 buf=0 stride0=64 stride1=64 n2=64 n0=1 n1=1
  load deps=- to=pbuf ddr=1248 buf=0 stride0=96 stride1=96 n2=96 n0=1 n1=1
  load deps=signal_next to=ibuf ddr=0 buf=0 stride0=64 stride1=8 n2=8 n0=4 n1=8
  conv deps=wait_prev,signal_next act=relu in_addr=0 w_addr=0 out_addr=0 p_addr=0 in_h=4 in_w=8 in_c=8 out_c=8 groups=1 kh=1 kw=1 stride_h=1 stride_w=1 out_zp=-128 act_lo=-128 act_hi=127
  ; write 8 of the 16 channels of every pixel: stride1=16 > n2=8 (free concatenation)
  save deps=wait_prev from=obuf ddr=264 buf=0 stride0=128 stride1=16 n2=8 n0=4 n1=8
.endifp
sync core=0 layer=0
sync core=1 layer=0

; layer 1 output columns 0..1 (input columns 0..3) on logical core 0
.ifp layer=pool2 core=0 w=0:2 h=0:2 c=0:16 latency=120 ibuf=256 obuf=64
  load deps=signal_next to=ibuf ddr=256 buf=0 stride0=128 stride1=16 n2=16 n0=4 n1=4
  pool deps=wait_prev,signal_next mode=max in_addr=0 out_addr=0 in_h=4 in_w=4 c=16 kh=2 kw=2 stride_h=2 stride_w=2
  save deps=wait_prev from=obuf ddr=768 buf=0 stride0=64 stride1=16 n2=16 n0=2 n1=2
.endifp
; layer 1 output columns 2..3 (input columns 4..7) on logical core 1
.ifp layer=pool2 core=1 w=2:4 h=0:2 c=0:16 latency=120 ibuf=256 obuf=64
  load deps=signal_next to=ibuf ddr=320 buf=0 stride0=128 stride1=16 n2=16 n0=4 n1=4
  pool deps=wait_prev,signal_next mode=max in_addr=0 out_addr=0 in_h=4 in_w=4 c=16 kh=2 kw=2 stride_h=2 stride_w=2
  save deps=wait_prev from=obuf ddr=800 buf=0 stride0=64 stride1=16 n2=16 n0=2 n1=2
.endifp
sync core=0 layer=1
sync core=1 layer=1
end core=0 layer=1
end core=1 layer=1

.data 0
.i8 -4,3,1,-1,-3,4,2,0,-1,-3,4,2,0,-2,-4,3
.i8 2,0,-2,-4,3,1,-1,-3,-4,3,1,-1,-3,4,2,0
.i8 -1,-3,4,2,0,-2,-4,3,2,0,-2,-4,3,1,-1,-3
.i8 -4,3,1,-1,-3,4,2,0,-1,-3,4,2,0,-2,-4,3
.i8 2,0,-2,-4,3,1,-1,-3,-4,3,1,-1,-3,4,2,0
.i8 -1,-3,4,2,0,-2,-4,3,2,0,-2,-4,3,1,-1,-3
.i8 -4,3,1,-1,-3,4,2,0,-1,-3,4,2,0,-2,-4,3
.i8 2,0,-2,-4,3,1,-1,-3,-4,3,1,-1,-3,4,2,0
.i32 -60, 1518500250, 34   ; oc 0
.i32 -52, 1518500250, 34   ; oc 1
.i32 -44, 1518500250, 34   ; oc 2
.i32 -36, 1518500250, 34   ; oc 3
.i32 -28, 1518500250, 34   ; oc 4
.i32 -20, 1518500250, 34   ; oc 5
.i32 -12, 1518500250, 34   ; oc 6
.i32 -4, 1518500250, 34   ; oc 7
.i32 4, 1518500250, 34   ; oc 8
.i32 12, 1518500250, 34   ; oc 9
.i32 20, 1518500250, 34   ; oc 10
.i32 28, 1518500250, 34   ; oc 11
.i32 36, 1518500250, 34   ; oc 12
.i32 44, 1518500250, 34   ; oc 13
.i32 52, 1518500250, 34   ; oc 14
.i32 60, 1518500250, 34   ; oc 15

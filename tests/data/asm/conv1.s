; conv1.s: one 3x3 convolution (8 -> 8 channels, 8x8 input, padding 1, ReLU) on one
; core. LOAD brings weights, parameters and the padded input tile on chip; the last LOAD
; signals CALC, CONV waits for it and signals SAVE, SAVE waits for CONV.
.hw pool16
.program ddr_size=2048 data_offset=1024 cores=1

.layer conv1 kind=conv macs=36864          ; 8*8 pixels * 8 out-ch * 3*3 * 8 in-ch

.tensor input  role=input    dtype=int8  layout=nhwc shape=1x8x8x8 offset=0    scale=0.05 zp=0
.tensor output role=output   dtype=int8  layout=nhwc shape=1x8x8x8 offset=512  scale=0.1  zp=-128
.tensor conv1.weight role=constant dtype=int8 layout=raw shape=8x3x3x8 offset=1024
.tensor conv1.params role=constant dtype=int32 layout=raw shape=8x3 offset=1600

.ifp layer=conv1 core=0 w=0:8 h=0:8 c=0:8 latency=620 ibuf=800 wbuf=576 pbuf=96 obuf=512
  load deps=- to=wbuf ddr=1024 buf=0 stride0=576 stride1=576 n2=576 n0=1 n1=1
  load deps=- to=pbuf ddr=1600 buf=0 stride0=96 stride1=96 n2=96 n0=1 n1=1
  ; input 8x8x8 -> on chip 10x10x8 with one row/column of zero padding on every side
  load deps=signal_next to=ibuf ddr=0 buf=0 stride0=64 stride1=8 n2=8 n0=8 n1=8 pad_t=1 pad_b=1 pad_l=1 pad_r=1 pad_value=0
  conv deps=wait_prev,signal_next act=relu in_addr=0 w_addr=0 out_addr=0 p_addr=0 in_h=10 in_w=10 in_c=8 out_c=8 groups=1 kh=3 kw=3 stride_h=1 stride_w=1 out_zp=-128 act_lo=-128 act_hi=127
  save deps=wait_prev from=obuf ddr=512 buf=0 stride0=64 stride1=8 n2=8 n0=8 n1=8
.endifp
sync core=0 layer=0
end core=0 layer=0

; constants: weights [oc][kh][kw][ic] at DATA 0 (DDR 1024), then the 12-byte parameter
; records (bias int32, scale float32, divisor float32): out = rne(f32(f32(acc) * 2**-5) / 1)
.data 0
.i8 -2,-2,-2,-2,-2,-2,-2,-2,1,1,1,1,1,1,1,1,-1,-1,-1,-1,-1,-1,-1,-1
.i8 2,2,2,2,2,2,2,2,0,0,0,0,0,0,0,0,-2,-2,-2,-2,-2,-2,-2,-2
.i8 1,1,1,1,1,1,1,1,-1,-1,-1,-1,-1,-1,-1,-1,2,2,2,2,2,2,2,2
.i8 0,0,0,0,0,0,0,0,-2,-2,-2,-2,-2,-2,-2,-2,1,1,1,1,1,1,1,1
.i8 -1,-1,-1,-1,-1,-1,-1,-1,2,2,2,2,2,2,2,2,0,0,0,0,0,0,0,0
.i8 -2,-2,-2,-2,-2,-2,-2,-2,1,1,1,1,1,1,1,1,-1,-1,-1,-1,-1,-1,-1,-1
.i8 2,2,2,2,2,2,2,2,0,0,0,0,0,0,0,0,-2,-2,-2,-2,-2,-2,-2,-2
.i8 1,1,1,1,1,1,1,1,-1,-1,-1,-1,-1,-1,-1,-1,2,2,2,2,2,2,2,2
.i8 0,0,0,0,0,0,0,0,-2,-2,-2,-2,-2,-2,-2,-2,1,1,1,1,1,1,1,1
.i8 -1,-1,-1,-1,-1,-1,-1,-1,2,2,2,2,2,2,2,2,0,0,0,0,0,0,0,0
.i8 -2,-2,-2,-2,-2,-2,-2,-2,1,1,1,1,1,1,1,1,-1,-1,-1,-1,-1,-1,-1,-1
.i8 2,2,2,2,2,2,2,2,0,0,0,0,0,0,0,0,-2,-2,-2,-2,-2,-2,-2,-2
.i8 1,1,1,1,1,1,1,1,-1,-1,-1,-1,-1,-1,-1,-1,2,2,2,2,2,2,2,2
.i8 0,0,0,0,0,0,0,0,-2,-2,-2,-2,-2,-2,-2,-2,1,1,1,1,1,1,1,1
.i8 -1,-1,-1,-1,-1,-1,-1,-1,2,2,2,2,2,2,2,2,0,0,0,0,0,0,0,0
.i8 -2,-2,-2,-2,-2,-2,-2,-2,1,1,1,1,1,1,1,1,-1,-1,-1,-1,-1,-1,-1,-1
.i8 2,2,2,2,2,2,2,2,0,0,0,0,0,0,0,0,-2,-2,-2,-2,-2,-2,-2,-2
.i8 1,1,1,1,1,1,1,1,-1,-1,-1,-1,-1,-1,-1,-1,2,2,2,2,2,2,2,2
.i8 0,0,0,0,0,0,0,0,-2,-2,-2,-2,-2,-2,-2,-2,1,1,1,1,1,1,1,1
.i8 -1,-1,-1,-1,-1,-1,-1,-1,2,2,2,2,2,2,2,2,0,0,0,0,0,0,0,0
.i8 -2,-2,-2,-2,-2,-2,-2,-2,1,1,1,1,1,1,1,1,-1,-1,-1,-1,-1,-1,-1,-1
.i8 2,2,2,2,2,2,2,2,0,0,0,0,0,0,0,0,-2,-2,-2,-2,-2,-2,-2,-2
.i8 1,1,1,1,1,1,1,1,-1,-1,-1,-1,-1,-1,-1,-1,2,2,2,2,2,2,2,2
.i8 0,0,0,0,0,0,0,0,-2,-2,-2,-2,-2,-2,-2,-2,1,1,1,1,1,1,1,1
.data 576
.i32 -64
.f32 0.03125, 1.0   ; oc 0: bias, then scale, divisor
.i32 -48
.f32 0.03125, 1.0   ; oc 1: bias, then scale, divisor
.i32 -32
.f32 0.03125, 1.0   ; oc 2: bias, then scale, divisor
.i32 -16
.f32 0.03125, 1.0   ; oc 3: bias, then scale, divisor
.i32 0
.f32 0.03125, 1.0   ; oc 4: bias, then scale, divisor
.i32 16
.f32 0.03125, 1.0   ; oc 5: bias, then scale, divisor
.i32 32
.f32 0.03125, 1.0   ; oc 6: bias, then scale, divisor
.i32 48
.f32 0.03125, 1.0   ; oc 7: bias, then scale, divisor

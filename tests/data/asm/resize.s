; resize.s: a bilinear 2x resize (half_pixel) of a 4x4x2 map to 8x8x2 on one core, in two
; bands of 4 output rows; each band loads only the input rows its source coordinates read.
.hw pool16
.program ddr_size=192 data_offset=192 cores=1

.layer up kind=resize macs=0

.tensor x role=input  dtype=int8 layout=nhwc shape=1x4x4x2 offset=0  scale=0.05 zp=-3
.tensor y role=output dtype=int8 layout=nhwc shape=1x8x8x2 offset=64 scale=0.05 zp=-3

.ifp layer=up core=0 w=0:8 h=0:8 c=0:2 ibuf=16384 obuf=8256
  load deps=wait_next,signal_next to=ibuf ddr=0 buf=0 stride0=8 stride1=2 n2=2 n0=3 n1=4
  resize deps=wait_prev,wait_next,signal_next coord=half_pixel in_addr=0 out_addr=0 in_scale=0.05 out_scale=0.05 scale_h=2.0 scale_w=2.0 in_h=3 in_w=4 c=2 out_h=4 out_w=8 map_in_h=4 map_in_w=4 map_out_h=8 map_out_w=8 in_zp=-3 out_zp=-3
  save deps=wait_prev from=obuf ddr=64 buf=0 stride0=16 stride1=2 n2=2 n0=4 n1=8
  load deps=signal_next to=ibuf ddr=8 buf=16384 stride0=8 stride1=2 n2=2 n0=3 n1=4
  resize deps=wait_prev,signal_prev,signal_next coord=half_pixel in_addr=16384 out_addr=8192 in_scale=0.05 out_scale=0.05 scale_h=2.0 scale_w=2.0 in_h=3 in_w=4 c=2 out_h=4 out_w=8 in_y0=1 out_y0=4 map_in_h=4 map_in_w=4 map_out_h=8 map_out_w=8 in_zp=-3 out_zp=-3
  save deps=wait_prev,signal_prev from=obuf ddr=128 buf=8192 stride0=16 stride1=2 n2=2 n0=4 n1=8
.endifp
sync layer=0
end layer=0

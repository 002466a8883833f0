// Per-format block decoding for the int8-x matrix x vector (matvec_dot.comp): one 16-byte block of a
// row's weights against its int8 activations (quant_act.glsl's layout, in the byte order the format
// reads: natural for INT8, nibble order for INT4), by packed 4 x 8-bit dot products (sdot4x8).
// Include after matvec_base.glsl.

// The int8 activations that meet one 16-byte block of weights, with their block's (scale, sum).
struct XBlock { uvec4 a; uvec4 c; vec2 sc; };

XBlock loadX(uint b) {
#if defined(W_Q8)
  // 16 values: one word of int8 x; the scale is its 32-value block's.
  return XBlock(x[b], uvec4(0u), xScales[b / 2u]);
#elif defined(W_Q4)
  return XBlock(x[2u * b], x[2u * b + 1u], xScales[b]);
#else
#error "int8 activations: define W_Q8 or W_Q4"
#endif
}

// W_Q8: one block (16 values) against its int8 activations; the row scale is applied at the end.
// W_Q4: one block (32 values, inside one group) against its int8 activations: words a = (A0, B0, A1,
// B1) and c = (A2, B2, A3, B3); low nibbles meet the A words, high nibbles the B words; p is the
// block's group word (f16 scale, f16 minimum).
float blockDotQ(uvec4 u, XBlock xb, uint p) {
#if defined(W_Q8)
  return xb.sc.x * float(sdot4x8(u.x, xb.a.x, 0) + sdot4x8(u.y, xb.a.y, 0) + sdot4x8(u.z, xb.a.z, 0) + sdot4x8(u.w, xb.a.w, 0));
#elif defined(W_Q4)
  const uvec4 a = xb.a;
  const uvec4 c = xb.c;
  const vec2 xsc = xb.sc;
  const uint M = 0x0F0F0F0Fu;
  const int dotq = sdot4x8(u.x & M, a.x, 0) + sdot4x8((u.x >> 4) & M, a.y, 0) +
                   sdot4x8(u.y & M, a.z, 0) + sdot4x8((u.y >> 4) & M, a.w, 0) +
                   sdot4x8(u.z & M, c.x, 0) + sdot4x8((u.z >> 4) & M, c.y, 0) +
                   sdot4x8(u.w & M, c.z, 0) + sdot4x8((u.w >> 4) & M, c.w, 0);
  const vec2 dm = unpackHalf2x16(p);
  return dm.x * xsc.x * float(dotq) + dm.y * xsc.y;
#endif
}

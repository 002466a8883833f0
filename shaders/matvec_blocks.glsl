// Per-format block decoding for the float-x matrix x vector (matvec.comp): the dot product of one
// 16-byte block of a row's weights with the matching slice of x. Include after matvec_base.glsl.

// One block u against its slice of x (xs, NX vec4s). W_Q4: p is the block's group word (f16 scale,
// f16 minimum) and sx the sum of the slice.
float blockDot(uvec4 u, vec4 xs[NX], float sx, uint p) {
#if defined(W_F32)
  return dot(uintBitsToFloat(u), xs[0]);
#elif defined(W_F16)
  return dot(vec4(unpackHalf2x16(u.x), unpackHalf2x16(u.y)), xs[0]) +
         dot(vec4(unpackHalf2x16(u.z), unpackHalf2x16(u.w)), xs[1]);
#elif defined(W_BF16)
  return dot(vec4(bf16lo(u.x), bf16hi(u.x), bf16lo(u.y), bf16hi(u.y)), xs[0]) +
         dot(vec4(bf16lo(u.z), bf16hi(u.z), bf16lo(u.w), bf16hi(u.w)), xs[1]);
#elif defined(W_Q8)
  return dot(unpackS8(u.x), xs[0]) + dot(unpackS8(u.y), xs[1]) + dot(unpackS8(u.z), xs[2]) + dot(unpackS8(u.w), xs[3]);
#elif defined(W_Q4)
  // sum((q * d + m) * x) = d * sum(q * x) + m * sum(x); a block lies inside one group.
  const vec2 dm = unpackHalf2x16(p);
  const float qx = dot(unpackU4lo(u.x), xs[0]) + dot(unpackU4hi(u.x), xs[1]) +
                   dot(unpackU4lo(u.y), xs[2]) + dot(unpackU4hi(u.y), xs[3]) +
                   dot(unpackU4lo(u.z), xs[4]) + dot(unpackU4hi(u.z), xs[5]) +
                   dot(unpackU4lo(u.w), xs[6]) + dot(unpackU4hi(u.w), xs[7]);
  return dm.x * qx + dm.y * sx;
#endif
}

// int8 activations for the integer-dot matrix x vector (matvec_dot.comp), one layout written by
// every producer (quantize_x.comp, rmsnorm.comp, attention_combine.comp, matvec_base.glsl's QUANT_OUT): per
// block of 32 values, the scale s = max|v| / 127, the values as int8 (v / s rounded to nearest even,
// clamped to +-127) and the block's sum (the INT4 minimum term needs sum(x)). Two byte orders:
// natural (INT8 weights: word k of a block holds values 4k .. 4k + 3) and nibble order (INT4: of each
// 8 values, word A holds values 0, 2, 4, 6 and word B 1, 3, 5, 7, the low and the high nibbles of the
// weight bytes that meet them).
// Include after declaring the buffers xq8 (uint[], natural order), xq4 (uint[], nibble order) and
// xs (vec2[], scale and sum per block).

// One int8 of a block (value v, 1 / scale inv), as a byte.
uint q8(float v, float inv) {
  return uint(clamp(int(roundEven(v * inv)), -127, 127)) & 255u;
}

// Block b of 32 values v, by one invocation: its (scale, sum) and its 8 words in both orders.
void storeQuantBlock(float v[32], uint b) {
  float amax = 0.0;
  float sum = 0.0;
  [[unroll]] for (uint i = 0; i < 32u; i++) {
    amax = max(amax, abs(v[i]));
    sum += v[i];
  }
  const float scale = amax / 127.0;
  const float inv = scale > 0.0 ? 1.0 / scale : 0.0;
  xs[b] = vec2(scale, sum);
  [[unroll]] for (uint k = 0; k < 8u; k++) {
    const uint n = k * 4u;
    xq8[b * 8u + k] = q8(v[n], inv) | (q8(v[n + 1u], inv) << 8) | (q8(v[n + 2u], inv) << 16) | (q8(v[n + 3u], inv) << 24);
    const uint m = (k / 2u) * 8u + k % 2u;
    xq4[b * 8u + k] = q8(v[m], inv) | (q8(v[m + 2u], inv) << 8) | (q8(v[m + 4u], inv) << 16) | (q8(v[m + 6u], inv) << 24);
  }
}

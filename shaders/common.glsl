// Helpers shared by unicorn's compute shaders.

// bf16 halves of a 32-bit word (element 2i in the low half, 2i+1 in the high half).
float bf16lo(uint u) { return uintBitsToFloat(u << 16); }
float bf16hi(uint u) { return uintBitsToFloat(u & 0xffff0000u); }

// Small integers to float without int-to-float conversions (a low-throughput instruction on GPUs):
// the bits 0x4B000000 | n are the float 2^23 + n, exact for n < 2^23; one subtraction removes 2^23.
const uint MAGIC = 0x4B000000u;
const float MAGIC_F = 8388608.0;

// Four signed bytes of a word, lowest byte first. XOR 0x80 turns int8 b into the unsigned b + 128.
vec4 unpackS8(uint u) {
  const uint v = u ^ 0x80808080u;
  return uintBitsToFloat(uvec4(MAGIC | (v & 255u), MAGIC | ((v >> 8) & 255u), MAGIC | ((v >> 16) & 255u), MAGIC | (v >> 24)))
         - (MAGIC_F + 128.0);
}

// Eight unsigned nibbles of a word, lowest nibble first: the first four, then the last four.
vec4 unpackU4lo(uint u) {
  return uintBitsToFloat(uvec4(MAGIC | (u & 15u), MAGIC | ((u >> 4) & 15u), MAGIC | ((u >> 8) & 15u), MAGIC | ((u >> 12) & 15u))) - MAGIC_F;
}
vec4 unpackU4hi(uint u) {
  return uintBitsToFloat(uvec4(MAGIC | ((u >> 16) & 15u), MAGIC | ((u >> 20) & 15u), MAGIC | ((u >> 24) & 15u), MAGIC | (u >> 28))) - MAGIC_F;
}

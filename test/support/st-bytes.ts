/** Builds raw safetensors bytes from a header object, for malformed-input tests and the fuzzer. */
export function rawFile(header: unknown, data: Uint8Array | number = 0, opts: { lengthOverride?: bigint } = {}): Uint8Array {
  const json = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const body = typeof data === 'number' ? new Uint8Array(data) : data;
  const out = new Uint8Array(8 + json.byteLength + body.byteLength);
  new DataView(out.buffer).setBigUint64(0, opts.lengthOverride ?? BigInt(json.byteLength), true);
  out.set(json, 8);
  out.set(body, 8 + json.byteLength);
  return out;
}

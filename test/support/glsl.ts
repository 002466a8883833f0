/**
 * A small reader of unicorn's GLSL, for the tests that hold the shaders to the kernel table
 * (test/shaders/kernels.test.ts) and to their own rules (braces.test.ts): a source with its includes
 * inlined, its storage buffers, push constants and specialization constants as declared, and the
 * places where a brace crosses an #if.
 * It reads the subset of GLSL the shaders are written in (one declaration per `layout(...)`, blocks
 * without nested braces), and says so when it meets something else rather than guessing.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

/** Comments blanked out (newlines kept, so offsets and line numbers stay). */
export function stripComments(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\/|\/\/[^\n]*/g, (m) => m.replace(/[^\n]/g, ' '));
}

/** A source with every `#include "file"` replaced by that file's text, recursively (each file once, as GL_GOOGLE_include_directive with include guards would). */
export function inlineIncludes(dir: string, file: string, seen = new Set<string>()): string {
  if (seen.has(file)) return '';
  seen.add(file);
  const text = fs.readFileSync(path.join(dir, file), 'utf8');
  return text.replace(/^#include "([^"]+)"[^\n]*$/gm, (_, inc: string) => inlineIncludes(dir, inc, seen));
}

export interface ShaderInterface {
  /** Storage buffers by binding: the buffer array's name (`buffer Weights { uvec4 w[]; }` is `w`). */
  readonly bindings: { readonly binding: number; readonly name: string }[];
  /** Specialization constants by id: `workgroup` for local_size_x_id = 0, else the GLSL name. */
  readonly constants: { readonly id: number; readonly name: string }[];
  /** Push-constant fields in order, null when the shader has no push-constant block. */
  readonly push: { readonly name: string; readonly type: 'u32' | 'f32' }[] | null;
  /** Declarations that sit inside an #if (a kernel's interface must not depend on its defines). */
  readonly conditional: string[];
}

/** Preprocessor-conditional depth at each offset of a comment-free text. */
function conditionalDepth(text: string): (offset: number) => number {
  const marks: [number, number][] = [];
  let depth = 0;
  for (const m of text.matchAll(/^[ \t]*#[ \t]*(if|ifdef|ifndef|endif)\b/gm)) {
    depth += m[1] === 'endif' ? -1 : 1;
    marks.push([m.index, depth]);
  }
  return (offset) => {
    let d = 0;
    for (const [at, v] of marks) if (at < offset) d = v;
    return d;
  };
}

/** The interface a shader declares (its includes inlined first). */
export function shaderInterface(source: string): ShaderInterface {
  const text = stripComments(source);
  const depth = conditionalDepth(text);
  const conditional: string[] = [];
  const note = (offset: number, what: string) => {
    if (depth(offset) > 0) conditional.push(what);
  };
  const bindings: { binding: number; name: string }[] = [];
  for (const m of text.matchAll(/layout\s*\(([^)]*)\)\s*((?:readonly|writeonly|coherent|restrict|volatile)\s+)*buffer\s+(\w+)\s*\{([^}]*)\}\s*\w*\s*;/g)) {
    const binding = /\bbinding\s*=\s*(\d+)/.exec(m[1]!);
    if (binding === null) throw new Error(`buffer ${m[3]} has no binding`);
    const members = [...m[4]!.matchAll(/(\w+)\s*(\[\s*\d*\s*\])?\s*;/g)];
    const runtime = members.filter((x) => x[2] !== undefined);
    if (members.length !== 1 || runtime.length !== 1) throw new Error(`buffer ${m[3]}: one runtime array expected, found ${m[4]!.trim()}`);
    bindings.push({ binding: Number(binding[1]), name: runtime[0]![1]! });
    note(m.index, `binding ${binding[1]}`);
  }
  if (
    /\bbinding\s*=/.test(text.replace(/layout\s*\(([^)]*)\)\s*((?:readonly|writeonly|coherent|restrict|volatile)\s+)*buffer\s+\w+\s*\{[^}]*\}\s*\w*\s*;/g, ''))
  ) {
    throw new Error('a binding that is not a storage buffer of the form this reader knows');
  }
  const constants: { id: number; name: string }[] = [];
  for (const m of text.matchAll(/layout\s*\(\s*local_size_x_id\s*=\s*(\d+)\s*\)\s*in\s*;/g)) {
    constants.push({ id: Number(m[1]), name: 'workgroup' });
    note(m.index, 'local_size_x_id');
  }
  for (const m of text.matchAll(/layout\s*\(\s*constant_id\s*=\s*(\d+)\s*\)\s*const\s+\w+\s+(\w+)/g)) {
    constants.push({ id: Number(m[1]), name: m[2]! });
    note(m.index, `constant_id ${m[1]}`);
  }
  const blocks = [...text.matchAll(/layout\s*\(\s*push_constant\s*\)\s*uniform\s+\w+\s*\{([^}]*)\}\s*\w+\s*;/g)];
  if (blocks.length > 1) throw new Error('more than one push-constant block');
  let push: { name: string; type: 'u32' | 'f32' }[] | null = null;
  if (blocks.length === 1) {
    const block = blocks[0]!;
    note(block.index, 'push_constant');
    push = [];
    for (const d of block[1]!
      .split(';')
      .map((s) => s.trim())
      .filter((s) => s !== '')) {
      const f = /^(uint|float)\s+(\w+(?:\s*,\s*\w+)*)$/.exec(d);
      if (f === null) throw new Error(`push constant "${d}": only uint and float fields are read`);
      for (const name of f[2]!.split(',').map((s) => s.trim())) push.push({ name, type: f[1] === 'uint' ? 'u32' : 'f32' });
    }
  }
  return { bindings, constants, push, conditional };
}

/** `quantOut` -> `QUANT_OUT`: the GLSL spelling of a table's spec-constant name. */
export function glslName(tableName: string): string {
  return tableName.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase();
}

/** Mismatches between a table entry and the interface its shader declares; empty when they agree. */
export function interfaceMismatches(
  entry: { bindings: readonly string[]; push: Readonly<Record<string, 'u32' | 'f32'>>; spec: readonly string[] },
  shader: ShaderInterface,
): string[] {
  const out: string[] = [];
  for (const c of shader.conditional) out.push(`${c} is declared inside an #if`);
  const byBinding = [...shader.bindings].sort((a, b) => a.binding - b.binding);
  const seen = new Set<number>();
  for (const b of byBinding) {
    if (seen.has(b.binding)) out.push(`binding ${b.binding} is declared twice`);
    seen.add(b.binding);
  }
  const ids = [...seen];
  if (ids.some((id, i) => id !== i)) out.push(`the bindings are not 0..${ids.length - 1}: ${ids.join(', ')}`);
  if (ids.length !== entry.bindings.length) out.push(`the shader has ${ids.length} bindings, the table ${entry.bindings.length}`);
  for (const b of byBinding) {
    const want = entry.bindings[b.binding];
    if (want === undefined) out.push(`binding ${b.binding} (${b.name}) is not in the table`);
    else if (want !== b.name) out.push(`binding ${b.binding} is ${b.name} in the shader, ${want} in the table`);
  }
  entry.bindings.forEach((name, i) => {
    if (!seen.has(i)) out.push(`binding ${i} (${name}) is in the table, not in the shader`);
  });
  const constants = [...shader.constants].sort((a, b) => a.id - b.id);
  if (constants.some((c, i) => c.id !== i))
    out.push(`the specialization constants are not 0..${constants.length - 1}: ${constants.map((c) => c.id).join(', ')}`);
  if (constants.length !== entry.spec.length) out.push(`the shader has ${constants.length} specialization constants, the table ${entry.spec.length}`);
  for (const c of constants) {
    const want = entry.spec[c.id];
    if (want === undefined) out.push(`constant_id ${c.id} (${c.name}) is not in the table`);
    else if ((want === 'workgroup') !== (c.name === 'workgroup') || (want !== 'workgroup' && glslName(want) !== c.name)) {
      out.push(`constant ${c.id} is ${c.name} in the shader, ${want} (${want === 'workgroup' ? 'local_size_x_id' : glslName(want)}) in the table`);
    }
  }
  const fields = Object.entries(entry.push);
  const declared = shader.push ?? [];
  if (declared.length !== fields.length)
    out.push(
      `the push constants are ${declared.length * 4} bytes in the shader (${declared.map((f) => f.name).join(', ')}), ${fields.length * 4} in the table (${fields.map(([n]) => n).join(', ')})`,
    );
  declared.forEach((f, i) => {
    const want = fields[i];
    if (want !== undefined && (want[0] !== f.name || want[1] !== f.type))
      out.push(`push constant ${i} is ${f.type} ${f.name} in the shader, ${want[1]} ${want[0]} in the table`);
  });
  if (declared.length * 4 > 128) out.push(`${declared.length * 4} bytes of push constants: more than the 128 every device has`);
  return out;
}

/**
 * Where a brace crosses an #if in a shader file: a branch of an #if / #elif / #else that does not
 * close every brace it opens (or closes one opened before it). Lines, 1-based, with what is wrong.
 */
export function bracesAcrossConditionals(text: string): string[] {
  const out: string[] = [];
  const lines = stripComments(text).split('\n');
  let depth = 0;
  const open: { line: number; depth: number }[] = [];
  lines.forEach((line, i) => {
    const d = /^\s*#\s*(if|ifdef|ifndef|elif|else|endif)\b/.exec(line);
    if (d !== null) {
      const top = open[open.length - 1];
      if (d[1] === 'if' || d[1] === 'ifdef' || d[1] === 'ifndef') {
        open.push({ line: i + 1, depth });
        return;
      }
      if (top === undefined) {
        out.push(`line ${i + 1}: #${d[1]} without #if`);
        return;
      }
      if (depth !== top.depth)
        out.push(
          `line ${i + 1}: the branch before this #${d[1]} (of the #if at line ${top.line}) ${depth > top.depth ? 'leaves a brace open' : 'closes a brace opened before it'}`,
        );
      depth = top.depth;
      if (d[1] === 'endif') open.pop();
      return;
    }
    for (const c of line) {
      if (c === '{') depth++;
      else if (c === '}') depth--;
    }
  });
  for (const o of open) out.push(`line ${o.line}: #if without #endif`);
  return out;
}

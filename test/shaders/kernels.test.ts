/**
 * The kernel table (src/engine/kernels/table.ts) against the shaders it names: each kernel's
 * storage buffers (binding = N, by the buffer array's name), specialization constants (constant_id
 * = N, local_size_x_id = 0 as `workgroup`) and push-constant fields (names, types, bytes) as its
 * .comp declares them with every included .glsl inlined; no declaration of a kernel's interface
 * inside an #if; every .comp a kernel of the table (braces.test.ts: no brace crosses an #if).
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { KERNELS, type KernelDef, shaderVariants } from '../../src/engine/kernels/table.js';
import { inlineIncludes, interfaceMismatches, shaderInterface } from '../support/glsl.js';
import { ROOT } from '../support/paths.js';

const SHADERS = path.join(ROOT, 'shaders');
const entries = Object.entries(KERNELS) as [string, KernelDef][];

describe('the kernel table against the shaders', () => {
  for (const [name, def] of entries) {
    test(`${name} (${def.source}): bindings, push constants and specialization constants as the table has them`, () => {
      const shader = shaderInterface(inlineIncludes(SHADERS, def.source));
      assert.deepEqual(interfaceMismatches(def, shader), []);
    });
  }

  test('every .comp in shaders/ is the source of a kernel of the table, and every variant has one name', () => {
    const comps = fs
      .readdirSync(SHADERS)
      .filter((f) => f.endsWith('.comp'))
      .sort();
    assert.deepEqual(comps, [...new Set(entries.map(([, d]) => d.source))].sort());
    const names = shaderVariants().map((v) => v.name);
    assert.equal(new Set(names).size, names.length, `variant names repeat: ${names.join(', ')}`);
  });

  test('the checks fail on a table entry that does not match it', () => {
    const shader = shaderInterface(inlineIncludes(SHADERS, KERNELS.matvec.source));
    const m = KERNELS.matvec;
    const swapped = [m.bindings[1], m.bindings[0], ...m.bindings.slice(2)] as readonly string[];
    assert.match(interfaceMismatches({ ...m, bindings: swapped }, shader).join('\n'), /binding 0 is w in the shader, params in the table/);
    assert.match(interfaceMismatches({ ...m, bindings: m.bindings.slice(0, -1) }, shader).join('\n'), /the shader has 12 bindings, the table 11/);
    assert.match(
      interfaceMismatches({ ...m, spec: [...m.spec.slice(0, 3), 'glu', 'rows', ...m.spec.slice(5)] }, shader).join('\n'),
      /constant 3 is ROWS in the shader, glu \(GLU\) in the table/,
    );
    assert.match(interfaceMismatches({ ...m, spec: [...m.spec, 'extra'] }, shader).join('\n'), /the shader has 9 specialization constants, the table 10/);
    assert.match(
      interfaceMismatches({ ...m, push: { rows: 'u32', cols: 'u32' } }, shader).join('\n'),
      /the push constants are 12 bytes in the shader .*, 8 in the table/,
    );
    assert.match(
      interfaceMismatches({ ...m, push: { rows: 'u32', cols: 'f32', yOffset: 'u32' } }, shader).join('\n'),
      /push constant 1 is u32 cols in the shader, f32 cols in the table/,
    );
    const conditional = shaderInterface('#if defined(A)\nlayout(std430, binding = 0) readonly buffer X { float x[]; };\n#endif\n');
    assert.match(interfaceMismatches({ bindings: ['x'], push: {}, spec: [] }, conditional).join('\n'), /binding 0 is declared inside an #if/);
  });
});

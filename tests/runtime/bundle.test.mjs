// What the release build uploads: the wasm without its `name` section (function names for stack
// traces, ~36 KiB gzip of a 350 KiB budget), the names kept beside it for symbolicating a trace.
// The rest of the runtime suite runs the stripped module on workerd, so this file checks only
// the stripping: on a hand-made module, and that the build's wasm has nothing left to strip.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { withoutCustomSections, WASM_WITH_NAMES } from '../tools/build.mjs';
import { ROOT } from './harness.mjs';

const custom = (name, payload) => {
  const body = Buffer.concat([Buffer.from([name.length]), Buffer.from(name), Buffer.from(payload)]);
  return Buffer.concat([Buffer.from([0, body.length]), body]);
};

// Function 0 is called "answer".
const NAMES = [0x01, 0x09, 0x01, 0x00, 0x06, ...Buffer.from('answer')];

// (module (func (export "answer") (result i32) i32.const 42)) with two custom sections.
const MODULE = Buffer.concat([
  Buffer.from([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]),
  Buffer.from([0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7f]),
  Buffer.from([0x03, 0x02, 0x01, 0x00]),
  Buffer.from([0x07, 0x0a, 0x01, 0x06, ...Buffer.from('answer'), 0x00, 0x00]),
  Buffer.from([0x0a, 0x06, 0x01, 0x04, 0x00, 0x41, 0x2a, 0x0b]),
  custom('name', NAMES),
  custom('keep', [1, 2, 3]),
]);

test('the name section goes; code and other custom sections stay byte for byte', async () => {
  const before = new WebAssembly.Module(MODULE);
  assert.equal(WebAssembly.Module.customSections(before, 'name').length, 1);
  const stripped = withoutCustomSections(MODULE);
  assert.equal(stripped.length, MODULE.length - custom('name', NAMES).length);
  const after = new WebAssembly.Module(stripped);
  assert.equal(WebAssembly.Module.customSections(after, 'name').length, 0);
  assert.deepEqual([...new Uint8Array(WebAssembly.Module.customSections(after, 'keep')[0])], [1, 2, 3]);
  const { exports } = await WebAssembly.instantiate(after);
  assert.equal(exports.answer(), 42);
});

test('a module cut short is refused, not half-copied', () => {
  assert.throws(() => withoutCustomSections(MODULE.subarray(0, MODULE.length - 2)), /past the end/);
  assert.throws(() => withoutCustomSections(Buffer.from('not wasm')), /not a wasm module/);
});

const release = readFileSync(join(ROOT, 'build', '.mode'), 'utf8').trim() === 'release';

test('a release build uploads the wasm without names and keeps them beside it', { skip: !release && 'dev build: names kept' }, () => {
  const uploaded = readFileSync(join(ROOT, 'build', 'index_bg.wasm'));
  assert.ok(existsSync(WASM_WITH_NAMES));
  const named = readFileSync(WASM_WITH_NAMES);
  assert.ok(named.length > uploaded.length + 10000, `names section missing from ${WASM_WITH_NAMES}?`);
  assert.deepEqual(withoutCustomSections(named), uploaded);
  assert.equal(withoutCustomSections(uploaded).length, uploaded.length);
});

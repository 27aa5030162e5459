/**
 * The JSON pre-scan (src/http/json-body.ts) on its own: it must agree with JSON.parse about what is nesting and
 * what is inside a string, whatever the escapes, and flag exactly the numbers JSON.parse makes infinite.
 */
import { describe, expect, it } from 'vitest';
import { findPrototypeKey, parseJsonBody, scanJson } from '../../src/http/json-body.js';

const scan = (text: string, max = 3) => scanJson(Buffer.from(text), max);

describe('scanJson', () => {
  it.each([
    ['{"a":{"b":{"c":1}}}', false],
    ['{"a":{"b":{"c":{}}}}', true],
    ['[[[]]]', false],
    ['[[[[]]]]', true],
    ['{"s":"[[[[[[{{{{"}', false],
    ['{"s":"\\"[[[[[["}', false],
    ['{"s":"\\\\"}', false],
    ['{"s":"\\\\\\"[[[["}', false],
    ['{"s":"\\\\\\\\"}', false],
    ['{"s":"a\\\\"   ,"t":[[[[1]]]]}', true],
    ['{"s":"unterminated [[[[[', false],
    ['{"é":"ü[[[[","x":[[1]]}', false],
  ])('%s → too deep at 3: %s', (text, tooDeep) => {
    expect(scan(text).tooDeep).toBe(tooDeep);
  });

  it.each([
    ['{"x":1e308}', undefined],
    ['{"x":1e309}', '1e309'],
    ['{"x":-1E400}', '-1E400'],
    ['{"x":1e-400}', undefined],
    ['{"x":"1e400"}', undefined],
    [`{"x":${'9'.repeat(308)}}`, undefined],
    [`{"x":${'9'.repeat(309)}}`, '9'.repeat(309)],
    [`{"x":0.${'9'.repeat(400)}}`, undefined],
    ['{"x":0.5e400}', '0.5e400'],
    ['{"x":5e-400}', undefined],
    [`{"x":0.${'0'.repeat(100)}1e400}`, undefined],
    ['{"x":-0.5E+7}', undefined],
    ['{"x":1E+309}', '1E+309'],
  ])('%s → overflow %s', (text, overflow) => {
    expect(scan(text, 64).overflow).toBe(overflow);
    if (overflow === undefined)
      expect(Number.isFinite(JSON.parse(text).x) || typeof JSON.parse(text).x === 'string').toBe(true);
  });

  it('the depth agrees with JSON.parse on what is a string, for every escape run up to 6 backslashes', () => {
    for (let n = 0; n <= 6; n++) {
      const body = `{"s":"${'\\'.repeat(n)}${n % 2 === 1 ? '"' : ''}","t":[[[[0]]]]}`;
      let parsed = true;
      try {
        JSON.parse(body);
      } catch {
        parsed = false;
      }
      if (parsed) expect(scan(body).tooDeep).toBe(true);
    }
  });
});

describe('parseJsonBody', () => {
  it('names the path of a prototype key, written plainly or escaped', () => {
    expect(findPrototypeKey(JSON.parse('{"a":[{"b":{"__proto__":{}}}]}'))).toBe('a[0].b.__proto__');
    expect(() => parseJsonBody(Buffer.from('{"p":{"\\u005f\\u005fproto__":1}}'), { maxDepth: 64 })).toThrow(
      /p\.__proto__: this key is not accepted/,
    );
    expect(() =>
      parseJsonBody(Buffer.from('{"constructor":{"prototype":{"x":1}}}'), { maxDepth: 64 }),
    ).toThrow(/constructor\.prototype/);
    expect(parseJsonBody(Buffer.from('{"constructor":{"name":"x"}}'), { maxDepth: 64 })).toEqual({
      constructor: { name: 'x' },
    });
  });

  it('names the field holding an infinite number', () => {
    expect(() => parseJsonBody(Buffer.from('{"a":{"b":[1,2,3e999]}}'), { maxDepth: 64 })).toThrow(
      /^a\.b\[2\]: must be a finite number; got Infinity \(3e999/,
    );
  });

  it('refuses an empty body, invalid UTF-8 and invalid JSON with their own messages', () => {
    const limits = { maxDepth: 64 };
    expect(() => parseJsonBody(Buffer.alloc(0), limits)).toThrow(/empty/);
    expect(() => parseJsonBody(Buffer.from([0x7b, 0xff, 0x7d]), limits)).toThrow(/not valid UTF-8/);
    expect(() => parseJsonBody(Buffer.from('{"a":'), limits)).toThrow(/not valid JSON/);
  });
});

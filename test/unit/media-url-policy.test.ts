import { describe, expect, it } from 'vitest';
import { GatewayError } from '../../src/errors.js';
import { classifyMedia, DATA_URI_MAX_HEADER_CHARS, isBase64Body } from '../../src/media/url-policy.js';
import { MB, png } from '../fixtures/media/index.js';

const P = 'input.contents[0].image';
/** Hostile inputs must not hold the event loop: no single check slower than this. */
const BUDGET_MS = 100;

/** The former payload regex: the reference the single-pass check must agree with (on short strings only). */
const FORMER_BODY = /^[A-Za-z0-9+/\s]*={0,2}\s*$/;

/**
 * A flat copy of an ASCII string, as JSON.parse hands the gateway: built-up strings (concatenations) are ropes
 * that V8 flattens on first use, and that one-off copy is the test's cost, not the check's.
 */
const flat = (s: string): string => Buffer.from(s, 'latin1').toString('latin1');

function refusal(value: string): { message: string; elapsed: number } {
  const t0 = performance.now();
  try {
    classifyMedia(value, P);
  } catch (err) {
    const elapsed = performance.now() - t0;
    expect(err).toBeInstanceOf(GatewayError);
    expect((err as GatewayError).statusCode).toBe(400);
    expect((err as GatewayError).param).toBe(P);
    return { message: (err as GatewayError).message, elapsed };
  }
  throw new Error(`accepted: ${value.slice(0, 80)}`);
}

function timedClassify(value: string): { bytes: number; elapsed: number } {
  const t0 = performance.now();
  const ref = classifyMedia(value, P);
  const elapsed = performance.now() - t0;
  return { bytes: ref.kind === 'data' ? ref.bytes.length : -1, elapsed };
}

describe('isBase64Body agrees with the former regex', () => {
  it.each([
    '',
    'QUJD',
    'QUJDRA==',
    'QUJDRA=',
    'QUJD RA==  \n',
    ' Q U J D\r\n\tRA== ',
    'QUJDRA===',
    'QU=JD',
    'QUJDRA= =',
    'QUJDRA==x',
    'QUJD-RA',
    'QUJD_RA',
    '====',
    '=',
    'QUJD\u00a0RA\u2028==\u3000',
    'QUJD\u00e9',
    'QUJD\u200b',
  ])('%j', (s) => {
    expect(isBase64Body(s)).toBe(FORMER_BODY.test(s));
  });

  it('treats every UTF-16 code unit as whitespace exactly when \\s does', () => {
    const disagree: string[] = [];
    for (let c = 0; c < 0x10000; c++) {
      for (const s of [`QQ${String.fromCharCode(c)}QQ==`, `QQ==${String.fromCharCode(c)}`]) {
        if (isBase64Body(s) !== FORMER_BODY.test(s))
          disagree.push(`U+${c.toString(16)} in ${JSON.stringify(s)}`);
      }
    }
    expect(disagree).toEqual([]);
  });
});

describe('classifyMedia: data URIs are checked in time linear in their length', () => {
  it('a valid data URI still decodes', () => {
    const uri = `data:image/png;name=a.png;base64,${png().toString('base64')}`;
    expect(classifyMedia(uri, P)).toEqual({ kind: 'data', declaredMime: 'image/png', bytes: png() });
  });

  it('160 KB of whitespace before a bad character (the former regex took ~20 s here)', () => {
    const { message, elapsed } = refusal(flat(`data:audio/wav;base64,QUJD${' \n'.repeat(80 * 1024)}!`));
    expect(message).toBe(`${P}: has a data URI whose payload is not valid base64`);
    expect(elapsed).toBeLessThan(BUDGET_MS);
  });

  it('160 KB mostly whitespace, valid', () => {
    const body = `${'QUJD'.repeat(1024)}${' \r\n\t'.repeat(39 * 1024)}QQ==`;
    const { bytes, elapsed } = timedClassify(flat(`data:audio/wav;base64,${body}`));
    expect(bytes).toBe(3 * 1024 + 1);
    expect(elapsed).toBeLessThan(BUDGET_MS);
  });

  // Only the check is timed for multi-megabyte payloads: the decode after it (Buffer.from, native and linear) costs
  // as much as a copy of the bytes, which on this shared test machine is itself 40-80 ms for 5 MB.
  it('a 5 MB payload with line breaks every 76 characters: checked fast, then decoded', () => {
    // 57 bytes encode to one 76-character line; the same line repeated, as MIME encoders break it.
    const lines = Math.ceil((5 * MB) / 78);
    const body = flat(`${Buffer.alloc(57, 0xab).toString('base64')}\r\n`.repeat(lines));
    expect(body.length).toBeGreaterThan(5 * MB);
    const t0 = performance.now();
    expect(isBase64Body(body)).toBe(true);
    expect(performance.now() - t0).toBeLessThan(BUDGET_MS);
    expect(timedClassify(`data:image/png;base64,${body}`).bytes).toBe(57 * lines);
  });

  it('the payload of the largest ONE-PEACE audio (5 MB decoded, 7 MB of base64), checked', () => {
    const body = Buffer.alloc(5 * MB, 0xab).toString('base64');
    for (const [value, valid] of [
      [flat(`${body} \n`), true],
      [flat(`${body}=\n!`), false],
    ] as const) {
      const t0 = performance.now();
      expect(isBase64Body(value)).toBe(valid);
      expect(performance.now() - t0).toBeLessThan(BUDGET_MS);
    }
  });

  it('padding is refused inside the data, past two, or split by whitespace', () => {
    for (const body of ['QQ==QQ==', 'QQ===', 'QQ= =']) {
      expect(refusal(`data:image/png;base64,${body}`).message).toMatch(/payload is not valid base64$/);
    }
  });
});

describe('classifyMedia: the data-URI header is bounded', () => {
  it(`accepts a header of exactly ${DATA_URI_MAX_HEADER_CHARS} characters and refuses one more`, () => {
    const header = (n: number) => `image/png;x=${'a'.repeat(n - 'image/png;x=;base64'.length)};base64`;
    expect(header(DATA_URI_MAX_HEADER_CHARS)).toHaveLength(DATA_URI_MAX_HEADER_CHARS);
    expect(classifyMedia(`data:${header(DATA_URI_MAX_HEADER_CHARS)},QQ==`, P).kind).toBe('data');
    expect(refusal(`data:${header(DATA_URI_MAX_HEADER_CHARS + 1)},QQ==`).message).toBe(
      `${P}: has a data URI whose header (the part between data: and the first comma) is longer than 256 characters (expected data:<mime>;base64,<data>)`,
    );
  });

  it('a short header that is not base64 keeps its message', () => {
    expect(refusal('data:image/png,QQ==').message).toBe(
      `${P}: is a data URI but not base64 (expected data:<mime>;base64,<data>)`,
    );
    expect(refusal('data:image/png;base64').message).toMatch(/is a data URI but not base64/);
  });

  it.each([
    ['5 MB of parameters and no comma', `data:image/png${';a=b'.repeat((5 * MB) / 4)}`],
    ['5 MB of mime characters and no comma', `data:${'a'.repeat(5 * MB)}`],
    ['5 MB of parameters before ;base64,', `data:image/png${';a=b'.repeat((5 * MB) / 4)};base64,QQ==`],
    ['a 256-character header built to backtrack', `data:${';a='.repeat(85)}x,QQ==`],
  ])('%s: refused fast', (_name, value) => {
    const { elapsed } = refusal(flat(value));
    expect(elapsed).toBeLessThan(BUDGET_MS);
  });
});

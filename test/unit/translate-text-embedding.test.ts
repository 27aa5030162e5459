/**
 * The two text-embedding translators, called directly: OpenAI `/v1/embeddings` bodies (openAIToTextJob) and native
 * DashScope bodies (nativeToTextJob) become the job the pipeline runs. What is pinned: the dimension default and
 * the 400 for one the model does not have, which parameters go upstream and under which names, the base64 → decode
 * flag, the request limits, and how errors name the field (`input` for a bare string, `input[i]` in an array,
 * `input.texts[i]` / `parameters.x` natively). Token counts come from a real token checker.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { buildModelTable } from '../../src/models/index.js';
import { createTokenChecker } from '../../src/tokens/index.js';
import {
  type NativeTextEmbeddingRequest,
  nativeToTextJob,
} from '../../src/translate/native-text-embedding.js';
import type { OpenAIEmbeddingsRequest } from '../../src/translate/openai-embeddings-schema.js';
import { openAIToTextJob } from '../../src/translate/openai-text-embedding.js';
import { refusal } from '../support/refusal.js';

const models = buildModelTable(new Map());
const v4 = models.require('text-embedding-v4', 'text-embedding');
const v1 = models.require('text-embedding-v1', 'text-embedding');
/** Well over 8,192 tokens whichever way it is counted. */
const LONG = 'word '.repeat(9000);

const tokens = createTokenChecker({ workers: 1, maxBytesPerRequest: 1 << 20, timeoutMs: 5000 });
afterAll(() => tokens.close());

const openai = (body: Partial<OpenAIEmbeddingsRequest>): OpenAIEmbeddingsRequest => ({
  model: 'text-embedding-v4',
  input: 'hello',
  ...body,
});

describe('openAIToTextJob', () => {
  it('defaults the dimension to the model default and sends it as parameters.dimension', async () => {
    const job = await openAIToTextJob(openai({ input: ['a', 'b'] }), v4, tokens);
    expect(job).toMatchObject({ texts: ['a', 'b'], dimension: 1024, outputType: 'dense', decode: false });
    expect(job.parameters).toEqual({ dimension: 1024 });
    const old = await openAIToTextJob(openai({ model: 'text-embedding-v1' }), v1, tokens);
    expect(old.dimension).toBe(1536);
    expect(old.parameters).toEqual({ dimension: 1536 });
  });

  it('passes an allowed dimensions value on as parameters.dimension', async () => {
    const job = await openAIToTextJob(openai({ dimensions: 64 }), v4, tokens);
    expect(job.dimension).toBe(64);
    expect(job.parameters).toEqual({ dimension: 64 });
  });

  it('refuses a dimensions value the model does not have, naming `dimensions` and the allowed values', async () => {
    const err = await refusal(openAIToTextJob(openai({ dimensions: 100 }), v4, tokens));
    expect(err.kind).toBe('INVALID_INPUT');
    expect(err.param).toBe('dimensions');
    expect(err.message).toBe(
      'dimensions: text-embedding-v4 supports 2048, 1536, 1024, 768, 512, 256, 128, 64; got 100',
    );
    // A fixed-dimension model refuses anything but its one value.
    const fixed = await refusal(openAIToTextJob(openai({ dimensions: 1024 }), v1, tokens));
    expect(fixed.message).toBe('dimensions: text-embedding-v1 supports 1536; got 1024');
  });

  it('passes text_type on, and sends nothing for it when it is absent', async () => {
    for (const textType of ['query', 'document'] as const) {
      const job = await openAIToTextJob(openai({ text_type: textType }), v4, tokens);
      expect(job.parameters).toEqual({ dimension: 1024, text_type: textType });
    }
    const none = await openAIToTextJob(openai({}), v4, tokens);
    expect(Object.hasOwn(none.parameters, 'text_type')).toBe(false);
  });

  it('asks for decoding only when the caller wants base64', async () => {
    expect((await openAIToTextJob(openai({ encoding_format: 'base64' }), v4, tokens)).decode).toBe(true);
    expect((await openAIToTextJob(openai({ encoding_format: 'float' }), v4, tokens)).decode).toBe(false);
    expect((await openAIToTextJob(openai({}), v4, tokens)).decode).toBe(false);
  });

  it('a string input is one text, and its errors name `input`', async () => {
    expect((await openAIToTextJob(openai({ input: 'just one' }), v4, tokens)).texts).toEqual(['just one']);
    const empty = await refusal(openAIToTextJob(openai({ input: '' }), v4, tokens));
    expect(empty.param).toBe('input');
    expect(empty.message).toBe('input: must not be empty');
    const long = await refusal(openAIToTextJob(openai({ input: LONG }), v4, tokens));
    expect(long.param).toBe('input');
    expect(long.message).toMatch(/^input: is .*tokens.* text-embedding-v4 accepts at most 8192/);
  });

  it('an array input names the item: `input[i]`', async () => {
    const empty = await refusal(openAIToTextJob(openai({ input: ['ok', ''] }), v4, tokens));
    expect(empty.param).toBe('input[1]');
    const tokenArray = await refusal(openAIToTextJob(openai({ input: ['ok', 'ok', [1, 2]] }), v4, tokens));
    expect(tokenArray.param).toBe('input[2]');
    expect(tokenArray.message).toBe('input[2]: token arrays are not supported by DashScope; send text');
    const notText = await refusal(openAIToTextJob(openai({ input: [null] }), v4, tokens));
    expect(notText.message).toBe('input[0]: must be a string, got null');
    const long = await refusal(openAIToTextJob(openai({ input: ['short', LONG] }), v4, tokens));
    expect(long.param).toBe('input[1]');
  });
});

const native = (body: Partial<NativeTextEmbeddingRequest>): NativeTextEmbeddingRequest => ({
  model: 'text-embedding-v4',
  input: { texts: ['hello'] },
  ...body,
});

describe('nativeToTextJob', () => {
  it('defaults the dimension and output type, and sends the parameters object it was given', async () => {
    const job = await nativeToTextJob(native({}), v4, 100, tokens);
    expect(job).toMatchObject({ texts: ['hello'], dimension: 1024, outputType: 'dense' });
    expect(job.parameters).toEqual({});
    expect(job.decode).toBeUndefined();
  });

  it('passes unknown parameters through untouched, next to the known ones', async () => {
    const parameters = {
      dimension: 256,
      text_type: 'query',
      instruct: 'find',
      future_knob: { a: [1, 2] },
      seed: 7,
    };
    const snapshot = structuredClone(parameters);
    const job = await nativeToTextJob(native({ parameters }), v4, 100, tokens);
    expect(job.parameters).toBe(parameters);
    expect(job.parameters).toEqual(snapshot);
    expect(job.dimension).toBe(256);
  });

  it('accepts a bare string as one text', async () => {
    const job = await nativeToTextJob(native({ input: { texts: 'lonely' } }), v4, 100, tokens);
    expect(job.texts).toEqual(['lonely']);
  });

  it('refuses an empty list and more texts than the gateway accepts per request', async () => {
    const empty = await refusal(nativeToTextJob(native({ input: { texts: [] } }), v4, 100, tokens));
    expect(empty.param).toBe('input.texts');
    expect(empty.message).toBe('input.texts: must contain at least one text');
    const texts = Array.from({ length: 4 }, (_, i) => `t${i}`);
    const many = await refusal(nativeToTextJob(native({ input: { texts } }), v4, 3, tokens));
    expect(many.param).toBe('input.texts');
    expect(many.message).toBe('input.texts: has 4 texts; the gateway accepts at most 3 per request');
    // At the limit is fine.
    expect((await nativeToTextJob(native({ input: { texts } }), v4, 4, tokens)).texts).toEqual(texts);
  });

  it('names a bad text as `input.texts[i]`, also for the token limit', async () => {
    const bad = await refusal(nativeToTextJob(native({ input: { texts: ['a', 42] } }), v4, 100, tokens));
    expect(bad.message).toBe('input.texts[1]: token arrays are not supported by DashScope; send text');
    const long = await refusal(
      nativeToTextJob(native({ input: { texts: ['a', 'b', LONG] } }), v4, 100, tokens),
    );
    expect(long.param).toBe('input.texts[2]');
    expect(long.message).toMatch(/text-embedding-v4 accepts at most 8192/);
    const v1Long = await refusal(
      nativeToTextJob(native({ input: { texts: ['word '.repeat(3000)] } }), v1, 100, tokens),
    );
    expect(v1Long.message).toMatch(/text-embedding-v1 accepts at most 2048/);
  });

  it('refuses a dimension the model does not have, as parameters.dimension', async () => {
    const err = await refusal(nativeToTextJob(native({ parameters: { dimension: 1152 } }), v4, 100, tokens));
    expect(err.kind).toBe('INVALID_INPUT');
    expect(err.param).toBe('parameters.dimension');
    expect(err.message).toBe(
      'parameters.dimension: text-embedding-v4 supports 2048, 1536, 1024, 768, 512, 256, 128, 64; got 1152',
    );
    // v4's default is not v1's: a fixed-dimension model refuses it.
    const v1Err = await refusal(
      nativeToTextJob(native({ parameters: { dimension: 1024 } }), v1, 100, tokens),
    );
    expect(v1Err.message).toBe('parameters.dimension: text-embedding-v1 supports 1536; got 1024');
  });

  it('takes sparse output types only from a model that has them', async () => {
    for (const outputType of ['sparse', 'dense&sparse'] as const) {
      const job = await nativeToTextJob(native({ parameters: { output_type: outputType } }), v4, 100, tokens);
      expect(job.outputType).toBe(outputType);
      const err = await refusal(
        nativeToTextJob(native({ parameters: { output_type: outputType } }), v1, 100, tokens),
      );
      expect(err.param).toBe('parameters.output_type');
      expect(err.message).toBe('parameters.output_type: text-embedding-v1 only supports dense output');
    }
    expect(
      (await nativeToTextJob(native({ parameters: { output_type: 'dense' } }), v1, 100, tokens)).outputType,
    ).toBe('dense');
  });

  it('checks the known parameters’ types and names the field under `parameters`', async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ text_type: 'passage' }, 'parameters.text_type'],
      [{ dimension: '256' }, 'parameters.dimension'],
      [{ dimension: 64.5 }, 'parameters.dimension'],
      [{ output_type: 'binary' }, 'parameters.output_type'],
      [{ instruct: 3 }, 'parameters.instruct'],
    ];
    for (const [parameters, param] of cases) {
      const err = await refusal(nativeToTextJob(native({ parameters }), v4, 100, tokens));
      expect(err.param, JSON.stringify(parameters)).toBe(param);
      expect(err.message.startsWith(`${param}: `)).toBe(true);
    }
  });
});

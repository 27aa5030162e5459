/**
 * The two multimodal-embedding translators, called directly: OpenAI `/v1/embeddings` bodies with a multimodal model
 * (openAIToMultimodalJob, where DashScope parameters ride as top-level extension fields) and native bodies
 * (nativeToMultimodalJob, forwarded as sent). What is pinned: which fields become `parameters` and under which
 * names, the dimension rules (a fixed-dimension model is not sent one), the fused-vector item limit, the per-call
 * item limit, and how each error names the field the way the caller wrote it. Media values are URLs here, so no
 * media bytes are inspected (test/unit/media-inspect.test.ts covers inline data).
 */
import { describe, expect, it } from 'vitest';
import { buildModelTable } from '../../src/models/index.js';
import {
  type NativeMultimodalEmbeddingRequest,
  nativeToMultimodalJob,
} from '../../src/translate/native-multimodal-embedding.js';
import type { OpenAIEmbeddingsRequest } from '../../src/translate/openai-embeddings-schema.js';
import { openAIToMultimodalJob } from '../../src/translate/openai-multimodal-embedding.js';
import { refusal } from '../support/refusal.js';

const models = buildModelTable(new Map());
const model = (name: string) => models.require(name, 'multimodal-embedding');
/** Fused output, one dimension (1536), text of at most 70 characters unless auto_truncation. */
const onePeace = model('multimodal-embedding-one-peace-v1');
/** Per-item output, one dimension (1024), video as a URL only. */
const v1 = model('multimodal-embedding-v1');
/** Per-item output, several dimensions, no fusion. */
const plus = model('tongyi-embedding-vision-plus');
/** Per-item output, several dimensions, fuses on enable_fusion. */
const qwen = model('qwen3-vl-embedding');

const IMAGE = 'https://example.com/cat.png';

/** The translator gets the parsed OpenAI body and the raw one (extension fields live only in the raw body). */
function openai(name: string, raw: Record<string, unknown>) {
  const body: Record<string, unknown> = { model: name, ...raw };
  const { dimensions, encoding_format, user, text_type } = body as Partial<OpenAIEmbeddingsRequest>;
  const req: OpenAIEmbeddingsRequest = {
    model: name,
    input: body.input as OpenAIEmbeddingsRequest['input'],
    ...(dimensions !== undefined ? { dimensions } : {}),
    ...(encoding_format !== undefined ? { encoding_format } : {}),
    ...(user !== undefined ? { user } : {}),
    ...(text_type !== undefined ? { text_type } : {}),
  };
  return openAIToMultimodalJob(req, body, models.require(name, 'multimodal-embedding'));
}

describe('openAIToMultimodalJob', () => {
  it('turns a string into one text item and keeps content objects as sent, in order', async () => {
    const single = await openai(plus.name, { input: 'a dog' });
    expect(single.contents).toEqual([{ text: 'a dog' }]);
    const item = { image: IMAGE, factor: 2 };
    const mixed = await openai(plus.name, { input: ['a dog', item, { text: 'a cat' }] });
    expect(mixed.contents).toEqual([{ text: 'a dog' }, item, { text: 'a cat' }]);
    expect(mixed.contents[1]).toBe(item);
    expect(mixed).toMatchObject({
      parameters: undefined,
      dimension: undefined,
      fused: false,
      ossResolve: false,
    });
  });

  it('passes the DashScope extension fields on as parameters, and no other top-level field', async () => {
    const job = await openai(qwen.name, {
      input: ['a', { image: IMAGE }],
      auto_truncation: true,
      enable_fusion: true,
      fps: 0.5,
      instruct: 'Represent this for retrieval',
      res_level: 2,
      max_video_frames: 8,
      dimensions: 512,
      user: 'someone',
      text_type: 'query',
      parameters: { smuggled: true },
      unknown_field: 'x',
    });
    expect(job.parameters).toEqual({
      auto_truncation: true,
      enable_fusion: true,
      fps: 0.5,
      instruct: 'Represent this for retrieval',
      res_level: 2,
      max_video_frames: 8,
      dimension: 512,
    });
    expect(job.dimension).toBe(512);
    expect(job.fused).toBe(true);
  });

  it('checks the extension fields and names them as top-level fields', async () => {
    const cases: [Record<string, unknown>, string, RegExp][] = [
      [{ fps: 2 }, 'fps', /^fps: must be between 0 and 1/],
      [{ res_level: 5 }, 'res_level', /^res_level: must be 0, 1, 2 or 3$/],
      [{ max_video_frames: 65 }, 'max_video_frames', /^max_video_frames: must be at most 64$/],
      [{ auto_truncation: 'yes' }, 'auto_truncation', /^auto_truncation: must be true or false$/],
      [{ instruct: 7 }, 'instruct', /^instruct: must be a string$/],
    ];
    for (const [fields, param, message] of cases) {
      const err = await refusal(openai(plus.name, { input: 'x', ...fields }));
      expect(err.param, JSON.stringify(fields)).toBe(param);
      expect(err.message).toMatch(message);
    }
  });

  it('sends a dimension only to a model with a choice, and refuses one the model does not have', async () => {
    const chosen = await openai(plus.name, { input: 'x', dimensions: 256 });
    expect(chosen.parameters).toEqual({ dimension: 256 });
    expect(chosen.dimension).toBe(256);
    // multimodal-embedding-v1 has only 1024: nothing to send, but the reply is still held to it.
    const fixed = await openai(v1.name, { input: 'x', dimensions: 1024 });
    expect(fixed.parameters).toBeUndefined();
    expect(fixed.dimension).toBe(1024);
    const wrong = await refusal(openai(v1.name, { input: 'x', dimensions: 512 }));
    expect(wrong.kind).toBe('INVALID_INPUT');
    expect(wrong.param).toBe('dimensions');
    expect(wrong.message).toBe('dimensions: multimodal-embedding-v1 supports 1024; got 512');
    const wrong2 = await refusal(openai(plus.name, { input: 'x', dimensions: 100 }));
    expect(wrong2.message).toBe(
      'dimensions: tongyi-embedding-vision-plus supports 1152, 1024, 512, 256, 128, 64; got 100',
    );
  });

  it('fuses on ONE-PEACE always and on enable_fusion only where the model can', async () => {
    expect((await openai(onePeace.name, { input: 'x' })).fused).toBe(true);
    expect((await openai(qwen.name, { input: 'x' })).fused).toBe(false);
    expect((await openai(qwen.name, { input: 'x', enable_fusion: false })).fused).toBe(false);
    const perItem = await refusal(openai(plus.name, { input: 'x', enable_fusion: true }));
    expect(perItem.param).toBe('enable_fusion');
    expect(perItem.message).toBe(
      'enable_fusion: tongyi-embedding-vision-plus does not fuse contents; it answers with one vector per item',
    );
    const fusedAnyway = await refusal(openai(onePeace.name, { input: 'x', enable_fusion: true }));
    expect(fusedAnyway.message).toMatch(/it answers with one fused vector anyway$/);
  });

  it('refuses more items than one fused vector may take, and lets a per-item request of that size through', async () => {
    const items = (n: number) => Array.from({ length: n }, (_, i) => `item ${i}`);
    expect((await openai(onePeace.name, { input: items(20) })).contents).toHaveLength(20);
    const err = await refusal(openai(onePeace.name, { input: items(21) }));
    expect(err.param).toBe('input');
    expect(err.message).toBe(
      'input: has 21 items; multimodal-embedding-one-peace-v1 fuses at most 20 items into one vector per call',
    );
    const fusion = await refusal(openai(qwen.name, { input: items(21), enable_fusion: true }));
    expect(fusion.message).toMatch(/^input: has 21 items; qwen3-vl-embedding fuses at most 20/);
    // Not fused: the pipeline splits it into calls.
    expect((await openai(qwen.name, { input: items(21) })).contents).toHaveLength(21);
  });

  it('names a bad item as the caller wrote it: `input`, `input[i]`, or `input[i].field`', async () => {
    const cases: [unknown, string, RegExp][] = [
      ['', 'input', /^input: must not be empty$/],
      [['ok', ''], 'input[1]', /^input\[1\]: must not be empty$/],
      [['ok', { text: '' }], 'input[1].text', /^input\[1\]\.text: must not be empty$/],
      [['ok', 42], 'input[1]', /^input\[1\]: must be a string or a content object/],
      [[['nested']], 'input[0]', /^input\[0\]: must be a string or a content object/],
      [[{ image: 'file:///etc/passwd' }], 'input[0].image', /^input\[0\]\.image: file:\/\/ URIs are refused/],
      [
        [{ text: 'a', image: IMAGE }],
        'input[0]',
        /^input\[0\]: has text and image; an item carries exactly one/,
      ],
      [[{ factor: 2 }], 'input[0]', /^input\[0\]: has no content: give exactly one of text, image, video/],
      [
        [{ image: IMAGE, factor: 0 }],
        'input[0].factor',
        /^input\[0\]\.factor: must be a finite number greater than 0/,
      ],
      [
        [{ audio: 'https://example.com/a.wav' }],
        'input[0].audio',
        /does not take audio; it takes text, image, video$/,
      ],
    ];
    for (const [input, param, message] of cases) {
      const err = await refusal(openai(plus.name, { input }));
      expect(err.param, JSON.stringify(input)).toBe(param);
      expect(err.message).toMatch(message);
    }
  });

  it('names the OpenAI spelling of auto_truncation in the text-length message', async () => {
    const long = 'x'.repeat(71);
    const single = await refusal(openai(onePeace.name, { input: long }));
    expect(single.param).toBe('input');
    expect(single.message).toBe(
      'input: is 71 characters; multimodal-embedding-one-peace-v1 accepts at most 70 unless auto_truncation is true',
    );
    const inArray = await refusal(openai(onePeace.name, { input: ['ok', { text: long }] }));
    expect(inArray.param).toBe('input[1].text');
    const truncated = await openai(onePeace.name, { input: long, auto_truncation: true });
    expect(truncated.parameters).toEqual({ auto_truncation: true });
  });

  it('asks for decoding when the caller wants base64, and for OSS resolution when a value is oss://', async () => {
    expect((await openai(plus.name, { input: 'x', encoding_format: 'base64' })).decode).toBe(true);
    expect((await openai(plus.name, { input: 'x', encoding_format: 'float' })).decode).toBe(false);
    expect((await openai(plus.name, { input: 'x' })).decode).toBe(false);
    const oss = await openai(plus.name, { input: ['x', { image: 'oss://dashscope-instant/abc/cat.png' }] });
    expect(oss.ossResolve).toBe(true);
  });
});

const native = (
  contents: Record<string, unknown>[],
  parameters?: Record<string, unknown>,
): NativeMultimodalEmbeddingRequest => ({
  model: 'any',
  input: { contents },
  ...(parameters ? { parameters } : {}),
});

describe('nativeToMultimodalJob', () => {
  it('forwards the contents and the parameters object as sent, unknown keys included', async () => {
    const contents = [{ text: 'a' }, { image: IMAGE, factor: 1.5 }];
    const parameters = { dimension: 512, instruct: 'q', future_knob: [1, { b: 2 }], seed: 3 };
    const snapshot = structuredClone(parameters);
    const job = await nativeToMultimodalJob(native(contents, parameters), plus, 100);
    expect(job.contents).toBe(contents);
    expect(job.parameters).toBe(parameters);
    expect(job.parameters).toEqual(snapshot);
    expect(job).toMatchObject({ dimension: 512, fused: false, ossResolve: false });
    expect(job.decode).toBeUndefined();
    const bare = await nativeToMultimodalJob(native(contents), plus, 100);
    expect(bare.parameters).toBeUndefined();
    expect(bare.dimension).toBeUndefined();
  });

  it('keeps a dimension the caller sent even to a fixed-dimension model (the body is forwarded as sent)', async () => {
    const job = await nativeToMultimodalJob(native([{ text: 'a' }], { dimension: 1024 }), v1, 100);
    expect(job.parameters).toEqual({ dimension: 1024 });
    expect(job.dimension).toBe(1024);
  });

  it('refuses a dimension the model does not have, as parameters.dimension', async () => {
    const err = await refusal(nativeToMultimodalJob(native([{ text: 'a' }], { dimension: 2048 }), plus, 100));
    expect(err.param).toBe('parameters.dimension');
    expect(err.message).toBe(
      'parameters.dimension: tongyi-embedding-vision-plus supports 1152, 1024, 512, 256, 128, 64; got 2048',
    );
  });

  it('checks the known parameters and names them under `parameters`', async () => {
    const cases: [Record<string, unknown>, string, RegExp][] = [
      [
        { output_type: 'sparse' },
        'parameters.output_type',
        /only "dense" is available for multimodal embeddings/,
      ],
      [{ fps: -1 }, 'parameters.fps', /must be between 0 and 1/],
      [{ dimension: 'big' }, 'parameters.dimension', /must be an integer/],
      [
        { enable_fusion: true },
        'parameters.enable_fusion',
        /does not fuse contents; it answers with one vector/,
      ],
    ];
    for (const [parameters, param, message] of cases) {
      const err = await refusal(nativeToMultimodalJob(native([{ text: 'a' }], parameters), plus, 100));
      expect(err.param, JSON.stringify(parameters)).toBe(param);
      expect(err.message).toMatch(message);
    }
  });

  it('fuses on ONE-PEACE always and on enable_fusion where the model can', async () => {
    expect((await nativeToMultimodalJob(native([{ text: 'a' }]), onePeace, 100)).fused).toBe(true);
    const fused = await nativeToMultimodalJob(native([{ text: 'a' }], { enable_fusion: true }), qwen, 100);
    expect(fused.fused).toBe(true);
    expect(fused.parameters).toEqual({ enable_fusion: true });
  });

  it('refuses no items, and more items than one call takes (the smaller of the model row and the gateway limit)', async () => {
    const empty = await refusal(nativeToMultimodalJob(native([]), plus, 100));
    expect(empty.param).toBe('input.contents');
    expect(empty.message).toBe('input.contents: must contain at least one item');
    const items = (n: number) => Array.from({ length: n }, (_, i) => ({ text: `t${i}` }));
    expect((await nativeToMultimodalJob(native(items(20)), plus, 100)).contents).toHaveLength(20);
    const overRow = await refusal(nativeToMultimodalJob(native(items(21)), plus, 100));
    expect(overRow.message).toBe(
      'input.contents: has 21 items; tongyi-embedding-vision-plus takes at most 20 per call through this gateway',
    );
    const overGateway = await refusal(nativeToMultimodalJob(native(items(6)), plus, 5));
    expect(overGateway.message).toBe(
      'input.contents: has 6 items; tongyi-embedding-vision-plus takes at most 5 per call through this gateway',
    );
  });

  it('names a bad item as `input.contents[i]` or `input.contents[i].field`', async () => {
    const cases: [Record<string, unknown>[], string, RegExp][] = [
      [[{ text: 'a' }, { text: '' }], 'input.contents[1].text', /must not be empty$/],
      [[{ text: 'a' }, { text: 5 }], 'input.contents[1].text', /must be a string; got 5$/],
      [[{ video: 'data:video/mp4;base64,AAAA' }], 'input.contents[0].video', /takes video as a URL only/],
      [[{ image: IMAGE, video: 'https://example.com/v.mp4' }], 'input.contents[0]', /has image and video/],
      [
        [{ nothing: 1 }],
        'input.contents[0]',
        /has no content: give exactly one of text, image, video \(found nothing\)$/,
      ],
    ];
    for (const [contents, param, message] of cases) {
      const err = await refusal(nativeToMultimodalJob(native(contents), v1, 100));
      expect(err.param, JSON.stringify(contents)).toBe(param);
      expect(err.message).toMatch(message);
    }
  });

  it('names the native spelling of auto_truncation, and lets over-long text through when it is true', async () => {
    const long = 'y'.repeat(71);
    const err = await refusal(nativeToMultimodalJob(native([{ text: long }]), onePeace, 100));
    expect(err.param).toBe('input.contents[0].text');
    expect(err.message).toMatch(/accepts at most 70 unless parameters\.auto_truncation is true$/);
    const ok = await nativeToMultimodalJob(
      native([{ text: long }], { auto_truncation: true }),
      onePeace,
      100,
    );
    expect(ok.parameters).toEqual({ auto_truncation: true });
    // Characters, not UTF-16 units: 70 emoji are 70 characters.
    expect(
      (await nativeToMultimodalJob(native([{ text: '😀'.repeat(70) }]), onePeace, 100)).contents,
    ).toHaveLength(1);
  });

  it('asks for OSS resolution when a value is oss://', async () => {
    const job = await nativeToMultimodalJob(
      native([{ image: 'oss://dashscope-instant/x/cat.png' }]),
      plus,
      100,
    );
    expect(job.ossResolve).toBe(true);
  });
});

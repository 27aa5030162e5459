/** The SSE splitter behind the conversation relays: whole events out, whatever the chunking of the bytes in. */
import { describe, expect, it } from 'vitest';
import { errorEvent, SseEventSplitter } from '../../src/conversation/sse-relay.js';
import { GatewayError } from '../../src/errors.js';

/** Feed `chunks` and collect what comes out, one entry per push. */
async function run(chunks: Buffer[], fail?: string): Promise<{ out: string[]; s: SseEventSplitter }> {
  const s = new SseEventSplitter();
  const out: string[] = [];
  s.on('data', (d: Buffer) => out.push(d.toString('utf8')));
  const done = new Promise((resolve) => s.on('end', resolve));
  for (const c of chunks) s.write(c);
  if (fail) s.fail(fail);
  else s.end();
  await done;
  return { out, s };
}

const ev = (id: number, text: string) =>
  `id:${id}\nevent:result\n:HTTP_STATUS/200\ndata:{"output":{"text":${JSON.stringify(text)}}}\n\n`;

describe('SseEventSplitter', () => {
  it('passes whole events on, one per push, however the bytes were chunked', async () => {
    const all = Buffer.from(ev(1, 'héllo 世界') + ev(2, 'more') + ev(3, 'end'));
    // Split every 7 bytes: cuts through lines, through the blank line, and through multibyte characters.
    const chunks: Buffer[] = [];
    for (let i = 0; i < all.length; i += 7) chunks.push(all.subarray(i, i + 7));
    const { out, s } = await run(chunks);
    expect(out).toEqual([ev(1, 'héllo 世界'), ev(2, 'more'), ev(3, 'end')]);
    expect(s.events).toBe(3);
    expect(s.lastId).toBe(3);
  });

  it('handles CRLF line endings and OpenAI-style data lines', async () => {
    const text = 'data: {"a":1}\r\n\r\ndata: [DONE]\r\n\r\n';
    const { out } = await run([Buffer.from(text)]);
    expect(out).toEqual(['data: {"a":1}\r\n\r\n', 'data: [DONE]\r\n\r\n']);
  });

  it('passes on a last event that lacks its blank line when the stream ends cleanly', async () => {
    const { out } = await run([Buffer.from(`${ev(1, 'a')}id:2\nevent:result\ndata:{}`)]);
    expect(out).toEqual([ev(1, 'a'), 'id:2\nevent:result\ndata:{}']);
  });

  it('on failure drops the partial event and ends with the error frame', async () => {
    const { out } = await run([Buffer.from(`${ev(1, 'a')}id:2\nevent:res`)], 'FAIL\n\n');
    expect(out).toEqual([ev(1, 'a'), 'FAIL\n\n']);
  });
});

describe('errorEvent', () => {
  const err = new GatewayError('UPSTREAM_BAD_RESPONSE', 'broke off');
  it('native: an event:error with the next id, the status comment and a DashScope error body', () => {
    expect(errorEvent(err, 'dashscope', 'rid-1', 4)).toBe(
      'id:4\nevent:error\n:HTTP_STATUS/502\ndata:{"code":"BadGateway","message":"broke off","request_id":"rid-1"}\n\n',
    );
  });
  it('OpenAI: a data line with an OpenAI error body', () => {
    expect(JSON.parse(errorEvent(err, 'openai', 'rid-1', 4).slice(6))).toEqual({
      error: { message: 'broke off', type: 'api_error', code: 'upstream_bad_response', param: null },
    });
  });
});

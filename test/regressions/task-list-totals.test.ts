/**
 * Regression: the task list passed DashScope's `total_page` through, and with it the size of the whole account's
 * task list (total_page × page_size), to every caller. `total` counts the caller's tasks on the page, and
 * `total_page` only says whether another page follows (page_no + 1) or not (page_no).
 */
import { describe, expect, it } from 'vitest';
import { auth, KEYS, useStack } from '../helpers.js';

const TEXT_EMBEDDING = '/api/v1/services/embeddings/text-embedding/text-embedding';

describe('task list totals', () => {
  const s = useStack();

  it('reveal neither the account total nor the other callers’ tasks', async () => {
    const submit = async (key: string): Promise<void> => {
      const res = await s.app.inject({
        method: 'POST',
        url: TEXT_EMBEDDING,
        headers: { ...auth(key), 'x-dashscope-async': 'enable' },
        payload: { model: 'text-embedding-async-v2', input: { url: 'https://example.com/texts.txt' } },
      });
      expect(res.statusCode).toBe(200);
    };
    await submit(KEYS.alice);
    for (let i = 0; i < 5; i++) await submit(KEYS.bob);

    const list = async (query: string) => {
      const res = await s.app.inject({
        method: 'GET',
        url: `/api/v1/tasks?${query}`,
        headers: auth(KEYS.alice),
      });
      expect(res.statusCode).toBe(200);
      return res.json() as { data: unknown[]; total: number; total_page: number; page_no: number };
    };
    const first = await list('page_no=1&page_size=1');
    expect(first.total).toBe(first.data.length);
    expect(first.total_page).toBe(2); // there is a next page; not the account's 6
    const all = await list('page_no=1&page_size=100');
    expect(all.total).toBe(1);
    expect(all.total_page).toBe(1);
    const last = await list('page_no=6&page_size=1');
    expect(last.total_page).toBe(6);
  });
});

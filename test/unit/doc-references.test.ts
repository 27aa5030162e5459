/**
 * Comments in src/ point readers at the upstream contract (`docs/dashscope-contract.md §x.y`) and at README sections
 * (`README "Heading"`). A pointer to a section that does not exist sends the next engineer nowhere, so every one is
 * checked here against the headings of the file it names (README headings outside code blocks only).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(path);
    return e.name.endsWith('.ts') ? [path] : [];
  });
}

/** Markdown headings, skipping fenced code blocks (the README's shell examples have `# …` comment lines). */
function headings(markdown: string): string[] {
  const out: string[] = [];
  let fenced = false;
  for (const line of markdown.split('\n')) {
    if (line.startsWith('```')) fenced = !fenced;
    else if (!fenced) {
      const m = /^#{1,6}\s+(.+?)\s*$/.exec(line);
      if (m) out.push(m[1]!);
    }
  }
  return out;
}

const sources = sourceFiles(join(ROOT, 'src')).map((path) => ({
  file: relative(ROOT, path),
  text: readFileSync(path, 'utf8'),
}));
/** "### 3.1 Text embedding (native), 200" → "3.1"; "## 6. Limits" → "6". */
const contractSections = new Set(
  headings(readFileSync(join(ROOT, 'docs/dashscope-contract.md'), 'utf8')).flatMap((h) => {
    const m = /^(\d+(?:\.\d+)*)\.?\s/.exec(h);
    return m ? [m[1]!] : [];
  }),
);
const readmeHeadings = new Set(headings(readFileSync(join(ROOT, 'README.md'), 'utf8')));

describe('references from src/ comments', () => {
  it('the contract has numbered sections to check against', () => {
    expect(contractSections.has('2.4')).toBe(true);
    expect(contractSections.has('6')).toBe(true);
    expect(readmeHeadings.has('Models')).toBe(true);
  });

  it('cite the contract by its path, never as a bare "contract §"', () => {
    const bare = sources.flatMap(({ file, text }) =>
      [...text.matchAll(/(?<!dashscope-contract\.md )contract §/g)].map(
        (m) => `${file}:${text.slice(0, m.index).split('\n').length}`,
      ),
    );
    expect(bare).toEqual([]);
  });

  it('name only sections docs/dashscope-contract.md has', () => {
    // § is used for the contract alone in src/, so every § number anywhere in a source file must resolve.
    const cited = sources.flatMap(({ file, text }) =>
      [...text.matchAll(/§(\d+(?:\.\d+)*)/g)].map((m) => ({ file, section: m[1]! })),
    );
    expect(cited.length).toBeGreaterThan(10);
    const missing = cited.filter((c) => !contractSections.has(c.section));
    expect(missing).toEqual([]);
  });

  it('name only README sections that exist', () => {
    const cited = sources.flatMap(({ file, text }) =>
      [...text.matchAll(/README "([^"]+)"/g)].map((m) => ({ file, heading: m[1]! })),
    );
    expect(cited.length).toBeGreaterThan(0);
    const missing = cited.filter((c) => !readmeHeadings.has(c.heading));
    expect(missing).toEqual([]);
  });
});

// Builds the explorer into ../query/ui/: exactly index.html, app.js and app.css.
// Deterministic: same sources and lockfile → same bytes (no timestamps, no source maps).
// Usage: node web/build.mjs   (from anywhere)
import { build } from 'esbuild';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, '..', 'query', 'ui');

const INDEX_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<meta name="color-scheme" content="light">
<title>The Eye · Explorer</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="./app.css">
<script type="module" src="./app.js"></script>
</head>
<body>
<div id="app"><noscript>The Eye's explorer needs JavaScript.</noscript></div>
</body>
</html>
`;

const result = await build({
  absWorkingDir: here,
  entryPoints: { app: 'src/main.tsx' },
  bundle: true,
  minify: true,
  format: 'esm',
  target: ['chrome109', 'firefox115', 'safari16'],
  platform: 'browser',
  jsx: 'automatic',
  jsxImportSource: 'preact',
  charset: 'utf8',
  legalComments: 'eof',
  sourcemap: false,
  metafile: true,
  write: false,
  outdir: out,
  entryNames: '[name]',
  assetNames: '[name]',
  logLevel: 'warning',
  define: { 'process.env.NODE_ENV': '"production"' },
});

const files = new Map();
for (const f of result.outputFiles) files.set(relative(out, f.path), f.contents);
const expected = ['app.css', 'app.js'];
const got = [...files.keys()].sort();
if (JSON.stringify(got) !== JSON.stringify(expected)) {
  console.error(`build.mjs: esbuild produced ${JSON.stringify(got)}, expected ${JSON.stringify(expected)}`);
  process.exit(1);
}

// The CSP forbids eval and friends, and event values must only ever be text: refuse sources
// that reach for them. (Preact's own support for dangerouslySetInnerHTML stays in the bundle, unused.)
const srcDir = join(here, 'src');
for (const name of await readdir(srcDir, { recursive: true })) {
  if (!/\.(ts|tsx)$/.test(name)) continue;
  const text = await readFile(join(srcDir, name), 'utf8');
  for (const bad of ['new Function', 'eval(', 'innerHTML', 'outerHTML', 'insertAdjacentHTML', 'dangerouslySetInnerHTML', 'document.write']) {
    if (text.includes(bad)) {
      console.error(`build.mjs: src/${name} uses ${bad}: not allowed`);
      process.exit(1);
    }
  }
}

await mkdir(out, { recursive: true });
await writeFile(join(out, 'index.html'), INDEX_HTML);
for (const name of expected) await writeFile(join(out, name), files.get(name));

const stray = (await readdir(out)).filter((n) => !['index.html', ...expected].includes(n));
if (stray.length) console.warn(`build.mjs: warning: ${out} also holds ${stray.join(', ')} (not written by this build)`);

for (const name of ['index.html', ...expected]) {
  const size = name === 'index.html' ? Buffer.byteLength(INDEX_HTML) : files.get(name).length;
  console.log(`${relative(process.cwd(), join(out, name)) || name}  ${(size / 1024).toFixed(1)} KiB`);
}

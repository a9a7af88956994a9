// The CommonJS entry, `require('nodebpf')`: dist/index.cjs, one file bundled by esbuild
// from tsc's ESM output (dist/index.js and what it imports; dependencies stay `require`s),
// with its declarations in dist/cjs/ (tsc's, marked CommonJS by a package.json there).
//
// Why a second build rather than Node's require(esm) (Node >= 20.19, 22.12): loaders that
// hook CommonJS (tsx running a .cts, ts-node, jest) fail on it, tsx with
// ERR_VM_MODULE_LINK_FAILURE. The ESM has no top-level await, so it converts as is.
//
// `import.meta.url` has no CommonJS equivalent in a bundle: each module's is replaced by
// the URL of its own file in dist/ (`dist/profile/sampler.js`), computed from the bundle's
// `__dirname`, so paths it builds (the addon beside dist/, the BPF objects in dist/bpf/)
// come out as in the ESM build. The bundle must therefore sit in dist/ itself.
import { build } from 'esbuild';
import { cpSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const DIST = path.join(ROOT, 'dist');
const TYPES = path.join(DIST, 'cjs');

await build({
  entryPoints: [path.join(DIST, 'index.js')],
  outfile: path.join(DIST, 'index.cjs'),
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  packages: 'external',
  logLevel: 'warning',
  plugins: [
    {
      name: 'import-meta-url-per-module',
      setup(b) {
        b.onLoad({ filter: /\.js$/ }, (args) => {
          const rel = path.relative(DIST, args.path);
          if (rel.startsWith('..')) return undefined;
          const source = readFileSync(args.path, 'utf8');
          if (!source.includes('import.meta')) return { contents: source, loader: 'js' };
          const url = `require('node:url').pathToFileURL(require('node:path').join(__dirname, ${JSON.stringify(rel)})).href`;
          const contents = source.replaceAll('import.meta.url', `(${url})`);
          // esbuild would leave any other `import.meta` use (`import.meta.dirname`) empty.
          if (contents.includes('import.meta')) throw new Error(`${rel}: import.meta other than import.meta.url has no CommonJS form here`);
          return { contents, loader: 'js' };
        });
      },
    },
  ],
});

// The declarations, read as CommonJS ones below dist/cjs/package.json. The CLI's are not
// part of the library.
rmSync(TYPES, { recursive: true, force: true });
mkdirSync(TYPES);
const copy = (dir) => {
  for (const name of readdirSync(path.join(DIST, dir))) {
    const rel = path.join(dir, name);
    if (rel === 'cli' || rel === 'cjs' || rel === 'bpf') continue;
    if (statSync(path.join(DIST, rel)).isDirectory()) copy(rel);
    else if (name.endsWith('.d.ts')) {
      mkdirSync(path.join(TYPES, dir), { recursive: true });
      cpSync(path.join(DIST, rel), path.join(TYPES, rel));
    }
  }
};
copy('');
writeFileSync(path.join(TYPES, 'package.json'), `${JSON.stringify({ type: 'commonjs' }, null, 2)}\n`);
